"""The action vocabulary (DESIGN section 4): the single source of it.

An action is factored into a type (20), a size (5) and an amount (5): 500
actions from 30 policy outputs. The flat index is
``type * 25 + size * 5 + amount``.

Amounts are ordered so that the physical value they map to ascends from
NEG_LARGE to POS_LARGE for every type (see ``AMOUNT_TABLE`` and the
"Amount values" table in docs/design.md section 4). Two kinds of type:

- structural types whose amount means nothing (KEEP, CUT, REVERSE, SILENCE,
  FADE_IN, FADE_OUT) allow NEUTRAL only;
- amount types (LOOP, STUTTER, GAIN, ..., WIDTH) allow the four non-NEUTRAL
  amounts only. For an effect, NEUTRAL would be "no change", and an effect
  of zero size is a KEEP: one action, one name. LOOP and STUTTER follow the
  same rule so that every type is exactly one of the two kinds.

``AMOUNT_MASK[t, a]`` says which (type, amount) pairs are valid.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any, NamedTuple, cast

import numpy as np


class ActionType(IntEnum):
    """Action types in DESIGN order; the value is the type index."""

    KEEP = 0
    CUT = 1
    LOOP = 2
    REVERSE = 3
    STUTTER = 4
    SILENCE = 5
    FADE_IN = 6
    FADE_OUT = 7
    GAIN = 8
    PITCH = 9
    SPEED = 10
    LOWPASS = 11
    HIGHPASS = 12
    BASS = 13
    TREBLE = 14
    REVERB = 15
    DELAY = 16
    DISTORTION = 17
    COMPRESS = 18
    WIDTH = 19


class Size(IntEnum):
    """Span sizes; the value is the size index (beats: ``SIZE_BEATS``)."""

    BEAT = 0
    BAR = 1
    TWO_BARS = 2
    PHRASE = 3
    TWO_PHRASES = 4


class Amount(IntEnum):
    """Amounts; the value is the amount index (physical value: ``amount_value``)."""

    NEG_LARGE = 0
    NEG_SMALL = 1
    NEUTRAL = 2
    POS_SMALL = 3
    POS_LARGE = 4


TYPES: tuple[str, ...] = tuple(t.name for t in ActionType)
SIZES: tuple[str, ...] = tuple(s.name for s in Size)
AMOUNTS: tuple[str, ...] = tuple(a.name for a in Amount)

#: Span length in beats, indexed by size index (``SIZE_BEATS[Size.BAR] == 4``).
SIZE_BEATS: tuple[int, ...] = (1, 4, 8, 16, 32)

N_TYPES = len(TYPES)  # 20
N_SIZES = len(SIZES)  # 5
N_AMOUNTS = len(AMOUNTS)  # 5
N_ACTIONS = N_TYPES * N_SIZES * N_AMOUNTS  # 500

#: Types whose amount means nothing: NEUTRAL is their only valid amount.
NEUTRAL_ONLY: frozenset[str] = frozenset(
    {"KEEP", "CUT", "REVERSE", "SILENCE", "FADE_IN", "FADE_OUT"}
)

#: Physical unit of each type's amount value (empty: the amount means nothing).
UNITS: dict[str, str] = {
    "KEEP": "",
    "CUT": "",
    "LOOP": "extra repeats",
    "REVERSE": "",
    "STUTTER": "beats per slice",
    "SILENCE": "",
    "FADE_IN": "",
    "FADE_OUT": "",
    "GAIN": "dB",
    "PITCH": "semitones",
    "SPEED": "x rate",
    "LOWPASS": "Hz cutoff",
    "HIGHPASS": "Hz cutoff",
    "BASS": "dB at 200 Hz shelf",
    "TREBLE": "dB at 4 kHz shelf",
    "REVERB": "wet",
    "DELAY": "feedback",
    "DISTORTION": "dB drive",
    "COMPRESS": "ratio",
    "WIDTH": "side gain",
}

_NO = math.nan  # placeholder for a masked (type, amount) pair

#: Physical value per type for amounts (NEG_LARGE, NEG_SMALL, NEUTRAL,
#: POS_SMALL, POS_LARGE); NaN marks an amount the type does not allow.
AMOUNT_TABLE: dict[str, tuple[float, float, float, float, float]] = {
    "KEEP": (_NO, _NO, 0.0, _NO, _NO),
    "CUT": (_NO, _NO, 0.0, _NO, _NO),
    "LOOP": (1.0, 2.0, _NO, 3.0, 4.0),
    "REVERSE": (_NO, _NO, 0.0, _NO, _NO),
    "STUTTER": (1 / 16, 1 / 8, _NO, 1 / 4, 1 / 2),
    "SILENCE": (_NO, _NO, 0.0, _NO, _NO),
    "FADE_IN": (_NO, _NO, 0.0, _NO, _NO),
    "FADE_OUT": (_NO, _NO, 0.0, _NO, _NO),
    "GAIN": (-6.0, -3.0, _NO, 3.0, 6.0),
    "PITCH": (-2.0, -1.0, _NO, 1.0, 2.0),
    "SPEED": (0.8, 0.9, _NO, 1.1, 1.25),
    "LOWPASS": (300.0, 800.0, _NO, 2000.0, 5000.0),
    "HIGHPASS": (150.0, 400.0, _NO, 1000.0, 2500.0),
    "BASS": (-6.0, -3.0, _NO, 3.0, 6.0),
    "TREBLE": (-6.0, -3.0, _NO, 3.0, 6.0),
    "REVERB": (0.1, 0.2, _NO, 0.35, 0.5),
    "DELAY": (0.15, 0.3, _NO, 0.45, 0.6),
    "DISTORTION": (5.0, 10.0, _NO, 20.0, 30.0),
    "COMPRESS": (2.0, 3.0, _NO, 6.0, 10.0),
    "WIDTH": (0.0, 0.5, _NO, 1.5, 2.0),
}

#: (N_TYPES, N_AMOUNTS) bool: which amounts each type allows.
AMOUNT_MASK: np.ndarray = np.array(
    [[not math.isnan(v) for v in AMOUNT_TABLE[t]] for t in TYPES], dtype=bool
)
AMOUNT_MASK.setflags(write=False)

#: Effect name (engine.plan.Effect) for the types rendered as one effect.
EFFECT_NAMES: dict[str, str] = {
    "LOWPASS": "lowpass",
    "HIGHPASS": "highpass",
    "BASS": "bass",
    "TREBLE": "treble",
    "REVERB": "reverb",
    "DELAY": "delay",
    "DISTORTION": "distortion",
    "COMPRESS": "compress",
    "WIDTH": "width",
}

#: The parameters each effect takes and their valid ranges ``(low, high)``,
#: inclusive, in physical units (see engine.plan.Effect). ``load_plan``
#: validates against this table and ``engine.render`` builds effects from
#: it, so a plan that loads also renders.
EFFECT_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "lowpass": {"cutoff_hz": (1.0, math.inf)},  # and <= CUTOFF_MAX_FRACTION * sample rate
    "highpass": {"cutoff_hz": (1.0, math.inf)},  # and <= CUTOFF_MAX_FRACTION * sample rate
    "bass": {"gain_db": (-48.0, 48.0)},
    "treble": {"gain_db": (-48.0, 48.0)},
    "reverb": {"room_size": (0.0, 1.0), "wet": (0.0, 1.0)},
    "delay": {"delay_s": (1e-3, 2.0), "feedback": (0.0, 0.99), "mix": (0.0, 1.0)},  # 2 s: engine.render.MAX_TAIL_S
    "distortion": {"drive_db": (0.0, 100.0)},
    "compress": {"threshold_db": (-100.0, 0.0), "ratio": (1.0, 100.0)},
    "width": {"width": (0.0, 4.0)},
}

#: A filter cutoff is at most this fraction of the sample rate (below Nyquist).
CUTOFF_MAX_FRACTION = 0.49

#: Parameters each effect takes, in order (the keys of ``EFFECT_RANGES``).
EFFECT_PARAMS: dict[str, tuple[str, ...]] = {name: tuple(ranges) for name, ranges in EFFECT_RANGES.items()}

#: Valid range of a segment's playback rate (SPEED) and pitch shift (PITCH, semitones).
RATE_RANGE: tuple[float, float] = (0.05, 20.0)
PITCH_RANGE_SEMITONES: tuple[float, float] = (-48.0, 48.0)

# Secondary effect parameters, indexed by amount (NaN where masked).
_REVERB_ROOM = (0.3, 0.5, _NO, 0.7, 0.9)
_COMPRESS_THRESHOLD_DB = (-12.0, -18.0, _NO, -24.0, -30.0)
DELAY_BEATS = 0.5  # echo time in beats (an eighth note)
DELAY_MIX = 0.3  # dry/wet mix of the delay


class FactoredAction(NamedTuple):
    """One action as its three indices."""

    type_idx: int
    size_idx: int
    amount_idx: int

    @property
    def type(self) -> str:
        """Type name, e.g. ``"LOOP"``."""
        return TYPES[self.type_idx]

    @property
    def size(self) -> str:
        """Size name, e.g. ``"BAR"``."""
        return SIZES[self.size_idx]

    @property
    def amount(self) -> str:
        """Amount name, e.g. ``"POS_SMALL"``."""
        return AMOUNTS[self.amount_idx]

    @property
    def beats(self) -> int:
        """Span length in beats before clipping at the song's end."""
        return SIZE_BEATS[self.size_idx]

    @property
    def index(self) -> int:  # type: ignore[override]  # DESIGN's name; tuple.index is not used on actions
        """Flat index in ``[0, N_ACTIONS)``."""
        return action_index(self.type_idx, self.size_idx, self.amount_idx)

    @property
    def value(self) -> float:
        """Physical amount value (unit: ``UNITS[self.type]``)."""
        return amount_value(self.type_idx, self.amount_idx)


def _index(x: str | int, names: tuple[str, ...], what: str) -> int:
    """Index of ``x`` (a name or an index) in ``names``; ValueError if unknown."""
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"unknown action {what}: {x!r}")
    if isinstance(x, (int, np.integer)):
        if 0 <= int(x) < len(names):
            return int(x)
        raise ValueError(f"action {what} index out of range: {x} (0..{len(names) - 1})")
    if isinstance(x, str) and x in names:
        return names.index(x)
    raise ValueError(f"unknown action {what}: {x!r} (one of {', '.join(names)})")


def type_index(t: str | int) -> int:
    """Type index of a type name or index."""
    return _index(t, TYPES, "type")


def size_index(s: str | int) -> int:
    """Size index of a size name or index."""
    return _index(s, SIZES, "size")


def amount_index(a: str | int) -> int:
    """Amount index of an amount name or index."""
    return _index(a, AMOUNTS, "amount")


def is_valid(type: str | int, amount: str | int) -> bool:  # noqa: A002 - DESIGN name
    """Whether ``type`` allows ``amount`` (``AMOUNT_MASK``)."""
    return bool(AMOUNT_MASK[type_index(type), amount_index(amount)])


def action_index(type: str | int, size: str | int, amount: str | int) -> int:  # noqa: A002
    """Flat index in ``[0, 500)`` of a (type, size, amount), names or indices.

    Masked (type, amount) pairs still have an index; masks keep a policy
    from choosing them.
    """
    t, s, a = type_index(type), size_index(size), amount_index(amount)
    return (t * N_SIZES + s) * N_AMOUNTS + a


def action_from_index(i: int) -> FactoredAction:
    """Inverse of ``action_index``."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise ValueError(f"action index must be an int, got {i!r}")
    if not 0 <= int(i) < N_ACTIONS:
        raise ValueError(f"action index out of range: {i} (0..{N_ACTIONS - 1})")
    t, rest = divmod(int(i), N_SIZES * N_AMOUNTS)
    s, a = divmod(rest, N_AMOUNTS)
    return FactoredAction(t, s, a)


def as_action(x: object) -> FactoredAction:
    """A ``FactoredAction`` from a flat index or a (type, size, amount) triple.

    Members of the triple may be names or indices. Raises ValueError for an
    unknown member or a (type, amount) pair the type does not allow.
    """
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        act = action_from_index(int(x))
    else:
        try:
            t, s, a = cast("tuple[Any, Any, Any]", x)  # any other shape raises here
        except (TypeError, ValueError):
            raise ValueError(
                f"an action is a flat index or a (type, size, amount) triple, got {x!r}"
            ) from None
        act = FactoredAction(type_index(t), size_index(s), amount_index(a))
    if not AMOUNT_MASK[act.type_idx, act.amount_idx]:
        raise ValueError(f"{act.type} does not allow amount {act.amount}")
    return act


def amount_value(type: str | int, amount: str | int) -> float:  # noqa: A002
    """Physical value of ``amount`` for ``type``, in ``UNITS[type]``.

    NEUTRAL-only types give 0.0 for NEUTRAL. Raises ValueError for a pair
    the type does not allow (``AMOUNT_MASK`` False).
    """
    t, a = type_index(type), amount_index(amount)
    v = AMOUNT_TABLE[TYPES[t]][a]
    if math.isnan(v):
        raise ValueError(f"{TYPES[t]} does not allow amount {AMOUNTS[a]}")
    return float(v)


def output_beats(type_idx: int, amount_idx: int, span: int) -> float:
    """Length in output beats of an action covering ``span`` source beats."""
    if type_idx == int(ActionType.CUT):
        return 0.0
    if type_idx == int(ActionType.LOOP):
        return span * (1.0 + AMOUNT_TABLE["LOOP"][amount_idx])
    if type_idx == int(ActionType.SPEED):
        return span / AMOUNT_TABLE["SPEED"][amount_idx]
    return float(span)


def output_multiplicity(type_idx: int, amount_idx: int) -> float:
    """How many times each covered source beat is heard in the output (0 for a CUT)."""
    if type_idx == int(ActionType.CUT):
        return 0.0
    if type_idx == int(ActionType.LOOP):
        return 1.0 + AMOUNT_TABLE["LOOP"][amount_idx]
    return 1.0


def effect_params(
    type: str | int,  # noqa: A002
    amount: str | int,
    *,
    beat_s: float = 0.5,
) -> tuple[str, dict[str, float]]:
    """Effect name and physical params for an effect-type action.

    Parameters
    ----------
    type, amount:
        An effect type (LOWPASS ... WIDTH) and an amount it allows.
    beat_s:
        Beat period in seconds; sets the delay time (``DELAY_BEATS`` beats).

    Returns
    -------
    ``(name, params)`` as in ``engine.plan.Effect``.
    """
    t = TYPES[type_index(type)]
    a = amount_index(amount)
    if t not in EFFECT_NAMES:
        raise ValueError(f"{t} is not an effect type")
    v = amount_value(t, a)
    name = EFFECT_NAMES[t]
    if t in ("LOWPASS", "HIGHPASS"):
        params = {"cutoff_hz": v}
    elif t in ("BASS", "TREBLE"):
        params = {"gain_db": v}
    elif t == "REVERB":
        params = {"room_size": _REVERB_ROOM[a], "wet": v}
    elif t == "DELAY":
        if not (math.isfinite(beat_s) and beat_s > 0):
            raise ValueError(f"beat_s must be a positive number of seconds, got {beat_s}")
        params = {"delay_s": DELAY_BEATS * beat_s, "feedback": v, "mix": DELAY_MIX}
    elif t == "DISTORTION":
        params = {"drive_db": v}
    elif t == "COMPRESS":
        params = {"threshold_db": _COMPRESS_THRESHOLD_DB[a], "ratio": v}
    else:  # WIDTH
        params = {"width": v}
    return name, params


def action_label(type: str | int, amount: str | int) -> str:  # noqa: A002
    """Short label for markers and printing, e.g. ``"LOOP x2"``, ``"GAIN +3 dB"``.

    ``"LOOP xN"`` counts the extra repeats (the span plays N + 1 times).
    """
    t = TYPES[type_index(type)]
    if t in NEUTRAL_ONLY:
        return t
    v = amount_value(t, amount)
    if t == "LOOP":
        return f"LOOP x{int(v)}"
    if t == "STUTTER":
        return f"STUTTER 1/{round(1 / v)} beat"
    if t == "SPEED":
        return f"SPEED {v:g}x"
    if t in ("GAIN", "PITCH", "BASS", "TREBLE"):
        unit = "st" if t == "PITCH" else "dB"
        return f"{t} {v:+g} {unit}"
    if t in ("LOWPASS", "HIGHPASS"):
        return f"{t} {v:g} Hz"
    if t == "DISTORTION":
        return f"DISTORTION {v:g} dB"
    if t == "COMPRESS":
        return f"COMPRESS {v:g}:1"
    return f"{t} {v:g}"


def action_masks(cursor_beat: int, n_beats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid choices at ``cursor_beat`` in a song of ``n_beats`` beats.

    Every type is allowed. A size whose span would run past the song's end
    is masked, except the shortest (BEAT), which is always allowed; a span
    is clipped at the end anyway, so the last beats can always be covered.

    Returns
    -------
    type_mask ``(N_TYPES,)`` bool, size_mask ``(N_SIZES,)`` bool and
    amount_mask ``(N_TYPES, N_AMOUNTS)`` bool (row ``t``: amounts that type
    ``t`` allows; apply the row of the sampled type).
    """
    if n_beats < 1:
        raise ValueError(f"n_beats must be >= 1, got {n_beats}")
    if not 0 <= cursor_beat < n_beats:
        raise ValueError(f"cursor_beat {cursor_beat} outside the song's beats 0..{n_beats - 1}")
    left = n_beats - cursor_beat
    type_mask = np.ones(N_TYPES, dtype=bool)
    size_mask = np.array([b <= left for b in SIZE_BEATS], dtype=bool)
    size_mask[0] = True
    return type_mask, size_mask, AMOUNT_MASK.copy()


def flat_action_mask(cursor_beat: int, n_beats: int) -> np.ndarray:
    """``(N_ACTIONS,)`` bool: the three masks combined, in flat index order."""
    type_mask, size_mask, amount_mask = action_masks(cursor_beat, n_beats)
    m = type_mask[:, None, None] & size_mask[None, :, None] & amount_mask[:, None, :]
    return m.reshape(N_ACTIONS)
