"""A Python model of the ReaScript functions the editorbot scripts call.

tests/reaper/README.md lists every modelled function with its documented Lua
name, arguments and return values (REAPER's API reference, 7.08 edition).

Behaviour follows the ReaScript API documentation: positions and lengths in
seconds; ``SplitMediaItem`` keeps the original as the left-hand part and
returns the right-hand item (nil when the position is not inside the item),
the right part's take offset advancing by the split distance times the
playrate; ``AddMediaItemToTrack`` gives an empty item, ``AddTakeToMediaItem``
a take without source; ``*_Info_Value`` getters return numbers (0 for unknown
keys) and setters return false for unknown keys; ``AddProjectMarker2``
numbers markers and regions separately; ``GetTrackEnvelopeByName`` is nil
until the envelope exists (action 40406 shows/creates the selected tracks'
volume envelope); action 41051 toggles take reverse on the selected items;
ExtState is per section/key with "" for a missing key; ``defer`` queues a
function for the next UI cycle, which a test runs with ``step()``; the gfx
window records what is drawn and takes mouse state from its fields.

Take FX follow these ReaScript signatures (REAPER API reference, Lua form):

- ``integer reaper.TakeFX_AddByName(MediaItem_Take take, string fxname,
  integer instantiate)``: "See TrackFX_AddByName() for information on fxname
  and instantiate": a negative ``instantiate`` always adds a new instance, 0
  only queries, a positive value adds one when none is found; returns the
  FX's position in the chain or -1 on failure.
- ``integer reaper.TakeFX_GetCount(MediaItem_Take take)``.
- ``boolean retval, string buf = reaper.TakeFX_GetFXName(MediaItem_Take take,
  integer fx)``.
- ``integer reaper.TakeFX_GetNumParams(MediaItem_Take take, integer fx)``.
- ``boolean retval, string buf = reaper.TakeFX_GetParamName(MediaItem_Take
  take, integer fx, integer param)``.
- ``number retval, number minval, number maxval = reaper.TakeFX_GetParam(
  MediaItem_Take take, integer fx, integer param)`` and ``boolean
  reaper.TakeFX_SetParam(MediaItem_Take take, integer fx, integer param,
  number val)``: the value in the plug-in's own range (a JS slider's units;
  0..1 for the stock Rea* plug-ins).
- ``number reaper.TakeFX_GetParamNormalized(MediaItem_Take take, integer fx,
  integer param)`` and ``boolean reaper.TakeFX_SetParamNormalized(
  MediaItem_Take take, integer fx, integer param, number value)``.
- ``boolean retval, string buf = reaper.TakeFX_FormatParamValueNormalized(
  MediaItem_Take take, integer fx, integer param, number value, string buf)``:
  the text the plug-in shows for a normalized value, without setting it.
- ``boolean reaper.TakeFX_SetNamedConfigParm(MediaItem_Take take, integer fx,
  string parmname, string value)`` and ``boolean retval, string buf =
  reaper.TakeFX_GetNamedConfigParm(MediaItem_Take take, integer fx, string
  parmname)``; ReaEQ takes ``BANDTYPE<n>`` and ``BANDENABLED<n>``.
- ``number reaper.ScaleToEnvelopeMode(integer scaling_mode, number val)`` and
  ``number reaper.ScaleFromEnvelopeMode(integer scaling_mode, number val)``,
  with ``integer reaper.GetEnvelopeScalingMode(TrackEnvelope env)``: "0=no
  scaling, 1=fader scaling. All API functions deal with raw envelope point
  values, to convert raw from/to scaled values see ScaleFromEnvelopeMode,
  ScaleToEnvelopeMode."

What the documentation does not give, the model states as its own and the
scripts must not depend on: the reference names fader scaling but prints no
formula, so mode 1 here is a stand-in taper (``FADER_*`` below: a stored value
in 0..1000 with 0 dB far from 1.0, exactly inverted by
``ScaleFromEnvelopeMode``), which catches a script that writes amplitudes
without scaling them; and the stock plug-ins' parameter curves are not
documented (they report a 0..1 range whatever they display), so the Rea*
plug-ins here have parameters with REAPER's names but curves of the model's
own (``REA_PLUGINS``), reached only through names and displayed values. The JS
effects are read from the ``.jsfx`` files installed below
``<resource path>/Effects`` (their slider lines: name, default, range).

The model also checks how it is used: every change to project content made
outside an undo block is recorded in ``mutations_outside_undo``, and
``Undo_DoUndo2`` restores the project as it was when the last block began.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lupa.lua54 as lupa54
import soundfile as sf

logger = logging.getLogger(__name__)

SCRIPTS = Path(__file__).resolve().parents[2] / "reaper_scripts" / "editorbot"


@dataclass(eq=False)
class Source:
    filename: str
    length_s: float


@dataclass(frozen=True)
class Param:
    """One plug-in parameter: its name, how a normalized value shows, and its own range."""

    name: str
    show: Callable[[float], str]
    default: float = 0.0  # normalized
    lo: float = 0.0  # the range TakeFX_GetParam reports (0..1 for Rea* plug-ins, a JS slider's own)
    hi: float = 1.0


@dataclass(frozen=True)
class Plugin:
    name: str  # as TakeFX_GetFXName reports it
    params: tuple[Param, ...]
    config: tuple[str, ...] = ()  # named config parameters it accepts


@dataclass(eq=False)
class FxInstance:
    plugin: Plugin
    values: list[float]  # normalized, one per parameter
    config: dict[str, str] = field(default_factory=dict)

    def shown(self, name: str, n: int = 1) -> str:
        """The text shown for the n-th parameter called ``name``."""
        hits = [i for i, p in enumerate(self.plugin.params) if p.name == name]
        i = hits[n - 1]
        return self.plugin.params[i].show(self.values[i])

    def value(self, name: str) -> float:
        """A parameter's value in its own range (a JS slider's units)."""
        i = next(i for i, p in enumerate(self.plugin.params) if p.name == name)
        par = self.plugin.params[i]
        return par.lo + self.values[i] * (par.hi - par.lo)


def _db(x: float, scale: float = 1.0) -> str:
    a = x * scale
    return "-inf" if a <= 0 else f"{20 * math.log10(a):.2f}"


def _hz(x: float) -> str:
    f = 20.0 * 1200.0**x  # 20 Hz .. 24 kHz, logarithmic
    return f"{f:.1f}" if f < 1000 else f"{f / 1000:.4f}k"


def _lin(lo: float, hi: float, fmt: str, power: float = 1.0) -> Callable[[float], str]:
    return lambda x: fmt % (lo + (hi - lo) * x**power)


def _reaeq() -> Plugin:
    params: list[Param] = []
    for band in ("Low Shelf", "Band 2", "Band 3", "High Shelf"):
        params += [
            Param(f"Freq-{band}", _hz, 0.5),
            Param(f"Gain-{band}", _lin(-90.0, 24.0, "%.2f"), 90.0 / 114.0),
            Param(f"BW-{band}", _lin(0.01, 4.0, "%.2f"), 0.25),
        ]
    params.append(Param("Global Gain", _lin(-24.0, 24.0, "%.2f"), 0.5))
    config = tuple(f"BAND{k}{b}" for k in ("TYPE", "ENABLED") for b in range(4))
    return Plugin("VST: ReaEQ (Cockos)", tuple(params), config)


REA_PLUGINS: dict[str, Plugin] = {
    "ReaEQ": _reaeq(),
    "ReaComp": Plugin("VST: ReaComp (Cockos)", (
        Param("Thresh", lambda x: _db(x, 2.0), 0.5),
        Param("Ratio", _lin(1.0, 100.0, "%.2f:1", 2.0), 0.01),
        Param("Attack", _lin(0.0, 500.0, "%.2f", 2.0), 0.05),
        Param("Release", _lin(0.0, 5000.0, "%.1f", 2.0), 0.1),
        Param("Pre-comp", _lin(0.0, 250.0, "%.1f"), 0.0),
        Param("Knee", _lin(0.0, 24.0, "%.1f"), 0.0),
        Param("Wet", lambda x: _db(x, 2.0), 0.5),
        Param("Dry", lambda x: _db(x, 2.0), 0.0),
    )),
    "ReaVerbate": Plugin("VST: ReaVerbate (Cockos)", (
        Param("Wet", lambda x: _db(x, 2.0), 0.25),
        Param("Dry", lambda x: _db(x, 2.0), 0.5),
        Param("Room size", _lin(0.0, 100.0, "%.1f"), 0.5),
        Param("Dampening", _lin(0.0, 100.0, "%.1f"), 0.5),
        Param("Stereo Width", _lin(0.0, 100.0, "%.1f"), 1.0),
        Param("Initial Delay", _lin(0.0, 500.0, "%.1f"), 0.0),
        Param("Lowpass", _hz, 1.0),
        Param("Hipass", _hz, 0.0),
    )),
    "ReaDelay": Plugin("VST: ReaDelay (Cockos)", (
        Param("Wet", lambda x: _db(x, 2.0), 0.5),
        Param("Dry", lambda x: _db(x, 2.0), 0.5),
        Param("1: Enabled", _lin(0.0, 1.0, "%.0f"), 1.0),
        Param("1: Length (time)", _lin(0.0, 10000.0, "%.2f", 2.0), 0.0),
        Param("1: Length (musical)", _lin(0.0, 16.0, "%.2f"), 0.25),
        Param("1: Feedback", _db, 0.0),
        Param("1: Lowpass", _hz, 1.0),
        Param("1: Hipass", _hz, 0.0),
        Param("1: Volume", lambda x: _db(x, 2.0), 0.5),
        Param("1: Pan", _lin(-1.0, 1.0, "%.2f"), 0.5),
    )),
}  # fmt: skip
"""The stock plug-ins the model knows, by the name TakeFX_AddByName is given."""

_SLIDER = re.compile(r"^slider\d+:(?:\w+=)?([-+\d.eE]+)<([-+\d.eE]+),([-+\d.eE]+)(?:,[^>]*)?>([^\n]*)$", re.M)


def read_jsfx(path: Path) -> Plugin:
    """A JS effect as REAPER lists it: ``desc:`` and its sliders (name, default, range)."""
    text = path.read_text(encoding="utf-8")
    desc = re.search(r"^desc:\s*(.*)$", text, re.M)
    params = []
    for default, lo, hi, name in _SLIDER.findall(text):
        lo_f, hi_f = float(lo), float(hi)
        params.append(Param(name.strip(), _lin(lo_f, hi_f, "%.4g"), (float(default) - lo_f) / (hi_f - lo_f), lo_f, hi_f))
    return Plugin("JS: " + (desc.group(1).strip() if desc else path.stem), tuple(params))


@dataclass(eq=False)
class Take:
    source: Source | None = None
    startoffs: float = 0.0
    playrate: float = 1.0
    preserve_pitch: bool = False
    pitch: float = 0.0
    vol: float = 1.0
    name: str = ""
    reversed: bool = False
    fx: list[FxInstance] = field(default_factory=list)


@dataclass(eq=False)
class Item:
    position: float = 0.0
    length: float = 0.0
    fadein: float = 0.0
    fadeout: float = 0.0
    vol: float = 1.0
    mute: bool = False
    color: int = 0
    selected: bool = False
    takes: list[Take] = field(default_factory=list)
    active: int = -1

    @property
    def take(self) -> Take | None:
        return self.takes[self.active] if 0 <= self.active < len(self.takes) else None


@dataclass(eq=False)
class Envelope:
    name: str
    points: list[tuple[float, float, int]] = field(default_factory=list)
    active: bool = True
    visible: bool = True
    scaling_mode: int = 0


@dataclass(eq=False)
class Track:
    name: str = ""
    items: list[Item] = field(default_factory=list)
    selected: bool = False
    envelopes: dict[str, Envelope] = field(default_factory=dict)


@dataclass
class Marker:
    isrgn: bool
    pos: float
    end: float
    name: str
    index: int
    color: int


@dataclass
class Project:
    tracks: list[Track] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    time_selection: tuple[float, float] = (0.0, 0.0)
    cursor: float = 0.0


# Mode 1 (fader scaling) stand-in: stored = FADER_TOP * (amp / FADER_MAX_AMP) ** (1 / FADER_POWER),
# 0 for silence. Not REAPER's curve (undocumented); strictly increasing and exactly inverted.
FADER_TOP = 1000.0
FADER_MAX_AMP = 4.0  # +12 dB at the top
FADER_POWER = 4.0


def fader_from_amp(amp: float) -> float:
    return 0.0 if amp <= 0 else FADER_TOP * (amp / FADER_MAX_AMP) ** (1.0 / FADER_POWER)


def amp_from_fader(value: float) -> float:
    return 0.0 if value <= 0 else FADER_MAX_AMP * (value / FADER_TOP) ** FADER_POWER


_ITEM_KEYS = {
    "D_POSITION": "position",
    "D_LENGTH": "length",
    "D_FADEINLEN": "fadein",
    "D_FADEOUTLEN": "fadeout",
    "D_VOL": "vol",
    "B_MUTE": "mute",
    "I_CUSTOMCOLOR": "color",
    "B_UISEL": "selected",
}
_TAKE_KEYS = {
    "D_STARTOFFS": "startoffs",
    "D_PLAYRATE": "playrate",
    "B_PPITCH": "preserve_pitch",
    "D_PITCH": "pitch",
    "D_VOL": "vol",
}


class ReaperModel:
    """The modelled REAPER: one project, the ``reaper`` and ``gfx`` tables of a Lua 5.4 state."""

    def __init__(self, resource_path: str | os.PathLike) -> None:
        self.project = Project()
        self.resource_path = str(resource_path)
        self.clock = 1000.0
        self.defer_queue: deque[Any] = deque()
        self.messages: list[tuple[str, str]] = []
        self.console: list[str] = []
        self.exec_log: list[tuple[str, int]] = []
        self.exec_handler: Callable[[str], None] | None = None
        self.ext_state: dict[tuple[str, str], str] = {}
        self.persisted: set[tuple[str, str]] = set()
        self.undo_open = 0
        self.undo_points: list[str] = []
        self.undo_begins = 0
        self._undo_snapshot: Project | None = None
        self.mutations_outside_undo: list[str] = []
        self.user_inputs: deque[Callable[[str, int, str, str], tuple[bool, str]]] = deque()
        self.file_answers: deque[tuple[bool, str]] = deque()
        self.window_open = False
        self.drawn: list[tuple[str, float, float]] = []
        self.chars: deque[int] = deque()
        self.refresh_depth = 0
        # Preferences > Envelope: scaling of new volume envelopes (0 amplitude, 1 fader)
        self.volume_scaling_mode = 0

        self.lua = lupa54.LuaRuntime(unpack_returned_tuples=True)
        assert self.lua.eval("_VERSION") == "Lua 5.4"
        g = self.lua.globals()
        funcs = {name: getattr(self, name) for name in dir(self) if name[:1].isupper()}
        funcs.update(time_precise=self.time_precise, defer=self.defer)
        g.reaper = self.lua.table_from(funcs)
        self.gfx = self._make_gfx()
        g.gfx = self.gfx

    # ------------------------------------------------------------------ test driving

    def run_script(self, name: str) -> None:
        """Run ``reaper_scripts/editorbot/NAME`` as REAPER would (a chunk named by its path)."""
        self.lua.globals().dofile(str(SCRIPTS / name))

    def step(self, dt_s: float = 0.0) -> int:
        """One UI cycle: run the functions deferred so far; advance the clock. Returns how many ran."""
        self.clock += dt_s
        pending = list(self.defer_queue)
        self.defer_queue.clear()
        for fn in pending:
            fn()
        return len(pending)

    @property
    def idle(self) -> bool:
        return not self.defer_queue

    def add_track(self, name: str = "") -> Track:
        track = Track(name=name)
        self.project.tracks.append(track)
        return track

    def add_audio_item(self, track: Track, path: str | os.PathLike, position: float, *, length: float | None = None, startoffs: float = 0.0) -> Item:
        source = self._source(str(path))
        item = Item(position=position, length=source.length_s - startoffs if length is None else length)
        item.takes.append(Take(source=source, startoffs=startoffs))
        item.active = 0
        track.items.append(item)
        return item

    def items(self, track: Track | None = None) -> list[Item]:
        track = track or self.project.tracks[0]
        return sorted(track.items, key=lambda it: it.position)

    def snapshot(self) -> Any:
        """Everything the project holds, as comparable plain values."""

        def take(t: Take) -> tuple:
            fx = [(f.plugin.name, tuple(f.values), tuple(sorted(f.config.items()))) for f in t.fx]
            return (t.source.filename if t.source else None, t.startoffs, t.playrate, t.preserve_pitch, t.pitch, t.vol, t.name, t.reversed, fx)

        return (
            [
                (
                    tr.name,
                    tr.selected,
                    sorted(
                        (it.position, it.length, it.fadein, it.fadeout, it.vol, it.mute, it.color, it.selected, it.active, [take(t) for t in it.takes])
                        for it in tr.items
                    ),
                    sorted((k, e.active, e.visible, list(e.points)) for k, e in tr.envelopes.items()),
                )
                for tr in self.project.tracks
            ],
            [(m.isrgn, m.pos, m.end, m.name, m.index, m.color) for m in self.project.markers],
            self.project.time_selection,
        )

    # ------------------------------------------------------------------ internals

    def _changed(self, what: str) -> None:
        if self.undo_open == 0:
            self.mutations_outside_undo.append(what)

    def _source(self, filename: str) -> Source:
        try:
            length = float(sf.info(filename).duration)
        except (RuntimeError, OSError, sf.LibsndfileError):
            length = 0.0
        return Source(filename, length)

    def _track_of(self, item: Item) -> Track | None:
        for tr in self.project.tracks:
            if any(it is item for it in tr.items):
                return tr
        return None

    def _all_items(self) -> list[Item]:
        return [it for tr in self.project.tracks for it in tr.items]

    def _selected_items(self) -> list[Item]:
        return [it for tr in self.project.tracks for it in sorted(tr.items, key=lambda i: i.position) if it.selected]

    def _make_gfx(self) -> Any:
        gfx = self.lua.table_from({"x": 0, "y": 0, "w": 0, "h": 0, "mouse_x": 0, "mouse_y": 0, "mouse_cap": 0})
        model = self

        def init(name: str, w: int = 0, h: int = 0, *rest: Any) -> int:
            model.window_open = True
            gfx.w, gfx.h = w, h
            return 1

        def quit_() -> None:
            model.window_open = False

        def getchar(*_: Any) -> int:
            if not model.window_open:
                return -1
            return model.chars.popleft() if model.chars else 0

        def drawstr(text: str, *_: Any) -> None:
            if not model.window_open:
                raise RuntimeError("gfx.drawstr with no window")
            model.drawn.append((text, float(gfx.x), float(gfx.y)))

        def noop(*_: Any) -> None:
            return None

        for name, fn in {"init": init, "quit": quit_, "getchar": getchar, "drawstr": drawstr, "set": noop, "rect": noop, "update": noop}.items():
            gfx[name] = fn
        return gfx

    def click(self, x: float, y: float) -> None:
        """Press the left button at (x, y) for one cycle and release it for the next."""
        self.gfx.mouse_x, self.gfx.mouse_y, self.gfx.mouse_cap = x, y, 1
        self.step()
        self.gfx.mouse_cap = 0
        self.step()

    # ------------------------------------------------------------------ API: misc

    def GetResourcePath(self) -> str:
        return self.resource_path

    def RecursiveCreateDirectory(self, path: str, ignored: int) -> int:
        os.makedirs(path, exist_ok=True)
        return 1

    def time_precise(self) -> float:
        return self.clock

    def defer(self, fn: Any) -> bool:
        self.defer_queue.append(fn)
        return True

    def ShowMessageBox(self, msg: str, title: str, type_: int) -> int:
        self.messages.append((title, msg))
        return 1

    def ShowConsoleMsg(self, msg: str) -> None:
        self.console.append(msg)

    def ExecProcess(self, cmd: str, timeout_ms: int) -> str:
        self.exec_log.append((cmd, int(timeout_ms)))
        if self.exec_handler is not None:
            self.exec_handler(cmd)
        return ""

    def GetExtState(self, section: str, key: str) -> str:
        return self.ext_state.get((section, key), "")

    def HasExtState(self, section: str, key: str) -> bool:
        return (section, key) in self.ext_state

    def SetExtState(self, section: str, key: str, value: str, persist: bool) -> None:
        self.ext_state[(section, key)] = str(value)
        if persist:
            self.persisted.add((section, key))

    def GetUserInputs(self, title: str, n: int, captions: str, values: str) -> tuple[bool, str]:
        return self.user_inputs.popleft()(title, int(n), captions, values)

    def GetUserFileNameForRead(self, initial: str, title: str, ext: str) -> tuple[bool, str]:
        return self.file_answers.popleft()

    def ColorToNative(self, r: int, g: int, b: int) -> int:
        return int(r) | (int(g) << 8) | (int(b) << 16)

    def GetCursorPosition(self) -> float:
        return float(self.project.cursor)

    def PreventUIRefresh(self, n: int) -> None:
        self.refresh_depth += int(n)

    def UpdateArrange(self) -> None:
        return None

    def ValidatePtr2(self, proj: Any, ptr: Any, kind: str) -> bool:
        if kind == "MediaItem*":
            return any(it is ptr for it in self._all_items())
        if kind == "MediaTrack*":
            return any(tr is ptr for tr in self.project.tracks)
        return False

    def GetSet_LoopTimeRange2(self, proj: Any, is_set: bool, is_loop: bool, start: float, end: float, seek: bool) -> tuple[float, float]:
        if is_set:
            self._changed("time selection")
            self.project.time_selection = (float(start), float(end))
        return self.project.time_selection

    # ------------------------------------------------------------------ API: undo

    def Undo_BeginBlock2(self, proj: Any) -> None:
        if self.undo_open == 0:
            self._undo_snapshot = copy.deepcopy(self.project)
        self.undo_open += 1
        self.undo_begins += 1

    def Undo_EndBlock2(self, proj: Any, desc: str, flags: int) -> None:
        if self.undo_open == 0:
            raise RuntimeError("Undo_EndBlock2 without Undo_BeginBlock2")
        self.undo_open -= 1
        if self.undo_open == 0:
            self.undo_points.append(desc)

    def Undo_DoUndo2(self, proj: Any) -> int:
        if not self.undo_points or self._undo_snapshot is None:
            return 0
        self.project = self._undo_snapshot
        self._undo_snapshot = None
        self.undo_points.pop()
        return 1

    # ------------------------------------------------------------------ API: tracks

    def CountTracks(self, proj: Any) -> int:
        return len(self.project.tracks)

    def GetTrack(self, proj: Any, i: int) -> Track | None:
        return self.project.tracks[i] if 0 <= i < len(self.project.tracks) else None

    def IsTrackSelected(self, track: Track) -> bool:
        return track.selected

    def SetTrackSelected(self, track: Track, sel: bool) -> None:
        track.selected = bool(sel)

    def SetOnlyTrackSelected(self, track: Track) -> None:
        for tr in self.project.tracks:
            tr.selected = tr is track

    def Main_OnCommand(self, command: int, flag: int) -> None:
        if command == 40406:  # Track: Toggle track volume envelope visible
            for tr in self.project.tracks:
                if tr.selected:
                    self._changed("volume envelope shown")
                    env = tr.envelopes.get("Volume")
                    if env is None:
                        tr.envelopes["Volume"] = Envelope("Volume", scaling_mode=self.volume_scaling_mode)
                    else:
                        env.visible = not env.visible
        elif command == 41051:  # Item properties: Toggle take reverse
            for it in self._selected_items():
                if it.take is not None:
                    self._changed("take reverse")
                    it.take.reversed = not it.take.reversed
        else:
            raise NotImplementedError(f"action {command} is not modelled")

    # ------------------------------------------------------------------ API: items

    def CountSelectedMediaItems(self, proj: Any) -> int:
        return len(self._selected_items())

    def GetSelectedMediaItem(self, proj: Any, i: int) -> Item | None:
        items = self._selected_items()
        return items[i] if 0 <= i < len(items) else None

    def SelectAllMediaItems(self, proj: Any, sel: bool) -> None:
        for it in self._all_items():
            it.selected = bool(sel)

    def SetMediaItemSelected(self, item: Item, sel: bool) -> None:
        item.selected = bool(sel)

    def GetMediaItem_Track(self, item: Item) -> Track | None:
        return self._track_of(item)

    def GetActiveTake(self, item: Item) -> Take | None:
        return item.take

    def TakeIsMIDI(self, take: Take) -> bool:
        return False

    def GetMediaItemInfo_Value(self, item: Item, key: str) -> float:
        attr = _ITEM_KEYS.get(key)
        return float(getattr(item, attr)) if attr else 0.0

    def SetMediaItemInfo_Value(self, item: Item, key: str, value: float) -> bool:
        attr = _ITEM_KEYS.get(key)
        if attr is None:
            return False
        if attr != "selected":
            self._changed(f"item {key}")
        if attr in ("mute", "selected"):
            setattr(item, attr, bool(value))
        elif attr == "color":
            item.color = int(value)
        else:
            setattr(item, attr, float(value))
        return True

    def GetMediaItemTakeInfo_Value(self, take: Take, key: str) -> float:
        attr = _TAKE_KEYS.get(key)
        return float(getattr(take, attr)) if attr else 0.0

    def SetMediaItemTakeInfo_Value(self, take: Take, key: str, value: float) -> bool:
        attr = _TAKE_KEYS.get(key)
        if attr is None:
            return False
        self._changed(f"take {key}")
        setattr(take, attr, bool(value) if attr == "preserve_pitch" else float(value))
        return True

    def GetSetMediaItemTakeInfo_String(self, take: Take, key: str, value: str, set_new: bool) -> tuple[bool, str]:
        if key != "P_NAME":
            return False, ""
        if set_new:
            self._changed("take name")
            take.name = value
        return True, take.name

    def SplitMediaItem(self, item: Item, position: float) -> Item | None:
        end = item.position + item.length
        if not (item.position < position < end):
            return None
        track = self._track_of(item)
        if track is None:
            return None
        self._changed("split")
        cut = position - item.position
        right = Item(
            position=position, length=end - position, fadein=0.0, fadeout=item.fadeout, vol=item.vol,
            mute=item.mute, color=item.color, selected=item.selected, active=item.active,
        )  # fmt: skip
        for t in item.takes:
            r = copy.copy(t)
            r.startoffs = t.startoffs + cut * t.playrate
            right.takes.append(r)
        item.length = cut
        item.fadeout = 0.0
        track.items.append(right)
        return right

    def DeleteTrackMediaItem(self, track: Track, item: Item) -> bool:
        for i, it in enumerate(track.items):
            if it is item:
                self._changed("delete item")
                del track.items[i]
                return True
        return False

    def AddMediaItemToTrack(self, track: Track) -> Item:
        self._changed("add item")
        item = Item()
        track.items.append(item)
        return item

    def AddTakeToMediaItem(self, item: Item) -> Take:
        self._changed("add take")
        take = Take()
        item.takes.append(take)
        if item.active < 0:
            item.active = 0
        return take

    def PCM_Source_CreateFromFile(self, filename: str) -> Source:
        return self._source(filename)

    def SetMediaItemTake_Source(self, take: Take, source: Source) -> bool:
        if not isinstance(source, Source):
            return False
        self._changed("take source")
        take.source = source
        return True

    def GetMediaItemTake_Source(self, take: Take) -> Source | None:
        return take.source

    def GetMediaSourceFileName(self, source: Source) -> str:
        return source.filename if source is not None else ""

    def GetMediaSourceLength(self, source: Source) -> tuple[float, bool]:
        return source.length_s, False

    # ------------------------------------------------------------------ API: take FX

    def _plugin(self, name: str) -> Plugin | None:
        if name in REA_PLUGINS:
            return REA_PLUGINS[name]
        if name.startswith("JS:"):
            path = Path(self.resource_path) / "Effects" / name[3:].strip()
            if path.is_file():
                return read_jsfx(path)
        return None

    def _fx(self, take: Take, fx: int) -> FxInstance | None:
        return take.fx[int(fx)] if 0 <= int(fx) < len(take.fx) else None

    def _param(self, take: Take, fx: int, param: int) -> tuple[FxInstance, Param, int] | None:
        inst = self._fx(take, fx)
        if inst is None or not 0 <= int(param) < len(inst.plugin.params):
            return None
        return inst, inst.plugin.params[int(param)], int(param)

    def TakeFX_AddByName(self, take: Take, fxname: str, instantiate: int) -> int:
        plugin = self._plugin(fxname)
        if plugin is None:
            return -1
        if int(instantiate) >= 0:
            for i, f in enumerate(take.fx):
                if f.plugin.name == plugin.name:
                    return i
            if int(instantiate) == 0:
                return -1
        self._changed("take fx")
        take.fx.append(FxInstance(plugin, [p.default for p in plugin.params]))
        return len(take.fx) - 1

    def TakeFX_GetCount(self, take: Take) -> int:
        return len(take.fx)

    def TakeFX_GetFXName(self, take: Take, fx: int) -> tuple[bool, str]:
        inst = self._fx(take, fx)
        return (True, inst.plugin.name) if inst else (False, "")

    def TakeFX_GetNumParams(self, take: Take, fx: int) -> int:
        inst = self._fx(take, fx)
        return len(inst.plugin.params) if inst else 0

    def TakeFX_GetParamName(self, take: Take, fx: int, param: int) -> tuple[bool, str]:
        hit = self._param(take, fx, param)
        return (True, hit[1].name) if hit else (False, "")

    def TakeFX_GetParam(self, take: Take, fx: int, param: int) -> tuple[float, float, float]:
        hit = self._param(take, fx, param)
        if hit is None:
            return 0.0, 0.0, 0.0
        inst, par, i = hit
        return par.lo + inst.values[i] * (par.hi - par.lo), par.lo, par.hi

    def TakeFX_SetParam(self, take: Take, fx: int, param: int, val: float) -> bool:
        hit = self._param(take, fx, param)
        if hit is None:
            return False
        inst, par, i = hit
        self._changed("take fx param")
        inst.values[i] = min(1.0, max(0.0, (float(val) - par.lo) / (par.hi - par.lo)))
        return True

    def TakeFX_GetParamNormalized(self, take: Take, fx: int, param: int) -> float:
        hit = self._param(take, fx, param)
        return hit[0].values[hit[2]] if hit else 0.0

    def TakeFX_SetParamNormalized(self, take: Take, fx: int, param: int, value: float) -> bool:
        hit = self._param(take, fx, param)
        if hit is None:
            return False
        self._changed("take fx param")
        hit[0].values[hit[2]] = min(1.0, max(0.0, float(value)))
        return True

    def TakeFX_FormatParamValueNormalized(self, take: Take, fx: int, param: int, value: float, buf: str = "") -> tuple[bool, str]:
        hit = self._param(take, fx, param)
        if hit is None:
            return False, ""
        return True, hit[1].show(min(1.0, max(0.0, float(value))))

    def TakeFX_SetNamedConfigParm(self, take: Take, fx: int, parmname: str, value: str) -> bool:
        inst = self._fx(take, fx)
        if inst is None or parmname not in inst.plugin.config:
            return False
        self._changed("take fx config")
        inst.config[parmname] = str(value)
        return True

    def TakeFX_GetNamedConfigParm(self, take: Take, fx: int, parmname: str) -> tuple[bool, str]:
        inst = self._fx(take, fx)
        if inst is None or parmname not in inst.config:
            return False, ""
        return True, inst.config[parmname]

    # ------------------------------------------------------------------ API: markers

    def AddProjectMarker2(self, proj: Any, isrgn: bool, pos: float, rgnend: float, name: str, wantidx: int, color: int) -> int:
        self._changed("marker")
        used = {m.index for m in self.project.markers if m.isrgn == bool(isrgn)}
        idx = int(wantidx)
        if idx < 0 or idx in used:
            idx = 1
            while idx in used:
                idx += 1
        self.project.markers.append(Marker(bool(isrgn), float(pos), float(rgnend) if isrgn else 0.0, name, idx, int(color)))
        self.project.markers.sort(key=lambda m: (m.pos, m.isrgn))
        return idx

    def CountProjectMarkers(self, proj: Any) -> tuple[int, int, int]:
        regions = sum(m.isrgn for m in self.project.markers)
        return len(self.project.markers), len(self.project.markers) - regions, regions

    # ------------------------------------------------------------------ API: envelopes

    def GetTrackEnvelopeByName(self, track: Track, name: str) -> Envelope | None:
        return track.envelopes.get(name)

    def GetEnvelopeScalingMode(self, env: Envelope) -> int:
        return env.scaling_mode

    def ScaleToEnvelopeMode(self, mode: int, value: float) -> float:
        if int(mode) == 0:
            return float(value)
        if int(mode) != 1:
            raise ValueError(f"envelope scaling mode {mode} does not exist (0 or 1)")
        return fader_from_amp(float(value))

    def ScaleFromEnvelopeMode(self, mode: int, value: float) -> float:
        if int(mode) == 0:
            return float(value)
        if int(mode) != 1:
            raise ValueError(f"envelope scaling mode {mode} does not exist (0 or 1)")
        return amp_from_fader(float(value))

    def InsertEnvelopePoint(
        self, env: Envelope, time: float, value: float, shape: int, tension: float, selected: bool, no_sort: bool = False
    ) -> bool:
        self._changed("envelope point")
        env.points.append((float(time), float(value), int(shape)))
        if not no_sort:
            env.points.sort(key=lambda p: p[0])
        return True

    def Envelope_SortPoints(self, env: Envelope) -> bool:
        env.points.sort(key=lambda p: p[0])
        return True

    def CountEnvelopePoints(self, env: Envelope) -> int:
        return len(env.points)

    def GetEnvelopeStateChunk(self, env: Envelope, buf: str, is_undo: bool) -> tuple[bool, str]:
        lines = ["<VOLENV2", f"ACT {int(env.active)} -1", f"VIS {int(env.visible)} 1 1", "LANEHEIGHT 0 0", "ARM 0", "DEFSHAPE 0 -1 -1"]
        lines += [f"PT {t!r} {v!r} {s}" for t, v, s in env.points]
        return True, "\n".join(lines + [">"]) + "\n"

    def SetEnvelopeStateChunk(self, env: Envelope, chunk: str, is_undo: bool) -> bool:
        lines = chunk.strip().split("\n")
        if not lines or lines[0] != "<VOLENV2" or lines[-1] != ">":
            return False
        self._changed("envelope chunk")
        points = []
        for line in lines[1:-1]:
            f = line.split()
            if f[0] == "ACT":
                env.active = f[1] == "1"
            elif f[0] == "VIS":
                env.visible = f[1] == "1"
            elif f[0] == "PT":
                points.append((float(f[1]), float(f[2]), int(f[3]) if len(f) > 3 else 0))
        env.points = points
        return True
