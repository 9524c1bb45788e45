"""``editorbot data explain``: one pair's inferred EditPlan, plot and exports; bad pairs get one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from editorbot.bridge.cli import main


def test_explain_writes_plan_plot_and_exports_once(corpus, tmp_path, capsys):
    p = corpus["struct"]
    plan = tmp_path / "struct.plan.json"
    png = tmp_path / "struct.png"
    args = ["data", "explain", p["raw"], p["edit"], "--plan", str(plan), "--plot", str(png), "--export", "rpp", "-q", "--no-cache"]
    assert main(args) == 0
    out = capsys.readouterr().out
    doc = json.loads(plan.read_text())
    types = {a["type"] for a in doc["actions"]}
    assert {"CUT", "LOOP", "REVERSE"} <= types
    assert all(0.0 <= a["confidence"] <= 1.0 for a in doc["actions"])
    assert png.stat().st_size > 0 and (tmp_path / "struct.rpp").stat().st_size > 0
    assert "REVERSE" in out and "confidence" in out and f"wrote plan: {plan}" in out
    # never over an earlier output: one line, exit 2, the file untouched
    before = plan.read_bytes()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert plan.read_bytes() == before


def test_explain_refuses_pairs_that_are_not_a_song_and_its_edit(corpus, tmp_path, capsys):
    raw, other = corpus["struct"]["raw"], corpus["fx"]["edit"]
    assert main(["data", "explain", raw, other, "--plan", str(tmp_path / "a.json"), "-q", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an edit of" in err[0] and other in err[0]
    y, sr = soundfile.read(raw, always_2d=True)
    short = tmp_path / "short.wav"
    soundfile.write(short, y[: len(y) // 5], sr)
    assert main(["data", "explain", raw, str(short), "--plan", str(tmp_path / "b.json"), "-q", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "too different in length" in err[0]
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros_like(y), sr)
    assert main(["data", "explain", raw, str(silent), "--plan", str(tmp_path / "c.json"), "-q", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "silent" in err[0]
    assert not any((tmp_path / n).exists() for n in ("a.json", "b.json", "c.json"))
