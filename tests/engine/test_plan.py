"""Tests for engine.plan: JSON I/O, validation, source checks, plan_from_actions."""

from __future__ import annotations

import copy
import hashlib
import json
import os

import pytest

from editorbot.engine.errors import BadInput
from editorbot.engine.plan import (
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
            Action(beat=4, type="LOOP", size="BAR", amount="NEG_SMALL", start_s=2.1, end_s=4.1, confidence=0.75),
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
    # confidence is written only where someone gave one
    assert "confidence" not in d["actions"][0] and d["actions"][1]["confidence"] == 0.75
    assert again.actions[0].confidence is None


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
    with pytest.raises(BadInput, match="refusing to overwrite the input file"):
        save_plan(plan, src)
    assert src.read_bytes() == b"RIFF...."
    # another spelling of the same path
    with pytest.raises(BadInput, match="refusing to overwrite the input file"):
        save_plan(plan, tmp_path / "." / "song.wav")


def test_save_refuses_invalid_plan_and_missing_folder(tmp_path):
    plan = make_plan()
    plan.segments[0].src_end_s = -1.0
    with pytest.raises(ValueError, match=r"segments\[0\]\.src_end_s"):
        save_plan(plan, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()
    with pytest.raises(BadInput, match="does not exist"):
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
    # the renderer's limits (engine.actions.EFFECT_RANGES, RATE_RANGE, PITCH_RANGE_SEMITONES)
    ("segments[2].effects[1].params.feedback", _mutate("segments[2].effects[1].params.feedback", 1.0)),
    ("segments[2].effects[0].params.cutoff_hz", _mutate("segments[2].effects[0].params.cutoff_hz", 21610.0)),
    ("segments[2].rate", _mutate("segments[2].rate", 0.04)),
    ("segments[2].pitch_semitones", _mutate("segments[2].pitch_semitones", 49.0)),
    ("segments[2].effects[1]", _mutate("segments[2].effects[1]", "delay")),
    ("actions[1].confidence", _mutate("actions[1].confidence", 1.5)),
    ("actions[1].confidence", _mutate("actions[1].confidence", "sure")),
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


# --------------------------------------------------------------------------
# plan_from_actions
# --------------------------------------------------------------------------

import math  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

from editorbot.engine import actions as A  # noqa: E402
from editorbot.engine.plan import beat_spans, plan_from_actions  # noqa: E402

SR = 8000
BEAT_S = 0.5
BAR_S = 4 * BEAT_S
LEAD_IN_S = 0.75  # longer than a beat: kept on its own (a shorter one goes with beat 0)


def make_analysis(duration_s: float = 35.0, last_beat_s: float | None = None, sr: int = SR):
    """A stand-in for engine.analysis.Analysis: a 120 bpm grid from 0.75 s."""
    stop = duration_s if last_beat_s is None else last_beat_s
    beat_times = np.arange(LEAD_IN_S, stop, BEAT_S)
    n = int(round(duration_s * sr))
    audio = SimpleNamespace(
        samples=np.zeros((2, n), dtype=np.float32), sample_rate=sr, path="song.wav", duration_s=n / sr
    )
    grid = SimpleNamespace(
        tempo_bpm=120.0,
        beat_times=beat_times,
        downbeats=np.arange(0, beat_times.size, 4),
        beats_per_bar=4,
        phrase_starts=np.arange(0, beat_times.size, 16),
    )
    return SimpleNamespace(audio=audio, sha256=SHA, grid=grid)


def assert_contiguous(plan):
    t = 0.0
    for i, s in enumerate(plan.segments):
        assert s.dst_start_s == pytest.approx(t, abs=1e-9), f"gap/overlap before segment {i}"
        assert s.length_s > 0
        t = s.dst_start_s + s.length_s
    assert plan.duration_s == pytest.approx(t, abs=1e-9)


def test_beat_spans_lead_in_and_last_beat():
    starts, ends = beat_spans([0.25, 0.75, 1.25], 1.5)
    assert starts.tolist() == [0.25, 0.75, 1.25]
    assert ends.tolist() == [0.75, 1.25, 1.5]  # last beat clipped at the end
    starts, ends = beat_spans([0.25, 0.75, 1.25, 2.0], 2.0)  # a beat at the end is dropped
    assert starts.tolist() == [0.25, 0.75, 1.25] and ends[-1] == 1.75
    with pytest.raises(ValueError):
        beat_spans([1.0, 0.5], 2.0)


def test_all_keep_is_the_source():
    an = make_analysis()
    n_beats = an.grid.beat_times.size  # 70
    walk = [("KEEP", "PHRASE", "NEUTRAL")] * (n_beats // 16) + [("KEEP", "BAR", "NEUTRAL")] * 2
    walk += [("KEEP", "BEAT", "NEUTRAL")] * (n_beats - 16 * (n_beats // 16) - 8)
    plan = plan_from_actions(an, walk)
    assert len(plan.segments) == 1  # lead-in and every KEEP merged
    s = plan.segments[0]
    assert (s.src_start_s, s.dst_start_s) == (0.0, 0.0)
    assert s.src_end_s == pytest.approx(35.0)
    assert plan.markers == [] and plan.automation == []
    assert [a.beat for a in plan.actions][:2] == [0, 16]
    assert plan.model is None
    assert plan.source.channels == 2 and plan.source.sample_rate == SR


def test_cut_of_a_bar_shortens_by_exactly_the_bar():
    an = make_analysis()
    walk = [("KEEP", "BAR", "NEUTRAL"), ("CUT", "BAR", "NEUTRAL"), ("KEEP", "BAR", "NEUTRAL")]
    plan = plan_from_actions(an, walk)
    assert plan.duration_s == pytest.approx(35.0 - BAR_S, abs=1e-9)
    assert_contiguous(plan)
    # the KEEP after the cut cannot join the one before it (source jumps)
    spans = [x for s in plan.segments for x in (s.src_start_s, s.src_end_s)]
    assert spans == pytest.approx([0.0, LEAD_IN_S + BAR_S, LEAD_IN_S + 2 * BAR_S, 35.0])
    assert plan.markers == [Marker(LEAD_IN_S + BAR_S, "CUT")]
    assert plan.actions[1] == Action(4, "CUT", "BAR", "NEUTRAL", LEAD_IN_S + BAR_S, LEAD_IN_S + 2 * BAR_S)


def test_loop_x2_of_a_bar_lengthens_by_two_bars():
    an = make_analysis()
    plan = plan_from_actions(an, [("KEEP", "BAR", "NEUTRAL"), ("LOOP", "BAR", "NEG_SMALL")])
    assert plan.duration_s == pytest.approx(35.0 + 2 * BAR_S, abs=1e-9)
    assert_contiguous(plan)
    loops = [s for s in plan.segments if s.action == "LOOP"]
    assert len(loops) == 3
    assert all(s.src_start_s == LEAD_IN_S + BAR_S and s.src_end_s == LEAD_IN_S + 2 * BAR_S for s in loops)
    start = LEAD_IN_S + BAR_S
    assert plan.markers == [Marker(start, "LOOP x2", end_s=pytest.approx(start + 3 * BAR_S))]


def test_speed_divides_the_span_by_the_rate():
    an = make_analysis()
    plan = plan_from_actions(an, [("SPEED", "TWO_BARS", "POS_LARGE")])
    span = 2 * BAR_S
    sped = [s for s in plan.segments if s.action == "SPEED"]
    assert len(sped) == 1 and sped[0].rate == 1.25
    assert sped[0].length_s == pytest.approx(span / 1.25)
    assert plan.duration_s == pytest.approx(35.0 - span + span / 1.25, abs=1e-9)
    assert_contiguous(plan)


def test_stutter_fills_its_span_with_the_first_slice():
    an = make_analysis()
    plan = plan_from_actions(an, [("STUTTER", "BAR", "POS_SMALL")])  # 1/4-beat slices
    st = [s for s in plan.segments if s.action == "STUTTER"]
    assert len(st) == 16
    assert all(s.src_start_s == LEAD_IN_S and s.length_s == pytest.approx(BEAT_S / 4) for s in st)
    assert plan.duration_s == pytest.approx(35.0, abs=1e-9)
    assert_contiguous(plan)


def test_each_type_makes_the_segment_fields_it_should():
    an = make_analysis()
    cases = {
        "REVERSE": ("NEUTRAL", lambda s: s.reverse),
        "SILENCE": ("NEUTRAL", lambda s: s.mute and s.length_s == pytest.approx(BAR_S)),
        "FADE_IN": ("NEUTRAL", lambda s: s.fade_in_s == pytest.approx(BAR_S) and s.fade_out_s == 0),
        "FADE_OUT": ("NEUTRAL", lambda s: s.fade_out_s == pytest.approx(BAR_S) and s.fade_in_s == 0),
        "GAIN": ("NEG_LARGE", lambda s: s.gain_db == -6.0),
        "PITCH": ("POS_SMALL", lambda s: s.pitch_semitones == 1.0),
        "BASS": ("POS_LARGE", lambda s: s.effects == [Effect("bass", {"gain_db": 6.0})]),
        "DELAY": ("NEG_SMALL", lambda s: s.effects[0].params == {"delay_s": 0.25, "feedback": 0.3, "mix": 0.3}),
        "WIDTH": ("NEG_LARGE", lambda s: s.effects == [Effect("width", {"width": 0.0})]),
        # 5 kHz is above 8 kHz audio's Nyquist: kept below 0.45 * sample rate
        "LOWPASS": ("POS_LARGE", lambda s: s.effects == [Effect("lowpass", {"cutoff_hz": 3600.0})]),
    }  # fmt: skip
    for t, (amount, check) in cases.items():
        plan = plan_from_actions(an, [("KEEP", "BEAT", "NEUTRAL"), (t, "BAR", amount)])
        made = [s for s in plan.segments if s.action == t]
        assert len(made) == 1, t
        assert made[0].beat == 1 and made[0].src_start_s == LEAD_IN_S + BEAT_S, t
        assert check(made[0]), t


def test_random_walks_are_contiguous_valid_and_marked(tmp_path):
    an = make_analysis()
    n_beats = an.grid.beat_times.size
    rng = np.random.default_rng(0)
    for trial in range(20):
        walk, cursor = [], 0
        while cursor < n_beats:
            type_mask, size_mask, amount_mask = A.action_masks(cursor, n_beats)
            t = int(rng.choice(np.flatnonzero(type_mask)))
            s = int(rng.choice(np.flatnonzero(size_mask)))
            a = int(rng.choice(np.flatnonzero(amount_mask[t])))
            walk.append(A.action_index(t, s, a) if trial % 2 else (t, s, a))
            cursor += A.SIZE_BEATS[s]
        plan = plan_from_actions(an, walk)
        assert_contiguous(plan)
        assert len(plan.actions) == len(walk)
        # actions tile the beats: each starts where the previous ended
        for prev, nxt in zip(plan.actions, plan.actions[1:]):
            assert nxt.start_s == prev.end_s
        assert plan.actions[-1].end_s == pytest.approx(35.0)
        # one marker per non-KEEP action, at the output time where it starts
        non_keep = [x for x in plan.actions if x.type != "KEEP"]
        assert len(plan.markers) == len(non_keep)
        for m, x in zip(plan.markers, non_keep):
            assert m.name.split()[0] == x.type
            firsts = [s for s in plan.segments if s.beat == x.beat and s.action == x.type]
            if x.type == "CUT":
                assert m.end_s is None
            else:
                assert m.time_s == pytest.approx(firsts[0].dst_start_s)
                assert m.end_s > m.time_s
        # no two neighbouring plain KEEPs left unmerged
        for s0, s1 in zip(plan.segments, plan.segments[1:]):
            assert not (s0.action == s1.action == "KEEP" and math.isclose(s0.src_end_s, s1.src_start_s))
        # what it makes always loads back
        path = tmp_path / f"walk{trial}.json"
        save_plan(plan, path)
        assert load_plan(path) == plan


def test_walk_clips_at_the_end_and_keeps_the_rest():
    an = make_analysis()  # 70 beats
    plan = plan_from_actions(an, [("KEEP", "TWO_PHRASES", "NEUTRAL")] * 2 + [("GAIN", "TWO_PHRASES", "POS_SMALL")])
    assert plan.actions[-1].beat == 64 and plan.actions[-1].end_s == pytest.approx(35.0)
    assert plan.segments[-1].src_end_s == pytest.approx(35.0)
    # a short walk: the beats after it are kept
    plan = plan_from_actions(an, [("GAIN", "BAR", "POS_SMALL")])
    assert plan.duration_s == pytest.approx(35.0)
    assert plan.segments[-1].action == "KEEP" and plan.segments[-1].beat == 4
    with pytest.raises(ValueError, match=r"actions\[3\]: the walk has run past"):
        plan_from_actions(an, [("KEEP", "TWO_PHRASES", "NEUTRAL")] * 3 + [("KEEP", "BEAT", "NEUTRAL")])
    with pytest.raises(ValueError, match=r"actions\[0\]: CUT does not allow"):
        plan_from_actions(an, [("CUT", "BAR", "POS_SMALL")])
    with pytest.raises(ValueError, match=r"actions\[0\]"):
        plan_from_actions(an, [("WOBBLE", "BAR", "NEUTRAL")])


def test_tail_after_the_last_beat_is_kept():
    an = make_analysis(duration_s=40.0, last_beat_s=30.0)  # beats stop at 29.75 s
    n_beats = an.grid.beat_times.size
    plan = plan_from_actions(an, [("CUT", "BEAT", "NEUTRAL")] * n_beats)
    lead, tail = plan.segments
    assert (lead.src_start_s, lead.src_end_s) == (0.0, LEAD_IN_S)
    assert (tail.src_start_s, tail.src_end_s) == pytest.approx((30.25, 40.0))
    assert plan.duration_s == pytest.approx(LEAD_IN_S + 40.0 - 30.25)
    assert_contiguous(plan)


def test_automation_lanes():
    an = make_analysis()
    walk = [("GAIN", "BAR", "POS_SMALL"), ("FADE_OUT", "BAR", "NEUTRAL"), ("HIGHPASS", "BAR", "NEG_SMALL")]
    plan = plan_from_actions(an, walk)
    lanes = {a.parameter: a.points for a in plan.automation}
    assert set(lanes) == {"volume_db", "highpass_hz"}
    vol = lanes["volume_db"]
    g0, g1 = LEAD_IN_S, LEAD_IN_S + BAR_S
    assert (g0, 0.0) in vol and (g0, 3.0) in vol and (g1, 3.0) in vol
    f1 = g1 + BAR_S
    fade = [p for p in vol if g1 <= p[0] <= f1 and p not in ((g1, 3.0), (f1, 0.0))]
    assert fade[0] == (g1, pytest.approx(0.0))
    assert fade[-1] == (pytest.approx(f1), -60.0)
    values = [v for _, v in fade]
    assert values == sorted(values, reverse=True) and len(fade) >= 8
    assert all(t1 >= t0 for (t0, _), (t1, _) in zip(vol, vol[1:]))
    hp = lanes["highpass_hz"]
    assert hp[0] == (0.0, 20.0)
    assert (f1, 20.0) in hp and (f1, 400.0) in hp and (f1 + BAR_S, 400.0) in hp
    assert hp[-1] == (pytest.approx(35.0), 20.0)


def test_confidence_reaches_actions_and_marker_names():
    from editorbot.engine.plan import marker_confidence, marker_name

    an = make_analysis()
    walk = [("KEEP", "BAR", "NEUTRAL"), ("CUT", "BEAT", "NEUTRAL"), ("CUT", "BEAT", "NEUTRAL"), ("LOOP", "BAR", "POS_SMALL")]
    plan = plan_from_actions(an, walk, confidence=[0.9, 0.81, 0.3749, 0.62])
    assert [a.confidence for a in plan.actions] == [0.9, 0.81, 0.3749, 0.62]
    # two cuts in a row: one marker, showing the less sure of them
    assert [m.name for m in plan.markers] == ["CUT (37%)", "LOOP x3 (62%)"]
    assert marker_name("GAIN +3 dB", None) == "GAIN +3 dB" and marker_name("CUT", 1.0) == "CUT (100%)"
    assert marker_confidence(marker_name("LOOP x2", 0.62)) == 0.62 and marker_confidence("GAIN +3 dB") is None
    # without confidences the names are the labels, as before
    assert [m.name for m in plan_from_actions(an, walk).markers] == ["CUT", "LOOP x3"]
    assert all(a.confidence is None for a in plan_from_actions(an, walk).actions)
    with pytest.raises(ValueError, match="confidence must be 0-1"):
        plan_from_actions(an, walk, confidence=[0.9, 1.5, 0.1, 0.1])
    with pytest.raises(ValueError, match="no confidence given"):
        plan_from_actions(an, walk, confidence=[0.9])
