"""bridge.ardour.export_session without Ardour: a stand-in ``ardour7-export`` that dies, hangs,
renders wrong audio or fails on given runs; the export is the first render two runs agree on."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from editorbot.bridge.ardour import EXPORT_ATTEMPTS, EXPORT_BIN, ArdourError, ArdourSession, export_session

# Each run does what its entry says: "abort" (SIGABRT), "hang", "fail" (exit 1), or renders a level.
STAND_IN = """#!{python}
import os, signal, sys
import numpy as np, soundfile as sf
out = sys.argv[sys.argv.index("-o") + 1]
counter = os.path.join(os.path.dirname(out), "runs")
run = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(run))
what = {runs!r}[run - 1]
if what == "abort":
    os.kill(os.getpid(), signal.SIGABRT)
if what == "hang":
    import time; time.sleep(600)
if what == "fail":
    sys.exit(1)
sf.write(out, np.full((4800, 2), what, np.float32), 48000, subtype="FLOAT")  # a PEAK chunk: bytes differ per run
"""


def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: list[object]) -> ArdourSession:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    exe = bin_dir / EXPORT_BIN
    exe.write_text(STAND_IN.format(python=sys.executable, runs=runs))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return ArdourSession(tmp_path / "session", "edit", 48000)


def test_the_render_two_runs_agree_on_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = stand_in(tmp_path, monkeypatch, ["abort", 0.3, 0.1, 0.1])
    out = tmp_path / "out" / "ardour.wav"
    out.parent.mkdir()
    assert export_session(session, out) == str(out) == session.exported
    audio, rate = sf.read(out, dtype="float32")
    assert rate == 48000 and np.all(audio == np.float32(0.1))
    assert (tmp_path / "out" / "runs").read_text() == "4"
    assert sorted(p.name for p in out.parent.iterdir()) == ["ardour.wav", "runs"]  # no run files left


def test_a_hung_run_is_killed_and_run_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = stand_in(tmp_path, monkeypatch, [0.1, "hang", 0.1])
    out = tmp_path / "ardour.wav"
    assert export_session(session, out, run_timeout_s=3.0) == str(out)
    assert (tmp_path / "runs").read_text() == "3"
    with pytest.raises(ArdourError, match="twice alike within 4 s"):
        export_session(stand_in(tmp_path / "b", monkeypatch, ["hang", "hang"]), tmp_path / "b" / "b.wav",
                       timeout_s=4.0, run_timeout_s=3.0)  # fmt: skip


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        (["abort", 0.1, 0.2, "abort", *[0.3 + 0.1 * k for k in range(EXPORT_ATTEMPTS - 4)]],
         f"no two of {EXPORT_ATTEMPTS} runs rendered edit alike"),
        ([0.1, "fail"], "failed \\(exit 1\\)"),
    ],
)
def test_disagreeing_or_failing_runs_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: list[object], message: str
) -> None:
    session = stand_in(tmp_path, monkeypatch, runs)
    with pytest.raises(ArdourError, match=message):
        export_session(session, tmp_path / "ardour.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "runs"]
