"""``editorbot edit`` and ``editorbot export-model`` end to end: a tiny exported
policy edits a synthesized song into audio, a plan, every export and a plot;
bad input exits 2 with one line and writes nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import soundfile as sf

from editorbot.bridge.cli import main
from editorbot.engine.exporters.tsv import read_tsv
from editorbot.engine.plan import load_plan
from editorbot.export import runtime
from tests.export import median_beat_s, scratch, song_analysis, song_file, tiny_model

logger = logging.getLogger(__name__)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))


def test_edit_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = tiny_model()
    song = song_file(31, 24.0)
    analysis = song_analysis(31, 24.0)
    out_dir = scratch("edit")
    out = out_dir / "edited.wav"
    target = 0.75 * analysis.audio.duration_s
    rc = main(
        [
            "edit", str(song), "-o", str(out), "--model", str(model),
            "--export", "rpp,midi", "--export", "audacity,tsv",
            "--target-duration", f"{target:.3f}", "--keep", "3-6",
            "--plot", str(out_dir / "edit.png"), "--seed", "4", "--quiet",
        ]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "duration out" in printed and "pure DP" in printed and "wrote audio" in printed
    assert "grid confidence" not in printed  # a steady pulse: nothing to warn of
    plan = load_plan(out_dir / "edited.plan.json")
    assert plan.model is not None and plan.model.name == "tiny"
    assert abs(plan.duration_s - target) <= median_beat_s(analysis)
    info = sf.info(str(out))
    assert abs(info.duration - plan.duration_s) < 0.01
    for name in ("edited.rpp", "edited.mid", "edited.txt", "edited.tsv", "edit.png"):
        assert (out_dir / name).stat().st_size > 0, name
    assert (out_dir / "edit.png").read_bytes()[:4] == b"\x89PNG"
    assert len(read_tsv(out_dir / "edited.tsv").segments) == len(plan.segments)
    for line in printed.splitlines():
        if line.startswith("CUT") or line.startswith("KEEP"):
            assert int(line.split()[-1]) >= 1


def test_edit_says_when_its_grid_is_a_guess(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    # noise bursts at random times: onsets with no pulse, so the grid is a guess
    sr = 22050
    rng = np.random.default_rng(0)
    y = np.zeros(16 * sr, dtype=np.float32)
    burst = int(0.05 * sr)
    for t in np.cumsum(rng.exponential(0.35, 80)):
        i = int(t * sr)
        if i + burst > y.size:
            break
        y[i : i + burst] += 0.5 * rng.standard_normal(burst).astype(np.float32) * np.exp(-np.arange(burst) / (0.01 * sr))
    out_dir = scratch("edit_unsure")
    song = out_dir / "bursts.wav"
    sf.write(str(song), y, sr, subtype="PCM_16")
    model, _ = tiny_model()
    with caplog.at_level(logging.WARNING, logger="editorbot.export.edit"):
        rc = main(["edit", str(song), "-o", str(out_dir / "bursts.edit.wav"), "--model", str(model), "--quiet"])
    assert rc == 0
    assert "grid confidence" in capsys.readouterr().out
    assert any("may not land on beats" in r.getMessage() for r in caplog.records)


def test_edit_with_checkpoint_and_named_plan(capsys: pytest.CaptureFixture[str]) -> None:
    model, ckpt = tiny_model()
    song = song_file(31, 24.0)
    out_dir = scratch("edit-ckpt")
    plans = []
    for flag, path, name in (("--checkpoint", ckpt, "a"), ("--model", model, "b")):
        plan_path = out_dir / f"{name}.json"
        rc = main(["edit", str(song), "-o", str(out_dir / f"{name}.flac"), flag, str(path), "--plan", str(plan_path), "--quiet"])
        assert rc == 0
        plans.append(json.loads(plan_path.read_text()))
    # torch eager and ONNX take the same greedy walk, with the same confidence up to float rounding
    decided = [[{k: v for k, v in a.items() if k != "confidence"} for a in p["actions"]] for p in plans]
    assert decided[0] == decided[1]
    confidence = [[a["confidence"] for a in p["actions"]] for p in plans]
    assert confidence[0] == pytest.approx(confidence[1], abs=1e-5)
    assert [m["name"] for m in plans[0]["markers"]] == [m["name"] for m in plans[1]["markers"]]
    assert (out_dir / "a.flac").stat().st_size > 0


def _run_bad(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1
    return err


def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model, ckpt = tiny_model()
    song = song_file(31, 24.0)
    out_dir = scratch("bad")
    out = str(out_dir / "out.wav")
    err = _run_bad(["edit", str(out_dir / "missing.wav"), "-o", out, "--model", str(model)], capsys)
    assert "missing.wav" in err
    not_audio = out_dir / "notes.wav"
    not_audio.write_text("hello")
    assert "notes.wav" in _run_bad(["edit", str(not_audio), "-o", out, "--model", str(model)], capsys)
    assert "--export" in _run_bad(["edit", str(song), "-o", out, "--model", str(model), "--export", "mp4"], capsys)
    assert "--keep" in _run_bad(["edit", str(song), "-o", out, "--model", str(model), "--keep", "9-2"], capsys)
    assert "--target-duration" in _run_bad(["edit", str(song), "-o", out, "--model", str(model), "--target-duration", "500"], capsys)
    assert "refusing to overwrite" in _run_bad(["edit", str(song), "-o", str(song), "--model", str(model)], capsys)
    assert "no such model" in _run_bad(["edit", str(song), "-o", out, "--model", str(out_dir / "none.onnx")], capsys)
    # a model made for other features
    other = out_dir / "other.onnx"
    other.write_bytes(model.read_bytes())
    doc = json.loads(model.with_suffix(".json").read_text())
    doc["features"]["spec_hash"] = "1" * 64
    other.with_suffix(".json").write_text(json.dumps(doc))
    err = _run_bad(["edit", str(song), "-o", out, "--model", str(other)], capsys)
    assert "other.onnx" in err and "feature spec hash" in err
    # no model named and no default model yet
    monkeypatch.setattr(runtime, "DEFAULT_MODEL", out_dir / "default" / "policy.onnx")
    err = _run_bad(["edit", str(song), "-o", out], capsys)
    assert "no model found" in err and "export-model" in err
    # export-model on a bad checkpoint
    junk = out_dir / "junk.pt"
    junk.write_bytes(b"\x00" * 10)
    assert "junk.pt" in _run_bad(["export-model", str(junk), "-o", str(out_dir / "m.onnx")], capsys)
    # nothing was written by any of the refused runs
    assert not (out_dir / "out.wav").exists() and not (out_dir / "out.plan.json").exists()
    assert not (out_dir / "m.onnx").exists() and not (out_dir / "m.json").exists()


def test_editorbot_model_stands_in_for_the_bundled_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """$EDITORBOT_MODEL is the model when none is named; --model and --checkpoint win over it;
    a missing or unusable one is one line naming the variable, exit 2; empty counts as unset."""
    model, ckpt = tiny_model()
    song = song_file(31, 24.0)
    out_dir = scratch("env-model")
    monkeypatch.setenv("EDITORBOT_MODEL", str(model))
    assert main(["edit", str(song), "-o", str(out_dir / "env.wav"), "--quiet"]) == 0
    plan = load_plan(out_dir / "env.plan.json")
    assert plan.model is not None and plan.model.name == "tiny"

    missing = out_dir / "none.onnx"
    monkeypatch.setenv("EDITORBOT_MODEL", str(missing))
    assert main(["edit", str(song), "-o", str(out_dir / "flag.wav"), "--model", str(runtime.DEFAULT_MODEL), "--quiet"]) == 0
    plan = load_plan(out_dir / "flag.plan.json")
    assert plan.model is not None and plan.model.name == "editorbot-default"
    assert main(["edit", str(song), "-o", str(out_dir / "ckpt.wav"), "--checkpoint", str(ckpt), "--quiet"]) == 0

    out = str(out_dir / "out.wav")
    assert _run_bad(["edit", str(song), "-o", out], capsys) == f"editorbot: EDITORBOT_MODEL={missing}: no such model file"
    junk = out_dir / "junk.onnx"  # not the file its (copied) sidecar describes
    junk.write_bytes(b"not a model")
    junk.with_suffix(".json").write_text(model.with_suffix(".json").read_text())
    monkeypatch.setenv("EDITORBOT_MODEL", str(junk))
    err = _run_bad(["edit", str(song), "-o", out], capsys)
    assert err.startswith(f"editorbot: EDITORBOT_MODEL={junk}: ") and "sha256 differs" in err
    assert not (out_dir / "out.wav").exists() and not (out_dir / "out.plan.json").exists()

    monkeypatch.setenv("EDITORBOT_MODEL", "")
    monkeypatch.setattr(runtime, "DEFAULT_MODEL", out_dir / "default" / "policy.onnx")
    assert "no model found" in _run_bad(["edit", str(song), "-o", out], capsys)


def test_bad_flags_are_refused_before_the_model_loads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--target-duration -5``: one line, exit 2, and no model load (nor its INFO log line) first."""
    import subprocess

    import editorbot.export.edit
    from tests.bridge.test_server import EDITORBOT

    folder = scratch("flags")
    song, out = folder / "song.wav", folder / "out.wav"  # flags are checked before the song is read, too
    proc = subprocess.run(  # the installed command: nothing but the one line on stderr
        [EDITORBOT, "edit", str(song), "-o", str(out), "--target-duration", "-5"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stderr == "editorbot: --target-duration: must be > 0 seconds, got -5\n"

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the flags were checked")

    monkeypatch.setattr(editorbot.export.edit, "load_model", no_model)
    for flag, value in (("--target-duration", "nan"), ("--target-duration", "0"), ("--seed", "-1")):
        assert main(["edit", str(song), "-o", str(out), flag, value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"editorbot: {flag}: "), err
    assert not out.exists()
