"""Tab-separated plan export for the Reaper Lua scripts.

Format (UTF-8, ``\\n`` line ends, no quoting anywhere):

- Line 1 is the header: the column names below, tab-separated.
- Every following line is one row with exactly as many tab-separated
  fields as the header. No field contains a tab or a line break; an empty
  field means "not used by this kind of row". A Lua reader can split each
  line on ``\\t`` and index the fields by the header names.

Columns, in order:

==============  ==========================================================
kind            ``segment``, ``marker``, ``region`` or ``automation``
dst_start_s     output time in seconds: segment start, marker time, region
                start, automation point time
length_s        segment length on the output timeline (seconds); region
                length; ``0`` for a marker; empty for automation
src_start_s     segment: source span start (seconds); else empty
src_end_s       segment: source span end (seconds); else empty
rate            segment: playback rate (pitch preserved); else empty
pitch           segment: pitch shift in semitones; else empty
gain_db         segment: gain in dB; else empty
fade_in_s       segment: fade-in length (seconds, linear gain); else empty
fade_out_s      segment: fade-out length (seconds, linear gain); else empty
reverse         segment: ``1`` reversed, ``0`` not; else empty
mute            segment: ``1`` silent (keeps its length), ``0`` not
action          segment: the action type that made it (``KEEP``, ``LOOP``)
beat            segment: index of its first source beat; else empty
effects         segment: compact JSON list ``[{"name":..,"params":{..}}]``
                (``[]`` when none); else empty
name            marker/region: its name (tabs/line breaks -> spaces)
parameter       automation: lane name (``volume_db``, ``lowpass_hz``, ...)
value           automation: the point's value in the lane's unit
==============  ==========================================================

Rows come in this order: segments (by ``dst_start_s``), then markers and
regions (by time), then automation points (by lane, then time). Numbers are
written with Python's shortest round-trip form (``repr``), e.g. ``0.5`` or
``1e-05``, which Lua's ``tonumber`` reads; all numbers are finite.

``read_tsv`` parses the file back into plan objects (used by the tests and
by anything that wants to check a file before a script consumes it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from editorbot.engine.atomic import write_text_atomic
from editorbot.engine.errors import BadInput
from editorbot.engine.exporters.audacity import marker_text
from editorbot.engine.plan import Automation, EditPlan, Effect, Marker, Segment

COLUMNS: tuple[str, ...] = (
    "kind",
    "dst_start_s",
    "length_s",
    "src_start_s",
    "src_end_s",
    "rate",
    "pitch",
    "gain_db",
    "fade_in_s",
    "fade_out_s",
    "reverse",
    "mute",
    "action",
    "beat",
    "effects",
    "name",
    "parameter",
    "value",
)


def _num(x: float, what: str) -> str:
    value = float(x)
    if not math.isfinite(value):
        raise BadInput(None, f"{what} is not a finite number ({x!r})")
    if value == 0.0:
        return "0.0"  # no "-0.0"
    return repr(value)


def _field(text: str) -> str:
    """One field: no tabs or line breaks."""
    return marker_text(text)


def _row(**values: str) -> str:
    unknown = set(values) - set(COLUMNS)
    if unknown:  # a programming error, not bad input
        raise KeyError(f"unknown TSV columns {sorted(unknown)}")
    return "\t".join(values.get(c, "") for c in COLUMNS) + "\n"


def _effects_json(effects: list[Effect]) -> str:
    items = [
        {"name": e.name, "params": {str(k): float(v) for k, v in e.params.items()}}
        for e in effects
    ]
    # json.dumps escapes tabs and newlines inside strings, so the field stays one line.
    return json.dumps(items, separators=(",", ":"), allow_nan=False, sort_keys=True)


def format_tsv(plan: EditPlan) -> str:
    """The TSV text for ``plan`` (header plus rows, see the module docstring)."""
    lines = ["\t".join(COLUMNS) + "\n"]
    for i, seg in enumerate(sorted(plan.segments, key=lambda s: s.dst_start_s)):
        if not float(seg.rate) > 0.0:
            raise BadInput(None, f"segment {i}: rate must be > 0, got {seg.rate!r}")
        try:
            effects = _effects_json(seg.effects)
        except ValueError as err:
            raise BadInput(None, f"segment {i}: effect parameter is not finite ({err})") from None
        lines.append(
            _row(
                kind="segment",
                dst_start_s=_num(seg.dst_start_s, f"segment {i} dst_start_s"),
                length_s=_num(seg.length_s, f"segment {i} length_s"),
                src_start_s=_num(seg.src_start_s, f"segment {i} src_start_s"),
                src_end_s=_num(seg.src_end_s, f"segment {i} src_end_s"),
                rate=_num(seg.rate, f"segment {i} rate"),
                pitch=_num(seg.pitch_semitones, f"segment {i} pitch_semitones"),
                gain_db=_num(seg.gain_db, f"segment {i} gain_db"),
                fade_in_s=_num(seg.fade_in_s, f"segment {i} fade_in_s"),
                fade_out_s=_num(seg.fade_out_s, f"segment {i} fade_out_s"),
                reverse="1" if seg.reverse else "0",
                mute="1" if seg.mute else "0",
                action=_field(seg.action),
                beat=str(int(seg.beat)),
                effects=effects,
            )
        )
    for marker in sorted(plan.markers, key=lambda m: (m.time_s, m.end_s is not None)):
        start = _num(marker.time_s, f"marker {marker.name!r} time_s")
        if marker.end_s is None:
            lines.append(_row(kind="marker", dst_start_s=start, length_s="0.0", name=_field(marker.name)))
        else:
            length = float(marker.end_s) - float(marker.time_s)
            lines.append(
                _row(
                    kind="region",
                    dst_start_s=start,
                    length_s=_num(length, f"region {marker.name!r} length"),
                    name=_field(marker.name),
                )
            )
    for lane in plan.automation:
        for t, v in sorted(lane.points, key=lambda p: p[0]):
            lines.append(
                _row(
                    kind="automation",
                    dst_start_s=_num(t, f"automation {lane.parameter} time"),
                    parameter=_field(lane.parameter),
                    value=_num(v, f"automation {lane.parameter} value"),
                )
            )
    return "".join(lines)


def write_tsv(plan: EditPlan, path: str | os.PathLike) -> str:
    """Write ``plan`` as the TSV described in the module docstring.

    Never writes over ``plan.source.path`` (``BadInput``); atomic.
    Returns the path written.
    """
    return write_text_atomic(path, format_tsv(plan), protect=[plan.source.path])


@dataclass
class TsvContent:
    """What a TSV file holds, as plan objects."""

    segments: list[Segment] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    automation: list[Automation] = field(default_factory=list)


def read_tsv(path: str | os.PathLike) -> TsvContent:
    """Parse a file written by ``write_tsv``; ``BadInput`` naming the line on error."""
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except OSError as err:
        raise BadInput(p, f"cannot read: {err.strerror}") from None
    if not lines or lines[0].split("\t") != list(COLUMNS):
        raise BadInput(p, "not an editorbot plan TSV (header does not match)")
    out = TsvContent()
    lanes: dict[str, Automation] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            raise BadInput(p, f"line {lineno}: {len(fields)} fields, expected {len(COLUMNS)}")
        row = dict(zip(COLUMNS, fields))
        try:
            kind = row["kind"]
            if kind == "segment":
                effects = [Effect(e["name"], dict(e["params"])) for e in json.loads(row["effects"])]
                out.segments.append(
                    Segment(
                        src_start_s=float(row["src_start_s"]),
                        src_end_s=float(row["src_end_s"]),
                        dst_start_s=float(row["dst_start_s"]),
                        gain_db=float(row["gain_db"]),
                        fade_in_s=float(row["fade_in_s"]),
                        fade_out_s=float(row["fade_out_s"]),
                        reverse=row["reverse"] == "1",
                        mute=row["mute"] == "1",
                        rate=float(row["rate"]),
                        pitch_semitones=float(row["pitch"]),
                        effects=effects,
                        action=row["action"],
                        beat=int(row["beat"]),
                    )
                )
            elif kind == "marker":
                out.markers.append(Marker(float(row["dst_start_s"]), row["name"]))
            elif kind == "region":
                start = float(row["dst_start_s"])
                out.markers.append(Marker(start, row["name"], start + float(row["length_s"])))
            elif kind == "automation":
                lane = lanes.setdefault(row["parameter"], Automation(row["parameter"], []))
                lane.points.append((float(row["dst_start_s"]), float(row["value"])))
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except (ValueError, KeyError, TypeError) as err:
            raise BadInput(p, f"line {lineno}: {err}") from None
    out.automation = list(lanes.values())
    return out
