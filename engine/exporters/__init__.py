"""Plan exporters: one module per format, each ``write_X(plan, path)``.

Every writer is atomic (temp file + rename) and refuses to write over the
plan's source audio (``engine.errors.BadInput``).

- ``rpp``: REAPER project (``engine.exporters.reaper``)
- ``midi``: standard MIDI file with tempo, markers, CC automation
  (``engine.exporters.midi``)
- ``audacity``: Audacity label track (``engine.exporters.audacity``)
- ``tsv``: tab-separated plan for the Lua scripts (``engine.exporters.tsv``)
"""

from __future__ import annotations

import os
from collections.abc import Callable

from editorbot.engine.errors import BadInput
from editorbot.engine.exporters.audacity import write_label_track
from editorbot.engine.exporters.midi import write_midi
from editorbot.engine.exporters.reaper import write_rpp
from editorbot.engine.exporters.tsv import write_tsv
from editorbot.engine.formats import EXPORT_EXTENSIONS
from editorbot.engine.plan import EditPlan

EXPORTERS: dict[str, Callable[[EditPlan, str | os.PathLike], str]] = {
    "rpp": write_rpp,
    "midi": write_midi,
    "audacity": write_label_track,
    "tsv": write_tsv,
}

EXTENSIONS: dict[str, str] = EXPORT_EXTENSIONS
"""The usual file extension per format (for callers that derive file names)."""


def export_plan(plan: EditPlan, fmt: str, path: str | os.PathLike) -> str:
    """Write ``plan`` in format ``fmt`` (a key of ``EXPORTERS``) to ``path``.

    Returns the path written; ``BadInput`` for an unknown format.
    """
    try:
        writer = EXPORTERS[fmt]
    except KeyError:
        raise BadInput(None, f"unknown export format {fmt!r} (choose from {', '.join(EXPORTERS)})") from None
    return writer(plan, path)
