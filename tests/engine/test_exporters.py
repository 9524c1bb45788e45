"""Exporters: every format parses back to what the plan says."""

from __future__ import annotations

import json
import math
import os
import shlex

import mido
import pytest

from editorbot.engine import atomic as atomic_mod
from editorbot.engine.errors import BadInput
from editorbot.engine.exporters import EXPORTERS, export_plan
from editorbot.engine.exporters.midi import CC_LANES, TICKS_PER_BEAT, CcLane
from editorbot.engine.exporters.reaper import SPLICE_S
from editorbot.engine.exporters.tsv import COLUMNS, read_tsv
from editorbot.engine.plan import Automation, EditPlan, Effect, Grid, Marker, Segment, Source

TOL_S = 1e-3


def make_plan(source_path: str, *, tempo_bpm: float = 120.0) -> EditPlan:
    """A plan that uses every segment feature: loop, reverse, speed, pitch, mute, effects."""
    beat = 60.0 / tempo_bpm
    beats = [i * beat for i in range(64)]
    segments = [
        Segment(0.0, 8 * beat, 0.0, action="KEEP", beat=0, fade_in_s=0.05),
        Segment(8 * beat, 12 * beat, 8 * beat, action="LOOP", beat=8),
        Segment(8 * beat, 12 * beat, 12 * beat, action="LOOP", beat=8, gain_db=-3.0),
        Segment(16 * beat, 20 * beat, 16 * beat, action="REVERSE", beat=16, reverse=True),
        Segment(20 * beat, 25 * beat, 20 * beat, action="SPEED", beat=20, rate=1.25),
        Segment(25 * beat, 29 * beat, 24 * beat, action="PITCH", beat=25, pitch_semitones=2.0),
        Segment(29 * beat, 33 * beat, 28 * beat, action="SILENCE", beat=29, mute=True),
        Segment(
            33 * beat,
            41 * beat,
            32 * beat,
            action="LOWPASS",
            beat=33,
            fade_out_s=0.4,
            effects=[Effect("lowpass", {"cutoff_hz": 800.0}), Effect("reverb", {"room_size": 0.5, "wet": 0.25})],
        ),
    ]
    markers = [
        Marker(0.0, "start"),
        Marker(8 * beat + 0.0123, "loop\there (40%)"),
        Marker(12 * beat, "verse 2", end_s=20 * beat + 0.0371),
        Marker(33.3333, 'say "hi"'),
        Marker(24 * beat, "drop (90%)", end_s=32 * beat),
    ]
    automation = [
        Automation("volume_db", [(0.0, 0.0), (2.0, -6.0), (4.0, -30.0), (6.0, 3.0), (16.0, 0.0)]),
        Automation("lowpass_hz", [(0.0, 20000.0), (3.0, 1000.0), (10.0, 200.0)]),
        Automation("reverb_wet", [(1.0, 0.0), (5.0, 0.8), (9.0, 0.3)]),
    ]
    return EditPlan(
        source=Source(source_path, "0" * 64, 44100, 2, 64 * beat),
        grid=Grid(tempo_bpm, beats, list(range(0, 64, 4))),
        segments=segments,
        markers=markers,
        automation=automation,
    )


@pytest.fixture()
def plan(tmp_path) -> EditPlan:
    src = tmp_path / "song.wav"
    src.write_bytes(b"RIFF not really audio")
    return make_plan(str(src))


# --- a tiny RPP chunk parser -------------------------------------------------


class Chunk:
    def __init__(self, tag: str, args: list[str]) -> None:
        self.tag, self.args = tag, args
        self.lines: list[list[str]] = []  # attribute lines, tokenised
        self.raw: list[str] = []  # "|..." note lines
        self.children: list[Chunk] = []

    def attr(self, name: str) -> list[str]:
        found = [ln[1:] for ln in self.lines if ln[0] == name]
        assert len(found) == 1, f"{name} appears {len(found)} times in <{self.tag}"
        return found[0]

    def all(self, name: str) -> list[list[str]]:
        return [ln[1:] for ln in self.lines if ln[0] == name]

    def child(self, tag: str) -> Chunk:
        found = [c for c in self.children if c.tag == tag]
        assert len(found) == 1, f"<{tag} appears {len(found)} times in <{self.tag}"
        return found[0]

    def kids(self, tag: str) -> list[Chunk]:
        return [c for c in self.children if c.tag == tag]


def _tokens(line: str) -> list[str]:
    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split = True
    lex.quotes = "\"'`"
    lex.commenters = ""
    return list(lex)


def parse_rpp(text: str) -> Chunk:
    root = Chunk("", [])
    stack = [root]
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("<"):
            toks = _tokens(s[1:])
            node = Chunk(toks[0], toks[1:])
            stack[-1].children.append(node)
            stack.append(node)
        elif s == ">":
            stack.pop()
        elif s.startswith("|"):
            stack[-1].raw.append(s[1:])
        else:
            stack[-1].lines.append(_tokens(s))
    assert len(stack) == 1, "unbalanced < >"
    (project,) = root.children
    assert project.tag == "REAPER_PROJECT"
    return project


# --- REAPER -------------------------------------------------------------------


def test_rpp_items_markers_envelope(plan, tmp_path):
    out = tmp_path / "edit.rpp"
    assert EXPORTERS["rpp"](plan, out) == str(out)
    project = parse_rpp(out.read_text())

    bpm, num, den = project.attr("TEMPO")
    assert float(bpm) == pytest.approx(120.0) and (num, den) == ("4", "4")

    track = project.child("TRACK")
    items = track.kids("ITEM")
    segs = sorted(plan.segments, key=lambda s: s.dst_start_s)
    assert len(items) == len(segs)
    for item, seg in zip(items, segs):
        assert float(item.attr("POSITION")[0]) == pytest.approx(seg.dst_start_s, abs=TOL_S)
        assert float(item.attr("LENGTH")[0]) == pytest.approx(seg.length_s, abs=TOL_S)
        fade_in, fade_out = item.attr("FADEIN"), item.attr("FADEOUT")
        assert fade_in[0] == "0" and fade_out[0] == "0"  # linear
        assert float(fade_in[1]) == pytest.approx(max(seg.fade_in_s, SPLICE_S), abs=TOL_S)
        assert float(fade_out[1]) == pytest.approx(max(seg.fade_out_s, SPLICE_S), abs=TOL_S)
        rate, preserve, pitch = item.attr("PLAYRATE")[:3]
        assert float(rate) == pytest.approx(seg.rate)
        assert preserve == "1"
        assert float(pitch) == pytest.approx(seg.pitch_semitones)
        assert item.attr("MUTE")[0] == ("1" if seg.mute else "0")
        assert 20 * math.log10(float(item.attr("VOLPAN")[0])) == pytest.approx(seg.gain_db, abs=1e-6)
        if seg.reverse:
            section = item.child("SOURCE")
            assert section.args == ["SECTION"]
            assert section.attr("MODE") == ["2"]
            assert float(section.attr("STARTPOS")[0]) == pytest.approx(seg.src_start_s, abs=TOL_S)
            assert float(section.attr("LENGTH")[0]) == pytest.approx(seg.src_end_s - seg.src_start_s, abs=TOL_S)
            assert float(item.attr("SOFFS")[0]) == 0.0
            wave = section.child("SOURCE")
        else:
            assert float(item.attr("SOFFS")[0]) == pytest.approx(seg.src_start_s, abs=TOL_S)
            wave = item.child("SOURCE")
        assert wave.args == ["WAVE"]
        assert wave.attr("FILE") == [os.path.abspath(plan.source.path)]
        if seg.effects:
            notes = " ".join(item.child("NOTES").raw)
            assert "lowpass cutoff_hz=800" in notes and "reverb room_size=0.5 wet=0.25" in notes
        else:
            assert not item.kids("NOTES")

    # markers and regions
    marker_lines = project.all("MARKER")
    points = [m for m in marker_lines if m[3] == "0"]
    region_lines = [m for m in marker_lines if m[3] == "1"]
    expected_points = sorted((m for m in plan.markers if m.end_s is None), key=lambda m: m.time_s)
    assert [p[2] for p in points] == ["start", "loop here (40%)", 'say "hi"']
    # the policy's unsure choices are red (as the Reaper scripts colour them), the rest REAPER's default
    from editorbot.engine.exporters.reaper import UNSURE_COLOR

    assert [int(p[4]) for p in points] == [0, UNSURE_COLOR, 0]
    assert sorted(int(r[4]) for r in region_lines if len(r) > 4) == [0, 0]
    for p, m in zip(points, expected_points):
        assert float(p[1]) == pytest.approx(m.time_s, abs=TOL_S)
    assert len({p[0] for p in points}) == len(points)  # distinct indices
    regions: dict[str, list[list[str]]] = {}
    for r in region_lines:
        regions.setdefault(r[0], []).append(r)
    expected_regions = sorted((m for m in plan.markers if m.end_s is not None), key=lambda m: m.time_s)
    assert len(regions) == len(expected_regions)
    for (start_line, end_line), m in zip(regions.values(), expected_regions):
        assert start_line[2] == m.name
        assert float(start_line[1]) == pytest.approx(m.time_s, abs=TOL_S)
        assert float(end_line[1]) == pytest.approx(m.end_s, abs=TOL_S)

    # volume envelope: amplitude values of the volume_db lane (+3 dB stays below the +6 dB cap)
    env = track.child("VOLENV2")
    assert env.attr("ACT")[0] == "0"  # the lane restates the items' gain and fades: not applied twice
    pts = [(float(p[0]), float(p[1])) for p in env.all("PT")]
    lane = plan.automation[0].points
    assert len(pts) == len(lane)
    for (t, amp), (t_db, db) in zip(pts, lane):
        assert t == pytest.approx(t_db, abs=TOL_S)
        assert 20 * math.log10(amp) == pytest.approx(db, abs=1e-6)


def test_rpp_envelope_active_on_request(plan, tmp_path):
    from editorbot.engine.exporters.reaper import write_rpp

    out = tmp_path / "active.rpp"
    write_rpp(plan, out, envelope_active=True)
    assert parse_rpp(out.read_text()).child("TRACK").child("VOLENV2").attr("ACT")[0] == "1"


def test_rpp_quotes_paths_with_spaces(tmp_path):
    folder = tmp_path / "my songs"
    folder.mkdir()
    src = folder / "it's a song.flac"
    plan = make_plan(str(src))
    out = tmp_path / "p.rpp"
    export_plan(plan, "rpp", out)
    project = parse_rpp(out.read_text())
    wave = project.child("TRACK").kids("ITEM")[0].child("SOURCE")
    assert wave.args == ["FLAC"]
    assert wave.attr("FILE") == [str(src)]


# --- MIDI ---------------------------------------------------------------------


def _absolute(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    now, out = 0, []
    for msg in track:
        now += msg.time
        out.append((now, msg))
    return out


def _seconds(tick: int, tempo_map: list[tuple[int, int]]) -> float:
    """Seconds at ``tick`` through a tempo map of (tick, tempo_us) changes."""
    seconds, last_tick, tempo = 0.0, 0, 500000
    for change_tick, change_tempo in tempo_map:
        if change_tick >= tick:
            break
        seconds += mido.tick2second(change_tick - last_tick, TICKS_PER_BEAT, tempo)
        last_tick, tempo = change_tick, change_tempo
    return seconds + mido.tick2second(tick - last_tick, TICKS_PER_BEAT, tempo)


@pytest.mark.parametrize("tempo_bpm", [120.0, 97.3])
def test_midi_markers_and_cc_read_back(tmp_path, tempo_bpm):
    src = tmp_path / "song.wav"
    plan = make_plan(str(src), tempo_bpm=tempo_bpm)
    out = tmp_path / "edit.mid"
    export_plan(plan, "midi", out)
    mid = mido.MidiFile(out)
    assert mid.ticks_per_beat == TICKS_PER_BEAT

    events = [e for track in mid.tracks for e in _absolute(track)]
    tempo_map = sorted((t, m.tempo) for t, m in events if m.type == "set_tempo")
    assert tempo_map and mido.tempo2bpm(tempo_map[0][1]) == pytest.approx(tempo_bpm, rel=1e-5)

    markers = [(_seconds(t, tempo_map), m.text) for t, m in events if m.type == "marker"]
    expected = []
    for m in plan.markers:
        name = " ".join(m.name.split())
        expected.append((m.time_s, name))
        if m.end_s is not None:
            expected.append((m.end_s, f"{name} end"))
    assert sorted(n for _, n in markers) == sorted(n for _, n in expected)
    by_name = dict((n, t) for t, n in markers)
    for t, name in expected:
        assert by_name[name] == pytest.approx(t, abs=TOL_S), name

    # automation: find each lane's mapping from its text event, then check the points
    lanes = {}
    for _, m in events:
        if m.type == "text":
            lane = CcLane.parse(m.text)
            if lane is not None:
                lanes[lane.parameter] = lane
    assert set(lanes) == {a.parameter for a in plan.automation}
    assert lanes["volume_db"] == CC_LANES["volume_db"] and lanes["volume_db"].cc == 7
    ccs = [(t, m.control, m.value) for t, m in events if m.type == "control_change"]
    assert len({lane.cc for lane in lanes.values()}) == len(lanes)
    for auto in plan.automation:
        lane = lanes[auto.parameter]
        mine = [(t, v) for t, c, v in ccs if c == lane.cc]
        assert mine == sorted(mine, key=lambda e: e[0])
        for t_s, value in auto.points:
            at = [v for t, v in mine if abs(_seconds(t, tempo_map) - t_s) <= TOL_S]
            assert at, f"{auto.parameter}: no CC at {t_s}s"
            decoded = lane.from_cc(at[-1])
            if lane.scale == "log":
                step = (math.log(lane.hi) - math.log(lane.lo)) / 127
                assert abs(math.log(decoded) - math.log(value)) <= step / 2 + 1e-9
            else:
                assert abs(decoded - value) <= lane.step / 2 + 1e-9
        # the ramp between the last two volume points is written, not only the ends
        if auto.parameter == "volume_db":
            between = [v for t, v in mine if 6.0 + TOL_S < _seconds(t, tempo_map) < 16.0 - TOL_S]
            assert len(between) >= 3 and between == sorted(between, reverse=True)


def test_cc_mapping_documented_ranges():
    vol = CC_LANES["volume_db"]
    assert vol.to_cc(-60.0) == 0 and vol.to_cc(-90.0) == 0 and vol.to_cc(6.0) == 127 and vol.to_cc(12.0) == 127
    assert vol.from_cc(vol.to_cc(0.0)) == pytest.approx(0.0, abs=vol.step / 2)
    lp = CC_LANES["lowpass_hz"]
    assert lp.to_cc(20.0) == 0 and lp.to_cc(20000.0) == 127
    assert lp.to_cc(632.5) in (63, 64)  # geometric middle


# --- labels and TSV -----------------------------------------------------------


def test_labels_match_markers(plan, tmp_path):
    out = tmp_path / "labels.txt"
    export_plan(plan, "audacity", out)
    lines = out.read_text().splitlines()
    assert len(lines) == len(plan.markers)
    rows = []
    for line in lines:
        start, end, name = line.split("\t")
        assert len(start.split(".")[1]) == 6 and len(end.split(".")[1]) == 6
        rows.append((float(start), float(end), name))
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    expected = sorted(plan.markers, key=lambda m: m.time_s)
    for (start, end, name), m in zip(rows, expected):
        assert start == pytest.approx(m.time_s, abs=1e-6)
        assert end == pytest.approx(m.time_s if m.end_s is None else m.end_s, abs=1e-6)
        assert name == " ".join(m.name.split())


def test_tsv_round_trip(plan, tmp_path):
    out = tmp_path / "plan.tsv"
    export_plan(plan, "tsv", out)
    text = out.read_text()
    lines = text.split("\n")
    assert lines[0].split("\t") == list(COLUMNS)
    assert lines[-1] == ""
    for line in lines[1:-1]:
        assert len(line.split("\t")) == len(COLUMNS)  # no tabs inside fields
    kinds = [line.split("\t")[0] for line in lines[1:-1]]
    assert kinds.count("segment") == len(plan.segments)
    assert kinds.count("marker") == 3 and kinds.count("region") == 2
    assert kinds.count("automation") == sum(len(a.points) for a in plan.automation)

    back = read_tsv(out)
    assert back.segments == sorted(plan.segments, key=lambda s: s.dst_start_s)
    assert len(back.markers) == len(plan.markers)
    for got, want in zip(back.markers, sorted(plan.markers, key=lambda m: m.time_s)):
        assert got.time_s == want.time_s and got.name == " ".join(want.name.split())
        assert (got.end_s is None) == (want.end_s is None)
        if want.end_s is not None:
            assert got.end_s == pytest.approx(want.end_s, abs=1e-9)
    assert back.automation == plan.automation
    effects_field = [ln for ln in lines if ln.startswith("segment") and "lowpass" in ln][0].split("\t")[14]
    assert json.loads(effects_field) == [
        {"name": "lowpass", "params": {"cutoff_hz": 800.0}},
        {"name": "reverb", "params": {"room_size": 0.5, "wet": 0.25}},
    ]


def test_tsv_rejects_non_finite(plan, tmp_path):
    plan.segments[0].gain_db = float("nan")
    with pytest.raises(BadInput, match="gain_db"):
        export_plan(plan, "tsv", tmp_path / "x.tsv")
    assert not (tmp_path / "x.tsv").exists()


# --- safety: atomic writes, never over the source -----------------------------


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_refuses_to_overwrite_source(plan, fmt):
    before = open(plan.source.path, "rb").read()
    with pytest.raises(BadInput, match="overwrite"):
        export_plan(plan, fmt, plan.source.path)
    assert open(plan.source.path, "rb").read() == before


def test_refuses_source_through_symlink(plan, tmp_path):
    link = tmp_path / "link.rpp"
    link.symlink_to(plan.source.path)
    with pytest.raises(BadInput, match="overwrite"):
        export_plan(plan, "rpp", link)


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_atomic_no_partial_file_on_failure(plan, tmp_path, monkeypatch, fmt):
    out = tmp_path / "out.bin"
    out.write_text("previous content")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_mod.os, "replace", failing_replace)
    with pytest.raises(OSError):
        export_plan(plan, fmt, out)
    assert out.read_text() == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "song.wav"]  # no temp left


@pytest.mark.parametrize("fmt", ["rpp", "tsv"])
def test_bad_segment_rate_leaves_no_file(plan, tmp_path, fmt):
    plan.segments[2].rate = 0.0
    out = tmp_path / f"bad.{fmt}"
    with pytest.raises(BadInput, match="rate"):
        export_plan(plan, fmt, out)
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["rpp", "midi"])
def test_bad_tempo_leaves_no_file(plan, tmp_path, fmt):
    plan.grid.tempo_bpm = float("inf")
    out = tmp_path / f"bad.{fmt}"
    with pytest.raises(BadInput, match="tempo"):
        export_plan(plan, fmt, out)
    assert not out.exists()


def test_written_file_has_umask_permissions(plan, tmp_path):
    umask = os.umask(0o022)
    try:
        out = tmp_path / "perm.txt"
        export_plan(plan, "audacity", out)
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644


def test_unknown_format_and_missing_directory(plan, tmp_path):
    with pytest.raises(BadInput, match="unknown export format"):
        export_plan(plan, "wav", tmp_path / "x")
    with pytest.raises(BadInput, match="does not exist"):
        export_plan(plan, "audacity", tmp_path / "nope" / "x.txt")


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_empty_plan_exports(tmp_path, fmt):
    plan = make_plan(str(tmp_path / "song.wav"))
    plan.segments, plan.markers, plan.automation = [], [], []
    out = tmp_path / f"empty.{fmt}"
    export_plan(plan, fmt, out)
    if fmt == "rpp":
        assert parse_rpp(out.read_text()).child("TRACK").kids("ITEM") == []
    elif fmt == "midi":
        assert [m for t in mido.MidiFile(out).tracks for m in t if m.type in ("marker", "control_change")] == []
    elif fmt == "audacity":
        assert out.read_text() == ""
    else:
        assert out.read_text().splitlines() == ["\t".join(COLUMNS)]
