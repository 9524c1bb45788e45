"""DAW dialects: how an edit's result is told to a DAW over OSC (DESIGN section 8).

A dialect turns a finished job (its ``EditPlan`` and the files written) into
OSC messages, each addressed either to the client that asked for the job or
to the DAW's own OSC port. Every dialect declares what its DAW can and cannot
do through OSC (``capabilities``); ``editorbot serve --daw X --capabilities``
prints that table.

- ``generic``: ``/editorbot/marker time_s name [end_s]`` to the client, one
  per plan marker (``end_s`` only for regions). Nothing goes to a DAW.
- ``reaper``: Reaper's OSC (pattern file ``Default.ReaperOSC``) cannot create
  items, named markers or automation. By default the dialect sends only what
  that stock pattern file understands: ``/time seconds`` (``TIME f/time``)
  moves the edit cursor to the first marker. Triggering a ReaScript is opt-in:
  given the named command id Reaper assigned to the user's installed script
  (``--reaper-command-id _RS...``, copied from the action list; Reaper derives
  it from a hash, so editorbot cannot know it), the dialect also writes a
  hand-off file naming the plan and its exports and sends
  ``/action/str "_RS..."`` (``ACTION s/action/str``).
- ``ardour``: Ardour's OSC surface (UDP 3819 by default) adds a named marker
  at the playhead (``/add_marker s``) and locates by sample (``/locate ii``),
  so each marker is a locate followed by an add, 0.1 s apart (Ardour locates
  asynchronously: an add sent at once lands at the old playhead); the
  playhead goes back to the start at the end. It cannot move regions; ``bridge.ardour`` edits a
  session file instead.
- ``ableton``: AbletonOSC (a Live remote script; listens on UDP 11000, replies
  to the sender's address on 11001) has no arrangement clips, so only cue
  points (Live's locators) are placed: the dialect reads the song tempo
  (``/live/song/get/tempo``; song time is in beats), then for each marker sets
  the song time (``/live/song/set/current_song_time``), awaits the time read
  back, adds a cue point under the cursor (``/live/song/cue_point/add_or_delete``)
  and names it by its index in ``/live/song/get/cue_points``
  (``/live/song/cue_point/set/name``). This is a conversation, not a list of
  messages: ``AbletonDialect.place_locators`` holds it over its own socket.

Markers are also always sent to the client as ``/editorbot/marker`` so any
caller sees them whatever the DAW.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from editorbot.bridge.osc_client import decode, encode, is_loopback
from editorbot.engine.atomic import write_json_atomic
from editorbot.engine.plan import EditPlan

log = logging.getLogger(__name__)

#: Where an outgoing message goes: the job's client or the DAW's OSC port.
Target = Literal["client", "daw"]

#: Reaper's default OSC listen port ("Local listen port" in its OSC settings).
REAPER_DEFAULT_PORT = 8000
#: Ardour's default OSC port.
ARDOUR_DEFAULT_PORT = 3819
#: AbletonOSC's listen port; it replies to the sender's IP on ABLETON_REPLY_PORT.
ABLETON_DEFAULT_PORT = 11000
ABLETON_REPLY_PORT = 11001
#: Seconds to wait for each AbletonOSC reply (Live answers on its ~100 ms tick).
ABLETON_REPLY_TIMEOUT_S = 1.0
#: Two cue points closer than this (beats) are one position to Live's add_or_delete toggle.
CUE_TOLERANCE_BEATS = 1e-3
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
        #: ``(host, port)`` of the DAW's OSC input, for dialects that talk to it themselves.
        self.daw_address: tuple[str, int] | None = None

    def bind_daw(self, address: tuple[str, int] | None) -> None:
        """Tell the dialect where the DAW listens (the server sends ``daw`` messages there itself)."""
        self.daw_address = address

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
    """Move Reaper's edit cursor; trigger the user's ReaScript only when its named command id is given."""

    name = "reaper"
    default_port = REAPER_DEFAULT_PORT
    capabilities = {
        "markers": Capability(False, "stock OSC cannot create markers; with --reaper-command-id the user's ReaScript can"),
        "locate": Capability(True, "/time SECONDS moves the edit cursor (stock Default.ReaperOSC: TIME f/time)"),
        "create_items": Capability(False, "stock OSC cannot create items; with --reaper-command-id the user's ReaScript can"),
        "automation": Capability(False, "stock OSC cannot write envelopes; with --reaper-command-id the user's ReaScript can"),
        "run_script": Capability(
            True, 'only with --reaper-command-id _RS... (copied from the action list): /action/str "_RS..."'
        ),
    }

    def __init__(self, *, command_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if command_id is not None and not command_id.startswith("_"):
            raise ValueError(
                f"Reaper named command ids start with '_' (action list > Copy selected action command ID), got {command_id!r}"
            )
        self.command_id = command_id

    def exports_needed(self) -> tuple[str, ...]:
        return ("tsv",) if self.command_id else ()

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
        if self.command_id is not None:
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


class AbletonOscError(RuntimeError):
    """AbletonOSC did not answer, answered with ``/live/error``, or its state disagrees with what was sent."""


class AbletonDialect(Dialect):
    """Named cue points (Live's locators) at each marker, through AbletonOSC, send-and-await."""

    name = "ableton"
    default_port = ABLETON_DEFAULT_PORT
    capabilities = {
        "markers": Capability(
            True,
            "a named cue point per marker: set current_song_time (beats, from /live/song/get/tempo), "
            "cue_point/add_or_delete, cue_point/set/name; regions get a cue at their start only",
        ),
        "locate": Capability(True, "/live/song/set/current_song_time BEATS"),
        "create_items": Capability(False, "AbletonOSC cannot create arrangement clips or import audio: markers only"),
        "automation": Capability(False, "no edits or automation: AbletonOSC only places cue points here"),
        "run_script": Capability(False, "AbletonOSC runs no user scripts"),
    }

    def __init__(
        self,
        *,
        reply_port: int = ABLETON_REPLY_PORT,
        timeout_s: float = ABLETON_REPLY_TIMEOUT_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reply_port = reply_port
        self.timeout_s = timeout_s

    def messages(self, result: JobResult) -> list[Outgoing]:
        """Client markers; cue points go to Live here, as a conversation (replies are needed)."""
        out = client_markers(result.plan)
        if result.plan is not None and result.plan.markers and self.daw_address is not None:
            try:
                self.place_locators(result.plan, self.daw_address)
            except (OSError, AbletonOscError) as err:
                log.warning("ableton: no cue points placed: %s", err, extra={"event": "ableton_failed"})
        return out

    def place_locators(self, plan: EditPlan, address: tuple[str, int]) -> list[tuple[str, float]]:
        """Add a named cue point at each plan marker in the Live set behind ``address``.

        Parameters
        ----------
        plan:
            The plan whose markers (seconds) become cue points (beats at the song tempo; Live's
            tempo is assumed constant: tempo automation would shift them).
        address:
            AbletonOSC's ``(host, port)``; replies are awaited on ``self.reply_port``.

        Returns
        -------
        list of (name, time_beats)
            The cue points this call added, as Live reports them after naming.

        Raises
        ------
        AbletonOscError
            No reply within ``timeout_s``, a ``/live/error`` reply, or a read-back that
            disagrees (song time not where it was set, a cue point missing).
        """
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # replies from a Live on this machine are awaited on loopback only
            sock.bind(("127.0.0.1" if is_loopback(address[0]) else "", self.reply_port))
            live = _AbletonLink(sock, address, self.timeout_s)
            (tempo, *_) = live.query("/live/song/get/tempo")
            if not isinstance(tempo, (int, float)) or tempo <= 0:
                raise AbletonOscError(f"/live/song/get/tempo answered {tempo!r}, not a tempo")
            wanted: dict[float, str] = {}
            for m in sorted(plan.markers, key=lambda m: m.time_s):
                beats = round(max(0.0, m.time_s) * float(tempo) / 60.0, 6)
                # add_or_delete toggles: two markers on one position would cancel, so they share one cue
                wanted[beats] = f"{wanted[beats]} / {_marker_name(m.name)}" if beats in wanted else _marker_name(m.name)
            taken = [t for _, t in _cue_pairs(live.query("/live/song/get/cue_points"))]
            added: list[tuple[float, str]] = []
            for beats, name in wanted.items():
                if any(abs(t - beats) < CUE_TOLERANCE_BEATS for t in taken):
                    # add_or_delete would delete the user's cue point there
                    log.warning("ableton: a cue point already sits at beat %.3f; %r not added", beats, name)
                    continue
                live.send("/live/song/set/current_song_time", float(beats))
                (now, *_) = live.query("/live/song/get/current_song_time")
                if not isinstance(now, (int, float)) or abs(now - beats) >= CUE_TOLERANCE_BEATS:
                    raise AbletonOscError(f"song time reads {now!r} after setting it to {beats} beats")
                live.send("/live/song/cue_point/add_or_delete")
                added.append((beats, name))
            cues = _cue_pairs(live.query("/live/song/get/cue_points"))
            for beats, name in added:
                index = next((i for i, (_, t) in enumerate(cues) if abs(t - beats) < CUE_TOLERANCE_BEATS), None)
                if index is None:
                    raise AbletonOscError(f"no cue point at beat {beats} after adding one")
                live.send("/live/song/cue_point/set/name", index, name)
            final = _cue_pairs(live.query("/live/song/get/cue_points"))
        placed = [(n, t) for n, t in final if any(abs(t - b) < CUE_TOLERANCE_BEATS for b, _ in added)]
        log.info("ableton: %d cue points placed at %.2f BPM", len(placed), tempo, extra={"event": "ableton_cues"})
        return placed


def _cue_pairs(args: list[Any]) -> list[tuple[str, float]]:
    """``/live/song/get/cue_points`` replies ``name, time, name, time, ...``: as pairs."""
    if len(args) % 2:
        raise AbletonOscError(f"/live/song/get/cue_points answered an odd number of values: {args!r}")
    return [(str(args[i]), float(args[i + 1])) for i in range(0, len(args), 2)]


class _AbletonLink:
    """One UDP socket to AbletonOSC: fire-and-forget sends and queries that await their reply."""

    def __init__(self, sock: socket.socket, address: tuple[str, int], timeout_s: float) -> None:
        self.sock, self.address, self.timeout_s = sock, address, timeout_s

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(encode(address, args), self.address)

    def query(self, address: str, *args: Any) -> list[Any]:
        """Send a getter and return its reply's arguments (AbletonOSC replies on the same address)."""
        self.send(address, *args)
        deadline = time.monotonic() + self.timeout_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            reply = decode(data)
            if reply is None:
                continue
            if reply[0] == "/live/error":
                raise AbletonOscError(f"AbletonOSC error for {address}: {reply[1]}")
            if reply[0] == address:
                return reply[1]
        raise AbletonOscError(
            f"no reply to {address} from {self.address[0]}:{self.address[1]} within {self.timeout_s:g} s "
            "(is Live running with the AbletonOSC control surface selected?)"
        )


DIALECTS: dict[str, type[Dialect]] = {
    "generic": GenericDialect,
    "reaper": ReaperDialect,
    "ardour": ArdourDialect,
    "ableton": AbletonDialect,
}


def make_dialect(name: str, **kwargs: Any) -> Dialect:
    """The dialect called ``name`` (``generic``, ``reaper``, ``ardour``, ``ableton``); ValueError for others."""
    try:
        cls = DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown DAW dialect {name!r} (choose from {', '.join(DIALECTS)})") from None
    if cls is not ReaperDialect:
        kwargs.pop("command_id", None)
    return cls(**kwargs)
