"""DAW dialects: how an edit's result is told to a DAW over OSC (DESIGN section 8).

A dialect turns a finished job (its ``EditPlan`` and the files written) into
OSC messages, each addressed either to the client that asked for the job or
to the DAW's own OSC port. Every dialect declares what its DAW can and cannot
do through OSC (``capabilities``); ``editorbot serve --daw X --capabilities``
prints that table.

- ``generic``: ``/editorbot/marker time_s name [end_s]`` to the client, one
  per plan marker (``end_s`` only for regions). Nothing goes to a DAW.
- ``reaper``: Reaper's OSC (pattern file ``Default.ReaperOSC``) cannot create
  items, named markers or automation, so the whole plan is applied by a
  registered ReaScript: the dialect writes a hand-off file naming the plan and
  its exports, triggers the script by its named command id
  (``/action/str "_RS..."``; numeric ids shift between installs) and moves the
  edit cursor (``/time seconds``) to the first marker.
- ``ardour``: Ardour's OSC surface (UDP 3819 by default) adds a named marker
  at the playhead (``/add_marker s``) and locates by sample (``/locate ii``),
  so each marker is a locate followed by an add, 0.1 s apart (Ardour locates
  asynchronously: an add sent at once lands at the old playhead); the
  playhead goes back to the start at the end. It cannot move regions; ``bridge.ardour`` edits a
  session file instead.

Markers are also always sent to the client as ``/editorbot/marker`` so any
caller sees them whatever the DAW.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.atomic import write_json_atomic
from engine.plan import EditPlan

log = logging.getLogger(__name__)

#: Where an outgoing message goes: the job's client or the DAW's OSC port.
Target = Literal["client", "daw"]

#: Reaper's default OSC listen port ("Local listen port" in its OSC settings).
REAPER_DEFAULT_PORT = 8000
#: Ardour's default OSC port.
ARDOUR_DEFAULT_PORT = 3819
#: Named command id of the ReaScript that applies a plan (Actions list > Copy selected action command ID).
DEFAULT_REAPER_COMMAND_ID = "_RSeditorbot_apply_plan"
#: File the reaper dialect writes for the ReaScript (inside the server's output folder).
REAPER_HANDOFF_NAME = "reaper-apply.json"
#: Ardour performs /locate asynchronously; an /add_marker sent sooner lands at the old playhead.
LOCATE_SETTLE_S = 0.1
#: Longest marker name sent to a DAW (characters).
MAX_MARKER_NAME = 64


@dataclass(frozen=True)
class Outgoing:
    """One OSC message a dialect wants sent: address, arguments, target, and seconds to wait after it."""

    address: str
    args: tuple[Any, ...]
    target: Target
    pause_s: float = 0.0


@dataclass(frozen=True)
class Capability:
    """One thing a DAW can or cannot do over OSC, with how (or why not)."""

    supported: bool
    how: str


@dataclass
class JobResult:
    """What a finished job produced, as a dialect sees it.

    Attributes
    ----------
    plan:
        The ``engine.plan.EditPlan`` (None for analysis jobs).
    plan_path, audio_path:
        Files written (plan JSON, rendered audio), when there are any.
    exports:
        ``{format: path}`` of other files written (tsv, rpp, ...).
    """

    plan: EditPlan | None = None
    plan_path: str | None = None
    audio_path: str | None = None
    exports: dict[str, str] = field(default_factory=dict)


def _marker_name(name: str) -> str:
    """A marker name safe for a DAW: one line, printable, at most ``MAX_MARKER_NAME`` characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(name)).split())
    return text[:MAX_MARKER_NAME] or "marker"


def client_markers(plan: EditPlan | None) -> list[Outgoing]:
    """``/editorbot/marker time_s name [end_s]`` for each plan marker, in time order."""
    out: list[Outgoing] = []
    if plan is None:
        return out
    for m in sorted(plan.markers, key=lambda m: m.time_s):
        args: tuple[Any, ...] = (float(m.time_s), _marker_name(m.name))
        if m.end_s is not None:
            args += (float(m.end_s),)
        out.append(Outgoing("/editorbot/marker", args, "client"))
    return out


class Dialect:
    """Base dialect: the generic one. Subclasses add messages for their DAW."""

    name = "generic"
    default_port: int | None = None
    #: What the DAW behind this dialect can do over OSC.
    capabilities: dict[str, Capability] = {
        "markers": Capability(True, "/editorbot/marker time_s name [end_s] to the client"),
        "locate": Capability(False, "no DAW is addressed"),
        "create_items": Capability(False, "no DAW is addressed; use the plan or its exports"),
        "automation": Capability(False, "no DAW is addressed; use the MIDI or rpp export"),
        "run_script": Capability(False, "no DAW is addressed"),
    }

    def __init__(self, *, out_dir: str | os.PathLike | None = None, sample_rate: int | None = None) -> None:
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        self.sample_rate = sample_rate

    def messages(self, result: JobResult) -> list[Outgoing]:
        """Messages telling the client (and the DAW) about ``result``."""
        return client_markers(result.plan)

    def exports_needed(self) -> tuple[str, ...]:
        """Export formats the dialect's DAW side reads (written by edit and render jobs)."""
        return ()

    @classmethod
    def capability_table(cls) -> str:
        """Capabilities as aligned text, one per line."""
        width = max(len(k) for k in cls.capabilities)
        lines = [f"{cls.name}: what the DAW can do over OSC"]
        for key, cap in cls.capabilities.items():
            lines.append(f"  {key:<{width}}  {'yes' if cap.supported else 'no ':<3}  {cap.how}")
        return "\n".join(lines)


class GenericDialect(Dialect):
    """``/editorbot/marker`` messages to the client; nothing to a DAW."""


class ReaperDialect(Dialect):
    """Trigger the registered ReaScript that applies the plan, then move the cursor."""

    name = "reaper"
    default_port = REAPER_DEFAULT_PORT
    capabilities = {
        "markers": Capability(True, "named markers and regions are created by the ReaScript (OSC cannot)"),
        "locate": Capability(True, "/time seconds moves the edit cursor"),
        "create_items": Capability(True, "split/delete/duplicate items, fades, playrate by the ReaScript, one undo block"),
        "automation": Capability(True, "volume envelope points by the ReaScript (OSC cannot)"),
        "run_script": Capability(True, '/action/str "_RS..." by named command id (numeric ids shift)'),
    }

    def __init__(self, *, command_id: str = DEFAULT_REAPER_COMMAND_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not command_id.startswith("_"):
            raise ValueError(f"Reaper named command ids start with '_', got {command_id!r}")
        self.command_id = command_id

    def exports_needed(self) -> tuple[str, ...]:
        return ("tsv",)

    def handoff_path(self) -> str | None:
        """Where the hand-off file for the ReaScript goes (None without an output folder)."""
        return None if self.out_dir is None else os.path.join(self.out_dir, REAPER_HANDOFF_NAME)

    def write_handoff(self, result: JobResult) -> str | None:
        """Write ``reaper-apply.json`` (plan, audio, exports) atomically for the ReaScript to read."""
        path = self.handoff_path()
        if path is None or result.plan_path is None:
            return None
        doc = {"plan": result.plan_path, "audio": result.audio_path, "exports": result.exports}
        return write_json_atomic(path, doc)

    def messages(self, result: JobResult) -> list[Outgoing]:
        out = client_markers(result.plan)
        if result.plan is None:
            return out
        self.write_handoff(result)
        out.append(Outgoing("/action/str", (self.command_id,), "daw"))
        first = min((m.time_s for m in result.plan.markers), default=0.0)
        out.append(Outgoing("/time", (float(first),), "daw"))
        return out


class ArdourDialect(Dialect):
    """Named markers through Ardour's OSC surface: ``/locate`` then ``/add_marker`` per marker."""

    name = "ardour"
    default_port = ARDOUR_DEFAULT_PORT
    capabilities = {
        "markers": Capability(True, "/locate SAMPLE 0 then /add_marker NAME (at the playhead); no regions"),
        "locate": Capability(True, "/locate SAMPLE ROLL (samples at the session rate)"),
        "create_items": Capability(False, "OSC cannot import, split or move regions; bridge.ardour edits the session file"),
        "automation": Capability(False, "no automation writes over OSC"),
        "run_script": Capability(False, "/access_action runs editor actions only, not a given Lua script"),
    }

    def messages(self, result: JobResult) -> list[Outgoing]:
        out = client_markers(result.plan)
        if result.plan is None:
            return out
        rate = int(self.sample_rate or result.plan.source.sample_rate)
        for m in sorted(result.plan.markers, key=lambda m: m.time_s):
            sample = max(0, min(int(round(m.time_s * rate)), 2**31 - 1))  # /locate takes an int32
            out.append(Outgoing("/locate", (sample, 0), "daw", LOCATE_SETTLE_S))
            out.append(Outgoing("/add_marker", (_marker_name(m.name),), "daw"))
        out.append(Outgoing("/locate", (0, 0), "daw"))
        return out


DIALECTS: dict[str, type[Dialect]] = {"generic": GenericDialect, "reaper": ReaperDialect, "ardour": ArdourDialect}


def make_dialect(name: str, **kwargs: Any) -> Dialect:
    """The dialect called ``name`` (``generic``, ``reaper``, ``ardour``); ValueError for others."""
    try:
        cls = DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown DAW dialect {name!r} (choose from {', '.join(DIALECTS)})") from None
    if cls is not ReaperDialect:
        kwargs.pop("command_id", None)
    return cls(**kwargs)
