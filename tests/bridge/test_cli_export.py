"""``editorbot export PLAN --format F -o OUT``: every format from a saved plan
(its relative source found beside the plan); bad input exits 2 with one stderr
line and writes nothing; the source and the plan are never overwritten."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import mido
import pytest

from editorbot.bridge.cli import main
from editorbot.engine.exporters import EXPORTERS, EXTENSIONS
from editorbot.engine.exporters.tsv import read_tsv
from editorbot.engine.formats import EXPORT_FORMATS as FORMATS

EDITORBOT = str(Path(sys.executable).with_name("editorbot"))


def test_formats_are_the_exporters():
    assert set(FORMATS) == set(EXPORTERS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_each_format(saved_plan, tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.chdir(tmp_path.parent)  # the relative source path is found beside the plan
    out = tmp_path / f"edit{EXTENSIONS[fmt]}"
    assert main(["export", str(saved_plan.plan_path), "--format", fmt, "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().err == ""
    plan = saved_plan.plan
    if fmt == "rpp":
        text = out.read_text()
        assert text.startswith("<REAPER_PROJECT") and str(saved_plan.wav) in text
        assert text.count("<ITEM") == len(plan.segments)
    elif fmt == "midi":
        names = [m.text for t in mido.MidiFile(out).tracks for m in t if m.type == "marker"]
        assert names == ["loop", "quiet part", "quiet part end"]  # a region's end is a marker too
    elif fmt == "audacity":
        rows = [line.split("\t") for line in out.read_text().splitlines()]
        assert [r[2] for r in rows] == [m.name for m in plan.markers]
    else:
        content = read_tsv(out)
        assert len(content.segments) == len(plan.segments) and len(content.markers) == len(plan.markers)


def test_export_overwrites_an_earlier_export(saved_plan, tmp_path):
    out = tmp_path / "edit.tsv"
    out.write_text("old")
    assert main(["export", str(saved_plan.plan_path), "-f", "tsv", "-o", str(out), "-q"]) == 0
    assert len(read_tsv(out).segments) == len(saved_plan.plan.segments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edit.tsv", "song.plan.json", "song.wav"]


def test_missing_source_warns_and_still_exports(saved_plan, tmp_path, caplog):
    saved_plan.wav.unlink()
    out = tmp_path / "edit.rpp"
    with caplog.at_level(logging.WARNING):
        assert main(["export", str(saved_plan.plan_path), "-f", "rpp", "-o", str(out)]) == 0
    assert "missing" in caplog.text
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    "problem", ["not_json", "bad_field", "no_plan", "over_source", "over_plan", "no_folder", "folder"]
)
def test_bad_input_exits_2_with_one_line(saved_plan, tmp_path, capsys, problem):
    wav, plan_path = saved_plan.wav, saved_plan.plan_path
    out = tmp_path / "edit.rpp"
    if problem == "not_json":
        plan_path.write_text("{not json")
    elif problem == "bad_field":
        data = json.loads(plan_path.read_text())
        data["segments"][2]["effects"][0]["params"]["cutoff_hz"] = 30000.0  # above the renderer's limit
        plan_path.write_text(json.dumps(data))
    elif problem == "no_plan":
        plan_path = tmp_path / "missing.plan.json"
    elif problem == "over_source":
        out = wav
    elif problem == "over_plan":
        out = plan_path
    elif problem == "no_folder":
        out = tmp_path / "nope" / "edit.rpp"
    else:
        out = tmp_path
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert main(["export", str(plan_path), "-f", "rpp", "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("editorbot: ")
    assert str(plan_path) in err or str(out) in err
    if problem in ("over_source", "over_plan"):
        assert "refusing to overwrite" in err
    after = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing changed


def test_exit_codes_of_the_installed_command(saved_plan, tmp_path):
    run = [EDITORBOT, "export", str(saved_plan.plan_path), "-q", "-o"]
    ok = subprocess.run([*run, str(tmp_path / "e.txt"), "-f", "audacity"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*run, str(saved_plan.wav), "-f", "audacity"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    usage = subprocess.run([*run, str(tmp_path / "e.wav"), "-f", "wav"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
    assert not (tmp_path / "e.wav").exists()
