"""Apply an EditPlan to an Ardour 7 session, headless, and export it with Ardour.

Ardour 7's Lua bindings have no file import outside the GUI editor, so the
session is built in three steps:

1. ``ardour7-lua`` (dummy audio backend) creates the session at the song's
   sample rate with one audio track of the song's channel count.
2. Python writes the raw song into the session's ``interchange/FOLDER/audiofiles``
   as one mono float WAV per channel and adds them to the session XML as
   ``<Source>`` entries plus one whole-file ``<Region>`` (the format Ardour 7.3
   writes itself for a recorded take; times are superclock ticks, 282,240,000
   a second), and the plan's markers and the session range as ``<Location>``
   entries.
3. A generated Lua script loads the session and, per plan segment, clones the
   whole-file region (``ARDOUR.RegionFactory.clone_region``), trims it to the
   segment's source span (``set_length``, ``set_start``), moves it to the
   segment's output time (``Playlist:add_region``), and sets its fades
   (linear) and gain (``set_scale_amplitude``); repeated spans become
   duplicated regions, cut spans are simply never placed. It saves the session.

Ardour has no per-region reverse, speed, pitch or effects, so a plan with
such segments is also rendered by editorbot (``engine.render.render_plan``),
that render is added to the session as a second whole-file region, and those
segments are its matching output spans (``ArdourSession.rendered_segments``).
``ardour7-export`` then renders the session range through the master bus.
Muted segments become gaps. The editor action
``ardour_scripts/editorbot_auto_edit.lua`` does the same to a session the
user has open.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from editorbot.engine.plan import EditPlan, Marker

log = logging.getLogger(__name__)

LUA_BIN = "ardour7-lua"
EXPORT_BIN = "ardour7-export"
EXPORT_ATTEMPTS = 10  # runs of ardour7-export at most until two renders agree (a CI run saw 4 aborts in a row)
EXPORT_RUN_TIMEOUT_S = 60.0  # one run takes about 3 s for a 20-s session; a run past this has hung
#: Ardour 7's superclock rate: timeline positions are integer ticks of this rate.
SUPERCLOCK_PER_S = 282_240_000
#: Printed by the generated scripts when they reach their end.
_OK = "EDITORBOT_LUA_OK"


class ArdourError(RuntimeError):
    """Ardour's tools are missing or failed; the message says which step and shows its output."""


@dataclass
class ArdourSession:
    """A session written by ``build_session``.

    Attributes
    ----------
    directory, name:
        Session folder and snapshot name (``directory / (name + ".ardour")``).
    sample_rate:
        Session rate (the song's).
    n_regions:
        Regions placed on the track's playlist.
    markers:
        ``(time_s, name)`` of the markers written.
    rendered_segments:
        Indices of the plan segments taken from editorbot's render (reverse, speed, pitch, effects).
    exported:
        Path of the audio ``ardour7-export`` wrote, if it ran.
    """

    directory: Path
    name: str
    sample_rate: int
    n_regions: int = 0
    markers: list[tuple[float, str]] = field(default_factory=list)
    rendered_segments: list[int] = field(default_factory=list)
    exported: str | None = None

    @property
    def session_file(self) -> Path:
        """The ``NAME.ardour`` XML file."""
        return self.directory / f"{self.name}.ardour"


def ardour_available() -> bool:
    """True when ``ardour7-lua`` and ``ardour7-export`` are on PATH."""
    return shutil.which(LUA_BIN) is not None and shutil.which(EXPORT_BIN) is not None


def superclock(samples: int, sample_rate: int) -> int:
    """Superclock ticks of a sample position (exact for rates that divide 282,240,000)."""
    if SUPERCLOCK_PER_S % sample_rate == 0:
        return int(samples) * (SUPERCLOCK_PER_S // sample_rate)
    return int(round(int(samples) * SUPERCLOCK_PER_S / sample_rate))


def _lua_string(text: str) -> str:
    """A Lua string literal for ``text``."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '\\"':
            out.append("\\" + ch)
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.extend(f"\\{b}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _run_lua(script: str, *, what: str, timeout_s: float) -> str:
    """Run a Lua script with ``ardour7-lua``; ArdourError unless it printed the OK sentinel."""
    if shutil.which(LUA_BIN) is None:
        raise ArdourError(f"{LUA_BIN} not found (apt-get install ardour)")
    with tempfile.TemporaryDirectory(prefix="editorbot-ardour-") as tmp:
        path = Path(tmp) / "script.lua"
        path.write_text(script + f'\nprint("{_OK}")\n', encoding="utf-8")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [LUA_BIN, str(path)], capture_output=True, text=True, timeout=timeout_s, cwd=tmp,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            raise ArdourError(f"{what}: {LUA_BIN} did not finish within {timeout_s:g} s") from err
    output = proc.stdout + proc.stderr
    log.debug("%s: %s exited %d in %.2f s", what, LUA_BIN, proc.returncode, time.perf_counter() - t0)
    if _OK not in proc.stdout:
        tail = "\n".join(output.strip().splitlines()[-12:])
        raise ArdourError(f"{what}: {LUA_BIN} failed (exit {proc.returncode}):\n{tail}")
    return output


def _create_script(directory: Path, name: str, sample_rate: int, n_channels: int) -> str:
    return f"""
AudioEngine:set_backend("None (Dummy)", "", "")
local s = create_session({_lua_string(str(directory))}, {_lua_string(name)}, {int(sample_rate)})
assert(s, "could not create the session")
local tl = Session:new_audio_track({n_channels}, 2, nil, 1, "edit", ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
assert(tl:size() == 1, "could not add the track")
Session:save_state("", false, false, false, false, false)
close_session()
"""


def _edit_script(directory: Path, name: str, region_ids: list[int], segments: list[tuple[int, int, int, int, int, float, int]]) -> str:
    rows = ",\n".join("{%d, %d, %d, %d, %d, %.9g, %d}" % seg for seg in segments)  # noqa: UP031 - Lua braces unescaped
    lookups = "\n".join(
        f'wholes[{i + 1}] = ARDOUR.RegionFactory.region_by_id(PBD.ID("{rid}"))\n'
        f'assert(not wholes[{i + 1}]:isnil(), "whole-file region {rid} not found")'
        for i, rid in enumerate(region_ids)
    )
    return f"""
AudioEngine:set_backend("None (Dummy)", "", "")
local s = load_session({_lua_string(str(directory))}, {_lua_string(name)})
assert(s, "could not load the session")
local wholes = {{}}
{lookups}
local track = Session:route_by_name("edit"):to_track()
local playlist = track:playlist()
-- src_start, length, dst_start, fade_in, fade_out (samples), gain (linear), whole-file region (1 raw, 2 render)
local segments = {{
{rows}
}}
for i, seg in ipairs(segments) do
  local r = ARDOUR.RegionFactory.clone_region(wholes[seg[7]], true, false)
  r:set_length(Temporal.timecnt_t(seg[2]))
  r:set_start(Temporal.timepos_t(seg[1]))
  assert(r:start():samples() == seg[1] and r:length():samples() == seg[2], "segment " .. i .. ": trim refused")
  local ar = r:to_audioregion()
  if seg[4] > 0 then
    ar:set_fade_in_shape(ARDOUR.FadeShape.FadeLinear)
    ar:set_fade_in_length(seg[4])
    ar:set_fade_in_active(true)
  end
  if seg[5] > 0 then
    ar:set_fade_out_shape(ARDOUR.FadeShape.FadeLinear)
    ar:set_fade_out_length(seg[5])
    ar:set_fade_out_active(true)
  end
  ar:set_scale_amplitude(seg[6])
  playlist:add_region(r, Temporal.timepos_t(seg[3]), 1, false)
end
print("EDITORBOT_REGIONS " .. playlist:region_list():size())
Session:save_state("", false, false, false, false, false)
close_session()
"""


def _write_sources(session: ArdourSession, samples: np.ndarray, stem: str) -> list[str]:
    """One mono float WAV per channel in the session's audiofiles folder; returns the file names."""
    import soundfile as sf

    # Ardour names the interchange folder after the session folder; use the one it made.
    made = [p for p in (session.directory / "interchange").iterdir() if p.is_dir()]
    if len(made) != 1:
        raise ArdourError(f"expected one folder in {session.directory / 'interchange'}, found {len(made)}")
    folder = made[0] / "audiofiles"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for c in range(samples.shape[0]):
        fname = f"{stem}-{c}.wav"
        sf.write(folder / fname, samples[c], session.sample_rate, subtype="FLOAT")
        names.append(fname)
    return names


def _patch_session_xml(
    session: ArdourSession, source_names: list[str], n_samples: int, total_samples: int, markers: list[Marker]
) -> int:
    """Add Sources, the whole-file Region, markers and the session range; returns the region id."""
    path = session.session_file
    tree = ET.parse(path)
    root = tree.getroot()
    next_id = int(root.get("id-counter", "1000")) + 1000
    sr = session.sample_rate

    def new_id() -> str:
        nonlocal next_id
        next_id += 1
        return str(next_id)

    region_id = _add_region_xml(root, source_names, n_samples, sr, new_id, "raw")
    _connect_to_master(root)
    locations = root.find("Locations")
    if locations is None:
        locations = ET.SubElement(root, "Locations")
    for loc in list(locations):
        if "IsSessionRange" in loc.get("flags", ""):
            locations.remove(loc)
    stamp = str(int(time.time()))
    ET.SubElement(locations, "Location", {
        "id": new_id(), "name": "session", "start": "a0", "end": f"a{superclock(total_samples, sr)}",
        "flags": "IsSessionRange", "locked": "0", "timestamp": stamp, "cue": "0",
    })  # fmt: skip
    for m in markers:
        start = superclock(int(round(m.time_s * sr)), sr)
        end = start if m.end_s is None else superclock(int(round(m.end_s * sr)), sr)
        ET.SubElement(locations, "Location", {
            "id": new_id(), "name": m.name, "start": f"a{start}", "end": f"a{end}",
            "flags": "IsMark" if m.end_s is None else "IsRangeMarker", "locked": "0", "timestamp": stamp, "cue": "0",
        })  # fmt: skip
    root.set("id-counter", str(next_id + 1))
    tree.write(path, encoding="UTF-8", xml_declaration=True)
    return int(region_id)


def _add_region_xml(
    root: ET.Element, source_names: list[str], n_samples: int, sample_rate: int, new_id: Callable[[], str], name: str
) -> str:
    """Add one ``<Source>`` per file and a whole-file ``<Region>`` over them; returns the region's id."""
    sources = root.find("Sources")
    if sources is None:
        sources = ET.SubElement(root, "Sources")
    source_ids = []
    for fname in source_names:
        sid = new_id()
        source_ids.append(sid)
        ET.SubElement(sources, "Source", {
            "name": fname, "type": "audio", "flags": "", "id": sid, "natural-position": "a0",
            "origin": "", "gain": "1", "channel": "0",
        })  # fmt: skip
    regions = root.find("Regions")
    if regions is None:
        regions = ET.SubElement(root, "Regions")
    region_id = new_id()
    attrs = {
        "name": name, "muted": "0", "opaque": "1", "locked": "0", "video-locked": "0", "automatic": "1",
        "whole-file": "1", "import": "1", "external": "0", "sync-marked": "0", "left-of-split": "0",
        "right-of-split": "0", "hidden": "0", "position-locked": "0", "valid-transients": "0", "start": "a0",
        "length": f"a{superclock(n_samples, sample_rate)}@a0", "sync-position": "a0", "ancestral-start": "a0",
        "ancestral-length": "a0@a0", "stretch": "1", "shift": "1", "layering-index": "0", "tags": "",
        "contents": "0", "envelope-active": "0", "default-fade-in": "0", "default-fade-out": "0",
        "fade-in-active": "1", "fade-out-active": "1", "scale-amplitude": "1", "id": region_id, "type": "audio",
        "first-edit": "nothing", "channels": str(len(source_ids)),
    }  # fmt: skip
    for c, sid in enumerate(source_ids):
        attrs[f"source-{c}"] = sid
        attrs[f"master-source-{c}"] = sid
    ET.SubElement(regions, "Region", attrs)
    return region_id


def import_audio(session: ArdourSession, path: str | os.PathLike) -> int:
    """Add an audio file to a saved session that is not open, as Ardour's import does: one mono
    file per channel in the session's audiofiles folder, sources named ``STEM-C.wav`` after the
    file, and a whole-file region (not placed on any track). Returns the region's id.

    Headless Ardour has no import (``Editor:do_import`` is the GUI's), so this is how a
    headless session gets a file the GUI would import.
    """
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != session.sample_rate:
        raise ArdourError(f"{path}: {rate} Hz, the session runs at {session.sample_rate} Hz")
    return _import_samples(session, np.ascontiguousarray(samples.T), Path(path).stem)


def _import_samples(session: ArdourSession, samples: np.ndarray, stem: str) -> int:
    """``import_audio`` of ``(n_channels, n_samples)`` audio at the session's rate."""
    names = _write_sources(session, samples, stem)
    tree = ET.parse(session.session_file)
    root = tree.getroot()
    next_id = int(root.get("id-counter", "1000")) + 1000

    def new_id() -> str:
        nonlocal next_id
        next_id += 1
        return str(next_id)

    region_id = _add_region_xml(root, names, samples.shape[1], session.sample_rate, new_id, stem)
    root.set("id-counter", str(next_id + 1))
    tree.write(session.session_file, encoding="UTF-8", xml_declaration=True)
    return int(region_id)


def _connect_to_master(root: ET.Element) -> None:
    """Connect the track's outputs to the master bus inputs (headless, auto-connect may not run before saving)."""
    ports = {p.get("name"): p for p in root.iter("Port")}
    for i in (1, 2):
        out, master = ports.get(f"edit/audio_out {i}"), ports.get(f"Master/audio_in {i}")
        if out is None or master is None:
            raise ArdourError(f"session has no port edit/audio_out {i} or Master/audio_in {i}")
        for port, other in ((out, f"Master/audio_in {i}"), (master, f"edit/audio_out {i}")):
            if not any(c.get("other") == other for c in port.iter("Connection")):
                ET.SubElement(port, "Connection", {"other": other})


def _segment_rows(plan: EditPlan, sr: int, n_source: int) -> tuple[list[tuple[int, int, int, int, int, float, int]], list[int]]:
    """Rows of the edit script, and the indices of the segments taken from editorbot's render."""
    rows, rendered = [], []
    for i, seg in enumerate(plan.segments):
        if seg.mute:
            continue
        dst0 = max(0, int(round(seg.dst_start_s * sr)))
        if seg.reverse or seg.rate != 1.0 or seg.pitch_semitones != 0.0 or seg.effects:
            # the render's span already holds the segment's fades and gain
            rows.append((dst0, int(round(seg.length_s * sr)), dst0, 0, 0, 1.0, 2))
            rendered.append(i)
            continue
        src0 = max(0, int(round(seg.src_start_s * sr)))
        src1 = min(n_source, int(round(seg.src_end_s * sr)))
        if src1 <= src0:
            continue
        length = src1 - src0
        fade_in = min(length, int(round(seg.fade_in_s * sr)))
        fade_out = min(length, int(round(seg.fade_out_s * sr)))
        rows.append((src0, length, dst0, fade_in, fade_out, float(10.0 ** (seg.gain_db / 20.0)), 1))
    return rows, rendered


def build_session(
    plan: EditPlan, directory: str | os.PathLike, *, name: str = "editorbot", source_path: str | None = None,
    timeout_s: float = 180.0,
) -> ArdourSession:
    """Make the Ardour session ``directory`` (must not exist) for ``plan`` from its raw song.

    Returns the ``ArdourSession``. ArdourError when Ardour's tools are missing
    or fail; BadInput when the plan's source is missing or changed.
    """
    from editorbot.engine.audio import load_audio
    from editorbot.engine.errors import BadInput
    from editorbot.engine.plan import check_source

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise BadInput(name, "session name: letters, digits, '-' and '_' only")
    directory = Path(directory).resolve()
    if directory.exists():
        raise BadInput(directory, "session folder already exists")
    src = check_source(plan, source_path)
    audio = load_audio(src)
    sr = int(audio.sample_rate)
    samples = np.ascontiguousarray(audio.samples, dtype=np.float32)
    session = ArdourSession(directory, name, sr)
    t0 = time.perf_counter()
    _run_lua(_create_script(directory, name, sr, samples.shape[0]), what="create session", timeout_s=timeout_s)
    source_names = _write_sources(session, samples, "raw")
    rows, session.rendered_segments = _segment_rows(plan, sr, samples.shape[1])
    total = max(1, int(round(plan.duration_s * sr)))
    region_ids = [_patch_session_xml(session, source_names, samples.shape[1], total, plan.markers)]
    if session.rendered_segments:
        from editorbot.engine.render import render_plan

        region_ids.append(_import_samples(session, render_plan(plan, samples, sr), "rendered"))
    out = _run_lua(_edit_script(directory, name, region_ids, rows), what="edit session", timeout_s=timeout_s)
    match = re.search(r"EDITORBOT_REGIONS (\d+)", out)
    session.n_regions = int(match.group(1)) if match else 0
    session.markers = [(float(m.time_s), m.name) for m in plan.markers]
    log.info(
        "ardour session %s: %d regions, %d markers in %.1f s", directory, session.n_regions, len(session.markers),
        time.perf_counter() - t0,
    )
    return session


def export_session(
    session: ArdourSession, out_path: str | os.PathLike, *, timeout_s: float = 240.0,
    run_timeout_s: float = EXPORT_RUN_TIMEOUT_S,
) -> str:  # fmt: skip
    """Render the session range with ``ardour7-export`` as a float WAV at the session rate.

    ardour7-export now and then corrupts its heap: mostly it then aborts
    ("double free or corruption", a death by signal), sometimes it hangs,
    and a run that exited cleanly has also rendered wrong audio. Its
    samples are otherwise the same on every run, so the session is
    exported until two runs agree (at most ``EXPORT_ATTEMPTS`` runs); a run
    killed after ``run_timeout_s`` seconds counts as a failed run, a run
    that fails without a signal is an error at once, and all runs together
    stop at ``timeout_s`` seconds.
    """
    if shutil.which(EXPORT_BIN) is None:
        raise ArdourError(f"{EXPORT_BIN} not found (apt-get install ardour)")
    out = Path(out_path).resolve()
    renders: dict[bytes, Path] = {}  # audio digest -> the run's file
    deadline = time.monotonic() + timeout_s
    try:
        for attempt in range(1, EXPORT_ATTEMPTS + 1):
            run_out = out.with_name(f".{out.stem}.run{attempt}{out.suffix}")
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                raise ArdourError(f"{EXPORT_BIN} did not render {session.name} twice alike within {timeout_s:g} s")
            try:
                proc = subprocess.run(
                    [EXPORT_BIN, "-b", "float", "-o", str(run_out), str(session.directory), session.name],
                    capture_output=True, text=True, timeout=min(run_timeout_s, left_s), stdin=subprocess.DEVNULL,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                log.warning("%s hung and was killed after %.0f s (run %d of at most %d)", EXPORT_BIN,
                            min(run_timeout_s, left_s), attempt, EXPORT_ATTEMPTS)  # fmt: skip
                continue
            if proc.returncode < 0:
                log.warning("%s died with signal %d (run %d of at most %d)", EXPORT_BIN, -proc.returncode, attempt,
                            EXPORT_ATTEMPTS)  # fmt: skip
                continue
            if proc.returncode != 0 or not run_out.is_file():
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
                raise ArdourError(f"{EXPORT_BIN} failed (exit {proc.returncode}):\n{tail}")
            digest = _audio_digest(run_out)
            if digest in renders:
                os.replace(run_out, out)
                session.exported = str(out)
                return str(out)
            if renders:
                log.warning("%s rendered %s differently on run %d; exporting again", EXPORT_BIN, session.name, attempt)
            renders[digest] = run_out
    finally:
        for path in out.parent.glob(f".{out.stem}.run*{out.suffix}"):
            path.unlink(missing_ok=True)
    raise ArdourError(f"{EXPORT_BIN}: no two of {EXPORT_ATTEMPTS} runs rendered {session.name} alike")


def _audio_digest(path: Path) -> bytes:
    """sha256 of a WAV's samples (the file's other chunks differ from run to run)."""
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return hashlib.sha256(samples.tobytes() + str(rate).encode()).digest()


def session_markers(session_file: str | os.PathLike) -> list[tuple[float, str, float | None]]:
    """``(time_s, name, end_s)`` of the markers and range markers in an Ardour 7 session file."""
    root = ET.parse(session_file).getroot()
    out = []
    for loc in root.iter("Location"):
        flags = loc.get("flags", "")
        if "IsMark" not in flags and "IsRangeMarker" not in flags:
            continue
        start = _ticks(loc.get("start", "a0")) / SUPERCLOCK_PER_S
        end = _ticks(loc.get("end", "a0")) / SUPERCLOCK_PER_S
        out.append((start, loc.get("name", ""), None if "IsMark" in flags else end))
    return sorted(out)


def _ticks(text: str) -> int:
    """Superclock ticks of an Ardour 7 ``timepos_t`` string (``a123`` audio time)."""
    value = text.split("@", 1)[0]
    if not value.startswith("a"):
        raise ArdourError(f"unexpected time value {text!r} (music time is not used here)")
    return int(value[1:])
