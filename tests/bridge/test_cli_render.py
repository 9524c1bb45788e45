"""``editorbot render PLAN -o OUT``: prints path, duration and segment count;
bad input exits 2 with one stderr line and leaves the source and the plan alone."""

from __future__ import annotations

import json

import pytest

from editorbot.bridge.cli import main
from editorbot.engine.audio import load_audio
from editorbot.engine.plan import resolve_source
from editorbot.engine.render import render_plan


def test_cli_render_prints_path_duration_and_segments(saved_plan, tmp_path, capsys, monkeypatch):
    plan = saved_plan.plan
    monkeypatch.chdir(tmp_path.parent)  # the plan's relative source path is found beside the plan
    out = tmp_path / "edit.flac"
    assert main(["render", str(saved_plan.plan_path), "-o", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and f"{plan.duration_s:.2f} s" in printed and "4 segments" in printed
    assert out.stat().st_size > 0
    written = load_audio(out)
    sr = plan.source.sample_rate
    assert written.sample_rate == sr and written.samples.shape == (2, round(plan.duration_s * sr))


def test_cli_render_writes_what_render_plan_returns(saved_plan, tmp_path):
    out = tmp_path / "edit.wav"
    assert main(["render", str(saved_plan.plan_path), "-o", str(out), "-q"]) == 0
    plan = saved_plan.plan
    resolve_source(plan, saved_plan.plan_path)
    expected = render_plan(plan, saved_plan.samples, plan.source.sample_rate)
    assert abs(load_audio(out).samples - expected).max() < 1e-6


@pytest.mark.parametrize("problem", ["bad_effect", "not_json", "over_source", "over_plan", "changed_source"])
def test_cli_render_bad_input_exits_2_with_one_line(saved_plan, tmp_path, capsys, problem):
    wav, plan_path = saved_plan.wav, saved_plan.plan_path
    out = tmp_path / "edit.wav"
    if problem == "bad_effect":
        data = json.loads(plan_path.read_text())
        data["segments"][2]["effects"] = [{"name": "lowpass", "params": {"cutoff_hz": 30000.0}}]
        plan_path.write_text(json.dumps(data))
    elif problem == "not_json":
        plan_path.write_text("{not json")
    elif problem == "over_source":
        out = wav
    elif problem == "over_plan":
        out = plan_path
    else:
        wav.write_bytes(wav.read_bytes()[:-4] + b"\0\0\0\0")
    protected = {p: p.read_bytes() for p in (wav, plan_path)}
    assert main(["render", str(plan_path), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("editorbot: ")
    assert str(plan_path) in err or str(out) in err or str(wav) in err
    assert all(p.read_bytes() == data for p, data in protected.items())
    if problem in ("bad_effect", "not_json", "changed_source"):
        assert not out.exists()
