"""`editorbot data synth` and `editorbot data pair` from the command line (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from editorbot.bridge.cli import main
from editorbot.engine import actions as vocab
from editorbot.engine.audio import load_audio, write_audio
from editorbot.training.data.pairs import make_synth_pair, synth_pair_name
from editorbot.training.data.synth import synth_song

DURATION = "15"


def _files(root: Path) -> dict[str, bytes]:
    """Raw, edit and label files under ``root`` by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for d in ("input", "desired_output", "labels")
        for p in sorted((root / d).glob("*"))
    }


def test_data_synth_two_short_songs_with_two_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus"
    rc = main(["data", "synth", "--n", "2", "--out", str(out), "--styles", "dj_edit,mastering",
               "--seed", "40", "--duration", DURATION, "--jobs", "2", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "made 2 pairs" in captured.out and "dj_edit 1, mastering 1" in captured.out
    for d in ("input", "desired_output", "labels", "reference"):
        assert (out / d).is_dir()
    names = [synth_pair_name(40, "dj_edit"), synth_pair_name(41, "mastering")]
    assert sorted(p.name for p in (out / "labels").glob("*.json")) == sorted(f"{n}.json" for n in names)
    for n in names:
        assert (out / "input" / f"{n}_raw.wav").is_file()
        assert (out / "desired_output" / f"{n}_edit.wav").is_file()

    # Worker processes make the same files as one process does.
    alone = tmp_path / "alone"
    make_synth_pair(40, "dj_edit", alone, float(DURATION))
    make_synth_pair(41, "mastering", alone, float(DURATION))
    assert _files(out) == _files(alone)


def test_data_synth_stats_on_new_and_existing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c"
    assert main(["data", "synth", "--n", "2", "--out", str(out), "--styles", "fx_heavy",
                 "--duration", DURATION, "--stats", "--quiet"]) == 0
    fresh = capsys.readouterr().out
    assert main(["data", "synth", "--stats", "--out", str(out)]) == 0
    existing = capsys.readouterr().out
    table = fresh[fresh.index("labelled beats"):]
    assert table == existing
    for name in (*vocab.TYPES, *vocab.SIZES, *vocab.AMOUNTS):
        assert f"  {name} " in existing
    # The table's shares are the labels' shares.
    n_beats = sum(len(json.loads(p.read_text())["beat_labels"]["type"]) for p in (out / "labels").glob("*.json"))
    assert f"labelled beats: {n_beats}" in existing


def test_data_synth_makes_persona_pairs(tmp_path: Path) -> None:
    out = tmp_path / "persona"
    assert main(["data", "synth", "--n", "1", "--out", str(out), "--styles", "radio_edit@1",
                 "--duration", "12", "--quiet"]) == 0
    (label,) = (out / "labels").glob("*.json")
    assert json.loads(label.read_text())["style"] == "radio_edit@1"


def test_data_synth_and_pair_make_studio_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The studio styles' edited side is the plan's render through the studio chain, not the render itself."""
    from editorbot.engine.render import render_plan
    from editorbot.training.data.pairs import load_pair_plan

    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "studio"
    assert main(["data", "synth", "--n", "1", "--out", str(out), "--styles", "studio", "--duration", "12", "--quiet"]) == 0
    song = synth_song(3, duration_s=12.0)
    mine = tmp_path / "mine.wav"
    write_audio(mine, song.samples, song.sample_rate)
    assert main(["data", "pair", str(mine), "--style", "studio_edits", "--out", str(out), "--quiet"]) == 0
    labels = sorted((out / "labels").glob("*.json"))
    assert [json.loads(p.read_text())["style"] for p in labels] == ["studio_edits", "studio"]
    for label in labels:
        plan = load_pair_plan(label)
        raw = load_audio(plan.source.path)
        dsp = render_plan(plan, raw.samples, raw.sample_rate)
        edit = load_audio(out / json.loads(label.read_text())["edit"]).samples
        assert edit.shape == dsp.shape
        assert float(np.abs(edit - dsp).max()) > 0.01, label.name  # the chain is in the edit


def test_data_synth_bad_flags_name_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, flag in (
        (["--n", "1", "--styles", "dj_edit,house"], "--styles"),
        (["--n", "1", "--styles", "radio_edit@x"], "--styles"),
        (["--n", "0"], "--n"),
        (["--n", "1", "--duration", "0.5"], "--duration"),
        ([], "--n"),
    ):
        rc = main(["data", "synth", "--out", str(tmp_path / "x"), *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and flag in err[0], (argv, err)
    rc = main(["data", "synth", "--stats", "--out", str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no label files" in err[0]


def test_data_pair_skips_bad_files_and_finishes_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    song = synth_song(12, duration_s=16.0)
    good = tmp_path / "good.wav"
    write_audio(good, song.samples, song.sample_rate)
    text = tmp_path / "notes.wav"
    text.write_text("these are not the songs you are looking for\n")
    short = tmp_path / "short.wav"
    write_audio(short, song.samples[:, : song.sample_rate // 2], song.sample_rate)
    out = tmp_path / "mine"

    rc = main(["data", "pair", str(text), str(good), str(short), "--style", "radio_edit", "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 2
    err = captured.err.strip().splitlines()
    assert len(err) == 2
    assert str(text) in err[0] and "not an audio file" in err[0]
    assert str(short) in err[1] and "too short" in err[1]
    assert "made 1 pairs" in captured.out and "skipped 2" in captured.out
    assert [p.name for p in (out / "labels").glob("*.json")] == ["good_radio_edit_s0.json"]
    assert (out / "desired_output" / "good_radio_edit_s0_edit.wav").is_file()

    rc = main(["data", "pair", str(good), "--style", "radio_edit", "--out", str(out), "--seed", "1", "--quiet"])
    assert rc == 0
    rc = main(["data", "pair", str(good), "--style", "house", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--style" in err[0] and "house" in err[0]
