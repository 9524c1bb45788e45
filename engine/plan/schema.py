"""The plan's JSON form, and its validation on the way in.

``plan_to_dict`` writes every field as plain JSON types. ``plan_from_dict``
checks a JSON document object by object (one function per object of the
schema: source, grid, action, segment, effect, marker, automation, model)
and turns the first problem into one ``engine.errors.BadInput`` line naming
the field, e.g. ``plan.json: segments[3].src_end_s: must be > src_start_s``.
Value ranges come from ``engine.actions`` (effect parameters, rate, pitch).
"""

from __future__ import annotations

import math
import os
from typing import Any

from editorbot.engine import actions as vocab
from editorbot.engine.errors import BadInput
from editorbot.engine.plan.model import (
    SCHEMA,
    Action,
    Automation,
    EditPlan,
    Effect,
    Grid,
    Marker,
    ModelInfo,
    Segment,
    Source,
)

#: Slack in seconds when checking times against the source duration.
TIME_TOLERANCE_S = 1e-3

_SEGMENT_OPTIONAL = (
    "gain_db", "fade_in_s", "fade_out_s", "reverse", "mute", "rate",
    "pitch_semitones", "effects", "action", "beat",
)  # fmt: skip


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
                **({} if a.confidence is None else {"confidence": a.confidence}),
            }
            for a in plan.actions
        ],
        "segments": [_segment_to_dict(s) for s in plan.segments],
        "markers": [{"time_s": m.time_s, "name": m.name, "end_s": m.end_s} for m in plan.markers],
        "automation": [
            {"parameter": a.parameter, "points": [[t, v] for t, v in a.points]}
            for a in plan.automation
        ],
        "model": None
        if plan.model is None
        else {"name": plan.model.name, "version": plan.model.version, "sha256": plan.model.sha256},
    }


def _segment_to_dict(s: Segment) -> dict[str, Any]:
    """One segment as plain JSON types."""
    return {
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


def plan_from_dict(d: Any, *, path: str | os.PathLike | None = None) -> EditPlan:
    """Validate a JSON-shaped dict and build the plan.

    Required: ``schema``, ``source``, ``grid``, ``segments`` (each segment
    needs ``src_start_s``, ``src_end_s``, ``dst_start_s``; its other fields
    default as in ``Segment``). ``actions``, ``markers``, ``automation``
    default to empty, ``model`` to null. Unknown fields are refused.

    Parameters
    ----------
    d : Any
        The parsed JSON document.
    path : str or os.PathLike or None
        The file it came from, named in the error.

    Returns
    -------
    EditPlan

    Raises
    ------
    BadInput
        ``"PATH: field.path: problem"`` for the first problem found.
    """
    try:
        return _plan(d)
    except FieldError as err:
        raise BadInput(path, f"{err.where}: {err.problem}") from None


def validate_plan(plan: EditPlan) -> None:
    """Check that ``plan`` would load back.

    Raises
    ------
    ValueError
        ``"invalid plan: field.path: problem"`` for the first problem found.
    """
    try:
        _plan(plan_to_dict(plan))
    except FieldError as err:
        raise ValueError(f"invalid plan: {err.where}: {err.problem}") from None


class FieldError(Exception):
    """A validation problem at a field path, e.g. ``segments[3].src_end_s``.

    Attributes
    ----------
    where : str
        The field's path.
    problem : str
        What is wrong with it.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


# -- the plan, object by object


def _plan(d: Any) -> EditPlan:
    """The whole document: schema first, then the objects in dependency order."""
    if not isinstance(d, dict):
        raise FieldError("plan", f"the top level must be an object, got {_kind(d)}")
    if "schema" not in d:
        raise FieldError("schema", "missing")
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


def _check_schema(v: Any) -> str:
    """The ``schema`` field: this build's ``SCHEMA`` only (another version of it is named as such)."""
    s = _string(v, "schema")
    if s == SCHEMA:
        return s
    family = SCHEMA.rsplit("/", 1)[0] + "/"
    if s.startswith(family):
        raise FieldError("schema", f"unsupported version {s!r} (this build reads {SCHEMA!r})")
    raise FieldError("schema", f"not an editorbot plan ({s!r}; expected {SCHEMA!r})")


def _source(v: Any) -> Source:
    """``source``: path, sha256 (64 hex digits), sample rate and channels >= 1, duration > 0 s."""
    d = _object(v, "source", ("path", "sha256", "sample_rate", "channels", "duration_s"))
    return Source(
        path=_string(d["path"], "source.path"),
        sha256=_sha256(d["sha256"], "source.sha256"),
        sample_rate=_integer(d["sample_rate"], "source.sample_rate", ge=1),
        channels=_integer(d["channels"], "source.channels", ge=1),
        duration_s=_number(d["duration_s"], "source.duration_s", gt=0.0),
    )


def _grid(v: Any, duration_s: float) -> Grid:
    """``grid``: tempo > 0, beat times increasing inside the source, downbeats indexing them."""
    d = _object(v, "grid", ("tempo_bpm", "beat_times", "downbeats"))
    tempo = _number(d["tempo_bpm"], "grid.tempo_bpm", gt=0.0)
    beat_times: list[float] = []
    for i, t in enumerate(_list(d["beat_times"], "grid.beat_times")):
        where = f"grid.beat_times[{i}]"
        x = _number(t, where, ge=0.0, le=duration_s + TIME_TOLERANCE_S)
        if beat_times and x <= beat_times[-1]:
            raise FieldError(where, f"must be > the previous beat time {beat_times[-1]:g}")
        beat_times.append(x)
    downbeats = [
        _integer(b, f"grid.downbeats[{i}]", ge=0, lt=len(beat_times))
        for i, b in enumerate(_list(d["downbeats"], "grid.downbeats"))
    ]
    return Grid(tempo_bpm=tempo, beat_times=beat_times, downbeats=downbeats)


def _action(v: Any, where: str, n_beats: int, duration_s: float) -> Action:
    """One action: a beat of the grid, known names, an amount its type allows, a source span."""
    d = _object(v, where, ("beat", "type", "size", "amount", "start_s", "end_s"), ("confidence",))
    beat = _integer(d["beat"], f"{where}.beat", ge=0, lt=max(n_beats, 1))
    if n_beats == 0:
        raise FieldError(f"{where}.beat", "the grid has no beats")
    type_ = _name(d["type"], f"{where}.type", vocab.TYPES, "type")
    size = _name(d["size"], f"{where}.size", vocab.SIZES, "size")
    amount = _name(d["amount"], f"{where}.amount", vocab.AMOUNTS, "amount")
    if not vocab.is_valid(type_, amount):
        raise FieldError(f"{where}.amount", f"{type_} does not allow amount {amount}")
    start_s, end_s = _span(d, where, "start_s", "end_s", duration_s)
    confidence = d.get("confidence")
    if confidence is not None:
        confidence = _in_range(confidence, f"{where}.confidence", 0.0, 1.0)
    return Action(beat=beat, type=type_, size=size, amount=amount, start_s=start_s, end_s=end_s, confidence=confidence)


def _segment(v: Any, where: str, duration_s: float, sample_rate: int) -> Segment:
    """One segment: a source span, its output start, and the optional fields within their ranges."""
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
    # Fades are checked after the rate: a fade may not outlast the segment's output length.
    for key in ("fade_in_s", "fade_out_s"):
        if key in d:
            x = _number(d[key], f"{where}.{key}", ge=0.0)
            if x > seg.length_s + TIME_TOLERANCE_S:
                raise FieldError(f"{where}.{key}", f"{x:g} s is longer than the segment ({seg.length_s:g} s)")
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


def _effect(v: Any, where: str, sample_rate: int) -> Effect:
    """One effect: a known name and each of its parameters in range (cutoffs below a fraction of ``sample_rate``)."""
    d = _object(v, where, ("name", "params"))
    name = _string(d["name"], f"{where}.name")
    if name not in vocab.EFFECT_RANGES:
        raise FieldError(f"{where}.name", f"unknown effect {name!r} (one of {', '.join(vocab.EFFECT_RANGES)})")
    ranges = vocab.EFFECT_RANGES[name]
    p = _object(d["params"], f"{where}.params", tuple(ranges))
    params = {}
    for k, (low, high) in ranges.items():
        if k == "cutoff_hz":
            high = vocab.CUTOFF_MAX_FRACTION * sample_rate
        params[k] = _in_range(p[k], f"{where}.params.{k}", low, high)
    return Effect(name=name, params=params)


def _marker(v: Any, where: str) -> Marker:
    """One marker: a time >= 0 s, a name, and (a region) an end not before its time."""
    d = _object(v, where, ("time_s", "name"), ("end_s",))
    time_s = _number(d["time_s"], f"{where}.time_s", ge=0.0)
    end_s = d.get("end_s")
    if end_s is not None:
        end_s = _number(end_s, f"{where}.end_s", ge=time_s)
    return Marker(time_s=time_s, name=_string(d["name"], f"{where}.name"), end_s=end_s)


def _automation(v: Any, where: str) -> Automation:
    """One lane: a parameter name and ``[time_s, value]`` points (time >= 0 s)."""
    d = _object(v, where, ("parameter", "points"))
    points: list[tuple[float, float]] = []
    for i, p in enumerate(_list(d["points"], f"{where}.points")):
        pw = f"{where}.points[{i}]"
        if not isinstance(p, list) or len(p) != 2:
            raise FieldError(pw, "must be a [time_s, value] pair")
        points.append((_number(p[0], f"{pw}[0]", ge=0.0), _number(p[1], f"{pw}[1]")))
    return Automation(parameter=_string(d["parameter"], f"{where}.parameter", nonempty=True), points=points)


def _model(v: Any) -> ModelInfo | None:
    """``model``: null, or name, version and sha256 strings."""
    if v is None:
        return None
    d = _object(v, "model", ("name", "version", "sha256"))
    return ModelInfo(
        name=_string(d["name"], "model.name"),
        version=_string(d["version"], "model.version"),
        sha256=_string(d["sha256"], "model.sha256"),
    )


# -- fields


def _object(
    v: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """An object with every ``required`` key and no key outside ``required`` and ``optional``."""
    if not isinstance(v, dict):
        raise FieldError(where, f"must be an object, got {_kind(v)}")
    for key in v:
        if key not in required and key not in optional:
            raise FieldError(_join(where, str(key)), "unknown field")
    for key in required:
        if key not in v:
            raise FieldError(_join(where, key), "missing")
    return v


def _join(where: str, key: str) -> str:
    """The path of field ``key`` of the object at ``where`` (the top level's path is empty)."""
    return f"{where}.{key}" if where else key


def _kind(v: Any) -> str:
    """What a JSON value is, for a message ("a number", "null", ...)."""
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
    """A finite number (not a boolean) within the given bounds, as float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FieldError(where, f"must be a number, got {_kind(v)}")
    x = float(v)
    if not math.isfinite(x):
        raise FieldError(where, f"must be finite, got {x}")
    if ge is not None and x < ge:
        raise FieldError(where, f"must be >= {ge:g}, got {x:g}")
    if gt is not None and x <= gt:
        raise FieldError(where, f"must be > {gt:g}, got {x:g}")
    if le is not None and x > le:
        raise FieldError(where, f"must be <= {le:g}, got {x:g}")
    return x


def _integer(v: Any, where: str, *, ge: int | None = None, lt: int | None = None) -> int:
    """An integer (not a boolean) in ``[ge, lt)``."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise FieldError(where, f"must be an integer, got {_kind(v)}")
    if ge is not None and v < ge:
        raise FieldError(where, f"must be >= {ge}, got {v}")
    if lt is not None and v >= lt:
        raise FieldError(where, f"must be < {lt}, got {v}")
    return v


def _string(v: Any, where: str, *, nonempty: bool = False) -> str:
    """A string (non-empty if asked)."""
    if not isinstance(v, str):
        raise FieldError(where, f"must be a string, got {_kind(v)}")
    if nonempty and not v:
        raise FieldError(where, "must not be empty")
    return v


def _boolean(v: Any, where: str) -> bool:
    """True or false."""
    if not isinstance(v, bool):
        raise FieldError(where, f"must be true or false, got {_kind(v)}")
    return v


def _list(v: Any, where: str) -> list[Any]:
    """A list (of anything)."""
    if not isinstance(v, list):
        raise FieldError(where, f"must be a list, got {_kind(v)}")
    return v


def _name(v: Any, where: str, names: tuple[str, ...], what: str) -> str:
    """One of ``names`` (an action ``what``: type, size or amount)."""
    s = _string(v, where)
    if s not in names:
        raise FieldError(where, f"unknown action {what} {s!r}")
    return s


def _sha256(v: Any, where: str) -> str:
    """64 hex digits (either case)."""
    s = _string(v, where)
    if len(s) != 64 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise FieldError(where, "must be 64 hex digits")
    return s


def _in_range(v: Any, where: str, low: float, high: float) -> float:
    """A finite number in ``[low, high]`` (an infinite bound is no bound)."""
    return _number(v, where, ge=low if math.isfinite(low) else None, le=high if math.isfinite(high) else None)


def _span(d: dict[str, Any], where: str, start: str, end: str, duration_s: float) -> tuple[float, float]:
    """Fields ``start`` and ``end`` of ``d``: seconds, ``0 <= start < end <= duration_s`` (with slack)."""
    s0 = _number(d[start], f"{where}.{start}", ge=0.0)
    s1 = _number(d[end], f"{where}.{end}")
    if s1 <= s0:
        raise FieldError(f"{where}.{end}", f"must be > {start} ({s1:g} <= {s0:g})")
    if s1 > duration_s + TIME_TOLERANCE_S:
        raise FieldError(f"{where}.{end}", f"{s1:g} s is past the end of the source ({duration_s:g} s)")
    return s0, s1
