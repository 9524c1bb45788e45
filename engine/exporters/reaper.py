"""REAPER project (.rpp) export.

The project holds:

- ``TEMPO bpm num 4``: the grid's global tempo; the bar length ``num`` is
  the median downbeat spacing in beats (4 when unknown). A plan's grid
  describes the *source*; the edit re-sequences it, so the output has no
  beat map of its own and a single tempo is written (segments start on
  source beats, so at the global tempo the project grid follows the edit).
- ``MARKER`` lines: one per plan marker (flags 0) and a pair per region
  (flags 1, same index, the second line holds the end time). Markers and
  regions are numbered separately from 1. A marker whose name shows a
  confidence under ``engine.plan.LOW_CONFIDENCE`` is coloured red, as the
  Reaper scripts colour it; the others keep REAPER's default colour.
- One track, ``editorbot edit``, with a post-FX volume envelope
  (``<VOLENV2``) from the ``volume_db`` automation lane, if any: point
  values are amplitudes (no ``VOLTYPE 1``), ``10 ** (dB / 20)``, capped at
  2.0 (+6 dB, REAPER's default envelope range). The lane restates what the
  items already do (their gain and fades, see ``engine.plan``), so the
  envelope is written *inactive* (``ACT 0``): visible, and one click turns
  it on in place of the item settings. ``envelope_active=True`` writes it
  active (for plans whose volume lane is not a restatement).
- One ``<ITEM`` per segment:

  ========== ==============================================================
  POSITION   ``dst_start_s``
  LENGTH     the segment's output length, ``(src_end_s - src_start_s)/rate``
  FADEIN     linear (shape 0), ``max(fade_in_s, SPLICE_S)``: the plan's
  FADEOUT    fade, or at least the splice fade the renderer applies at
             every cut (the splice part capped at half the item)
  MUTE       ``1`` for SILENCE segments
  VOLPAN     item volume ``10 ** (gain_db / 20)``
  SOFFS      ``src_start_s`` (0 for reversed items, see below)
  PLAYRATE   ``rate``, preserve pitch on, pitch adjust ``pitch_semitones``
  SOURCE     the plan's source file by absolute path (``<SOURCE WAVE``,
             ``FLAC``, ``MP3``, ``VORBIS`` by extension)
  ========== ==============================================================

  A reversed segment wraps the file in ``<SOURCE SECTION`` with ``MODE 2``
  (section and reverse), ``STARTPOS src_start_s`` and ``LENGTH src_end_s -
  src_start_s``; the item then starts at the section's start (SOFFS 0) and
  plays the span backwards.

Limitations: the plan's effects (lowpass, reverb, ...) have no item-property
equivalent; they are listed in each item's notes (``<NOTES``, one
``|name key=value`` line per effect) and not applied. Other automation lanes
than ``volume_db`` are not written (use the MIDI CC export for them). Splice
fades are fades, not overlapping crossfades: items butt against each other
exactly where the plan puts them.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import uuid

from editorbot.engine.atomic import write_text_atomic
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import LOW_CONFIDENCE, EditPlan, Effect, Grid, Segment, marker_confidence

log = logging.getLogger(__name__)

SPLICE_S = 0.005
"""Seconds of fade at each item end when the plan asks for less (splice)."""

MAX_ENVELOPE_GAIN = 2.0
"""Largest volume envelope amplitude REAPER shows by default (+6 dB)."""

_SOURCE_TYPES = {
    ".wav": "WAVE",
    ".wave": "WAVE",
    ".w64": "WAVE",
    ".aif": "WAVE",
    ".aiff": "WAVE",
    ".flac": "FLAC",
    ".mp3": "MP3",
    ".ogg": "VORBIS",
    ".opus": "OPUS",
}

_GUID_NAMESPACE = uuid.UUID("6f1d2a0c-4d0e-4b7a-9a64-2f0b9c3e5d11")


def _num(x: float) -> str:
    """A decimal number without exponent, up to 10 decimals (seconds: 0.1 ns)."""
    value = float(x)
    if not math.isfinite(value):
        raise BadInput(None, f"non-finite number {x!r} in plan")
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _quote(text: str) -> str:
    """A one-line RPP string: quoted with the first of ``" ' ` `` it lacks."""
    flat = str(text).translate({9: " ", 10: " ", 13: " "})
    for q in ('"', "'", "`"):
        if q not in flat:
            return f"{q}{flat}{q}"
    return '"' + flat.replace('"', "'") + '"'


def _guid(*parts: object) -> str:
    """A deterministic GUID in REAPER's ``{...}`` form, so exports are reproducible."""
    return "{" + str(uuid.uuid5(_GUID_NAMESPACE, "/".join(map(str, parts)))).upper() + "}"


def beats_per_bar(grid: Grid) -> int:
    """Median spacing of the grid's downbeats in beats (4 when unknown)."""
    steps = [b - a for a, b in zip(grid.downbeats, grid.downbeats[1:]) if b > a]
    if not steps:
        return 4
    n = int(round(statistics.median(steps)))
    return n if 1 <= n <= 32 else 4


def _db_to_amplitude(db: float) -> float:
    return 10.0 ** (float(db) / 20.0)


def _effects_notes(effects: list[Effect]) -> list[str]:
    lines = []
    for effect in effects:
        params = " ".join(f"{k}={_num(v)}" for k, v in sorted(effect.params.items()))
        lines.append(f"|{' '.join(f'{effect.name} {params}'.split())}")
    return lines


def _source_lines(path: str, seg: Segment) -> list[str]:
    kind = _SOURCE_TYPES.get(os.path.splitext(path)[1].lower(), "WAVE")
    wave = [f"<SOURCE {kind}", f"  FILE {_quote(path)}", ">"]
    if not seg.reverse:
        return wave
    return [
        "<SOURCE SECTION",
        f"  LENGTH {_num(seg.src_end_s - seg.src_start_s)}",
        "  MODE 2",
        f"  STARTPOS {_num(seg.src_start_s)}",
        "  OVERLAP 0",
        *("  " + line for line in wave),
        ">",
    ]


def _item_lines(index: int, seg: Segment, source_path: str) -> list[str]:
    if not float(seg.rate) > 0.0:
        raise BadInput(None, f"segment {index}: rate must be > 0, got {seg.rate!r}")
    if seg.src_end_s <= seg.src_start_s:
        raise BadInput(None, f"segment {index}: source span is empty or inverted")
    length = seg.length_s
    fade_cap = length / 2.0
    fade_in = min(max(float(seg.fade_in_s), SPLICE_S), max(fade_cap, float(seg.fade_in_s)))
    fade_out = min(max(float(seg.fade_out_s), SPLICE_S), max(fade_cap, float(seg.fade_out_s)))
    soffs = 0.0 if seg.reverse else seg.src_start_s
    name = f"{seg.action} b{int(seg.beat)}" + (" rev" if seg.reverse else "")
    lines = [
        "<ITEM",
        f"  POSITION {_num(seg.dst_start_s)}",
        "  SNAPOFFS 0",
        f"  LENGTH {_num(length)}",
        "  LOOP 0",
        "  ALLTAKES 0",
        f"  FADEIN 0 {_num(fade_in)} 0 1 0 0 0",
        f"  FADEOUT 0 {_num(fade_out)} 0 1 0 0 0",
        f"  MUTE {1 if seg.mute else 0} 0",
        "  SEL 0",
        f"  IGUID {_guid('item', index, seg.dst_start_s, seg.src_start_s)}",
        f"  IID {index + 1}",
    ]
    if seg.effects:
        lines += ["  <NOTES", "    |effects not applied (no item property for them):"]
        lines += ["    " + line for line in _effects_notes(seg.effects)]
        lines += ["  >"]
    lines += [
        f"  NAME {_quote(name)}",
        f"  VOLPAN {_num(_db_to_amplitude(seg.gain_db))} 0 1 -1",
        f"  SOFFS {_num(soffs)}",
        f"  PLAYRATE {_num(seg.rate)} 1 {_num(seg.pitch_semitones)} -1 0 0.0025",
        "  CHANMODE 0",
        f"  GUID {_guid('take', index, seg.dst_start_s, seg.src_start_s)}",
        *("  " + line for line in _source_lines(source_path, seg)),
        ">",
    ]
    return lines


def _volume_envelope_lines(plan: EditPlan, active: bool) -> list[str]:
    lanes = [lane for lane in plan.automation if lane.parameter == "volume_db" and lane.points]
    if not lanes:
        return []
    if len(lanes) > 1:
        log.warning("plan has %d volume_db lanes; writing the first", len(lanes))
    lines = [
        "<VOLENV2",
        f"  EGUID {_guid('volenv', len(lanes[0].points))}",
        f"  ACT {1 if active else 0} -1",
        "  VIS 1 1 1",
        "  LANEHEIGHT 0 0",
        "  ARM 0",
        "  DEFSHAPE 0 -1 -1",
    ]
    clipped = 0
    for t, db in sorted(lanes[0].points, key=lambda p: p[0]):
        amp = _db_to_amplitude(db)
        if amp > MAX_ENVELOPE_GAIN:
            amp, clipped = MAX_ENVELOPE_GAIN, clipped + 1
        lines.append(f"  PT {_num(t)} {_num(amp)} 0")
    if clipped:
        log.warning("volume envelope: %d points above +6 dB capped at +6 dB", clipped)
    lines.append(">")
    return lines


#: Markers the policy was unsure of (engine.plan.LOW_CONFIDENCE), as the Reaper
#: scripts colour them: ColorToNative(235, 40, 40) | 0x1000000 (the "custom colour"
#: flag), native order 0x00BBGGRR as REAPER writes it on Windows and Linux.
UNSURE_COLOR = (235 | 40 << 8 | 40 << 16) | 0x1000000


def _marker_color(name: str) -> int:
    """A marker's colour field: red when its name shows a confidence under LOW_CONFIDENCE, else 0 (default)."""
    confidence = marker_confidence(name)
    return UNSURE_COLOR if confidence is not None and confidence < LOW_CONFIDENCE else 0


def _marker_lines(plan: EditPlan) -> list[str]:
    lines = []
    n_markers = n_regions = 0
    for marker in sorted(plan.markers, key=lambda m: m.time_s):
        name, color = _quote(marker.name), _marker_color(marker.name)
        if marker.end_s is None:
            n_markers += 1
            guid = _guid("marker", n_markers, marker.time_s)
            lines.append(f"MARKER {n_markers} {_num(marker.time_s)} {name} 0 {color} 1 B {guid} 0")
        else:
            if marker.end_s < marker.time_s:
                raise BadInput(None, f"region {marker.name!r} ends before it starts")
            n_regions += 1
            guid = _guid("region", n_regions, marker.time_s)
            lines.append(f"MARKER {n_regions} {_num(marker.time_s)} {name} 1 {color} 1 B {guid} 0")
            lines.append(f'MARKER {n_regions} {_num(marker.end_s)} "" 1')
    return lines


def format_rpp(plan: EditPlan, *, envelope_active: bool = False) -> str:
    """The .rpp text for ``plan`` (see the module docstring)."""
    bpm = float(plan.grid.tempo_bpm)
    if not (math.isfinite(bpm) and 1.0 <= bpm <= 960.0):
        raise BadInput(None, f"grid tempo {plan.grid.tempo_bpm!r} BPM is out of range 1-960")
    source_path = os.path.abspath(plan.source.path)
    lines = [
        '<REAPER_PROJECT 0.1 "7.0/editorbot" 0',
        "  RIPPLE 0",
        f"  TEMPO {_num(bpm)} {beats_per_bar(plan.grid)} 4",
        f"  SAMPLERATE {int(plan.source.sample_rate)} 0 0",
        *("  " + line for line in _marker_lines(plan)),
        f"  <TRACK {_guid('track')}",
        '    NAME "editorbot edit"',
        "    VOLPAN 1 0 -1 -1 1",
        "    MUTESOLO 0 0 0",
        f"    NCHAN {max(2, int(plan.source.channels) + int(plan.source.channels) % 2)}",
        f"    TRACKID {_guid('track')}",
        *("    " + line for line in _volume_envelope_lines(plan, envelope_active)),
    ]
    for i, seg in enumerate(sorted(plan.segments, key=lambda s: s.dst_start_s)):
        lines += ["    " + line for line in _item_lines(i, seg, source_path)]
    lines += ["  >", ">"]
    return "\n".join(lines) + "\n"


def write_rpp(plan: EditPlan, path: str | os.PathLike, *, envelope_active: bool = False) -> str:
    """Write ``plan`` as a REAPER project (see the module docstring).

    ``envelope_active``: write the volume envelope switched on (default off,
    as the plan's volume lane restates the items' gain and fades).

    The project references the source audio by absolute path; it is never
    written over (``BadInput``). Atomic. Returns the path written.
    """
    return write_text_atomic(path, format_rpp(plan, envelope_active=envelope_active), protect=[plan.source.path])
