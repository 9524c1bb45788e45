"""DAW dialects: the messages each one makes for a plan, its capability table,
and the reaper dialect end to end (a render job through ``editorbot serve
--daw reaper`` reaches a UDP socket standing in for Reaper)."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from editorbot.bridge.dialects import (
    DIALECTS,
    REAPER_HANDOFF_NAME,
    AbletonDialect,
    ArdourDialect,
    GenericDialect,
    JobResult,
    ReaperDialect,
    make_dialect,
)
from editorbot.bridge.osc_client import OscClient, decode
from editorbot.engine.plan import EditPlan, Grid, Marker, Segment, Source, save_plan
from tests.bridge.test_server import EDITORBOT, collect, start_server, submit
from tests.export import song_file


def small_plan(sample_rate: int = 48000) -> EditPlan:
    return EditPlan(
        source=Source("/x/song.wav", "0" * 64, sample_rate, 2, 10.0),
        grid=Grid(120.0, [0.0, 0.5, 1.0], [0]),
        segments=[Segment(0.0, 4.0, 0.0), Segment(6.0, 10.0, 4.0)],
        markers=[Marker(4.0, "cut\nhere"), Marker(1.5, "intro", end_s=3.0), Marker(2.0, "x" * 200)],
    )


def test_generic_sends_sorted_markers_to_the_client_only() -> None:
    msgs = GenericDialect().messages(JobResult(plan=small_plan()))
    assert [m.target for m in msgs] == ["client"] * 3
    assert [m.args for m in msgs] == [(1.5, "intro", 3.0), (2.0, "x" * 64), (4.0, "cut here")]
    assert GenericDialect().messages(JobResult()) == []


def test_ardour_locates_in_session_samples_then_adds_each_marker() -> None:
    msgs = [m for m in ArdourDialect().messages(JobResult(plan=small_plan(48000))) if m.target == "daw"]
    assert [(m.address, m.args) for m in msgs] == [
        ("/locate", (72000, 0)), ("/add_marker", ("intro",)),
        ("/locate", (96000, 0)), ("/add_marker", ("x" * 64,)),
        ("/locate", (192000, 0)), ("/add_marker", ("cut here",)),
        ("/locate", (0, 0)),
    ]  # fmt: skip
    assert all(m.pause_s > 0 for m, nxt in zip(msgs, msgs[1:]) if nxt.address == "/add_marker")
    at_44k = [m.args for m in ArdourDialect(sample_rate=44100).messages(JobResult(plan=small_plan())) if m.address == "/locate"]
    assert at_44k[0] == (66150, 0)


def test_reaper_writes_the_handoff_then_triggers_the_script_and_moves_the_cursor(tmp_path: Path) -> None:
    d = ReaperDialect(out_dir=tmp_path, command_id="_RSabc123")
    result = JobResult(plan=small_plan(), plan_path="/o/p.plan.json", audio_path="/o/p.wav", exports={"tsv": "/o/p.tsv"})
    daw = [(m.address, m.args) for m in d.messages(result) if m.target == "daw"]
    assert daw == [("/action/str", ("_RSabc123",)), ("/time", (1.5,))]
    doc = json.loads((tmp_path / REAPER_HANDOFF_NAME).read_text())
    assert doc == {"plan": "/o/p.plan.json", "audio": "/o/p.wav", "exports": {"tsv": "/o/p.tsv"}}
    assert d.exports_needed() == ("tsv",)
    with pytest.raises(ValueError):
        ReaperDialect(command_id="40044")  # numeric ids shift between installs


def test_reaper_without_a_command_id_sends_only_stock_osc_and_writes_nothing(tmp_path: Path) -> None:
    d = ReaperDialect(out_dir=tmp_path)
    result = JobResult(plan=small_plan(), plan_path="/o/p.plan.json", audio_path="/o/p.wav")
    daw = [(m.address, m.args) for m in d.messages(result) if m.target == "daw"]
    # Default.ReaperOSC: "TIME f/time" moves the edit cursor; no action id is guessed
    assert daw == [("/time", (1.5,))]
    assert not (tmp_path / REAPER_HANDOFF_NAME).exists()
    assert d.exports_needed() == ()
    assert make_dialect("reaper").command_id is None


def test_every_dialect_declares_the_same_capabilities() -> None:
    keys = set(GenericDialect.capabilities)
    for cls in DIALECTS.values():
        assert set(cls.capabilities) == keys
        table = cls.capability_table()
        assert table.splitlines()[0].startswith(cls.name) and len(table.splitlines()) == len(keys) + 1
    assert not ArdourDialect.capabilities["create_items"].supported
    assert "--reaper-command-id" in ReaperDialect.capabilities["run_script"].how
    assert not ReaperDialect.capabilities["markers"].supported  # stock OSC cannot; only an opt-in script can
    assert not AbletonDialect.capabilities["create_items"].supported and AbletonDialect.capabilities["markers"].supported
    with pytest.raises(ValueError):
        make_dialect("cubase")


@pytest.mark.parametrize("daw", sorted(DIALECTS))
def test_serve_prints_capabilities(daw: str) -> None:
    out = subprocess.run([EDITORBOT, "serve", "--daw", daw, "--capabilities"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].startswith(f"{daw}:") and "markers" in out.stdout
    if daw == "ableton":
        assert "markers only" in out.stdout and "create_items  no" in out.stdout


def test_reaper_dialect_end_to_end(tmp_path: Path) -> None:
    from editorbot.engine.analysis import analyze
    from editorbot.engine.plan import plan_from_actions
    from editorbot.export.retime import retime

    song = song_file(41, 20.0)
    analysis = analyze(song)
    plan = plan_from_actions(analysis, retime(analysis, 15.0).walk)
    plan_path = tmp_path / "p.plan.json"
    save_plan(plan, plan_path)
    reaper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reaper.bind(("127.0.0.1", 0))
    reaper.settimeout(10.0)
    srv = start_server(tmp_path, [tmp_path, song.parent], daw="reaper", daw_port=reaper.getsockname()[1], reaper_command_id="_RStest")
    try:
        with OscClient("127.0.0.1", srv.port) as c:
            job = submit(c, "/editorbot/render", str(plan_path))
            replies = collect(c, until_done_of=job)
        got = [decode(reaper.recvfrom(65535)[0]) for _ in range(2)]
    finally:
        srv.close()
        reaper.close()
    assert replies[-1][1] == "/editorbot/done"
    assert got[0] == ("/action/str", ["_RStest"])
    assert got[1][0] == "/time" and got[1][1][0] == pytest.approx(min(m.time_s for m in plan.markers))
    handoff = json.loads((srv.out_dir / REAPER_HANDOFF_NAME).read_text())
    assert handoff["plan"] == str(plan_path) and Path(handoff["exports"]["tsv"]).is_file()
