"""The Reaper scripts, run in Lua 5.4 (lupa.lua54) against ``reaper_model``.

End to end: a real spool server (``bridge.spool.run_spool`` in a thread,
started by the script through ExecProcess when there is no heartbeat) edits
a synthesized song, and the script leaves the modelled project matching the
plan (positions and lengths within 1 ms, take offsets, rates, pitch, fades,
gains, mutes, reverse, colours, markers, regions, volume envelope), all in
one undo block. A malformed result, a truncated result, a server that never
starts, one that stops, one that never answers, and Cancel (button or closed
window) each leave the project untouched with no undo block and say why.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from editorbot.bridge.spool import RESULT_SCHEMA, Spool, SpoolJob, edit_handler, run_spool
from editorbot.engine.actions import EFFECT_RANGES
from editorbot.engine.exporters.tsv import write_tsv
from editorbot.engine.plan import EditPlan, Effect, plan_from_actions, plan_from_dict, plan_to_dict, save_plan
from editorbot.engine.render import BASS_SHELF_HZ, TREBLE_SHELF_HZ
from tests.export import song_analysis, song_file
from tests.reaper.reaper_model import SCRIPTS, Item, ReaperModel

SONG = (41, 20.0)
ITEM_POS = 5.0
SERVER_CMD = "/opt/editorbot/bin/editorbot"
TOL_S = 1e-3

COLORS = {  # editorbot_lib.lua M.COLORS, as ColorToNative | 0x1000000 in the model
    "KEEP": (110, 130, 150), "CUT": (200, 60, 60), "LOOP": (60, 160, 90), "REVERSE": (150, 90, 200),
    "SILENCE": (80, 80, 80), "FADE_IN": (70, 150, 210), "FADE_OUT": (40, 110, 180), "GAIN": (210, 190, 60),
    "PITCH": (220, 90, 160), "SPEED": (240, 110, 60), "LOWPASS": (60, 180, 180), "HIGHPASS": (90, 200, 160),
    "BASS": (120, 90, 60), "TREBLE": (200, 210, 120), "REVERB": (130, 150, 230), "DELAY": (100, 120, 210),
    "DISTORTION": (190, 40, 100), "COMPRESS": (150, 150, 110), "WIDTH": (110, 200, 230),
}  # fmt: skip


def native(action: str) -> int:
    r, g, b = COLORS[action]
    return (r | g << 8 | b << 16) | 0x1000000


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def model(tmp_path: Path) -> ReaperModel:
    m = ReaperModel(tmp_path / "reaper")
    track = m.add_track("song")
    item = m.add_audio_item(track, song_file(*SONG), ITEM_POS)
    item.selected = True
    for key, value in {
        "spool_dir": str(tmp_path / "spool"), "server_cmd": SERVER_CMD, "model": "dp",
        "target_duration_s": "9", "start_timeout_s": "5", "timeout_s": "60",
    }.items():  # fmt: skip
        m.ext_state[("editorbot", key)] = value
    return m


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Callable[[Any], threading.Thread]]:
    """Start ``run_spool`` on the model's spool folder in a thread (stopped at the end)."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(handler: Any) -> threading.Thread:
        # request paths must lie in the allowed folders (--allow): the songs' folder and the test's
        spool = Spool(tmp_path / "spool", allowed_roots=[song_file(*SONG).parent, tmp_path])
        kwargs = {"stop": stop, "poll_s": 0.05, "spool": spool}
        t = threading.Thread(target=run_spool, args=(tmp_path / "spool", handler), kwargs=kwargs)
        t.start()
        threads.append(t)
        return t

    yield start
    stop.set()
    for t in threads:
        t.join(10)


def drive(m: ReaperModel, *, dt_s: float = 0.1, sleep_s: float = 0.03, limit_s: float = 120.0, until: Callable[[], bool] | None = None) -> None:
    """Run UI cycles until the script stops deferring (or ``until`` holds)."""
    deadline = time.monotonic() + limit_s
    while not m.idle and not (until and until()):
        assert time.monotonic() < deadline, "the script kept running"
        m.step(dt_s)
        time.sleep(sleep_s)


def spool_of(m: ReaperModel) -> Spool:
    return Spool(m.ext_state[("editorbot", "spool_dir")])


def request_ids(m: ReaperModel) -> list[str]:
    return sorted(p.name[:-5] for p in spool_of(m).inbox.glob("*.json"))


def assert_untouched(m: ReaperModel, before: Any, *words: str) -> None:
    assert m.snapshot() == before
    assert m.undo_begins == 0 and m.undo_points == [] and m.mutations_outside_undo == []
    assert not m.window_open and m.idle
    assert len(m.messages) == 1, m.messages
    text = m.messages[0][1]
    assert "not changed" in text or "Cancelled" in text
    for w in words:
        assert w in text, (w, text)


def check_project_matches(m: ReaperModel, plan: EditPlan, *, t0: float, offset_s: float) -> list[Item]:
    """The items made for ``plan`` (placed at ``t0``) match its segments; returns them in order."""
    items = m.items()
    made = []
    for seg in sorted(plan.segments, key=lambda s: s.dst_start_s):
        at = [it for it in items if abs(it.position - (t0 + seg.dst_start_s)) <= TOL_S and it.take is not None and it.take.name.startswith(seg.action)]
        assert len(at) == 1, (seg, [(i.position, i.take.name if i.take else None) for i in items])
        it = at[0]
        take = it.take
        assert abs(it.length - seg.length_s) <= TOL_S
        assert abs(take.startoffs - (offset_s + seg.src_start_s)) <= TOL_S
        assert take.source is not None and take.source.filename == str(song_file(*SONG))
        assert math.isclose(take.playrate, seg.rate, rel_tol=1e-9) and take.preserve_pitch
        assert math.isclose(take.pitch, seg.pitch_semitones, abs_tol=1e-9)
        assert abs(it.fadein - seg.fade_in_s) <= TOL_S and abs(it.fadeout - seg.fade_out_s) <= TOL_S
        assert math.isclose(it.vol, 10 ** (seg.gain_db / 20), rel_tol=1e-9)
        assert it.mute == seg.mute and take.reversed == seg.reverse
        assert it.color == native(seg.action) and it.selected
        made.append(it)
    return made


def check_markers(m: ReaperModel, plan: EditPlan, t0: float) -> None:
    def key(x: tuple) -> tuple:
        return (round(x[0], 3), x[2], -1.0 if x[1] is None else x[1])

    got = sorted(((mk.pos, mk.end if mk.isrgn else None, mk.name) for mk in m.project.markers), key=key)
    want = sorted(((t0 + mk.time_s, None if mk.end_s is None else t0 + mk.end_s, mk.name) for mk in plan.markers), key=key)
    assert len(got) == len(want) > 0
    for (gp, ge, gn), (wp, we, wn) in zip(got, want):
        assert gn == wn and abs(gp - wp) <= TOL_S and (ge is None) == (we is None)
        assert ge is None or abs(ge - we) <= TOL_S


def test_lua_is_5_4(model: ReaperModel) -> None:
    assert model.lua.eval("_VERSION") == "Lua 5.4"
    assert model.lua.eval("math.type(1) == 'integer' and (7 // 2) == 3")


def test_auto_edit_time_selection_end_to_end(model: ReaperModel, server: Callable[[Any], threading.Thread]) -> None:
    """The script starts the server itself, sends the part inside the time selection, applies the plan."""
    started: list[str] = []

    def exec_handler(cmd: str) -> None:
        started.append(cmd)
        server(edit_handler)

    model.exec_handler = exec_handler
    item_end = ITEM_POS + model.items()[0].length
    model.project.time_selection = (9.0, 21.0)  # source 4..16 s of the song
    model.run_script("editorbot_auto_edit.lua")
    assert model.window_open and len(request_ids(model)) == 1
    spool_dir = model.ext_state[("editorbot", "spool_dir")]
    assert started == [f'"{SERVER_CMD}" serve --spool "{spool_dir}"']
    assert model.exec_log == [(started[0], -1)]
    request = json.loads((spool_of(model).inbox / f"{request_ids(model)[0]}.json").read_text())
    assert (request["start_s"], request["end_s"], request["target_duration_s"], request["model"]) == (4.0, 16.0, 9, "dp")
    rid = request["id"]
    drive(model)
    assert model.messages == [] and not model.window_open
    assert any(text.startswith("editorbot: ") and "%" in text for text, _, _ in model.drawn)  # progress was shown
    assert model.undo_begins == 1 and model.undo_points == ["editorbot: auto-edit"]
    assert model.mutations_outside_undo == [] and model.refresh_depth == 0
    plan = plan_from_dict(json.loads((spool_of(model).outbox / f"{rid}.plan.json").read_text()))
    assert abs(plan.duration_s - 9.0) < 1.0
    made = check_project_matches(model, plan, t0=9.0, offset_s=4.0)
    items = model.items()
    left, right = items[0], items[-1]
    assert (left.position, left.length, left.take.startoffs) == (ITEM_POS, 4.0, 0.0)
    assert abs(right.position - (9.0 + plan.duration_s)) <= TOL_S and abs(right.length - (item_end - 21.0)) <= TOL_S
    assert abs(right.take.startoffs - 16.0) <= TOL_S
    assert len(items) == len(made) + 2
    check_markers(model, plan, 9.0)
    # the client took its result and left nothing behind
    assert not (spool_of(model).outbox / f"{rid}.json").exists() and request_ids(model) == []


def structural_plan() -> EditPlan:
    """A real analysis of the song and a walk using every item-level action the script applies."""
    analysis = song_analysis(*SONG)
    walk = [
        ("FADE_IN", "BAR", "NEUTRAL"), ("KEEP", "BAR", "NEUTRAL"), ("LOOP", "BEAT", "NEG_SMALL"),
        ("CUT", "BAR", "NEUTRAL"), ("SPEED", "BAR", "POS_LARGE"), ("PITCH", "BAR", "NEG_SMALL"),
        ("REVERSE", "BEAT", "NEUTRAL"), ("GAIN", "BAR", "NEG_LARGE"), ("SILENCE", "BEAT", "NEUTRAL"),
        ("FADE_OUT", "BAR", "NEUTRAL"),
    ]  # fmt: skip
    return plan_from_actions(analysis, walk)


def test_auto_edit_whole_item_applies_every_property(model: ReaperModel, server: Callable[[Any], threading.Thread]) -> None:
    plan = structural_plan()
    assert {s.action for s in plan.segments} >= {"FADE_IN", "LOOP", "SPEED", "PITCH", "REVERSE", "GAIN", "SILENCE", "FADE_OUT"}
    seen: list[Any] = []

    def handler(job: SpoolJob) -> dict[str, Any]:
        seen.append((job.request.edit.start_s, job.request.edit.end_s, list(job.request.edit.keep)))
        job.progress(0.5, "deciding")
        return {"plan": plan_to_dict(plan)}

    server(handler)
    song_len = model.items()[0].length
    model.ext_state[("editorbot", "keep")] = "1-2; 3.5-4"
    deadline = time.monotonic() + 10
    while spool_of(model).heartbeat.exists() is False and time.monotonic() < deadline:
        time.sleep(0.05)
    model.run_script("editorbot_auto_edit.lua")
    assert model.exec_log == []  # a server was running: none started
    drive(model)
    assert seen == [(0.0, song_len, [(1.0, 2.0), (3.5, 4.0)])]
    assert model.messages == [], model.messages
    assert model.undo_points == ["editorbot: auto-edit"] and model.mutations_outside_undo == []
    made = check_project_matches(model, plan, t0=ITEM_POS, offset_s=0.0)
    assert len(model.items()) == len(made)  # the original item was replaced whole
    check_markers(model, plan, ITEM_POS)
    env = model.project.tracks[0].envelopes["Volume"]
    lane = next(a for a in plan.automation if a.parameter == "volume_db")
    assert not env.active and env.visible  # written inactive: it restates the items' gain and fades
    assert len(env.points) == len(lane.points)
    for (t, v, shape), (pt, db) in zip(env.points, sorted(lane.points, key=lambda p: p[0])):
        assert abs(t - (ITEM_POS + pt)) <= TOL_S and math.isclose(v, 10 ** (db / 20), rel_tol=1e-9) and shape == 0
    assert not model.project.tracks[0].selected  # track selection restored after making the envelope


def fake_server(m: ReaperModel, answer: Callable[[str], str | None]) -> Callable[[], None]:
    """A hand-driven server: fresh heartbeat, and ``answer(request_id)`` written as the result text."""
    spool = spool_of(m)

    def beat() -> None:
        spool.heartbeat.write_text(json.dumps({"schema": "editorbot.spool.heartbeat/1", "pid": 1, "time": time.time(), "busy": None}))
        for p in spool.inbox.glob("*.json"):
            rid = p.name[:-5]
            text = answer(rid)
            if text is not None:
                os.rename(p, spool.work / p.name)
                tmp = spool.outbox / f".{rid}.tmp"
                tmp.write_text(text)
                os.rename(tmp, spool.outbox / f"{rid}.json")

    beat()
    return beat


def good_result(rid: str, plan: EditPlan) -> dict[str, Any]:
    d = plan_to_dict(plan)
    return {"schema": RESULT_SCHEMA, "id": rid, "status": "done", "message": "ok", "plan": d,
            "source_offset_s": 0.0, "n_segments": len(d["segments"]), "n_markers": len(d["markers"])}  # fmt: skip


def _bad_rate(rid: str, plan: EditPlan) -> str:
    r = good_result(rid, plan)
    r["plan"]["segments"][3]["rate"] = "fast"
    return json.dumps(r)


def _missing_segments(rid: str, plan: EditPlan) -> str:
    r = good_result(rid, plan)
    r["plan"]["segments"] = r["plan"]["segments"][:2]  # fewer than n_segments says
    return json.dumps(r)


def _truncated(rid: str, plan: EditPlan) -> str:
    text = json.dumps(good_result(rid, plan))
    return text[: len(text) // 2]


def _server_error(rid: str, plan: EditPlan) -> str:
    return json.dumps({"schema": RESULT_SCHEMA, "id": rid, "status": "error", "message": "/x.wav: not audio"})


def _past_the_end(rid: str, plan: EditPlan) -> str:
    r = good_result(rid, plan)
    r["plan"]["segments"][1]["src_end_s"] = r["plan"]["segments"][1]["src_start_s"] - 1
    return json.dumps(r)


@pytest.mark.parametrize(
    "make,words",
    [
        (_bad_rate, ("malformed", "segments[3].rate")),
        (_missing_segments, ("incomplete",)),
        (_truncated, ("damaged or incomplete",)),
        (_server_error, ("could not edit", "/x.wav: not audio")),
        (_past_the_end, ("malformed", "segments[1].src_end_s")),
    ],
)
def test_bad_results_leave_the_project_untouched(model: ReaperModel, make: Callable[[str, EditPlan], str], words: tuple[str, ...]) -> None:
    plan = structural_plan()
    beat = fake_server(model, lambda rid: make(rid, plan))
    before = model.snapshot()
    model.run_script("editorbot_auto_edit.lua")
    for _ in range(50):
        if model.idle:
            break
        beat()
        model.step(0.1)
    assert_untouched(model, before, *words)
    assert model.exec_log == []


def test_a_good_hand_written_result_applies(model: ReaperModel) -> None:
    """Control for the bad-result cases: the same fake server with a sound result edits the project."""
    plan = structural_plan()
    beat = fake_server(model, lambda rid: json.dumps(good_result(rid, plan)))
    model.run_script("editorbot_auto_edit.lua")
    for _ in range(50):
        if model.idle:
            break
        beat()
        model.step(0.1)
    assert model.messages == [] and model.undo_points == ["editorbot: auto-edit"]
    check_project_matches(model, plan, t0=ITEM_POS, offset_s=0.0)


def test_server_that_never_starts(model: ReaperModel) -> None:
    before = model.snapshot()
    model.run_script("editorbot_auto_edit.lua")
    rid = request_ids(model)[0]
    assert len(model.exec_log) == 1
    steps = 0
    while not model.idle:
        model.step(1.0)
        steps += 1
    assert 5 <= steps <= 7  # start_timeout_s = 5
    assert_untouched(model, before, "did not start within 5 s", SERVER_CMD)
    spool = spool_of(model)
    assert request_ids(model) == [] and (spool.cancel_dir / rid).exists()  # request taken back


def test_server_that_stops_mid_job(model: ReaperModel) -> None:
    beat = fake_server(model, lambda rid: None)
    before = model.snapshot()
    model.run_script("editorbot_auto_edit.lua")
    for _ in range(5):
        beat()
        model.step(0.1)
    assert model.messages == [] and model.window_open
    spool = spool_of(model)
    spool.heartbeat.write_text(json.dumps({"schema": "editorbot.spool.heartbeat/1", "pid": 1, "time": time.time() - 60}))
    model.step(0.1)
    assert_untouched(model, before, "stopped")


def test_server_that_never_answers(model: ReaperModel) -> None:
    beat = fake_server(model, lambda rid: None)
    before = model.snapshot()
    model.run_script("editorbot_auto_edit.lua")
    steps = 0
    while not model.idle:
        beat()
        model.step(5.0)
        steps += 1
    assert 12 <= steps <= 13  # timeout_s = 60
    assert_untouched(model, before, "No answer", "60 s")


@pytest.mark.parametrize("how", ["button", "window"])
def test_cancel_leaves_project_untouched_and_drops_the_job(model: ReaperModel, server: Callable[[Any], threading.Thread], how: str) -> None:
    running = threading.Event()
    outcome: list[str] = []

    def slow(job: SpoolJob) -> dict[str, Any]:
        running.set()
        job.progress(0.3, "analysing")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if job.cancelled():
                outcome.append("cancelled")
                job.check_cancel()
            time.sleep(0.02)
        outcome.append("timed out")
        return {"plan": plan_to_dict(structural_plan())}

    server(slow)
    before = model.snapshot()
    model.run_script("editorbot_auto_edit.lua")
    rid = request_ids(model)[0] if request_ids(model) else None
    drive(model, until=lambda: running.is_set() and any("analysing" in t for t, _, _ in model.drawn))
    if how == "button":
        text, x, y = next(d for d in reversed(model.drawn) if d[0] == "Cancel")
        model.click(x + 5, y + 5)
    else:
        model.window_open = False  # the user closed the window: gfx.getchar() is -1
        model.step(0.1)
    assert_untouched(model, before, "Cancelled")
    deadline = time.monotonic() + 10
    spool = spool_of(model)
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outcome == ["cancelled"]
    while any(p.name.startswith(rid) for d in (spool.outbox, spool.work, spool.cancel_dir) for p in d.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(p.name.startswith(rid) for d in (spool.outbox, spool.work, spool.cancel_dir) for p in d.iterdir())


def test_nothing_selected_and_bad_settings_are_refused(model: ReaperModel) -> None:
    def refused(words: str) -> None:
        before = model.snapshot()
        model.run_script("editorbot_auto_edit.lua")
        assert model.messages and words in model.messages[-1][1]
        assert model.snapshot() == before and model.undo_begins == 0 and model.idle and not model.window_open
        assert model.exec_log == [] and request_ids(model) == []

    model.project.tracks[0].items[0].selected = False
    refused("Select the audio item")
    model.project.tracks[0].items[0].selected = True
    model.ext_state[("editorbot", "keep")] = "6-3"
    refused("keep range '6-3'")
    model.ext_state[("editorbot", "keep")] = ""
    model.project.time_selection = (40.0, 50.0)
    refused("does not overlap")
    model.project.time_selection = (0.0, 0.0)
    source = model.project.tracks[0].items[0].take.source
    real, source.filename = source.filename, source.filename + ".gone"
    refused(f"The selected item's file {real}.gone is missing.")
    source.filename = real
    assert len(model.messages) == 4


def test_settings_saved_with_extstate(model: ReaperModel) -> None:
    asked: list[tuple[str, int, str, str]] = []

    def answer(values: str) -> Callable[[str, int, str, str], tuple[bool, str]]:
        def reply(title: str, n: int, captions: str, current: str) -> tuple[bool, str]:
            asked.append((title, n, captions, current))
            return True, values

        return reply

    model.ext_state.clear()
    model.user_inputs.append(answer("/m/policy.onnx|42.5|1-2;3-4|/home/me/.venv/bin/editorbot| |120|10"))
    model.run_script("editorbot_settings.lua")
    title, n, captions, current = asked[0]
    assert n == 7 and captions.endswith(",separator=|,extrawidth=260") and len(captions.split(",")) == 9
    assert current.split("|")[3] == "editorbot" and current.split("|")[5] == "600"  # defaults shown
    want = {"model": "/m/policy.onnx", "target_duration_s": "42.5", "keep": "1-2;3-4", "server_cmd": "/home/me/.venv/bin/editorbot", "spool_dir": "", "timeout_s": "120", "start_timeout_s": "10"}
    assert {k: model.ext_state[("editorbot", k)] for k in want} == want
    assert all(("editorbot", k) in model.persisted for k in want)
    # bad values: nothing saved, the user is told which
    model.user_inputs.append(answer("dp||5-1|editorbot||120|10"))
    model.run_script("editorbot_settings.lua")
    text = model.messages[-1][1]
    assert "Nothing saved" in text and "keep range '5-1'" in text and "needs a target duration" in text
    assert model.ext_state[("editorbot", "model")] == "/m/policy.onnx"
    model.user_inputs.append(lambda *a: (False, ""))  # the user pressed Cancel
    model.run_script("editorbot_settings.lua")
    assert len(model.messages) == 1 and model.undo_begins == 0


@pytest.mark.parametrize("fmt", ["json", "tsv"])
def test_import_markers_at_the_cursor(model: ReaperModel, tmp_path: Path, fmt: str) -> None:
    plan = structural_plan()
    path = tmp_path / ("edit.plan.json" if fmt == "json" else "edit.tsv")
    save_plan(plan, path) if fmt == "json" else write_tsv(plan, path)
    model.project.cursor = 30.0
    items_before = model.snapshot()[0]
    model.file_answers.append((True, str(path)))
    model.run_script("editorbot_import_markers.lua")
    assert model.messages == []
    assert model.undo_points == [f"editorbot: import {len(plan.markers)} markers"] and model.mutations_outside_undo == []
    check_markers(model, plan, 30.0)
    assert model.snapshot()[0] == items_before  # items untouched


def test_markers_the_policy_was_unsure_of_are_red(model: ReaperModel, tmp_path: Path) -> None:
    """A marker name's trailing "(N%)" is the policy's confidence (engine.plan.marker_name): under
    LOW_CONFIDENCE the marker or region is coloured red; regions otherwise keep their action's colour."""
    from editorbot.engine.plan import LOW_CONFIDENCE, Marker, marker_name

    plan = structural_plan()
    plan.markers = [
        Marker(1.0, marker_name("CUT", 0.3)),
        Marker(2.0, marker_name("CUT", 0.9)),
        Marker(3.0, marker_name("LOOP x1", 0.49), end_s=5.0),
        Marker(5.0, marker_name("LOOP x1", LOW_CONFIDENCE), end_s=7.0),
        Marker(7.0, "GAIN +3 dB", end_s=8.0),
    ]
    path = tmp_path / "edit.plan.json"
    save_plan(plan, path)
    model.project.cursor = 10.0
    model.file_answers.append((True, str(path)))
    model.run_script("editorbot_import_markers.lua")
    assert model.messages == []
    red = 235 | 40 << 8 | 40 << 16 | 0x1000000
    got = [(mk.name, mk.color) for mk in sorted(model.project.markers, key=lambda mk: mk.pos)]
    assert got == [
        ("CUT (30%)", red), ("CUT (90%)", 0), ("LOOP x1 (49%)", red), ("LOOP x1 (50%)", native("LOOP")),
        ("GAIN +3 dB", native("GAIN")),
    ]  # fmt: skip


def test_import_markers_refuses_damaged_files(model: ReaperModel, tmp_path: Path) -> None:
    plan = structural_plan()
    good = tmp_path / "edit.plan.json"
    save_plan(plan, good)
    text = good.read_text()
    cases = {
        "cut.plan.json": (text[: len(text) // 3], "at line"),
        "other.plan.json": ('{"schema": "something/1"}', "not an editorbot plan"),
        "bad.tsv": ("kind\tdst_start_s\tlength_s\tname\nregion\tsoon\t1\tx\n", "line 2: dst_start_s is not a number"),
    }
    before = model.snapshot()
    for name, (content, words) in cases.items():
        p = tmp_path / name
        p.write_text(content)
        model.file_answers.append((True, str(p)))
        model.run_script("editorbot_import_markers.lua")
        assert words in model.messages[-1][1] and "not changed" in model.messages[-1][1]
    assert model.snapshot() == before and model.undo_begins == 0 and len(model.messages) == 3


def test_lua_json_round_trips_and_rejects(model: ReaperModel) -> None:
    lib = model.lua.globals().dofile(str(Path(__file__).resolve().parents[2] / "reaper_scripts/editorbot/editorbot_lib.lua"))
    doc = {"s": 'tab\t"quote" \\ é 😀 \u0001', "n": [0, -1, 2.5, 1e-7, 123456789012], "t": True, "f": False, "z": None, "o": {"k": []}}
    text = json.dumps(doc)
    back = lib.json_encode(lib.json_decode(text))
    assert json.loads(back) == doc
    assert json.loads(lib.json_encode(lib.json_decode(json.dumps(1.0 / 3.0)))) == 1.0 / 3.0
    for bad in ('{"a": 1,}', "[1 2]", '"\\x"', "01", '{"a": tru}', '["\\ud800"]', "[1] [2]", ""):
        value, err = lib.json_decode(bad)
        assert value is None and isinstance(err, str) and "line 1" in err or bad == "", (bad, value, err)


# ------------------------------------------------------------------ effects as take FX

EFFECT_TYPES = ("LOWPASS", "HIGHPASS", "BASS", "TREBLE", "REVERB", "DELAY", "DISTORTION", "COMPRESS", "WIDTH")


def install_js_effects(m: ReaperModel) -> None:
    """Put the JS effects where ReaPack installs them (<resource path>/Effects/<repository>/<category>/)."""
    dest = Path(m.resource_path) / "Effects" / "editorbot" / "editorbot"
    dest.mkdir(parents=True, exist_ok=True)
    for path in SCRIPTS.glob("*.jsfx"):
        (dest / path.name).write_bytes(path.read_bytes())


def effects_plan() -> EditPlan:
    """Every effect action type at two amounts, from a real analysis of the song."""
    walk = [("KEEP", "BEAT", "NEUTRAL")] + [(t, "BEAT", a) for t in EFFECT_TYPES for a in ("POS_SMALL", "NEG_LARGE")]
    return plan_from_actions(song_analysis(*SONG), walk)


def shown_number(text: str) -> float:
    """editorbot_lib.lua's display_number, for checking what a plug-in shows."""
    if text.startswith("-inf"):
        return -math.inf
    v = float(re.match(r"[-+]?\d*\.?\d+", text).group(0))
    return v * 1000 if text.rstrip().endswith("k") else v


def db(a: float) -> float:
    return -math.inf if a <= 0 else 20 * math.log10(a)


def close(text: str, want: float, tol: float) -> bool:
    got = shown_number(text)
    return got == want if math.isinf(want) else abs(got - want) <= tol


def check_take_fx(take: Any, effects: list[Any]) -> None:
    """The take's FX are the segment's effects, in order, with the plan's values (as the plug-ins show them)."""
    assert len(take.fx) == len(effects), [f.plugin.name for f in take.fx]
    for fx, e in zip(take.fx, effects):
        p = e.params
        name = fx.plugin.name
        if e.name in ("lowpass", "highpass", "bass", "treble"):
            assert name == "VST: ReaEQ (Cockos)"
            band_type = {"lowpass": "3", "highpass": "4", "bass": "0", "treble": "1"}[e.name]
            assert fx.config["BANDTYPE0"] == band_type
            assert [fx.config[f"BANDENABLED{b}"] for b in range(4)] == ["1", "0", "0", "0"]
            freq = p["cutoff_hz"] if "cutoff_hz" in p else {"bass": BASS_SHELF_HZ, "treble": TREBLE_SHELF_HZ}[e.name]
            assert close(fx.shown("Freq-Low Shelf"), freq, 1e-4 * freq + 0.05), (fx.shown("Freq-Low Shelf"), freq)
            if "gain_db" in p:
                assert close(fx.shown("Gain-Low Shelf"), p["gain_db"], 0.01)
        elif e.name == "reverb":
            assert name == "VST: ReaVerbate (Cockos)"
            assert close(fx.shown("Wet"), db(p["wet"]), 0.01) and close(fx.shown("Dry"), db(1 - p["wet"]), 0.01)
            assert fx.values[2] == p["room_size"]  # "Room size", normalized 0..1 like pedalboard's
        elif e.name == "delay":
            assert name == "VST: ReaDelay (Cockos)"
            assert close(fx.shown("Wet"), db(p["mix"]), 0.01) and close(fx.shown("Dry"), db(1 - p["mix"]), 0.01)
            assert close(fx.shown("1: Length (time)"), 1000 * p["delay_s"], 0.01)
            assert close(fx.shown("1: Length (musical)"), 0.0, 0.0)
            assert close(fx.shown("1: Feedback"), db(p["feedback"]), 0.01)
        elif e.name == "compress":
            assert name == "VST: ReaComp (Cockos)"
            assert close(fx.shown("Thresh"), p["threshold_db"], 0.01) and close(fx.shown("Ratio"), p["ratio"], 0.01)
            assert close(fx.shown("Attack"), 1.0, 0.01) and close(fx.shown("Release"), 100.0, 0.05)
        elif e.name == "distortion":
            assert name.startswith("JS: editorbot distortion")
            assert math.isclose(fx.value("Drive (dB)"), p["drive_db"], abs_tol=1e-12)
        elif e.name == "width":
            assert name.startswith("JS: editorbot width")
            assert math.isclose(fx.value("Width"), p["width"], abs_tol=1e-12)
        else:
            raise AssertionError(f"unchecked effect {e.name}")


def run_fake(m: ReaperModel, plan: EditPlan, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
    def answer(rid: str) -> str:
        r = good_result(rid, plan)
        if edit:
            edit(r)
        return json.dumps(r)

    beat = fake_server(m, answer)
    m.run_script("editorbot_auto_edit.lua")
    for _ in range(50):
        if m.idle:
            break
        beat()
        m.step(0.1)


def test_every_effect_becomes_take_fx_in_one_undo_step(model: ReaperModel) -> None:
    install_js_effects(model)
    plan = effects_plan()
    assert {e.name for s in plan.segments for e in s.effects} == set(EFFECT_RANGES)
    before = model.snapshot()
    run_fake(model, plan)
    assert model.messages == [], model.messages
    assert model.undo_begins == 1 and model.undo_points == ["editorbot: auto-edit"]
    assert model.mutations_outside_undo == []
    made = check_project_matches(model, plan, t0=ITEM_POS, offset_s=0.0)
    for it, seg in zip(made, sorted(plan.segments, key=lambda s: s.dst_start_s)):
        check_take_fx(it.take, seg.effects)
    assert sum(len(it.take.fx) for it in made) == 2 * len(EFFECT_TYPES)
    # one undo step takes every item, property and FX away again
    assert model.Undo_DoUndo2(0) == 1
    assert model.snapshot() == before
    assert all(not t.fx for tr in model.project.tracks for it in tr.items for t in it.takes)


def test_a_chain_of_effects_keeps_its_order(model: ReaperModel) -> None:
    install_js_effects(model)
    plan = structural_plan()
    chain = [{"name": "highpass", "params": {"cutoff_hz": 80.0}}, {"name": "compress", "params": {"threshold_db": -30.0, "ratio": 8.0}},
             {"name": "distortion", "params": {"drive_db": 0.0}}, {"name": "width", "params": {"width": 4.0}}]  # fmt: skip

    def edit(r: dict[str, Any]) -> None:
        r["plan"]["segments"][1]["effects"] = chain

    run_fake(model, plan, edit)
    assert model.messages == [], model.messages
    seg = sorted(plan.segments, key=lambda s: s.dst_start_s)[1]
    item = next(it for it in model.items() if abs(it.position - (ITEM_POS + seg.dst_start_s)) <= TOL_S)
    check_take_fx(item.take, [Effect(c["name"], c["params"]) for c in chain])


def test_a_missing_plugin_undoes_the_whole_edit(model: ReaperModel) -> None:
    """The JS effects are not installed: nothing changes and the message names the plug-in."""
    plan = effects_plan()
    before = model.snapshot()
    run_fake(model, plan)
    assert model.snapshot() == before
    assert model.undo_points == [] and len(model.messages) == 1
    assert "editorbot_distortion.jsfx" in model.messages[0][1] and "undone" in model.messages[0][1]


@pytest.mark.parametrize(
    "effects,words",
    [
        ([{"name": "chorus", "params": {}}], ("unknown effect", "chorus")),
        ([{"name": "width", "params": {"width": 9.0}}], ("width.width = 9", "outside")),
        ([{"name": "reverb", "params": {"room_size": 0.5}}], ("reverb.wet", "not a finite number")),
        ([{"name": "bass", "params": {"gain_db": 1.0, "q": 2.0}}], ("bass: unknown parameter 'q'",)),
    ],
)
def test_bad_effects_leave_the_project_untouched(model: ReaperModel, effects: list[Any], words: tuple[str, ...]) -> None:
    install_js_effects(model)
    plan = structural_plan()

    def edit(r: dict[str, Any]) -> None:
        r["plan"]["segments"][2]["effects"] = effects

    before = model.snapshot()
    run_fake(model, plan, edit)
    assert_untouched(model, before, "malformed", "segments[2].effects[0]", *words)


def test_volume_lane_in_fader_scaling_restates_the_gain_once(model: ReaperModel) -> None:
    """A new volume envelope in fader scaling (mode 1): points go through ScaleToEnvelopeMode(1, amp);
    the envelope stays inactive, so the items' D_VOL is the only gain applied."""
    model.volume_scaling_mode = 1
    plan = structural_plan()
    run_fake(model, plan)
    assert model.messages == [], model.messages
    made = check_project_matches(model, plan, t0=ITEM_POS, offset_s=0.0)
    env = model.project.tracks[0].envelopes["Volume"]
    assert env.scaling_mode == 1 and not env.active
    lane = next(a for a in plan.automation if a.parameter == "volume_db")
    assert len(env.points) == len(lane.points) > 0
    for (t, v, _), (pt, value_db) in zip(env.points, sorted(lane.points, key=lambda p: p[0])):
        amp = 10 ** (value_db / 20)
        assert abs(t - (ITEM_POS + pt)) <= TOL_S
        assert math.isclose(model.ScaleFromEnvelopeMode(1, v), amp, rel_tol=1e-9)
        assert not math.isclose(v, amp, rel_tol=1e-3)  # stored scaled, not as a raw amplitude
    assert any(not math.isclose(it.vol, 1.0) for it in made)  # the gain lives on the items


def test_fader_scaling_round_trips_and_rejects_unknown_modes(model: ReaperModel) -> None:
    lua = model.lua.eval
    for amp in (0.0, 1e-4, 0.5, 1.0, 2.0, 3.9):
        raw = lua(f"reaper.ScaleToEnvelopeMode(1, {amp!r})")
        assert math.isclose(lua(f"reaper.ScaleFromEnvelopeMode(1, {raw!r})"), amp, rel_tol=1e-12, abs_tol=1e-15)
        assert lua(f"reaper.ScaleToEnvelopeMode(0, {amp!r})") == amp
    assert lua("reaper.ScaleToEnvelopeMode(1, 0.5) < reaper.ScaleToEnvelopeMode(1, 1.0)")
    with pytest.raises(Exception, match="scaling mode 2"):
        lua("reaper.ScaleToEnvelopeMode(2, 1.0)")


def test_shelf_corners_match_the_renderer(model: ReaperModel) -> None:
    lib = model.lua.eval(f"dofile({json.dumps(str(SCRIPTS / 'editorbot_lib.lua'))})")
    assert (lib.BASS_SHELF_HZ, lib.TREBLE_SHELF_HZ) == (BASS_SHELF_HZ, TREBLE_SHELF_HZ)
    ranges = {name: {k: tuple(v.values()) for k, v in params.items()} for name, params in lib.EFFECT_RANGES.items()}
    assert ranges == {name: {k: tuple(r) for k, r in params.items()} for name, params in EFFECT_RANGES.items()}
    for text, want in (("1.2000k", 1200.0), ("-inf", -math.inf), ("4.00:1", 4.0), (" -18.5", -18.5)):
        assert lib.display_number(text) == want


def test_js_effects_compute_what_the_renderer_does() -> None:
    """The JSFX bodies are the renderer's formulas: checked by evaluating their @sample code's
    arithmetic in numpy against pedalboard.Distortion and engine.render.Width."""
    import numpy as np
    import pedalboard

    from editorbot.engine.render import Width

    x = np.random.default_rng(0).uniform(-1, 1, (2, 256)).astype(np.float32)
    for drive_db in (0.0, 5.0, 20.0, 100.0):
        gain = 10 ** (drive_db / 20)
        a = np.clip(gain * x.astype(np.float64), -20, 20)
        jsfx = 1 - 2 / (np.exp(2 * a) + 1)
        assert np.allclose(jsfx, pedalboard.Distortion(drive_db=drive_db)(x, 44100), atol=1e-5)
    for width in (0.0, 0.5, 1.5, 4.0):
        mid, side = 0.5 * (x[0] + x[1]), 0.5 * width * (x[0] - x[1])
        assert np.allclose(np.stack([mid + side, mid - side]), Width(width)(x, 44100), atol=1e-6)
    text = (SCRIPTS / "editorbot_distortion.jsfx").read_text()
    assert "a = max(-20, min(20, gain * spl0)); spl0 = 1 - 2 / (exp(2 * a) + 1);" in text and "gain = 10 ^ (drive_db / 20);" in text
    text = (SCRIPTS / "editorbot_width.jsfx").read_text()
    assert "side = 0.5 * width * (spl0 - spl1);" in text and "spl0 = mid + side;" in text and "spl1 = mid - side;" in text


def test_tsv_effects_column_reaches_the_plan_check(model: ReaperModel, tmp_path: Path) -> None:
    """The TSV export carries each segment's effects as JSON; the Lua reader hands them to the same check."""
    plan = effects_plan()
    path = write_tsv(plan, tmp_path / "plan.tsv")
    lib = model.lua.eval(f"dofile({json.dumps(str(SCRIPTS / 'editorbot_lib.lua'))})")
    parsed = lib.parse_tsv(Path(path).read_text(encoding="utf-8"))
    checked, err = model.lua.eval("function(lib, p) local c, e = lib.check_plan(p) return c or false, e or '' end")(lib, parsed)
    assert checked and err == "", err
    got = [[(e.name, dict(e.params)) for e in s.effects.values()] for s in checked.segments.values()]
    want = [[(e.name, e.params) for e in s.effects] for s in sorted(plan.segments, key=lambda s: s.dst_start_s)]
    assert got == want
