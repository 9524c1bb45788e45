"""EditPlan: the one contract between deciding and doing (DESIGN section 5).

Times are seconds. Source times are positions in the source file; output
("dst") times are positions in the rendered edit.

A plan is stored as JSON (``save_plan`` / ``load_plan``). ``load_plan``
validates everything and turns the first problem into one
``engine.errors.BadInput`` line naming the field, e.g.
``plan.json: segments[3].src_end_s: must be > src_start_s``.
``plan_from_actions`` turns an action walk over a song's beat grid into a
plan.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import actions as vocab
from engine.atomic import check_destination, write_json_atomic
from engine.audio import sha256_file
from engine.errors import BadInput

log = logging.getLogger(__name__)

SCHEMA = "editorbot.editplan/1"


@dataclass
class Source:
    """The audio file a plan was made for."""

    path: str
    sha256: str
    sample_rate: int
    channels: int
    duration_s: float


@dataclass
class Grid:
    """The beat grid the plan's decisions refer to."""

    tempo_bpm: float
    beat_times: list[float]  # (n_beats,) seconds, increasing
    downbeats: list[int]  # indices into beat_times


@dataclass
class Action:
    """One factored decision taken at a beat (names from engine.actions)."""

    beat: int
    type: str  # e.g. "LOOP"
    size: str  # e.g. "BAR"
    amount: str  # e.g. "POS_SMALL"
    start_s: float
    end_s: float


@dataclass
class Effect:
    """One pedalboard effect on a segment; ``params`` are in physical units.

    name -> params: lowpass/highpass {cutoff_hz}; bass/treble {gain_db}
    (shelves at 200 Hz / 4 kHz); reverb {room_size, wet}; delay {delay_s,
    feedback, mix}; distortion {drive_db}; compress {threshold_db, ratio};
    width {width} (side gain; 1 = unchanged, 0 = mono).
    """

    name: str
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class Segment:
    """A piece of the source placed on the output timeline.

    Output length is ``(src_end_s - src_start_s) / rate``. Fades are
    explicit FADE_IN/FADE_OUT shapes (linear in gain); the short splice
    crossfades between neighbouring segments are the renderer's job.
    """

    src_start_s: float
    src_end_s: float
    dst_start_s: float
    gain_db: float = 0.0
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    reverse: bool = False
    mute: bool = False  # SILENCE: keeps its length, outputs zeros
    rate: float = 1.0  # SPEED: playback rate, pitch preserved
    pitch_semitones: float = 0.0  # PITCH: shift, length preserved
    effects: list[Effect] = field(default_factory=list)
    action: str = "KEEP"  # the action type that made it (colours, labels)
    beat: int = 0  # index of the first source beat of the action

    @property
    def length_s(self) -> float:
        """Length on the output timeline in seconds."""
        return (self.src_end_s - self.src_start_s) / self.rate


@dataclass
class Marker:
    """A marker (``end_s`` None) or region (``end_s`` set) in output time."""

    time_s: float
    name: str
    end_s: float | None = None


@dataclass
class Automation:
    """A parameter lane in output time: ``points`` are ``(time_s, value)``.

    parameter: "volume_db", "lowpass_hz", "highpass_hz", ...
    """

    parameter: str
    points: list[tuple[float, float]]


@dataclass
class ModelInfo:
    """The model file that made a plan."""

    name: str
    version: str
    sha256: str


@dataclass
class EditPlan:
    """A whole edit: what was decided (actions) and what to do (segments)."""

    source: Source
    grid: Grid
    actions: list[Action] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    automation: list[Automation] = field(default_factory=list)
    model: ModelInfo | None = None
    schema: str = SCHEMA

    @property
    def duration_s(self) -> float:
        """Length of the edited output in seconds."""
        return max((s.dst_start_s + s.length_s for s in self.segments), default=0.0)


# --------------------------------------------------------------------------
# JSON: plan <-> dict
# --------------------------------------------------------------------------

#: Slack in seconds when checking times against the source duration.
TIME_TOLERANCE_S = 1e-3


def plan_to_dict(plan: EditPlan) -> dict[str, Any]:
    """The plan as plain JSON types (every field written; no validation)."""
    return {
        "schema": plan.schema,
        "source": {
            "path": plan.source.path,
            "sha256": plan.source.sha256,
            "sample_rate": plan.source.sample_rate,
            "channels": plan.source.channels,
            "duration_s": plan.source.duration_s,
        },
        "grid": {
            "tempo_bpm": plan.grid.tempo_bpm,
            "beat_times": list(plan.grid.beat_times),
            "downbeats": list(plan.grid.downbeats),
        },
        "actions": [
            {
                "beat": a.beat,
                "type": a.type,
                "size": a.size,
                "amount": a.amount,
                "start_s": a.start_s,
                "end_s": a.end_s,
            }
            for a in plan.actions
        ],
        "segments": [
            {
                "src_start_s": s.src_start_s,
                "src_end_s": s.src_end_s,
                "dst_start_s": s.dst_start_s,
                "gain_db": s.gain_db,
                "fade_in_s": s.fade_in_s,
                "fade_out_s": s.fade_out_s,
                "reverse": s.reverse,
                "mute": s.mute,
                "rate": s.rate,
                "pitch_semitones": s.pitch_semitones,
                "effects": [{"name": e.name, "params": dict(e.params)} for e in s.effects],
                "action": s.action,
                "beat": s.beat,
            }
            for s in plan.segments
        ],
        "markers": [{"time_s": m.time_s, "name": m.name, "end_s": m.end_s} for m in plan.markers],
        "automation": [
            {"parameter": a.parameter, "points": [[t, v] for t, v in a.points]}
            for a in plan.automation
        ],
        "model": None
        if plan.model is None
        else {"name": plan.model.name, "version": plan.model.version, "sha256": plan.model.sha256},
    }


class _FieldError(Exception):
    """A validation problem at a field path, e.g. ``segments[3].src_end_s``."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def _object(
    v: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _FieldError(where, f"must be an object, got {_kind(v)}")
    for key in v:
        if key not in required and key not in optional:
            raise _FieldError(_join(where, str(key)), "unknown field")
    for key in required:
        if key not in v:
            raise _FieldError(_join(where, key), "missing")
    return v


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _number(
    v: Any,
    where: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _FieldError(where, f"must be a number, got {_kind(v)}")
    x = float(v)
    if not math.isfinite(x):
        raise _FieldError(where, f"must be finite, got {x}")
    if ge is not None and x < ge:
        raise _FieldError(where, f"must be >= {ge:g}, got {x:g}")
    if gt is not None and x <= gt:
        raise _FieldError(where, f"must be > {gt:g}, got {x:g}")
    if le is not None and x > le:
        raise _FieldError(where, f"must be <= {le:g}, got {x:g}")
    return x


def _integer(v: Any, where: str, *, ge: int | None = None, lt: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _FieldError(where, f"must be an integer, got {_kind(v)}")
    if ge is not None and v < ge:
        raise _FieldError(where, f"must be >= {ge}, got {v}")
    if lt is not None and v >= lt:
        raise _FieldError(where, f"must be < {lt}, got {v}")
    return v


def _string(v: Any, where: str, *, nonempty: bool = False) -> str:
    if not isinstance(v, str):
        raise _FieldError(where, f"must be a string, got {_kind(v)}")
    if nonempty and not v:
        raise _FieldError(where, "must not be empty")
    return v


def _boolean(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise _FieldError(where, f"must be true or false, got {_kind(v)}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise _FieldError(where, f"must be a list, got {_kind(v)}")
    return v


def _name(v: Any, where: str, names: tuple[str, ...], what: str) -> str:
    s = _string(v, where)
    if s not in names:
        raise _FieldError(where, f"unknown action {what} {s!r}")
    return s


def _sha256(v: Any, where: str) -> str:
    s = _string(v, where)
    if len(s) != 64 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise _FieldError(where, "must be 64 hex digits")
    return s


def _in_range(v: Any, where: str, low: float, high: float) -> float:
    """A finite number in ``[low, high]`` (an infinite bound is no bound)."""
    return _number(v, where, ge=low if math.isfinite(low) else None, le=high if math.isfinite(high) else None)


def _effect(v: Any, where: str, sample_rate: int) -> Effect:
    d = _object(v, where, ("name", "params"))
    name = _string(d["name"], f"{where}.name")
    if name not in vocab.EFFECT_RANGES:
        raise _FieldError(
            f"{where}.name",
            f"unknown effect {name!r} (one of {', '.join(vocab.EFFECT_RANGES)})",
        )
    ranges = vocab.EFFECT_RANGES[name]
    p = _object(d["params"], f"{where}.params", tuple(ranges))
    params = {}
    for k, (low, high) in ranges.items():
        if k == "cutoff_hz":
            high = vocab.CUTOFF_MAX_FRACTION * sample_rate
        params[k] = _in_range(p[k], f"{where}.params.{k}", low, high)
    return Effect(name=name, params=params)


def _source(v: Any) -> Source:
    d = _object(v, "source", ("path", "sha256", "sample_rate", "channels", "duration_s"))
    return Source(
        path=_string(d["path"], "source.path"),
        sha256=_sha256(d["sha256"], "source.sha256"),
        sample_rate=_integer(d["sample_rate"], "source.sample_rate", ge=1),
        channels=_integer(d["channels"], "source.channels", ge=1),
        duration_s=_number(d["duration_s"], "source.duration_s", gt=0.0),
    )


def _grid(v: Any, duration_s: float) -> Grid:
    d = _object(v, "grid", ("tempo_bpm", "beat_times", "downbeats"))
    tempo = _number(d["tempo_bpm"], "grid.tempo_bpm", gt=0.0)
    beat_times: list[float] = []
    for i, t in enumerate(_list(d["beat_times"], "grid.beat_times")):
        where = f"grid.beat_times[{i}]"
        x = _number(t, where, ge=0.0, le=duration_s + TIME_TOLERANCE_S)
        if beat_times and x <= beat_times[-1]:
            raise _FieldError(where, f"must be > the previous beat time {beat_times[-1]:g}")
        beat_times.append(x)
    downbeats = [
        _integer(b, f"grid.downbeats[{i}]", ge=0, lt=len(beat_times))
        for i, b in enumerate(_list(d["downbeats"], "grid.downbeats"))
    ]
    return Grid(tempo_bpm=tempo, beat_times=beat_times, downbeats=downbeats)


def _span(d: dict[str, Any], where: str, start: str, end: str, duration_s: float) -> tuple[float, float]:
    s0 = _number(d[start], f"{where}.{start}", ge=0.0)
    s1 = _number(d[end], f"{where}.{end}")
    if s1 <= s0:
        raise _FieldError(f"{where}.{end}", f"must be > {start} ({s1:g} <= {s0:g})")
    if s1 > duration_s + TIME_TOLERANCE_S:
        raise _FieldError(
            f"{where}.{end}", f"{s1:g} s is past the end of the source ({duration_s:g} s)"
        )
    return s0, s1


def _action(v: Any, where: str, n_beats: int, duration_s: float) -> Action:
    d = _object(v, where, ("beat", "type", "size", "amount", "start_s", "end_s"))
    beat = _integer(d["beat"], f"{where}.beat", ge=0, lt=max(n_beats, 1))
    if n_beats == 0:
        raise _FieldError(f"{where}.beat", "the grid has no beats")
    type_ = _name(d["type"], f"{where}.type", vocab.TYPES, "type")
    size = _name(d["size"], f"{where}.size", vocab.SIZES, "size")
    amount = _name(d["amount"], f"{where}.amount", vocab.AMOUNTS, "amount")
    if not vocab.is_valid(type_, amount):
        raise _FieldError(f"{where}.amount", f"{type_} does not allow amount {amount}")
    start_s, end_s = _span(d, where, "start_s", "end_s", duration_s)
    return Action(beat=beat, type=type_, size=size, amount=amount, start_s=start_s, end_s=end_s)


_SEGMENT_OPTIONAL = (
    "gain_db", "fade_in_s", "fade_out_s", "reverse", "mute", "rate",
    "pitch_semitones", "effects", "action", "beat",
)  # fmt: skip


def _segment(v: Any, where: str, duration_s: float, sample_rate: int) -> Segment:
    d = _object(v, where, ("src_start_s", "src_end_s", "dst_start_s"), _SEGMENT_OPTIONAL)
    src_start_s, src_end_s = _span(d, where, "src_start_s", "src_end_s", duration_s)
    seg = Segment(
        src_start_s=src_start_s,
        src_end_s=src_end_s,
        dst_start_s=_number(d["dst_start_s"], f"{where}.dst_start_s", ge=0.0),
    )
    if "gain_db" in d:
        seg.gain_db = _number(d["gain_db"], f"{where}.gain_db")
    if "rate" in d:
        seg.rate = _in_range(d["rate"], f"{where}.rate", *vocab.RATE_RANGE)
    if "pitch_semitones" in d:
        seg.pitch_semitones = _in_range(d["pitch_semitones"], f"{where}.pitch_semitones", *vocab.PITCH_RANGE_SEMITONES)
    for key in ("fade_in_s", "fade_out_s"):
        if key in d:
            x = _number(d[key], f"{where}.{key}", ge=0.0)
            if x > seg.length_s + TIME_TOLERANCE_S:
                raise _FieldError(
                    f"{where}.{key}", f"{x:g} s is longer than the segment ({seg.length_s:g} s)"
                )
            setattr(seg, key, x)
    for key in ("reverse", "mute"):
        if key in d:
            setattr(seg, key, _boolean(d[key], f"{where}.{key}"))
    if "effects" in d:
        seg.effects = [
            _effect(e, f"{where}.effects[{i}]", sample_rate)
            for i, e in enumerate(_list(d["effects"], f"{where}.effects"))
        ]
    if "action" in d:
        seg.action = _name(d["action"], f"{where}.action", vocab.TYPES, "type")
    if "beat" in d:
        seg.beat = _integer(d["beat"], f"{where}.beat", ge=0)
    return seg


def _marker(v: Any, where: str) -> Marker:
    d = _object(v, where, ("time_s", "name"), ("end_s",))
    time_s = _number(d["time_s"], f"{where}.time_s", ge=0.0)
    end_s = d.get("end_s")
    if end_s is not None:
        end_s = _number(end_s, f"{where}.end_s", ge=time_s)
    return Marker(time_s=time_s, name=_string(d["name"], f"{where}.name"), end_s=end_s)


def _automation(v: Any, where: str) -> Automation:
    d = _object(v, where, ("parameter", "points"))
    points: list[tuple[float, float]] = []
    for i, p in enumerate(_list(d["points"], f"{where}.points")):
        pw = f"{where}.points[{i}]"
        if not isinstance(p, list) or len(p) != 2:
            raise _FieldError(pw, "must be a [time_s, value] pair")
        points.append((_number(p[0], f"{pw}[0]", ge=0.0), _number(p[1], f"{pw}[1]")))
    return Automation(parameter=_string(d["parameter"], f"{where}.parameter", nonempty=True), points=points)


def _model(v: Any) -> ModelInfo | None:
    if v is None:
        return None
    d = _object(v, "model", ("name", "version", "sha256"))
    return ModelInfo(
        name=_string(d["name"], "model.name"),
        version=_string(d["version"], "model.version"),
        sha256=_string(d["sha256"], "model.sha256"),
    )


def _check_schema(v: Any) -> str:
    s = _string(v, "schema")
    if s == SCHEMA:
        return s
    family = SCHEMA.rsplit("/", 1)[0] + "/"
    if s.startswith(family):
        raise _FieldError("schema", f"unsupported version {s!r} (this build reads {SCHEMA!r})")
    raise _FieldError("schema", f"not an editorbot plan ({s!r}; expected {SCHEMA!r})")


def _plan_from_dict(d: Any) -> EditPlan:
    if not isinstance(d, dict):
        raise _FieldError("plan", f"the top level must be an object, got {_kind(d)}")
    if "schema" not in d:
        raise _FieldError("schema", "missing")
    _check_schema(d["schema"])
    d = _object(d, "", ("schema", "source", "grid", "segments"), ("actions", "markers", "automation", "model"))
    source = _source(d["source"])
    grid = _grid(d["grid"], source.duration_s)
    n_beats = len(grid.beat_times)
    dur = source.duration_s
    return EditPlan(
        source=source,
        grid=grid,
        actions=[
            _action(a, f"actions[{i}]", n_beats, dur)
            for i, a in enumerate(_list(d.get("actions", []), "actions"))
        ],
        segments=[
            _segment(s, f"segments[{i}]", dur, source.sample_rate)
            for i, s in enumerate(_list(d["segments"], "segments"))
        ],
        markers=[_marker(m, f"markers[{i}]") for i, m in enumerate(_list(d.get("markers", []), "markers"))],
        automation=[
            _automation(a, f"automation[{i}]")
            for i, a in enumerate(_list(d.get("automation", []), "automation"))
        ],
        model=_model(d.get("model")),
        schema=SCHEMA,
    )


def plan_from_dict(d: Any, *, path: str | os.PathLike | None = None) -> EditPlan:
    """Validate a JSON-shaped dict and build the plan.

    Required: ``schema``, ``source``, ``grid``, ``segments`` (each segment
    needs ``src_start_s``, ``src_end_s``, ``dst_start_s``; its other fields
    default as in ``Segment``). ``actions``, ``markers``, ``automation``
    default to empty, ``model`` to null. Unknown fields are refused.

    Raises
    ------
    BadInput
        ``"PATH: field.path: problem"`` for the first problem found.
    """
    try:
        return _plan_from_dict(d)
    except _FieldError as err:
        raise BadInput(path, f"{err.where}: {err.problem}") from None


def validate_plan(plan: EditPlan) -> None:
    """Raise ValueError naming the field if ``plan`` would not load back."""
    try:
        _plan_from_dict(plan_to_dict(plan))
    except _FieldError as err:
        raise ValueError(f"invalid plan: {err.where}: {err.problem}") from None


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def load_plan(path: str | os.PathLike) -> EditPlan:
    """Read and validate a plan file.

    Raises
    ------
    BadInput
        One line naming the file and the problem (missing file, not JSON,
        wrong schema, or the first bad field).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise BadInput(p, "no such file")
    if os.path.isdir(p):
        raise BadInput(p, "is a directory, not a plan file")
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise BadInput(p, f"cannot read: {err.strerror or err}") from None
    if not raw.strip():
        raise BadInput(p, "empty file, not a plan")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(p, "not JSON (not UTF-8 text)") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInput(p, f"not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    plan = plan_from_dict(d, path=p)
    log.debug("loaded plan %s: %d segments", p, len(plan.segments))
    return plan


def resolve_source(plan: EditPlan, plan_path: str | os.PathLike) -> None:
    """Make a relative ``plan.source.path`` absolute, in place.

    A relative path that exists from the current directory is kept; else,
    when the file is beside the plan file at ``plan_path``, that one is
    taken; else it stays relative to the current directory. An empty or
    absolute path is left as it is.
    """
    src = plan.source.path
    if not src or os.path.isabs(src):
        return
    beside_plan = os.path.join(os.path.dirname(os.path.abspath(os.fspath(plan_path))), src)
    plan.source.path = os.path.abspath(src if os.path.exists(src) or not os.path.exists(beside_plan) else beside_plan)


def save_plan(plan: EditPlan, path: str | os.PathLike) -> None:
    """Write ``plan`` as JSON, atomically (temp file in the same folder + rename).

    Raises
    ------
    BadInput
        ``path`` is the plan's source audio (never overwritten) or its
        folder does not exist.
    ValueError
        The plan is invalid (it would not load back).
    """
    p = check_destination(path, [plan.source.path])
    validate_plan(plan)
    write_json_atomic(p, plan_to_dict(plan))
    log.debug("saved plan %s: %d segments", p, len(plan.segments))


def check_source(plan: EditPlan, path: str | os.PathLike | None = None) -> str:
    """Check that the plan's source audio is there and unchanged.

    Parameters
    ----------
    path:
        Where the source is now; default ``plan.source.path``.

    Returns
    -------
    The checked path.

    Raises
    ------
    BadInput
        ``"source missing"`` or ``"source changed since the plan was made"``.
    """
    p = os.fspath(path) if path is not None else plan.source.path
    if not p or not os.path.isfile(p):
        raise BadInput(p or None, "source missing")
    try:
        digest = sha256_file(p)
    except OSError as err:
        raise BadInput(p, f"source unreadable: {err.strerror or err}") from None
    if digest.lower() != plan.source.sha256.lower():
        raise BadInput(p, "source changed since the plan was made (sha256 differs)")
    return p


# --------------------------------------------------------------------------
# From an action walk to a plan
# --------------------------------------------------------------------------

#: Level used for silence in a "volume_db" automation lane (a fade's start/end).
VOLUME_FLOOR_DB = -60.0
#: Points per fade in a "volume_db" lane (a linear-gain fade drawn in dB).
FADE_POINTS = 8
#: Open positions of the filter lanes outside LOWPASS / HIGHPASS spans, Hz.
LOWPASS_OPEN_HZ = 20000.0
HIGHPASS_OPEN_HZ = 20.0
#: Filter cutoffs are kept below this fraction of the sample rate.
MAX_CUTOFF_FRACTION = 0.45


def beat_spans(
    beat_times: Any, duration_s: float, *, tempo_bpm: float = 120.0, fold_edges: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Source span of every beat.

    Beat ``i`` spans ``[beat_times[i], beat_times[i + 1])``; the last beat
    lasts one beat period (the median beat interval, or ``60 / tempo_bpm``
    with a single beat), clipped at ``duration_s``. Beats at or after
    ``duration_s`` are dropped (they can only be at the end of the list).
    With ``fold_edges``, audio before the first beat (lead-in) or after the
    last beat's end (tail) that is shorter than one beat period belongs to
    the first / last beat: the first span starts at 0, the last ends at
    ``duration_s``. An edit then never keeps such a sliver on its own (a
    23 ms lead-in before a cut first bar was one).

    Returns
    -------
    ``starts_s, ends_s``: ``(n_beats,)`` float64 seconds.
    """
    bt = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if bt.size and (not np.all(np.isfinite(bt)) or np.any(np.diff(bt) <= 0) or bt[0] < 0):
        raise ValueError("beat_times must be finite, >= 0 and strictly increasing")
    n = int(np.searchsorted(bt, duration_s, side="left"))
    starts = bt[:n]
    if n == 0:
        return starts, starts.copy()
    if n >= 2:
        period = float(np.median(np.diff(starts)))
    else:
        period = 60.0 / tempo_bpm if tempo_bpm > 0 else duration_s - float(starts[0])
    last_end = min(duration_s, float(starts[-1]) + period)
    ends = np.append(starts[1:], last_end)
    if fold_edges:
        starts = starts.copy()
        if 0.0 < starts[0] < period:
            starts[0] = 0.0
        if 0.0 < duration_s - ends[-1] < period:
            ends[-1] = duration_s
    return starts, ends


def _is_plain_keep(s: Segment) -> bool:
    return (
        s.action == "KEEP"
        and s.gain_db == 0.0
        and s.fade_in_s == 0.0
        and s.fade_out_s == 0.0
        and not s.reverse
        and not s.mute
        and s.rate == 1.0
        and s.pitch_semitones == 0.0
        and not s.effects
    )


def _merge_keeps(segments: list[Segment], *, tol_s: float) -> list[Segment]:
    """Join neighbouring plain KEEP segments contiguous in source and output time."""
    out: list[Segment] = []
    for s in segments:
        prev = out[-1] if out else None
        if (
            prev is not None
            and _is_plain_keep(prev)
            and _is_plain_keep(s)
            and abs(prev.src_end_s - s.src_start_s) <= tol_s
            and abs(prev.dst_start_s + prev.length_s - s.dst_start_s) <= tol_s
        ):
            prev.src_end_s = s.src_end_s
        else:
            out.append(s)
    return out


def _simplify(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop repeated points and the middle of runs with one value."""
    out: list[tuple[float, float]] = []
    for p in points:
        if out and out[-1] == p:
            continue
        if len(out) >= 2 and out[-1][1] == p[1] == out[-2][1]:
            out[-1] = p
            continue
        out.append(p)
    return out


def _volume_points(s: Segment) -> list[tuple[float, float]]:
    """A segment's level in dB over output time: its gain and its fades."""
    d0 = s.dst_start_s
    d1 = d0 + s.length_s
    times = {d0, d1}
    for k in range(1, FADE_POINTS):
        if s.fade_in_s > 0:
            times.add(d0 + s.fade_in_s * k / FADE_POINTS)
        if s.fade_out_s > 0:
            times.add(d1 - s.fade_out_s * k / FADE_POINTS)
    if s.fade_in_s > 0:
        times.add(d0 + s.fade_in_s)
    if s.fade_out_s > 0:
        times.add(d1 - s.fade_out_s)
    floor = 10.0 ** (VOLUME_FLOOR_DB / 20.0)
    points = []
    for t in sorted(times):
        g = 1.0
        if s.fade_in_s > 0:
            g = min(g, (t - d0) / s.fade_in_s)
        if s.fade_out_s > 0:
            g = min(g, (d1 - t) / s.fade_out_s)
        g = min(max(g, 0.0), 1.0)
        db = VOLUME_FLOOR_DB if g <= floor else 20.0 * math.log10(g)
        points.append((t, max(VOLUME_FLOOR_DB, db + s.gain_db)))
    return points


def _automation_lanes(segments: list[Segment], sample_rate: int) -> list[Automation]:
    """Automation restating the segments' levels and filter cutoffs.

    The lanes describe what the segments already do, for DAWs that show it
    as envelopes: a consumer applies either the segments' gain/fades/effects
    or these lanes, not both.
    """
    lanes: list[Automation] = []
    if any(s.gain_db != 0.0 or s.fade_in_s > 0 or s.fade_out_s > 0 for s in segments):
        points: list[tuple[float, float]] = []
        for s in segments:
            points.extend(_volume_points(s))
        lanes.append(Automation("volume_db", _simplify(points)))
    nyquist_hz = 0.5 * sample_rate
    for effect, parameter, open_hz in (
        ("lowpass", "lowpass_hz", min(LOWPASS_OPEN_HZ, nyquist_hz)),
        ("highpass", "highpass_hz", HIGHPASS_OPEN_HZ),
    ):
        if not any(e.name == effect for s in segments for e in s.effects):
            continue
        points = []
        for s in segments:
            v = next((e.params["cutoff_hz"] for e in s.effects if e.name == effect), open_hz)
            points.extend([(s.dst_start_s, v), (s.dst_start_s + s.length_s, v)])
        lanes.append(Automation(parameter, _simplify(points)))
    return lanes


def add_output_gain(plan: EditPlan, gain_db: float) -> None:
    """Turn the whole edit by ``gain_db`` (gain staging): every segment's gain, and the automation.

    The segments' gain is applied after their effects, so the rendered
    edit scales exactly; the plan itself says it, for every consumer (the
    renderer, DAW exports, the Reaper scripts).
    """
    if gain_db == 0.0:
        return
    for s in plan.segments:
        s.gain_db = float(s.gain_db + gain_db)
    plan.automation = [a for a in plan.automation if a.parameter != "volume_db"]
    plan.automation[:0] = [a for a in _automation_lanes(plan.segments, plan.source.sample_rate) if a.parameter == "volume_db"]


def plan_from_actions(analysis: Any, actions: Iterable[Any]) -> EditPlan:
    """Turn an action walk over a song's beat grid into an EditPlan.

    Parameters
    ----------
    analysis:
        An ``engine.analysis.Analysis`` (or anything with ``.audio``:
        ``samples (n_channels, n_samples)``, ``sample_rate`` Hz, ``path``,
        ``duration_s``; ``.sha256``; ``.grid``: ``tempo_bpm``,
        ``beat_times (n_beats,)`` s, ``downbeats``).
    actions:
        The walk, from beat 0: each a flat action index or a
        ``(type, size, amount)`` triple of names or indices. Each covers
        ``SIZE_BEATS[size]`` beats from the cursor, clipped at the last
        beat, and the cursor moves past it. Beats after the walk ends are
        kept; audio before the first beat and after the last beat's end is
        kept (lead-in and tail), except that one shorter than a beat goes
        with the first / last beat (``beat_spans(fold_edges=True)``) and
        the tail is left out when the walk ends faded out (a FADE_OUT
        followed by nothing but CUT and SILENCE).

    Returns
    -------
    The plan: ``actions`` (source spans), ``segments`` contiguous in output
    time, ``markers`` (a region per non-KEEP action, a point marker per
    run of CUTs) and ``automation`` (``volume_db``, ``lowpass_hz``, ``highpass_hz``
    lanes where used), all output times in seconds; ``model`` None.

    Raises
    ------
    ValueError
        An unknown action, an amount its type does not allow, or a walk
        that runs past the last beat (the message names the step).
    """
    audio = analysis.audio
    sample_rate = int(audio.sample_rate)
    samples = np.asarray(audio.samples)
    channels = int(samples.shape[0])
    duration_s = float(getattr(audio, "duration_s", samples.shape[-1] / sample_rate))
    grid = analysis.grid
    tempo_bpm = float(grid.tempo_bpm)
    beat_times, beat_ends = beat_spans(grid.beat_times, duration_s, tempo_bpm=tempo_bpm)
    starts, ends = beat_spans(grid.beat_times, duration_s, tempo_bpm=tempo_bpm, fold_edges=True)
    n_beats = int(starts.size)
    tol_s = 0.5 / sample_rate
    max_cutoff_hz = MAX_CUTOFF_FRACTION * sample_rate

    segments: list[Segment] = []
    plan_actions: list[Action] = []
    markers: list[Marker] = []
    dst = 0.0

    def place(seg: Segment) -> None:
        nonlocal dst
        seg.dst_start_s = dst
        dst += seg.length_s
        segments.append(seg)

    if n_beats and starts[0] > tol_s:
        place(Segment(0.0, float(starts[0]), 0.0))

    cursor = 0
    faded = False  # after a FADE_OUT, until a FADE_IN (CUT and SILENCE keep it)
    for step, raw in enumerate(actions):
        try:
            a = vocab.as_action(raw)
        except ValueError as err:
            raise ValueError(f"actions[{step}]: {err}") from None
        if cursor >= n_beats:
            raise ValueError(
                f"actions[{step}]: the walk has run past the last beat ({n_beats} beats)"
            )
        b0, b1 = cursor, min(cursor + a.beats, n_beats)
        s0, s1 = float(starts[b0]), float(ends[b1 - 1])
        # the grid's own span: what repeats (a loop, a stutter slice) and what
        # times effects; a folded lead-in / tail plays once, at the edge
        g0, g1 = float(beat_times[b0]), float(beat_ends[b1 - 1])
        beat_s = float(beat_ends[b0] - beat_times[b0])
        t, value = a.type, a.value
        dst0 = dst

        def seg(src_start: float = s0, src_end: float = s1, **kw: Any) -> Segment:
            return Segment(src_start, src_end, 0.0, action=t, beat=b0, **kw)  # noqa: B023

        if t == "CUT":
            pass
        elif t == "LOOP":
            plays = 1 + int(value)
            for k in range(plays):
                place(seg(s0 if k == 0 else g0, s1 if k == plays - 1 else g1))
        elif t == "STUTTER":
            slice_s = value * beat_s
            n_full = int(math.floor((s1 - s0) / slice_s + 1e-9))
            for _ in range(n_full):
                place(seg(g0, g0 + slice_s))
            rest_s = (s1 - s0) - n_full * slice_s
            if rest_s > tol_s:
                place(seg(g0, g0 + rest_s))
        elif t == "REVERSE":
            place(seg(reverse=True))
        elif t == "SILENCE":
            place(seg(mute=True))
        elif t == "FADE_IN":
            place(seg(fade_in_s=s1 - s0))
        elif t == "FADE_OUT":
            place(seg(fade_out_s=s1 - s0))
        elif t == "GAIN":
            place(seg(gain_db=value))
        elif t == "PITCH":
            place(seg(pitch_semitones=value))
        elif t == "SPEED":
            place(seg(rate=value))
        elif t in vocab.EFFECT_NAMES:
            name, params = vocab.effect_params(t, a.amount_idx, beat_s=beat_s)
            if "cutoff_hz" in params:
                params["cutoff_hz"] = min(params["cutoff_hz"], max_cutoff_hz)
            place(seg(effects=[Effect(name, params)]))
        else:  # KEEP
            place(seg())

        plan_actions.append(Action(b0, t, a.size, a.amount, s0, s1))
        if t != "KEEP":
            label = vocab.action_label(t, a.amount_idx)
            marker = Marker(dst0, label, end_s=None if dst <= dst0 else dst)
            # cuts in a row are one splice in the output: one marker
            if not (markers and markers[-1] == marker):
                markers.append(marker)
        faded = t == "FADE_OUT" or (faded and t in ("CUT", "SILENCE"))
        cursor = b1

    if cursor < n_beats:
        log.debug("walk ended at beat %d of %d: keeping the rest", cursor, n_beats)
        place(Segment(float(starts[cursor]), float(ends[-1]), 0.0, beat=cursor))
    tail_start = float(ends[-1]) if n_beats else 0.0
    if duration_s - tail_start > tol_s:
        if faded and cursor >= n_beats:
            # the walk faded the song out: the tail after it would jump back up
            log.debug("walk ends faded out: the %.2f s tail is left out", duration_s - tail_start)
        else:
            place(Segment(tail_start, duration_s, 0.0, beat=max(n_beats - 1, 0)))

    segments = _merge_keeps(segments, tol_s=tol_s)
    return EditPlan(
        source=Source(
            path="" if getattr(audio, "path", None) is None else os.fspath(audio.path),
            sha256=str(analysis.sha256),
            sample_rate=sample_rate,
            channels=channels,
            duration_s=duration_s,
        ),
        grid=Grid(
            tempo_bpm=tempo_bpm,
            beat_times=[float(x) for x in beat_times],
            downbeats=[int(i) for i in grid.downbeats if 0 <= int(i) < n_beats],
        ),
        actions=plan_actions,
        segments=segments,
        markers=markers,
        automation=_automation_lanes(segments, sample_rate),
        model=None,
    )
