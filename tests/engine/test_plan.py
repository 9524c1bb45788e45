"""Tests for engine.plan: JSON I/O, validation, source checks, plan_from_actions."""

from __future__ import annotations

import copy
import hashlib
import json
import os

import pytest

from engine.errors import BadInput
from engine.plan import (
    SCHEMA,
    Action,
    Automation,
    EditPlan,
    Effect,
    Grid,
    Marker,
    ModelInfo,
    Segment,
    Source,
    check_source,
    load_plan,
    plan_from_dict,
    plan_to_dict,
    save_plan,
    validate_plan,
)

SHA = "ab" * 32


def make_plan(source_path: str = "song.wav", sha256: str = SHA) -> EditPlan:
    """A small valid plan using every kind of field."""
    return EditPlan(
        source=Source(path=source_path, sha256=sha256, sample_rate=44100, channels=2, duration_s=10.0),
        grid=Grid(tempo_bpm=120.0, beat_times=[0.1 + 0.5 * i for i in range(19)], downbeats=[0, 4, 8, 12, 16]),
        actions=[
            Action(beat=0, type="KEEP", size="BAR", amount="NEUTRAL", start_s=0.1, end_s=2.1),
            Action(beat=4, type="LOOP", size="BAR", amount="NEG_SMALL", start_s=2.1, end_s=4.1),
            Action(beat=8, type="LOWPASS", size="BAR", amount="POS_SMALL", start_s=4.1, end_s=6.1),
        ],
        segments=[
            Segment(src_start_s=0.0, src_end_s=2.1, dst_start_s=0.0),
            Segment(src_start_s=2.1, src_end_s=4.1, dst_start_s=2.1, action="LOOP", beat=4),
            Segment(
                src_start_s=2.1, src_end_s=4.1, dst_start_s=4.1, gain_db=-3.0, fade_in_s=0.5,
                fade_out_s=0.25, reverse=True, mute=False, rate=1.25, pitch_semitones=-1.0,
                effects=[
                    Effect("lowpass", {"cutoff_hz": 2000.0}),
                    Effect("delay", {"delay_s": 0.25, "feedback": 0.3, "mix": 0.3}),
                ],
                action="LOOP", beat=4,
            ),
        ],
        markers=[Marker(2.1, "LOOP x2", end_s=6.1), Marker(1.0, "note")],
        automation=[Automation("volume_db", [(0.0, 0.0), (2.0, -3.0)])],
        model=ModelInfo(name="policy", version="1", sha256="cd" * 32),
    )  # fmt: skip


def test_dict_round_trip_exact():
    plan = make_plan()
    d = plan_to_dict(plan)
    assert d["schema"] == SCHEMA
    again = plan_from_dict(json.loads(json.dumps(d)))
    assert again == plan
    assert isinstance(again.automation[0].points[0], tuple)


def test_file_round_trip_exact(tmp_path):
    plan = make_plan()
    out = tmp_path / "plan.json"
    save_plan(plan, out)
    assert load_plan(out) == plan
    # atomic write leaves no temp files behind
    assert sorted(os.listdir(tmp_path)) == ["plan.json"]
    # overwriting an older plan is fine
    plan.markers.append(Marker(3.0, "extra"))
    save_plan(plan, out)
    assert load_plan(out) == plan


def test_optional_fields_default():
    d = plan_to_dict(make_plan())
    for key in ("actions", "markers", "automation", "model"):
        del d[key]
    d["segments"] = [{"src_start_s": 0, "src_end_s": 1, "dst_start_s": 0}]
    plan = plan_from_dict(d)
    assert plan.actions == [] and plan.markers == [] and plan.model is None
    assert plan.segments == [Segment(0.0, 1.0, 0.0)]
    assert isinstance(plan.segments[0].src_start_s, float)


def test_save_refuses_to_overwrite_source(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(b"RIFF....")
    plan = make_plan(source_path=str(src))
    with pytest.raises(BadInput, match="source audio"):
        save_plan(plan, src)
    assert src.read_bytes() == b"RIFF...."
    # another spelling of the same path
    with pytest.raises(BadInput, match="source audio"):
        save_plan(plan, tmp_path / "." / "song.wav")


def test_save_refuses_invalid_plan_and_missing_folder(tmp_path):
    plan = make_plan()
    plan.segments[0].src_end_s = -1.0
    with pytest.raises(ValueError, match=r"segments\[0\]\.src_end_s"):
        save_plan(plan, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()
    with pytest.raises(BadInput, match="folder does not exist"):
        save_plan(make_plan(), tmp_path / "nope" / "p.json")


def _mutate(path: str, value):
    """Return a function setting ``path`` (dotted, with [i]) in a plan dict."""

    def apply(d):
        keys = []
        for part in path.split("."):
            while "[" in part:
                name, rest = part.split("[", 1)
                if name:
                    keys.append(name)
                idx, part = rest.split("]", 1)
                keys.append(int(idx))
            if part:
                keys.append(part)
        target = d
        for k in keys[:-1]:
            target = target[k]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return apply


DELETE = object()

# (field path expected in the message, mutation of a valid plan dict)
BAD_CASES = [
    ("schema", _mutate("schema", "editorbot.editplan/2")),
    ("schema", _mutate("schema", "something.else/1")),
    ("schema", _mutate("schema", DELETE)),
    ("schema", _mutate("schema", 1)),
    ("source", _mutate("source", DELETE)),
    ("source.sha256", _mutate("source.sha256", DELETE)),
    ("source.sha256", _mutate("source.sha256", "xyz")),
    ("source.sample_rate", _mutate("source.sample_rate", 44100.0)),
    ("source.sample_rate", _mutate("source.sample_rate", 0)),
    ("source.channels", _mutate("source.channels", "2")),
    ("source.duration_s", _mutate("source.duration_s", -1.0)),
    ("source.duration_s", _mutate("source.duration_s", float("nan"))),
    ("source.extra", _mutate("source.extra", 1)),
    ("grid.tempo_bpm", _mutate("grid.tempo_bpm", float("inf"))),
    ("grid.beat_times[3]", _mutate("grid.beat_times[3]", 0.2)),
    ("grid.beat_times[0]", _mutate("grid.beat_times[0]", -0.1)),
    ("grid.beat_times[18]", _mutate("grid.beat_times[18]", 11.0)),
    ("grid.downbeats[1]", _mutate("grid.downbeats[1]", 99)),
    ("grid.beat_times", _mutate("grid.beat_times", "0.5")),
    ("actions[1].type", _mutate("actions[1].type", "SCRATCH")),
    ("actions[1].size", _mutate("actions[1].size", "HALF_BAR")),
    ("actions[1].amount", _mutate("actions[1].amount", "HUGE")),
    ("actions[1].amount", _mutate("actions[1].amount", "NEUTRAL")),  # LOOP needs an amount
    ("actions[0].amount", _mutate("actions[0].amount", "POS_LARGE")),  # KEEP is NEUTRAL only
    ("actions[1].beat", _mutate("actions[1].beat", 19)),
    ("actions[1].beat", _mutate("actions[1].beat", -1)),
    ("actions[1].end_s", _mutate("actions[1].end_s", 2.1)),
    ("actions[1].start_s", _mutate("actions[1].start_s", DELETE)),
    ("actions", _mutate("actions", {})),
    ("segments", _mutate("segments", DELETE)),
    ("segments[1].src_end_s", _mutate("segments[1].src_end_s", 1.0)),
    ("segments[1].src_end_s", _mutate("segments[1].src_end_s", 2.1)),
    ("segments[1].src_end_s", _mutate("segments[1].src_end_s", 10.5)),
    ("segments[1].src_start_s", _mutate("segments[1].src_start_s", -0.5)),
    ("segments[1].dst_start_s", _mutate("segments[1].dst_start_s", -1.0)),
    ("segments[1].dst_start_s", _mutate("segments[1].dst_start_s", None)),
    ("segments[2].rate", _mutate("segments[2].rate", 0.0)),
    ("segments[2].rate", _mutate("segments[2].rate", -1.0)),
    ("segments[2].gain_db", _mutate("segments[2].gain_db", float("-inf"))),
    ("segments[2].gain_db", _mutate("segments[2].gain_db", "loud")),
    ("segments[2].fade_in_s", _mutate("segments[2].fade_in_s", -0.1)),
    ("segments[2].fade_out_s", _mutate("segments[2].fade_out_s", 5.0)),
    ("segments[2].reverse", _mutate("segments[2].reverse", 1)),
    ("segments[2].action", _mutate("segments[2].action", "WOBBLE")),
    ("segments[2].beat", _mutate("segments[2].beat", 1.5)),
    ("segments[2].colour", _mutate("segments[2].colour", "red")),
    ("segments[2].effects[0].name", _mutate("segments[2].effects[0].name", "flanger")),
    ("segments[2].effects[0].params.q", _mutate("segments[2].effects[0].params.q", 0.7)),
    ("segments[2].effects[0].params.cutoff_hz", _mutate("segments[2].effects[0].params.cutoff_hz", DELETE)),
    ("segments[2].effects[0].params.cutoff_hz", _mutate("segments[2].effects[0].params.cutoff_hz", -5.0)),
    ("segments[2].effects[1].params.feedback", _mutate("segments[2].effects[1].params.feedback", 1.5)),
    ("segments[2].effects[1]", _mutate("segments[2].effects[1]", "delay")),
    ("markers[0].time_s", _mutate("markers[0].time_s", -1.0)),
    ("markers[0].end_s", _mutate("markers[0].end_s", 1.0)),
    ("markers[1].name", _mutate("markers[1].name", None)),
    ("automation[0].points[1]", _mutate("automation[0].points[1]", [1.0])),
    ("automation[0].points[1][1]", _mutate("automation[0].points[1][1]", float("nan"))),
    ("automation[0].points[0][0]", _mutate("automation[0].points[0][0]", -2.0)),
    ("automation[0].parameter", _mutate("automation[0].parameter", "")),
    ("model.sha256", _mutate("model.sha256", DELETE)),
    ("model", _mutate("model", "policy")),
]  # fmt: skip


@pytest.mark.parametrize("field, mutate", BAD_CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(BAD_CASES)])
def test_malformed_plan_names_the_field(tmp_path, field, mutate):
    d = plan_to_dict(make_plan())
    mutate(d)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(d))  # NaN/Infinity are written as JSON extensions on purpose
    with pytest.raises(BadInput) as info:
        load_plan(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: {field}: "), msg
    assert info.value.path == str(path)


def test_markers_out_of_order_are_fine():
    d = plan_to_dict(make_plan())
    d["markers"] = [{"time_s": 5.0, "name": "b"}, {"time_s": 1.0, "name": "a", "end_s": None}]
    assert [m.time_s for m in plan_from_dict(d).markers] == [5.0, 1.0]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"", "empty file"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[1, 2]", "plan: the top level must be an object"),
    ],
)
def test_not_a_plan_file(tmp_path, content, problem):
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=problem) as info:
        load_plan(path)
    assert "\n" not in str(info.value)


def test_missing_plan_file(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        load_plan(tmp_path / "nope.json")
    with pytest.raises(BadInput, match="directory"):
        load_plan(tmp_path)


def test_validate_plan_names_field():
    plan = make_plan()
    validate_plan(plan)
    plan.segments[1].rate = 0.0
    with pytest.raises(ValueError, match=r"segments\[1\]\.rate"):
        validate_plan(plan)


def test_check_source(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(b"some audio bytes")
    plan = make_plan(source_path=str(src), sha256=hashlib.sha256(b"some audio bytes").hexdigest())
    assert check_source(plan) == str(src)
    moved = tmp_path / "moved.wav"
    moved.write_bytes(b"some audio bytes")
    assert check_source(plan, moved) == str(moved)
    src.write_bytes(b"other audio bytes")
    with pytest.raises(BadInput, match="source changed since the plan was made"):
        check_source(plan)
    src.unlink()
    with pytest.raises(BadInput, match="source missing"):
        check_source(plan)


def test_dict_is_not_aliased():
    plan = make_plan()
    d = plan_to_dict(plan)
    d2 = copy.deepcopy(d)
    d["segments"][2]["effects"][0]["params"]["cutoff_hz"] = 1.0
    d["grid"]["beat_times"][0] = 5.0
    assert plan.segments[2].effects[0].params["cutoff_hz"] == 2000.0
    assert plan.grid.beat_times[0] == 0.1
    assert plan_from_dict(d2) == plan
