"""The edit request: what one edit asks for, validated once.

The CLI's flags, the OSC server's options JSON and the spool's request JSON
all map onto ``EditRequest`` through ``EditRequest.from_fields``, so a field
has one name and one rule everywhere (DESIGN section 8). A bad field raises
``BadRequest`` naming the field; each front end says it its own way (the CLI
names its flag, the server and the spool the JSON key, which is the field).

Examples
--------
>>> req = EditRequest.from_fields({"audio": "/music/song.wav", "target_duration_s": 90, "keep": ["0-12.5"]})
>>> req.target_duration_s, req.keep
(90.0, ((0.0, 12.5),))
>>> EditRequest.from_fields({"audio": "/music/song.wav", "seed": -1})
Traceback (most recent call last):
...
engine.errors.BadRequest: seed: must be an integer 0 to 2**32-1, got -1
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from editorbot.engine.errors import BadRequest
from editorbot.engine.formats import EXPORT_FORMATS, JOB_AUDIO_FORMATS, SAMPLE_FORMATS

#: ``model`` value that asks for the pure dynamic-programming retimer (no learned model).
DP_MODEL = "dp"
#: Share of the source an edit keeps at least without a target duration.
MIN_KEEP = 0.3
#: Most keep ranges one request may name.
MAX_KEEP = 64
#: Longest output name stem (characters).
MAX_NAME_CHARS = 64

_SAFE_STEM = re.compile(r"[^A-Za-z0-9_.\-]+")

#: ``resolve_path(field, value) -> path``: checks (and may rewrite) a path a request names.
PathCheck = Callable[[str, str], str]


def _same_path(field: str, value: str) -> str:
    return value


def _text(field: str, value: Any, limit: int = 4096) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > limit:
        raise BadRequest(field, f"must be a non-empty string of at most {limit} characters")
    return value


def _seconds(field: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise BadRequest(field, f"must be a finite number of seconds, got {json.dumps(value, default=str)[:40]}")
    x = float(value)
    if x < 0 or (positive and x == 0):
        raise BadRequest(field, f"must be {'> 0' if positive else '>= 0'} seconds, got {x:g}")
    return x


def parse_keep_range(value: Any, field: str = "keep") -> tuple[float, float]:
    """One protected range: ``"A-B"`` or ``[A, B]`` (seconds) -> ``(start_s, end_s)`` with ``0 <= A < B``."""
    if isinstance(value, str):
        parts = value.split("-")
        try:
            if len(parts) != 2:
                raise ValueError
            pair: Sequence[Any] = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise BadRequest(field, f"expected START-END in seconds, e.g. 12.5-30, got {value[:40]!r}") from None
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        pair = value
    else:
        raise BadRequest(field, f"expected 'START-END' or [START, END] in seconds, got {json.dumps(value, default=str)[:40]}")
    start, end = _seconds(field, pair[0]), _seconds(field, pair[1])
    if end <= start:
        raise BadRequest(field, f"{start:g}-{end:g}: need START < END")
    return start, end


def parse_exports(value: Any) -> tuple[str, ...]:
    """``"rpp,midi"``, ``["rpp", "midi"]`` or a list of such -> formats in order, no repeats."""
    if value is None or value == "":
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items) or len(str(items)) > 200:
        raise BadRequest("exports", "must be a string like 'rpp,midi' or a list of format names")
    out: list[str] = []
    for fmt in (f.strip() for item in items for f in item.split(",")):
        if fmt and fmt not in EXPORT_FORMATS:
            raise BadRequest("exports", f"unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
        if fmt and fmt not in out:
            out.append(fmt)
    return tuple(out)


@dataclass(frozen=True)
class EditRequest:
    """One edit, as asked for by any front end.

    Attributes
    ----------
    audio:
        The song to edit (path).
    model:
        An exported policy (``.onnx`` path), ``"dp"`` for the pure DP retimer
        (needs ``target_duration_s``), or None for the bundled default.
    checkpoint:
        A training checkpoint run with torch instead of ``model``.
    target_duration_s:
        Length of the edit in seconds (None: the policy's own length).
    keep:
        Protected ranges ``(start_s, end_s)`` of the source (of the excerpt
        when ``start_s`` is given), seconds.
    seed:
        Sample the policy with this seed (None: greedy).
    exports:
        Export formats written beside the audio (``EXPORT_FORMATS``).
    start_s, end_s:
        The part of the file to edit (None: from the start / to the end).
    name:
        Output file stem for a server job (None: the audio's stem).
    format:
        Audio format of a server job's output (``JOB_AUDIO_FORMATS``).
    min_keep:
        Without a target, the edit keeps at least this share of the source's
        length (0..1; ``export.walk.WalkRules``).
    subtype:
        Sample format of the edited audio (``SAMPLE_FORMATS``; None: the
        source's).
    """

    audio: str
    model: str | None = None
    checkpoint: str | None = None
    target_duration_s: float | None = None
    keep: tuple[tuple[float, float], ...] = ()
    seed: int | None = None
    exports: tuple[str, ...] = ()
    start_s: float | None = None
    end_s: float | None = None
    name: str | None = None
    format: str = "wav"
    min_keep: float = MIN_KEEP
    subtype: str | None = None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every field a mapping given to ``from_fields`` may hold."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_fields(cls, given: Mapping[str, Any], *, resolve_path: PathCheck = _same_path) -> EditRequest:
        """Validate ``given`` (field -> value; None means not given) into a request.

        Parameters
        ----------
        given:
            Field values as they arrived (JSON types, or the CLI's strings for
            ``keep`` and ``exports``). Unknown names are refused.
        resolve_path:
            Called as ``resolve_path(field, value)`` for every path (``audio``,
            and ``model``/``checkpoint`` unless ``"dp"``); returns the path to
            use or raises ``BadRequest`` (the server checks its allowed
            folders here).

        Raises
        ------
        BadRequest
            Naming the first bad field.
        """
        unknown = sorted(set(given) - set(cls.field_names()))
        if unknown:
            raise BadRequest(str(unknown[0])[:40], f"unknown field (known: {', '.join(cls.field_names())})")
        g = {k: v for k, v in given.items() if v is not None}
        model, checkpoint = g.get("model"), g.get("checkpoint")
        if model is not None and checkpoint is not None:
            raise BadRequest("checkpoint", "give either model or checkpoint, not both")
        if model is not None and _text("model", model) != DP_MODEL:
            model = resolve_path("model", model)
        if checkpoint is not None:
            checkpoint = resolve_path("checkpoint", _text("checkpoint", checkpoint))
        target = _seconds("target_duration_s", g["target_duration_s"], positive=True) if "target_duration_s" in g else None
        if model == DP_MODEL and target is None:
            raise BadRequest("model", "the dp retimer needs target_duration_s")
        keep = g.get("keep", ())
        if not isinstance(keep, (list, tuple)) or len(keep) > MAX_KEEP:
            raise BadRequest("keep", f"must be a list of at most {MAX_KEEP} ranges ('A-B' or [A, B], seconds)")
        seed = g.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
            raise BadRequest("seed", f"must be an integer 0 to 2**32-1, got {json.dumps(seed, default=str)[:40]}")
        start = _seconds("start_s", g["start_s"]) if "start_s" in g else None
        end = _seconds("end_s", g["end_s"]) if "end_s" in g else None
        if start is not None and end is not None and end <= start:
            raise BadRequest("end_s", f"must be > start_s ({end:g} <= {start:g})")
        min_keep = g.get("min_keep", MIN_KEEP)
        if isinstance(min_keep, bool) or not isinstance(min_keep, (int, float)) or not 0.0 <= min_keep <= 1.0:
            raise BadRequest("min_keep", f"must be a share of the source between 0 and 1, got {json.dumps(min_keep, default=str)[:40]}")
        if g.get("subtype") is not None and g["subtype"] not in SAMPLE_FORMATS:
            raise BadRequest("subtype", f"must be one of {', '.join(SAMPLE_FORMATS)}")
        fmt = g.get("format", "wav")
        if fmt not in JOB_AUDIO_FORMATS:
            raise BadRequest("format", f"must be one of {', '.join(JOB_AUDIO_FORMATS)}")
        return cls(
            audio=resolve_path("audio", _text("audio", g.get("audio"))),
            model=model,
            checkpoint=checkpoint,
            target_duration_s=target,
            keep=tuple(parse_keep_range(k) for k in keep),
            seed=seed,
            exports=parse_exports(g.get("exports")),
            start_s=start,
            end_s=end,
            name=parse_name(g["name"]) if "name" in g else None,
            format=fmt,
            min_keep=float(min_keep),
            subtype=g.get("subtype"),
        )


def safe_stem(text: str) -> str:
    """``text`` as a file name stem: runs of other characters than ``A-Z a-z 0-9 _ . -``
    become ``_``, no leading or trailing dot or underscore, at most ``MAX_NAME_CHARS``
    (may be empty)."""
    return _SAFE_STEM.sub("_", text).strip("._")[:MAX_NAME_CHARS]


def parse_name(value: Any) -> str:
    """An output name stem a request asked for (``safe_stem``); BadRequest naming ``name``."""
    stem = safe_stem(_text("name", value, MAX_NAME_CHARS))
    if not stem:
        raise BadRequest("name", "has no usable characters")
    return stem
