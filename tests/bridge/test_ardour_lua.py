"""The Ardour editor action (bridge/ardour_scripts/editorbot_auto_edit.lua) driven headless in
``ardour7-lua``: a session holds one stereo region of a generated song (placed at 1 s, trimmed
to start 2 s into its files); the script's functions read a spool result whose plan cuts, loops,
fades, turns down, reverses, speeds up and filters, and apply it to the open session; the saved
session, opened again, has the plan's regions (positions, trims, fades, gain) and markers, and
Ardour's export of it correlates with editorbot's render of the plan. Bad input (no region, a
missing file, no server) is one message and leaves the session and the spool as they were.

Skipped with the reason when Ardour is missing, except in CI (``CI`` set), where it fails."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from editorbot.bridge.ardour import (
    SUPERCLOCK_PER_S,
    ArdourSession,
    _lua_string,
    _run_lua,
    ardour_available,
    build_session,
    export_session,
    import_audio,
)
from editorbot.engine.plan import EditPlan, Effect, Grid, Marker, Segment, Source, plan_to_dict
from tests.export import scratch, song_file

pytestmark = pytest.mark.skipif(
    not ardour_available() and not os.environ.get("CI"),
    reason="ardour7-lua / ardour7-export not installed (apt-get install ardour)",
)

SCRIPT = Path(str(files("editorbot.bridge") / "ardour_scripts" / "editorbot_auto_edit.lua"))
POSITION_S, OFFSET_S, LENGTH_S = 1.0, 2.0, 12.0  # the selected region: where it sits, where it starts in its files
REQUEST_ID = "ardour-test-1"
MIN_CORRELATION = 0.99
LUA_TIMEOUT_S = 60.0
#: A region's fades where the plan has none: Ardour's default (64 samples), kept from the region cloned.
DEFAULT_FADE = 64

# Loads the session and the script's functions (``E``) and finds the selected region (``region``).
PRELUDE = """
AudioEngine:set_backend("None (Dummy)", "", "")
assert(load_session({dir}, {name}), "could not load the session")
function ardour (descriptor) end
dofile({script})
E = factory({{library = true}})
local playlist = Session:route_by_name("edit"):to_track():playlist()
for r in playlist:region_list():iter() do
  if r:source(0):name():find("^raw") then region = r end
end
function regions_tsv ()
  for r in playlist:region_list():iter() do
    print(string.format("REGION\\t%d\\t%d\\t%d\\t%s\\t%s\\t%.9g", r:position():samples(), r:start():samples(),
      r:length():samples(), r:source(0):name(), r:to_stateful():id():to_s(), r:to_audioregion():scale_amplitude()))
  end
  for l in Session:locations():list():iter() do
    if l:is_mark() or l:is_range_marker() then print("MARKER\\t" .. l:start():samples() .. "\\t" .. l:name()) end
  end
end
"""


def excerpt_plan(excerpt: Path) -> EditPlan:
    """A plan on the 12 s excerpt: keep with a fade-in, cut 3-4 s, loop 4-6 s twice, reverse 6-7 s,
    7-9 s at 1.25x speed, 9-11 s at -4 dB fading out, 11-12 s low-passed; three markers."""
    from editorbot.engine.audio import sha256_file

    info = sf.info(excerpt)
    return EditPlan(
        Source(str(excerpt), sha256_file(excerpt), info.samplerate, info.channels, info.duration),
        Grid(120.0, [0.5 * i for i in range(24)], list(range(0, 24, 4))),
        segments=[
            Segment(0.0, 3.0, 0.0, fade_in_s=0.05, action="KEEP"),
            Segment(4.0, 6.0, 3.0, action="LOOP"),
            Segment(4.0, 6.0, 5.0, action="LOOP"),
            Segment(6.0, 7.0, 7.0, reverse=True, action="REVERSE"),
            Segment(7.0, 9.0, 8.0, rate=1.25, action="SPEED"),
            Segment(9.0, 11.0, 9.6, gain_db=-4.0, fade_out_s=0.8, action="GAIN"),
            Segment(11.0, 12.0, 11.6, effects=[Effect("lowpass", {"cutoff_hz": 1500.0})], action="LOWPASS"),
        ],
        markers=[Marker(3.0, "CUT"), Marker(3.0, "LOOP x2", end_s=7.0), Marker(7.0, "REVERSE", end_s=8.0)],
    )


def add_midi_region(session_dir: Path, name: str = "edit") -> None:
    """A one-note MIDI file and a whole-file MIDI region over it in a closed session (not on a track)."""
    import mido

    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.Message("note_on", note=60, velocity=100, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=960))
    folder = next((session_dir / "interchange").iterdir()) / "midifiles"
    folder.mkdir(exist_ok=True)
    song.save(folder / "notes.mid")
    path = session_dir / f"{name}.ardour"
    tree = ET.parse(path)
    root = tree.getroot()
    sid = int(root.get("id-counter", "1000")) + 1000
    ET.SubElement(root.find("Sources"), "Source", {
        "name": "notes.mid", "type": "midi", "flags": "", "id": str(sid), "origin": "", "natural-position": "a0",
    })  # fmt: skip
    ET.SubElement(root.find("Regions"), "Region", {
        "name": "notes", "whole-file": "1", "start": "a0", "length": f"a{SUPERCLOCK_PER_S}@a0", "position": "a0",
        "id": str(sid + 1), "type": "midi", "source-0": str(sid), "master-source-0": str(sid),
    })  # fmt: skip
    root.set("id-counter", str(sid + 2))
    tree.write(path, encoding="UTF-8", xml_declaration=True)


def expected_regions(plan: EditPlan, sr: int) -> list[tuple[int, int, int, str, int, int, float]]:
    """(position, start, length, source, fade_in, fade_out, gain) per placed segment, in samples,
    worked out here from the plan (not from the script)."""
    out = []
    pos0, off = round(POSITION_S * sr), round(OFFSET_S * sr)
    for s in plan.segments:
        dst = round(s.dst_start_s * sr)
        if s.reverse or s.rate != 1 or s.pitch_semitones or s.effects:
            out.append((pos0 + dst, dst, round(s.length_s * sr), "rendered", DEFAULT_FADE, DEFAULT_FADE, 1.0))
        else:
            a, b = off + round(s.src_start_s * sr), off + round(s.src_end_s * sr)
            fades = [round(f * sr) or DEFAULT_FADE for f in (s.fade_in_s, s.fade_out_s)]
            out.append((pos0 + dst, a, b - a, "raw", *fades, 10 ** (s.gain_db / 20)))
    return sorted(out)


def fade_lengths(session_file: Path, sr: int) -> dict[str, tuple[int, int]]:
    """Region id -> (fade-in, fade-out) length in samples: the time of the last point of each fade's
    gain curve in the saved session (superclock ticks)."""
    out = {}
    for region in ET.parse(session_file).getroot().iter("Region"):
        lengths = []
        for which in ("FadeIn", "FadeOut"):
            node = region.find(f"{which}/AutomationList/events")
            tokens = node.text.split() if node is not None and node.text else []
            last = int(tokens[-2].lstrip("a")) if tokens else 0
            lengths.append(round(last * sr / SUPERCLOCK_PER_S))
        out[region.get("id")] = (lengths[0], lengths[1])
    return out


def parse_regions(output: str, fades: dict[str, tuple[int, int]] | None = None) -> tuple[list, list]:
    regions, markers = [], []
    for line in output.splitlines():
        f = line.split("\t")
        if f[0] == "REGION":
            source = "rendered" if f[4].startswith("rendered") else "raw" if f[4].startswith("raw") else f[4]
            fade_in, fade_out = (fades or {}).get(f[5], (-1, -1))
            regions.append((int(f[1]), int(f[2]), int(f[3]), source, fade_in, fade_out, float(f[6])))
        elif f[0] == "MARKER":
            markers.append((int(f[1]), f[2]))
    return sorted(regions), sorted(markers)


@pytest.fixture(scope="module")
def applied() -> dict:
    from editorbot.engine.audio import load_audio, sha256_file, write_audio
    from editorbot.engine.render import render_plan, stage_gain

    folder = scratch("ardour-lua")
    song = song_file(31, 16.0)
    audio = load_audio(song)
    sr = audio.sample_rate
    # the session: the song's region at 1 s, trimmed to start 2 s into its files, 12 s long
    placement = EditPlan(
        Source(str(song), sha256_file(song), sr, audio.samples.shape[0], audio.duration_s),
        Grid(120.0, [0.5 * i for i in range(30)], list(range(0, 30, 4))),
        segments=[Segment(OFFSET_S, OFFSET_S + LENGTH_S, POSITION_S)],
    )  # fmt: skip
    session = build_session(placement, folder / "session", name="edit")
    shutil.copytree(session.directory, folder / "pristine")  # for the bad-input test: the one region
    # what the spool's edit job does: cut the excerpt out, plan it, render it, stage the gain
    excerpt = folder / "excerpt.wav"
    i0 = round(OFFSET_S * sr)
    write_audio(excerpt, audio.samples[:, i0 : i0 + round(LENGTH_S * sr)], sr, subtype="FLOAT")
    plan = excerpt_plan(excerpt)
    rendered = render_plan(plan, load_audio(excerpt).samples, sr)
    rendered, _ = stage_gain(plan, rendered)
    render_path = folder / "rendered.wav"
    write_audio(render_path, rendered, sr, subtype="FLOAT")
    # Ardour's import of the rendered edit (the GUI's Editor:do_import), done to the closed session
    import_audio(session, render_path)
    result = folder / "result.json"
    result.write_text(json.dumps({
        "schema": "editorbot.spool.result/1", "id": REQUEST_ID, "status": "done", "message": "test",
        "plan": plan_to_dict(plan), "audio_path": str(render_path), "source_offset_s": OFFSET_S,
    }))  # fmt: skip
    end = round((POSITION_S + plan.duration_s + 0.5) * sr)
    prelude = PRELUDE.format(dir=_lua_string(str(session.directory)), name=_lua_string("edit"), script=_lua_string(str(SCRIPT)))
    out = _run_lua(prelude + f"""
local target = assert(E.check_region(region, Session:nominal_sample_rate()))
local f = io.open({_lua_string(str(result))}, "rb"); local text = f:read("a"); f:close()
local res, plan = E.check_result(text, "{REQUEST_ID}")
assert(res, plan)
local placements = assert(E.placements(plan, target, res.source_offset_s))
local rendered = E.imported_region(res.audio_path)
assert(rendered, "the imported render was not found")
local summary, why = E.apply(target, plan, placements, rendered)
assert(summary, why)
print("APPLIED " .. summary.regions .. " " .. summary.markers)
Session:locations():session_range_location():set(Temporal.timepos_t(0), Temporal.timepos_t({end}))
Session:save_state("", false, false, false, false, false)
close_session()
""", what="apply the plan", timeout_s=LUA_TIMEOUT_S)  # fmt: skip
    reopened = _run_lua(prelude + "regions_tsv()\nclose_session()\n", what="re-open", timeout_s=LUA_TIMEOUT_S)
    export_session(session, folder / "ardour.wav", timeout_s=LUA_TIMEOUT_S)
    return {
        "session": session, "plan": plan, "sr": sr, "out": out, "reopened": reopened, "render": render_path,
        "pristine": folder / "pristine",
    }  # fmt: skip


def test_the_saved_session_holds_the_plans_regions_and_markers(applied) -> None:
    plan, sr = applied["plan"], applied["sr"]
    assert "APPLIED 7 3" in applied["out"], applied["out"][-2000:]
    regions, markers = parse_regions(applied["reopened"], fade_lengths(applied["session"].session_file, sr))
    want = expected_regions(plan, sr)
    assert [r[:6] for r in regions] == [w[:6] for w in want]
    assert np.allclose([r[6] for r in regions], [w[6] for w in want], rtol=1e-6)
    # point and range markers arrive at their start (headless Lua can only add ranges; the GUI adds marks)
    pos0 = round(POSITION_S * sr)
    assert markers == sorted((pos0 + round(m.time_s * sr), m.name) for m in plan.markers)


def test_ardours_export_matches_editorbots_render(applied) -> None:
    session: ArdourSession = applied["session"]
    ours, sr = sf.read(applied["render"], always_2d=True)
    theirs, sr2 = sf.read(session.exported, always_2d=True)
    assert sr == sr2
    a = round(POSITION_S * sr)
    theirs = theirs[a : a + len(ours)]
    assert len(theirs) == len(ours)
    corr = [float(np.corrcoef(ours[:, c], theirs[:, c])[0, 1]) for c in range(2)]
    print(f"\nardour lua apply: correlation L {corr[0]:.5f} R {corr[1]:.5f} over {len(ours) / sr:.1f} s")
    assert min(corr) >= MIN_CORRELATION
    # silence before the edit: the original region is gone from 1 s on, nothing is left before it
    assert np.max(np.abs(sf.read(session.exported, always_2d=True)[0][: a - 64])) == 0.0


def test_bad_input_is_one_message_and_changes_nothing(applied, tmp_path: Path) -> None:
    live = tmp_path / "session"
    shutil.copytree(applied["pristine"], live)
    add_midi_region(live)
    spool = tmp_path / "spool"
    for sub in ("inbox", "outbox", "cancel", "alive"):
        (spool / sub).mkdir(parents=True)
    raw = next((live / "interchange").glob("*/audiofiles/raw-1.wav"))
    prelude = PRELUDE.format(dir=_lua_string(str(live)), name=_lua_string("edit"), script=_lua_string(str(SCRIPT)))
    out = _run_lua(prelude + f"""
local settings = E.settings({{spool = {_lua_string(str(spool))}}})
regions_tsv()
local function try (what, r)
  local job, why = E.submit(r, settings)
  assert(job == nil, what .. ": submitted")
  print("SAYS\\t" .. what .. "\\t" .. why:gsub("\\n", " "))
end
try("no region", nil)
for _, r in ARDOUR.RegionFactory.regions():iter() do
  if r:name() == "notes" then try("midi region", r) end
end
os.rename({_lua_string(str(raw))}, {_lua_string(str(raw))} .. ".away")
try("missing file", region)
os.rename({_lua_string(str(raw))} .. ".away", {_lua_string(str(raw))})
try("no server", region)
local hb = io.open({_lua_string(str(spool / "heartbeat"))}, "w"); hb:write('{{"time": ' .. os.time() .. '}}'); hb:close()
local job = assert(E.submit(region, settings))
print("SUBMITTED\\t" .. job.id)
print("AFTER")
regions_tsv()
close_session()
""", what="bad input", timeout_s=LUA_TIMEOUT_S)  # fmt: skip
    says = dict(line.split("\t")[1:] for line in out.splitlines() if line.startswith("SAYS\t"))
    assert says["no region"] == "Select one audio region first."
    assert says["midi region"] == "'notes' is a MIDI region: editorbot edits audio regions."
    assert says["missing file"].endswith(f"its audio file {raw} is missing.")
    assert says["no server"].startswith("The editorbot server is not running. Start it with:")
    before, after = out.split("AFTER")
    assert parse_regions(before) == parse_regions(after) and len(parse_regions(before)[0]) == 1
    # only the last, good request reached the spool, and it is one the spool accepts
    from editorbot.bridge.spool import parse_request

    job_id = next(line.split("\t")[1] for line in out.splitlines() if line.startswith("SUBMITTED\t"))
    (request,) = list((spool / "inbox").iterdir())
    assert request.name == f"{job_id}.json"
    parsed = parse_request(json.loads(request.read_text()), job_id, roots=[live])
    assert parsed.edit.start_s == pytest.approx(OFFSET_S) and parsed.edit.end_s == pytest.approx(OFFSET_S + LENGTH_S)
    assert len(parsed.channel_files) == 1 and parsed.audio.endswith("raw-0.wav")
