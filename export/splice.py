"""The continuity cost of a splice and the beats a splice may not touch.

``SpliceCost`` is the one definition of what a splice (source beat ``j``
played right after source beat ``i``) costs; ``walk_splice_cost`` totals it
over any action walk. Both searches of ``export.retime`` and the walk's
report in ``export.walk`` use it. Protected ranges (``keep``: ``(start_s,
end_s)`` pairs) become protected beats (``protected_beats``), and
``tail_guard`` marks the beats from which an effect's tail would ring into
one.

Shapes: ``N`` beats, ``F`` feature columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from editorbot.engine.actions import AMOUNT_TABLE, SIZE_BEATS, TYPES, FactoredAction

_CUT, _LOOP = TYPES.index("CUT"), TYPES.index("LOOP")

#: Weights of the splice cost terms (see ``SpliceCost``).
SPLICE_BASE = 0.25
TIMBRE_WEIGHT = 1.0
METER_WEIGHT = 1.0
SUSTAIN_WEIGHT = 1.0
#: Feature columns (``engine.features`` names, by prefix) compared across a splice.
TIMBRE_PREFIXES: tuple[str, ...] = ("rms", "centroid", "flatness", "contrast_", "mfcc_0", "mfcc_1", "chroma_")


class SpliceCost:
    """Continuity cost of playing source beat ``j`` right after source beat ``i``.

    ``cost(i, j) = 0`` for ``j == i + 1`` (the source's own continuation);
    otherwise::

        SPLICE_BASE
        + TIMBRE_WEIGHT  * (d(x[i + 1], x[j]) + d(x[i], x[j - 1])) / 2
        + METER_WEIGHT   * |phase(i + 1) - phase(j)| / 2
        + SUSTAIN_WEIGHT * (sustain(i + 1) + sustain(j)) / 2

    - ``d`` is the RMS difference of z-scored timbre/harmony columns
      (``TIMBRE_PREFIXES``): what should have come next against what comes
      instead, and the other way round (Wenner et al.'s transition cost);
    - ``phase`` is the position in the bar as a unit vector (the
      ``beat_phase_sin``/``cos`` columns): a jump that breaks the meter costs
      up to 1;
    - ``sustain(b)`` in [0, 1] is high where the beat's level is high and
      its onset strength low (a note sounding through the beat boundary):
      leaving such a beat unfinished (``i + 1`` dropped) or entering one in
      the middle (``j``) splits a sustained note.

    Beat ``-1`` (before the first beat: the lead-in) and beat ``N`` (after
    the last: the tail) have no features; the terms that need them are
    left out (a cut of the song's start still pays the meter term).

    Parameters
    ----------
    features:
        ``(N, F)`` per-beat features.
    names:
        ``F`` column names (``engine.features.feature_names()``).
    """

    def __init__(self, features: np.ndarray, names: Sequence[str]) -> None:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"features {x.shape} do not match {len(names)} names")
        self.n_beats = int(x.shape[0])
        names = list(names)
        cols = [k for k, n in enumerate(names) if n.startswith(TIMBRE_PREFIXES)]
        t = x[:, cols] if cols else np.zeros((self.n_beats, 1))
        std = t.std(axis=0)
        self._timbre = (t - t.mean(axis=0)) / np.where(std > 1e-9, std, 1.0)
        if "beat_phase_sin" in names and "beat_phase_cos" in names:
            self._phase = x[:, [names.index("beat_phase_sin"), names.index("beat_phase_cos")]]
        else:
            self._phase = np.zeros((self.n_beats, 2))
        self._sustain = np.zeros(self.n_beats)
        if "rms" in names and "onset_strength" in names and self.n_beats > 1:
            level = _ranks(x[:, names.index("rms")])
            attack = _ranks(x[:, names.index("onset_strength")])
            self._sustain = np.clip(level - attack, 0.0, 1.0)

    def cost(self, i: np.ndarray | int, j: np.ndarray | int) -> np.ndarray:
        """Cost of beat ``j`` following beat ``i`` (broadcast arrays of beat indices).

        ``i`` in ``[-1, N)``, ``j`` in ``[0, N]``; returns float64 of the
        broadcast shape, 0 where ``j == i + 1``.
        """
        i, j = np.broadcast_arrays(np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64))
        n = self.n_beats
        nxt, prv = i + 1, j - 1  # what would have followed i, what preceded j
        both = (nxt < n) & (j < n)  # what should follow and what follows both exist
        ok = both & (i >= 0) & (prv >= 0)
        ic, nc, jc, pc = (np.clip(v, 0, n - 1) for v in (i, nxt, j, prv))
        timbre = 0.5 * (_rms_diff(self._timbre[nc], self._timbre[jc]) + _rms_diff(self._timbre[ic], self._timbre[pc]))
        meter = 0.5 * np.linalg.norm(self._phase[nc] - self._phase[jc], axis=-1)
        sustain = 0.5 * (np.where(nxt < n, self._sustain[nc], 0.0) + np.where(j < n, self._sustain[jc], 0.0))
        total = (
            SPLICE_BASE
            + SUSTAIN_WEIGHT * sustain
            + np.where(ok, TIMBRE_WEIGHT * timbre, 0.0)
            + np.where(both, METER_WEIGHT * meter, 0.0)
        )
        return np.where(j == nxt, 0.0, total)

    @property
    def sustain(self) -> np.ndarray:
        """``(N,)`` in [0, 1]: how much a note sounds through each beat (see above)."""
        return self._sustain.copy()


def _ranks(v: np.ndarray) -> np.ndarray:
    """Percentile ranks in [0, 1] (ties share the lower rank)."""
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v))
    return r / max(len(v) - 1, 1)


def _rms_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((a - b) ** 2, axis=-1))


def walk_splice_cost(walk: Iterable[Any], splice: SpliceCost) -> float:
    """Total splice cost of an action walk (from beat 0, as ``plan_from_actions`` reads it).

    Follows the played source beats: a LOOP adds a back-splice per repeat,
    a run of CUT steps one splice from the beat before it to the beat after
    it; beats after the walk ends are kept.
    """
    played_last = -1  # last source beat played (-1: the lead-in)
    total = 0.0
    cursor = 0
    n = splice.n_beats
    for raw in walk:
        a = raw if isinstance(raw, FactoredAction) else FactoredAction(*raw)
        b0, b1 = cursor, min(cursor + a.beats, n)
        if a.type_idx == _CUT:
            cursor = b1
            continue
        if played_last != b0 - 1:
            total += float(splice.cost(played_last, b0))
        if a.type_idx == _LOOP:
            total += AMOUNT_TABLE["LOOP"][a.amount_idx] * float(splice.cost(b1 - 1, b0))
        played_last = b1 - 1
        cursor = b1
    if played_last != n - 1:  # a cut ran to the end, or into the kept rest
        total += float(splice.cost(played_last, cursor if cursor < n else n))
    return total


# ----------------------------------------------------------------------------- keep ranges


def protected_beats(starts_s: np.ndarray, ends_s: np.ndarray, keep: Iterable[tuple[float, float]]) -> np.ndarray:
    """``(N,)`` bool: beats whose span ``[start, end)`` overlaps a keep range (seconds)."""
    starts_s, ends_s = np.asarray(starts_s, float), np.asarray(ends_s, float)
    out = np.zeros(starts_s.shape, dtype=bool)
    for a, b in keep:
        out |= (starts_s < b) & (ends_s > a)
    return out


#: Types whose effect rings on past its span (``engine.render`` renders their
#: tails, up to ``MAX_TAIL_S``, over whatever follows).
TAIL_TYPES: tuple[str, ...] = ("REVERB", "DELAY")


def tail_guard(starts_s: np.ndarray, ends_s: np.ndarray, protected: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: beats where a ``TAIL_TYPES`` effect could ring into a protected beat.

    An action starting at beat ``c`` covers at most 32 beats; its tail lasts
    at most ``engine.render.MAX_TAIL_S``. Beats from which that reaches the
    start of a later protected beat are guarded (protected beats themselves
    allow only KEEP anyway).
    """
    from editorbot.engine.render import MAX_TAIL_S

    starts_s, ends_s = np.asarray(starts_s, float), np.asarray(ends_s, float)
    n = len(starts_s)
    prot = np.asarray(protected, bool)
    reach = ends_s[np.minimum(np.arange(n) + max(SIZE_BEATS) - 1, n - 1)] + MAX_TAIL_S
    # start time of the first protected beat at or after each beat (inf when none)
    next_prot = np.full(n + 1, np.inf)
    for c in range(n - 1, -1, -1):
        next_prot[c] = starts_s[c] if prot[c] else next_prot[c + 1]
    return reach > next_prot[:n]
