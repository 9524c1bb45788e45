"""``editorbot analyze``: every bad input of DESIGN section 11 exits 2 with one
stderr line naming the file and the problem, and leaves the file as it was;
good input prints the summary and writes the requested outputs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pedalboard.io import AudioFile

from editorbot.bridge.cli import main
from tests.drumkit import drum_song

EDITORBOT = str(Path(sys.executable).with_name("editorbot"))


def tone(sr: int, seconds: float, n_channels: int = 2, level: float = 0.5) -> np.ndarray:
    """``(n_samples, n_channels)`` float32 440 Hz sine (soundfile's layout)."""
    t = np.arange(int(sr * seconds)) / sr
    return np.repeat((level * np.sin(2 * np.pi * 440.0 * t))[:, None], n_channels, axis=1).astype(np.float32)


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def make_truncated_wav(p: Path) -> None:
    sf.write(p, tone(44100, 3.0), 44100, subtype="PCM_16")
    truncate(p)


def make_truncated_flac(p: Path) -> None:
    sf.write(p, tone(44100, 3.0), 44100, format="FLAC")
    truncate(p)


def make_truncated_mp3(p: Path) -> None:
    with AudioFile(str(p), "w", 44100, 2) as f:
        f.write(tone(44100, 3.0).T)
    truncate(p)


def make_nan(p: Path) -> None:
    x = tone(44100, 2.0)
    x[5000, 0] = np.nan
    sf.write(p, x, 44100, subtype="FLOAT")


def make_inf(p: Path) -> None:
    x = tone(44100, 2.0)
    x[7000, 1] = np.inf
    sf.write(p, x, 44100, subtype="FLOAT")


def make_too_long(p: Path) -> None:
    # 30 min + 2 s at the cheapest PCM (8 kHz mono 8-bit: 14 MB); the length is
    # refused from the header, before decoding.
    with sf.SoundFile(p, "w", 8000, 1, subtype="PCM_U8") as f:
        block = np.full((8000 * 60, 1), 0.25, np.float32)
        for _ in range(30):
            f.write(block)
        f.write(block[: 8000 * 2])


def make_dir(p: Path) -> None:
    p.mkdir()


# name -> (builder, file name, words the problem must contain)
BAD_INPUTS: dict[str, tuple[Callable[[Path], None] | None, str, str]] = {
    "missing": (None, "missing.wav", "no such file"),
    "directory": (make_dir, "folder.wav", "directory"),
    "empty": (lambda p: p.write_bytes(b""), "empty.wav", "empty file"),
    "truncated_wav": (make_truncated_wav, "cut.wav", "truncated"),
    "truncated_flac": (make_truncated_flac, "cut.flac", "truncated"),
    "truncated_mp3": (make_truncated_mp3, "cut.mp3", "truncated"),
    "text": (lambda p: p.write_text("not a song\n" * 100), "notes.wav", "not an audio file"),
    # libmpg123 writes "Note: Illegal Audio-MPEG-Header" to fd 2 for this one: it must not show
    "text_mp3": (lambda p: p.write_text("hello this is text\n" * 50), "text.mp3", "not an audio file"),
    "random_bytes": (lambda p: p.write_bytes(b"\x00" + np.random.default_rng(7).bytes(30000)), "noise.wav", "not an audio file"),
    "silence": (lambda p: sf.write(p, np.zeros((88200, 2), np.float32), 44100), "silence.wav", "silent"),
    "sub_second": (lambda p: sf.write(p, tone(44100, 0.6), 44100), "blip.wav", "too short"),
    "too_long": (make_too_long, "long.wav", "too long"),
    "nine_channels": (lambda p: sf.write(p, tone(22050, 1.5, n_channels=9), 22050), "ch9.wav", "9 channels"),
    "rate_too_low": (lambda p: sf.write(p, tone(6000, 2.0), 6000), "low.wav", "sample rate 6000 Hz"),
    "rate_too_high": (lambda p: sf.write(p, tone(384000, 1.2, 1), 384000), "high.wav", "sample rate 384000 Hz"),
    "nan": (make_nan, "nan.wav", "NaN or infinite"),
    "inf": (make_inf, "inf.wav", "NaN or infinite"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_one_line_exit_2_file_untouched(case, tmp_path, capsys):
    build, name, problem = BAD_INPUTS[case]
    path = tmp_path / name
    if build is not None:
        build(path)
    before = digest(path)
    rc = main(["analyze", str(path), "--cache-dir", str(tmp_path / "cache"), "--json", str(tmp_path / "out.json")])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and problem in lines[0], lines[0]
    assert digest(path) == before
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("case", ["truncated_mp3", "nan", "text_mp3"])
def test_bad_input_through_the_installed_command(case, tmp_path):
    """The real console script: nothing else (warnings, logging) reaches stderr."""
    build, name, problem = BAD_INPUTS[case]
    path = tmp_path / name
    build(path)
    before = digest(path)
    proc = subprocess.run(
        [EDITORBOT, "analyze", str(path), "--no-cache"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr and problem in proc.stderr, proc.stderr
    assert digest(path) == before


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    y, _, _ = drum_song(120.0, seconds=6.0, sr=48000, seed=5)
    path = tmp_path_factory.mktemp("cli") / "drums.flac"
    sf.write(path, np.stack([y, y]).T, 48000)
    return path


def test_analyze_prints_summary_and_writes_outputs(song, tmp_path, capsys):
    before = digest(song)
    rc = main(
        ["analyze", str(song), "--json", str(tmp_path / "a.json"), "--npz", str(tmp_path / "a.npz"),
         "--cache-dir", str(tmp_path / "cache")]
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    for word in ("tempo", "beats", "bars", "phrases", "duration", "onset_strength", "rms", "centroid"):
        assert word in out
    assert "6.00 s" in out
    doc = json.loads((tmp_path / "a.json").read_text())
    assert f"grid confidence {doc['grid']['confidence']:.2f}" in out
    assert len(doc["features"]) == doc["summary"]["n_beats"] and len(doc["features"][0]) == 109
    with np.load(tmp_path / "a.npz") as npz:
        assert npz["features"].shape == (doc["summary"]["n_beats"], 109)
    assert len(os.listdir(tmp_path / "cache")) == 1
    assert digest(song) == before


def test_tracker_flag_and_environment(song, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EDITORBOT_TRACKER", raising=False)
    assert main(["analyze", str(song), "--json", str(tmp_path / "a.json"), "--no-cache"]) == 0  # the default
    assert "(learned tracker)" in capsys.readouterr().out
    assert json.loads((tmp_path / "a.json").read_text())["summary"]["tracker"] == "learned"
    monkeypatch.setenv("EDITORBOT_TRACKER", "beatroot")
    assert main(["analyze", str(song), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "EDITORBOT_TRACKER=beatroot: unknown beat tracker" in err
    assert main(["analyze", str(song), "--no-cache", "--tracker", "onset"]) == 0  # the flag wins
    assert "(onset tracker)" in capsys.readouterr().out
    assert os.environ["EDITORBOT_TRACKER"] == "beatroot"  # the flag did not outlive the call
    monkeypatch.delenv("EDITORBOT_TRACKER")
    assert main(["analyze", str(song), "--no-cache", "--tracker", "onset"]) == 0
    assert "EDITORBOT_TRACKER" not in os.environ


def test_no_cache_writes_no_cache(song, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    assert main(["analyze", str(song), "--no-cache"]) == 0
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("flag", ["--json", "--npz"])
def test_refuses_to_write_over_the_input(song, tmp_path, capsys, flag):
    before = digest(song)
    link = tmp_path / "alias.flac"
    link.symlink_to(song)
    for target in (song, link):
        assert main(["analyze", str(song), flag, str(target), "--no-cache"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "refusing to overwrite" in err
    assert digest(song) == before


def test_bad_output_paths(song, tmp_path, capsys):
    assert main(["analyze", str(song), "--json", str(tmp_path / "no" / "a.json"), "--no-cache"]) == 2
    assert "does not exist" in capsys.readouterr().err
    same = str(tmp_path / "x")
    assert main(["analyze", str(song), "--json", same, "--npz", same, "--no-cache"]) == 2
    assert "same file" in capsys.readouterr().err


def test_help_is_fast_and_imports_nothing_heavy():
    start = time.perf_counter()
    proc = subprocess.run([EDITORBOT, "--help"], capture_output=True, text=True, timeout=30)
    wall_s = time.perf_counter() - start
    assert proc.returncode == 0 and "analyze" in proc.stdout
    assert wall_s < 1.5, f"editorbot --help took {wall_s:.2f} s"
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, editorbot.bridge.commands.analyze as m; import argparse; "
         "m.add_arguments(argparse.ArgumentParser()); "
         "print(sorted(k for k in ('numpy', 'librosa', 'soundfile', 'pedalboard', 'torch') if k in sys.modules))"],
        capture_output=True, text=True, timeout=30,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "[]", probe.stdout + probe.stderr


def test_report_flags_a_grid_it_cannot_trust(song):
    import dataclasses

    from editorbot.bridge.commands.analyze import format_report
    from editorbot.engine.analysis import analyze
    from editorbot.engine.grid import UNSURE_CONFIDENCE

    a = analyze(song, cache=False)
    a.grid = dataclasses.replace(a.grid, confidence=1.0)
    assert "weak pulse" not in format_report(a)
    a.grid = dataclasses.replace(a.grid, confidence=UNSURE_CONFIDENCE - 0.1)
    assert "grid confidence 0.40 (weak pulse" in format_report(a)
