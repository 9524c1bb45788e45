"""Audacity label track export (File > Import > Labels...).

One label per line, ``start<TAB>end<TAB>label``, times in seconds on the
output timeline with 6 decimals. A marker (``Marker.end_s`` is None) is a
point label (start == end); a region is a range label. Labels are sorted by
start time; tabs and line breaks in names are replaced by spaces so every
label stays on one line.
"""

from __future__ import annotations

import math
import os

from editorbot.engine.atomic import write_text_atomic
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan


def marker_text(name: str) -> str:
    """A marker name made safe for one label field (no tabs, no line breaks)."""
    return " ".join(str(name).replace("\t", " ").splitlines()).strip()


def format_label_track(plan: EditPlan) -> str:
    """The label track text for ``plan.markers`` (``""`` when there are none)."""
    rows: list[tuple[float, float, str]] = []
    for marker in plan.markers:
        start = float(marker.time_s)
        end = start if marker.end_s is None else float(marker.end_s)
        if not (math.isfinite(start) and math.isfinite(end)):
            raise BadInput(None, f"marker {marker.name!r} has a non-finite time")
        if end < start:
            raise BadInput(None, f"region {marker.name!r} ends ({end}) before it starts ({start})")
        rows.append((start, end, marker_text(marker.name)))
    rows.sort(key=lambda r: (r[0], r[1]))
    return "".join(f"{start:.6f}\t{end:.6f}\t{name}\n" for start, end, name in rows)


def write_label_track(plan: EditPlan, path: str | os.PathLike) -> str:
    """Write the plan's markers and regions as an Audacity label file.

    Never writes over ``plan.source.path`` (``BadInput``); atomic.
    Returns the path written.
    """
    return write_text_atomic(path, format_label_track(plan), protect=[plan.source.path])
