"""``editorbot plot PLAN -o PNG``: a PNG of the requested size from a saved plan
(its relative source found beside the plan); bad input exits 2 with one stderr
line and writes nothing."""

from __future__ import annotations

import pytest
from matplotlib.image import imread

from editorbot.bridge.cli import main


def test_plot_writes_a_png_of_the_requested_size(saved_plan, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)  # the relative source path is found beside the plan
    out = tmp_path / "edit.png"
    assert main(["plot", str(saved_plan.plan_path), "-o", str(out), "--width", "640", "--height", "400", "-q"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert imread(out).shape[:2] == (400, 640)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edit.png", "song.plan.json", "song.wav"]


@pytest.mark.parametrize(
    "problem", ["width", "height", "not_json", "over_source", "no_folder", "changed_source", "missing_source"]
)
def test_bad_input_exits_2_with_one_line(saved_plan, tmp_path, capsys, problem):
    wav, plan_path = saved_plan.wav, saved_plan.plan_path
    out = tmp_path / "edit.png"
    flags = ["--width", "640", "--height", "400"]
    if problem == "width":
        flags[1] = "99"
    elif problem == "height":
        flags[3] = "10001"
    elif problem == "not_json":
        plan_path.write_text("{not json")
    elif problem == "over_source":
        out = wav
    elif problem == "no_folder":
        out = tmp_path / "nope" / "edit.png"
    elif problem == "changed_source":
        wav.write_bytes(wav.read_bytes()[:-4] + b"\0\0\0\0")
    else:
        wav.unlink()
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert main(["plot", str(plan_path), "-o", str(out), *flags, "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("editorbot: ")
    if problem in ("width", "height"):
        assert f"--{problem}" in err
    elif problem == "missing_source":
        assert "song.wav: source missing" in err
    else:
        assert str(plan_path) in err or str(out) in err or str(wav) in err
    if problem == "over_source":
        assert "refusing to overwrite" in err
    after = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing changed
