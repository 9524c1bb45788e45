"""Target duration and protected ranges (DESIGN section 10).

Two searches over the same move set and the same splice continuity cost:

- ``constrained_search``: the length-constrained search over a policy's
  per-beat log-probabilities. Dynamic programming over the beat sequence
  whose state is ``(cursor beat, output length in beats, after-a-cut
  flag)``; the output length is a hard constraint (the final state's
  length). Moves from a cursor ``c`` (all in ``engine.actions`` terms, so
  the result is an ordinary action walk for ``engine.plan.plan_from_actions``):

  - KEEP of a size: ``+span`` beats, score ``log p(KEEP, size, NEUTRAL)``;
  - a length-preserving action (REVERSE, STUTTER, SILENCE, fades, GAIN,
    PITCH, the effects) of a size: ``+span``, the best such (type, amount)
    for that size;
  - LOOP of a size and an amount ``k``: ``+span * (1 + k)``, plus ``k``
    splices from the span's last beat back to its first;
  - CUT of ``m`` beats (``CUT_LENGTHS``), as the best decomposition into
    CUT steps of the five sizes: ``+0``, plus one splice from the beat
    before the cut to the beat after it. A cut is never followed by a cut
    (the longer cut is its own move), so each splice is charged once.

  Score = policy log-probability - ``splice_weight`` x splice cost.
  SPEED changes the length by a non-integer factor and is left out.
  Given a splice budget (``retime(max_splice_cost=)``, the pure DP's cost
  in ``export.walk.plan_analysis``), the weight is raised step by step
  (``SPLICE_WEIGHT_STEPS``) until the walk splices no worse than the
  budget; the last step is large enough to make splice cost decide and the
  policy only break ties, so the policy never buys its preferences with
  audible splices. The steps' tables are filled in one call
  (``search_tables``; the beat-by-beat loop is compiled by numba) and
  their walks are read back in order (``best_walk``).

- ``dp_retime``: the pure DP retimer, the same search with every policy
  term at zero: the least-cost jump path (cuts forward, loops back) whose
  length is the target. A baseline and a behavioural-cloning teacher.

Both charge splices by ``export.splice.SpliceCost``, the one definition of
the continuity cost of a splice. Protected ranges (``keep``: ``(start_s,
end_s)`` pairs) become protected beats (``export.splice.protected_beats``):
only plain KEEP may cover them, so they play once, unchanged, with no splice
inside them.

Shapes: ``N`` beats, ``F`` feature columns, ``L`` output length in beats
(mean-length beats: a beat of the grid counts for the mean beats it lasts,
``SongSpans.beat_units``, so that an uneven grid's walks of one length
last alike).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from editorbot.engine.actions import (
    AMOUNT_MASK,
    AMOUNT_TABLE,
    N_SIZES,
    N_TYPES,
    SIZE_BEATS,
    TYPES,
    Amount,
    FactoredAction,
    action_masks,
)
from editorbot.engine.analysis import Analysis
from editorbot.engine.errors import BadInput, BadRequest
from editorbot.export.splice import TAIL_TYPES, SpliceCost, protected_beats, tail_guard, walk_splice_cost

log = logging.getLogger(__name__)

#: Cut lengths (beats) the searches consider as one move; any cut of one of
#: these lengths is decomposed into CUT steps of the five sizes.
CUT_LENGTHS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 128)
#: Types that keep a span's length (the search's "length-preserving" moves).
LENGTH_PRESERVING: tuple[str, ...] = tuple(t for t in TYPES if t not in ("KEEP", "CUT", "LOOP", "SPEED"))
#: Length-preserving types the searches never place: their sound depends on
#: what surrounds them (a fade-out must lead to silence or the end, a fade-in
#: rise from silence, a silence sits between the music it interrupts), which
#: the searches' state does not hold. A fade-in stays allowed at beat 0, where
#: the output starts from silence.
CONTEXT_TYPES: tuple[str, ...] = ("FADE_OUT", "FADE_IN", "SILENCE")
#: Targets the searches accept, as a fraction of the source length.
MIN_TARGET_RATIO = 0.5
MAX_TARGET_RATIO = 1.5

_KEEP, _CUT, _LOOP = TYPES.index("KEEP"), TYPES.index("CUT"), TYPES.index("LOOP")
_NEUTRAL = int(Amount.NEUTRAL)
_LOOP_AMOUNTS = tuple(a for a in range(5) if AMOUNT_MASK[_LOOP, a])  # extra repeats 1..4
_NEG = -np.inf

#: Multipliers of the splice weight tried, in order, until a walk meets its
#: splice budget (``retime(max_splice_cost=)``); the last one makes the
#: splice cost decide and the policy only break ties.
SPLICE_WEIGHT_STEPS: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0, 1.0e6)
#: Float slack when comparing a walk's splice cost with its budget.
SPLICE_COST_TOLERANCE = 1e-6
#: Searches of a target: after the first, the target in beats is rescaled by
#: how long the nearest walk lasted (``retime``).
RETARGET_TRIES = 3
#: The search counts output length in this fraction of a mean beat (``SongSpans.beat_units``).
BEAT_DIVISIONS = 2


# ----------------------------------------------------------------------------- the search


class LogProbs(Protocol):
    """Per-beat masked log-probabilities (``export.runtime.SongLogProbs``)."""

    type: np.ndarray  # (N, N_TYPES)
    size: np.ndarray  # (N, N_SIZES)
    amount: np.ndarray  # (N, N_TYPES, N_AMOUNTS)


@dataclass
class RetimeResult:
    """A length-constrained walk.

    Attributes
    ----------
    walk:
        Factored actions from beat 0 (``plan_from_actions`` input).
    out_beats:
        Output length in beats of the beat grid's part (lead-in and tail
        not counted).
    score:
        Policy log-probability of the walk minus ``splice_weight`` x its
        splice cost (the searched objective).
    splice_cost:
        Total ``SpliceCost`` of the walk's splices.
    splice_weight:
        The splice weight the walk was found with.
    """

    walk: list[FactoredAction]
    out_beats: float
    score: float
    splice_cost: float
    splice_weight: float = 1.0


@dataclass
class _Move:
    kind: str  # "keep" | "other" | "loop" | "cut"
    size: int  # size index (cut: -1)
    beats: int  # source beats consumed
    extra: int  # loop: extra repeats; cut: 0
    amount: int  # loop: amount index


def _moves() -> list[_Move]:
    moves = [_Move("keep", s, SIZE_BEATS[s], 0, _NEUTRAL) for s in range(N_SIZES)]
    moves += [_Move("other", s, SIZE_BEATS[s], 0, -1) for s in range(N_SIZES)]
    for s in range(N_SIZES):
        for a in _LOOP_AMOUNTS:
            moves.append(_Move("loop", s, SIZE_BEATS[s], int(AMOUNT_TABLE["LOOP"][a]), a))
    moves += [_Move("cut", -1, m, 0, _NEUTRAL) for m in CUT_LENGTHS]
    return moves


MOVES: list[_Move] = _moves()
#: ``MOVES`` as arrays for ``_search_loop``: source beats, splices per unit
#: of splice cost (loop: its extra repeats; cut: 1) and whether it is a cut.
_MOVE_ARRAYS = (
    np.array([mv.beats for mv in MOVES], np.int64),
    np.array([mv.extra if mv.kind == "loop" else int(mv.kind == "cut") for mv in MOVES], np.int64),
    np.array([mv.kind == "cut" for mv in MOVES]),
)


def _size_masks(n_beats: int) -> np.ndarray:
    """``(N, N_SIZES)`` bool from ``engine.actions.action_masks`` at every cursor."""
    return np.stack([action_masks(c, n_beats)[1] for c in range(n_beats)]) if n_beats else np.zeros((0, N_SIZES), bool)


def _best_other(
    lp: LogProbs | None, n: int, no_tail: np.ndarray | None = None, *, fade_in_at_start: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best length-preserving (type, amount) per cursor: ``(score (N,), type (N,), amount (N,))``.

    ``no_tail (N,)`` bool rules out ``TAIL_TYPES`` at those cursors;
    ``CONTEXT_TYPES`` are ruled out everywhere (FADE_IN but at beat 0,
    with ``fade_in_at_start``: no lead-in plays before it).
    """
    if lp is None:
        return np.zeros(n), np.full(n, TYPES.index("GAIN")), np.full(n, 3)
    idx = [TYPES.index(t) for t in LENGTH_PRESERVING]
    joint = lp.type[:, idx, None] + lp.amount[:, idx, :]  # (N, T', A)
    context = np.isin(np.asarray(LENGTH_PRESERVING), CONTEXT_TYPES)[None, :].repeat(n, axis=0)  # (N, T')
    if n and fade_in_at_start:
        context[0, LENGTH_PRESERVING.index("FADE_IN")] = False
    joint = np.where(context[:, :, None], _NEG, joint)
    if no_tail is not None:
        tails = np.isin(np.asarray(LENGTH_PRESERVING), TAIL_TYPES)
        joint = np.where(np.asarray(no_tail, bool)[:, None, None] & tails[None, :, None], _NEG, joint)
    flat = joint.reshape(n, -1).argmax(axis=1)
    t_local, a = np.divmod(flat, joint.shape[2])
    return joint.reshape(n, -1)[np.arange(n), flat], np.asarray(idx)[t_local], a


def _cut_table(step: np.ndarray, max_m: int) -> tuple[np.ndarray, np.ndarray]:
    """Best decomposition of an ``m``-beat cut starting at each cursor into CUT steps.

    ``step (N, N_SIZES)``: log-prob of one CUT step of each size at each
    cursor (``-inf`` where masked). Returns ``best (N + 1, max_m + 1)`` and
    ``first (N + 1, max_m + 1)`` (size index of the first step, -1 none).
    """
    n = step.shape[0]
    best = np.full((n + 1, max_m + 1), _NEG)
    best[:, 0] = 0.0
    first = np.full((n + 1, max_m + 1), -1, dtype=np.int8)
    pad = np.full((max(SIZE_BEATS), max_m + 1), _NEG)
    ext = np.vstack([best, pad])
    for m in range(1, max_m + 1):
        for s, k in enumerate(SIZE_BEATS):
            if k > m:
                continue
            cand = step[:, s] + ext[k : k + n, m - k]
            better = cand > best[:n, m]
            best[:n, m] = np.where(better, cand, best[:n, m])
            first[:n, m] = np.where(better, s, first[:n, m])
        ext[: n + 1, m] = best[:, m]
    return best, first


def constrained_search(
    logprobs: LogProbs | None,
    splice: SpliceCost,
    target_beats: float,
    *,
    protected: np.ndarray | None = None,
    no_tail: np.ndarray | None = None,
    splice_weight: float = 1.0,
    accept: Any = None,
) -> RetimeResult:
    """Best walk whose output length (beats) is the nearest feasible to ``target_beats``.

    One weight of ``search_tables`` and ``best_walk``.

    Parameters
    ----------
    logprobs:
        Per-beat masked log-probabilities with ``N = splice.n_beats`` rows,
        or None for the pure DP retimer (every policy term 0).
    splice:
        The splice cost of the song.
    target_beats:
        Wanted output length of the beat grid's part, in beats (may be
        fractional).
    protected:
        ``(N,)`` bool: beats only a plain KEEP may cover.
    no_tail:
        ``(N,)`` bool: beats where no ``TAIL_TYPES`` effect may start
        (``tail_guard``).
    splice_weight:
        Weight of splice cost against log-probability.
    accept:
        Optional ``callable(walk, out_beats) -> bool`` checking a candidate
        (e.g. its duration in seconds); final lengths are tried nearest to
        ``target_beats`` first and the first accepted one wins.

    Returns
    -------
    ``RetimeResult``. Raises ``ValueError`` when no candidate is accepted.
    """
    tables = search_tables(
        logprobs, splice, target_beats, protected=protected, no_tail=no_tail, splice_weights=(splice_weight,)
    )
    return best_walk(tables, 0, splice, accept=accept)


@dataclass
class SearchTables:
    """The length-constrained search's dynamic-programming tables, for ``W`` splice weights.

    ``bp_move``, ``bp_flag``: ``(W, N + 1, 2, l_max + 1)``: the move and
    flag that reached beat ``c`` with ``L`` output beats (flag 1: the last
    move was a cut) with the best objective; ``final (W, 2, l_max + 1)``:
    that best objective at the song's end (beat ``N``).
    """

    target_beats: float
    splice_weights: tuple[float, ...]
    final: np.ndarray
    bp_move: np.ndarray
    bp_flag: np.ndarray
    cut_first: np.ndarray
    other_type: np.ndarray
    other_amount: np.ndarray
    beat_units: np.ndarray
    loop_units: np.ndarray


def search_tables(
    logprobs: LogProbs | None,
    splice: SpliceCost,
    target_beats: float,
    *,
    protected: np.ndarray | None = None,
    no_tail: np.ndarray | None = None,
    splice_weights: Sequence[float] = (1.0,),
    fade_in_at_start: bool = True,
    beat_units: np.ndarray | None = None,
    loop_units: np.ndarray | None = None,
) -> SearchTables:
    """The search of ``constrained_search`` for several splice weights at once.

    Each weight's tables are what a search at that weight alone computes.
    The per-cursor scores of every move are arrays made here; the loop over
    cursors, moves and output lengths is ``_search_loop``. ``beat_units
    (N + 1,)`` int: where each beat starts in ``1 / BEAT_DIVISIONS`` mean
    beats (``SongSpans.beat_units``; None: an even grid), so that beats
    ``[a, b)`` played add ``beat_units[b] - beat_units[a]``; ``loop_units``
    the same for the spans a loop repeats (``SongSpans.loop_units``; None:
    ``beat_units``).
    """
    n = splice.n_beats
    if n < 1:
        raise ValueError("the song has no beats")
    units = np.arange(n + 1, dtype=np.int64) * BEAT_DIVISIONS if beat_units is None else np.asarray(beat_units, np.int64)
    repeats = units if loop_units is None else np.asarray(loop_units, np.int64)
    for u in (units, repeats):
        if u.shape != (n + 1,) or np.any(np.diff(u) < 0):
            raise ValueError(f"beat_units and loop_units must be ({n + 1},) and non-decreasing")
    prot = np.zeros(n, bool) if protected is None else np.asarray(protected, bool)
    l_max = int(math.ceil(target_beats * BEAT_DIVISIONS)) + 2 * BEAT_DIVISIONS
    size_ok = _size_masks(n)
    if logprobs is not None:
        lp_t, lp_s, lp_a = (np.asarray(x, np.float64) for x in (logprobs.type, logprobs.size, logprobs.amount))
        if lp_t.shape != (n, N_TYPES):
            raise ValueError(f"log-probabilities for {lp_t.shape[0]} beats, the song has {n}")
    else:
        lp_t, lp_s, lp_a = np.zeros((n, N_TYPES)), np.zeros((n, N_SIZES)), np.zeros((n, N_TYPES, 5))
    lp_s = np.where(size_ok, lp_s, _NEG)
    other_score, other_type, other_amount = _best_other(logprobs, n, no_tail, fade_in_at_start=fade_in_at_start)
    cut_step = lp_t[:, [_CUT]] + lp_s + lp_a[:, _CUT, _NEUTRAL][:, None]
    cut_best, cut_first = _cut_table(cut_step, max(CUT_LENGTHS))
    # prot_before[k] = protected beats among the first k: span [a, b) is free iff equal at a and b.
    prot_before = np.concatenate([[0], np.cumsum(prot)])
    beats = np.arange(n)
    cut_cost = {m: splice.cost(beats - 1, np.minimum(beats + m, n)) for m in CUT_LENGTHS}
    loop_cost = {k: splice.cost(np.minimum(beats + k, n) - 1, beats) for k in set(SIZE_BEATS)}

    # Per cursor and move: the policy's part of the move's score (-inf where
    # it may not start) and the cost of each of its splices.
    move_lp = np.full((n, len(MOVES)), _NEG)
    move_cost = np.zeros((n, len(MOVES)))
    for mid, mv in enumerate(MOVES):
        b1 = np.minimum(beats + mv.beats, n)
        free = prot_before[b1] == prot_before[beats]
        if mv.kind == "cut":
            ok = (beats + mv.beats <= n) & free
            lp = cut_best[:n, mv.beats]
            move_cost[:, mid] = cut_cost[mv.beats]
        elif mv.kind == "keep":
            lp = lp_t[:, _KEEP] + lp_s[:, mv.size] + lp_a[:, _KEEP, _NEUTRAL]
            ok = size_ok[:, mv.size]
        elif mv.kind == "other":
            lp, ok = other_score + lp_s[:, mv.size], size_ok[:, mv.size] & free
        else:
            lp = lp_t[:, _LOOP] + lp_s[:, mv.size] + lp_a[:, _LOOP, mv.amount]
            ok = size_ok[:, mv.size] & free
            move_cost[:, mid] = loop_cost[mv.beats]
        move_lp[:, mid] = np.where(ok, lp, _NEG)

    weights = np.asarray(splice_weights, np.float64)
    n_w = len(weights)
    final = np.empty((n_w, 2, l_max + 1))
    bp_move = np.full((n_w, n + 1, 2, l_max + 1), -1, dtype=np.int16)
    bp_flag = np.zeros((n_w, n + 1, 2, l_max + 1), dtype=np.int8)
    _compiled_search_loop()(final, bp_move, bp_flag, weights, move_lp, move_cost, units, repeats, *_MOVE_ARRAYS)

    return SearchTables(
        target_beats,
        tuple(float(w) for w in splice_weights),
        final,
        bp_move,
        bp_flag,
        cut_first,
        other_type,
        other_amount,
        units,
        repeats,
    )


def best_walk(tables: SearchTables, k: int, splice: SpliceCost, *, accept: Any = None) -> RetimeResult:
    """The walk of weight ``k`` of ``tables`` whose output length is nearest the target (within 3 beats).

    ``accept``: optional ``callable(walk, out_beats) -> bool``; final
    lengths are tried nearest first and the first accepted one wins.
    ValueError when none is.
    """
    target_beats = tables.target_beats
    n = tables.bp_move.shape[1] - 1
    # A walk ending in a cut that runs to the end splices into the tail: already
    # charged by splice.cost(c - 1, n). Candidates: final lengths nearest the target first.
    final = tables.final[k].max(axis=0)
    order = sorted(
        (abs(L / BEAT_DIVISIONS - target_beats), -final[L], L) for L in range(len(final)) if np.isfinite(final[L])
    )
    for distance, _, L in order:
        if distance > 3:
            break
        flag = int(np.argmax(tables.final[k, :, L]))
        walk = _backtrack(
            n,
            L,
            flag,
            tables.bp_move[k],
            tables.bp_flag[k],
            tables.cut_first,
            tables.other_type,
            tables.other_amount,
            tables.beat_units,
            tables.loop_units,
        )
        out_beats = L / BEAT_DIVISIONS
        if accept is None or accept(walk, out_beats):
            return RetimeResult(walk, out_beats, float(final[L]), walk_splice_cost(walk, splice), tables.splice_weights[k])
    raise ValueError(f"no walk of the song's {n} beats reaches about {target_beats:.1f} beats")


@functools.cache
def _compiled_search_loop() -> Any:
    """``_search_loop`` compiled by numba (imported here: plain edits never load it), cached on disk."""
    import numba

    return numba.njit(cache=True, nogil=True)(_search_loop)


def _search_loop(
    final: np.ndarray,
    bp_move: np.ndarray,
    bp_flag: np.ndarray,
    weights: np.ndarray,
    move_lp: np.ndarray,
    move_cost: np.ndarray,
    beat_units: np.ndarray,
    loop_units: np.ndarray,
    move_beats: np.ndarray,
    move_splices: np.ndarray,
    move_is_cut: np.ndarray,
) -> None:
    """Fill ``bp_move``, ``bp_flag`` ``(W, N + 1, 2, l_max + 1)`` and ``final (W, 2, l_max + 1)`` in place (``L`` in units of ``beat_units``).

    The best objective of each state ``(c, flag, L)`` starts at beat 0 with
    0 output beats; from each reachable state, beat by beat, every move
    ``m`` with a finite ``move_lp (N, M)`` at ``c`` pushes ``objective +
    move_lp - weight * move_splices[m] * move_cost (N, M)`` to its end
    state; a strictly better objective wins, so ties keep the earlier cursor
    and move. A cut reads the flag-0 row only (a cut never follows a cut)
    and lands on flag 1 with the same ``L``; any other move reads the
    better flag and lands on flag 0, ``L`` grown by its span's output length
    (``beat_units (N + 1,)``, clipped at the song's end) plus ``extra`` times
    the span as a loop repeats it (``loop_units``). No move reaches further than the
    longest, so the objectives live in a ring of that many beats plus one;
    only beat ``N``'s are kept (``final``).
    """
    n_w, n1, _, l1 = bp_move.shape
    n = n1 - 1
    ring_beats = move_beats.max() + 1
    score = np.empty((ring_beats, 2, l1))
    row = np.empty(l1)
    flag_of = np.empty(l1, np.int8)
    for w in range(n_w):
        score[:] = -np.inf
        score[0, 0, 0] = 0.0
        for c in range(n):
            here = c % ring_beats
            reachable = False
            for L in range(l1):
                a, b = score[here, 0, L], score[here, 1, L]
                row[L], flag_of[L] = (b, 1) if b > a else (a, 0)
                reachable |= row[L] > -np.inf
            if reachable:
                for m in range(move_beats.shape[0]):
                    lp = move_lp[c, m]
                    if lp == -np.inf:
                        continue
                    add = lp - weights[w] * move_splices[m] * move_cost[c, m]
                    if move_is_cut[m]:
                        c2 = c + move_beats[m]
                        there = c2 % ring_beats
                        for L in range(l1):
                            cand = score[here, 0, L] + add
                            if cand > score[there, 1, L]:
                                score[there, 1, L] = cand
                                bp_move[w, c2, 1, L] = m
                                bp_flag[w, c2, 1, L] = 0
                        continue
                    c2 = min(c + move_beats[m], n)
                    there = c2 % ring_beats
                    # a loop's splices are its extra repeats
                    grow = beat_units[c2] - beat_units[c] + move_splices[m] * (loop_units[c2] - loop_units[c])
                    for L in range(l1 - grow):
                        cand = row[L] + add
                        if cand > score[there, 0, L + grow]:
                            score[there, 0, L + grow] = cand
                            bp_move[w, c2, 0, L + grow] = m
                            bp_flag[w, c2, 0, L + grow] = flag_of[L]
            score[here] = -np.inf  # free the slot for beat c + ring_beats
        final[w] = score[n % ring_beats]


def _backtrack(
    n: int,
    length: int,
    flag: int,
    bp_move: np.ndarray,
    bp_flag: np.ndarray,
    cut_first: np.ndarray,
    other_type: np.ndarray,
    other_amount: np.ndarray,
    beat_units: np.ndarray,
    loop_units: np.ndarray,
) -> list[FactoredAction]:
    """The walk ending at state ``(n, flag, length)``, from beat 0."""
    c, L = n, length
    steps: list[list[FactoredAction]] = []
    while c > 0:
        mv = MOVES[int(bp_move[c, flag, L])]
        prev_flag = int(bp_flag[c, flag, L])
        if mv.kind == "cut":
            c0 = c - mv.beats
            part, cur, m = [], c0, mv.beats
            while m > 0:
                s = int(cut_first[cur, m])
                part.append(FactoredAction(_CUT, s, _NEUTRAL))
                cur, m = cur + SIZE_BEATS[s], m - SIZE_BEATS[s]
            steps.append(part)
            c = c0
        else:
            span = mv.beats
            c0 = c - span
            if mv.kind == "keep":
                steps.append([FactoredAction(_KEEP, mv.size, _NEUTRAL)])
            elif mv.kind == "other":
                steps.append([FactoredAction(int(other_type[c0]), mv.size, int(other_amount[c0]))])
            else:
                steps.append([FactoredAction(_LOOP, mv.size, mv.amount)])
            L -= int(beat_units[c] - beat_units[c0] + mv.extra * (loop_units[c] - loop_units[c0]))
            c = c0
        flag = prev_flag
    return [a for part in reversed(steps) for a in part]


@dataclass(frozen=True)
class SongSpans:
    """A song's beats as the searches see them, derived once per analysis.

    Attributes
    ----------
    starts_s, ends_s:
        ``(N,)`` start and end of each beat's span as ``plan_from_actions``
        plays them, seconds (``engine.plan.beat_spans(fold_edges=True)``: the
        last beat ends at the song's end or one beat later, whichever is
        first, and a lead-in or tail shorter than a beat goes with its beat).
    duration_s:
        Length of the source, seconds.
    grid_starts_s, grid_ends_s:
        ``(N,)`` the grid's own spans (no lead-in or tail folded in), seconds:
        what a loop repeats.
    """

    starts_s: np.ndarray
    ends_s: np.ndarray
    duration_s: float
    grid_starts_s: np.ndarray
    grid_ends_s: np.ndarray

    @classmethod
    def of(cls, analysis: Analysis) -> SongSpans:
        """The spans of ``analysis``'s grid."""
        from editorbot.engine.plan import beat_spans

        duration_s = float(analysis.audio.duration_s)
        grid = analysis.grid
        starts, ends = beat_spans(grid.beat_times, duration_s, tempo_bpm=float(grid.tempo_bpm), fold_edges=True)
        grid_starts, grid_ends = beat_spans(grid.beat_times, duration_s, tempo_bpm=float(grid.tempo_bpm))
        return cls(starts, ends, duration_s, grid_starts, grid_ends)

    @property
    def n_beats(self) -> int:
        """N, the number of beats."""
        return len(self.starts_s)

    @property
    def grid_s(self) -> float:
        """Seconds from the first beat's start to the last beat's end."""
        return float(self.ends_s[-1] - self.starts_s[0])

    @property
    def beat_s(self) -> float:
        """Median beat length, seconds."""
        return float(np.median(self.ends_s - self.starts_s))

    @property
    def beat_units(self) -> np.ndarray:
        """``(N + 1,)`` int64: where each beat starts (and the last ends), in ``1 / BEAT_DIVISIONS`` mean beats.

        On an even grid ``BEAT_DIVISIONS * arange(N + 1)``; where beats
        differ in length a beat counts for the mean beats its span lasts
        (rounded on the running sum, so a run of beats is off by at most
        half a unit at either end), which makes the search's length a
        length in seconds.
        """
        return self._units(self.starts_s, self.ends_s)

    @property
    def loop_units(self) -> np.ndarray:
        """``beat_units`` of the spans a loop repeats (``grid_starts_s``, ``grid_ends_s``)."""
        return self._units(self.grid_starts_s, self.grid_ends_s)

    def _units(self, starts_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
        edges = np.append(starts_s, ends_s[-1]) - starts_s[0]
        return np.round(edges / (self.grid_s / self.n_beats / BEAT_DIVISIONS)).astype(np.int64)

    def target_beats(self, duration_s: float) -> float:
        """Beats of grid output that make an edit last ``duration_s`` seconds.

        The source outside the grid (``duration_s - grid_s``) is kept as it
        is; each output beat lasts the mean beat, ``grid_s / N`` seconds.
        """
        fixed_s = self.duration_s - self.grid_s
        return max(0.0, (duration_s - fixed_s) / (self.grid_s / self.n_beats))


def retime(
    analysis: Analysis,
    target_duration_s: float,
    *,
    spans: SongSpans | None = None,
    logprobs: LogProbs | None = None,
    keep: Sequence[tuple[float, float]] = (),
    splice_weight: float = 1.0,
    max_splice_cost: float | None = None,
) -> RetimeResult:
    """Walk of ``analysis``'s beats whose plan lasts ``target_duration_s`` within one beat.

    Parameters
    ----------
    analysis:
        ``engine.analysis.Analysis`` (grid, features, feature names, audio).
    target_duration_s:
        Wanted length of the edit in seconds, 50%..150% of the source.
    spans:
        ``SongSpans.of(analysis)``, when the caller has it already.
    logprobs:
        Per-beat log-probabilities from a policy (``export.runtime``); None
        runs the pure DP retimer.
    keep:
        Protected ranges ``(start_s, end_s)``.
    splice_weight:
        Weight of the splice cost against the policy's log-probabilities.
    max_splice_cost:
        Splice budget: the weight is multiplied by ``SPLICE_WEIGHT_STEPS``
        in turn until the walk's splice cost is at most this (None: one
        search at ``splice_weight``).

    Returns
    -------
    ``RetimeResult``; its walk gives a plan within one beat of the target
    (checked on the plan itself). BadRequest (naming ``target_duration_s``)
    for a target outside the range or one the protected ranges rule out.

    Examples
    --------
    >>> from engine.analysis import analyze
    >>> from engine.plan import plan_from_actions
    >>> analysis = analyze("song.wav")  # doctest: +SKIP
    >>> result = retime(analysis, 90.0, keep=[(0.0, 12.0)])  # doctest: +SKIP
    >>> plan_from_actions(analysis, result.walk).duration_s  # within one beat of 90  # doctest: +SKIP
    89.87
    """
    from editorbot.engine.plan import plan_from_actions

    spans = spans or SongSpans.of(analysis)
    src_s = spans.duration_s
    ratio = target_duration_s / src_s
    if not (MIN_TARGET_RATIO - 1e-9 <= ratio <= MAX_TARGET_RATIO + 1e-9):
        raise BadRequest(
            "target_duration_s",
            f"{target_duration_s:g} s is {ratio:.0%} of the source ({src_s:.2f} s); "
            f"targets must be {MIN_TARGET_RATIO:.0%}..{MAX_TARGET_RATIO:.0%} of it",
        )
    starts, ends, n = spans.starts_s, spans.ends_s, spans.n_beats
    if n < 2:
        raise BadInput(analysis.audio.path, "too few beats to re-time")
    beat_s = spans.beat_s
    features = np.asarray(analysis.features)[:n]
    splice = SpliceCost(features, analysis.feature_names)
    prot = protected_beats(starts, ends, keep)
    target = spans.target_beats(target_duration_s)

    def within_one_beat(walk: list[FactoredAction], out_beats: float) -> bool:
        plan = plan_from_actions(analysis, walk)
        return abs(plan.duration_s - target_duration_s) <= beat_s

    no_tail = tail_guard(starts, ends, prot)
    steps = (1.0,) if max_splice_cost is None or logprobs is None else SPLICE_WEIGHT_STEPS
    try:
        for attempt in range(RETARGET_TRIES):
            tables = search_tables(
                logprobs,
                splice,
                target,
                protected=prot,
                no_tail=no_tail,
                splice_weights=[splice_weight * s for s in steps],
                fade_in_at_start=bool(starts[0] == 0.0),
                beat_units=spans.beat_units,
                loop_units=spans.loop_units,
            )
            try:
                result = best_walk(tables, 0, splice, accept=within_one_beat)
                break
            except ValueError:
                # The beat target assumes every kept beat lasts the mean beat; on
                # an uneven grid (rubato, a beat the tracker doubled) the walk
                # keeps shorter or longer ones, so aim again by what it lasted.
                nearest = best_walk(tables, 0, splice).walk
                lasted = plan_from_actions(analysis, nearest).duration_s
                if attempt == RETARGET_TRIES - 1 or lasted <= 0.0:
                    raise
                target *= target_duration_s / lasted
        for k in range(1, len(steps)):
            if max_splice_cost is None or result.splice_cost <= max_splice_cost + SPLICE_COST_TOLERANCE:
                break
            try:
                result = best_walk(tables, k, splice, accept=within_one_beat)
            except ValueError:
                break  # a heavier splice weight found no walk of the length: the lighter one's stands
    except ValueError as err:
        raise BadRequest("target_duration_s", f"{target_duration_s:g} s cannot be reached: {err}") from None
    log.info(
        "retime to %.2f s (%.1f beats): %d steps, splice cost %.3f, %s (splice weight %g)",
        target_duration_s,
        target,
        len(result.walk),
        result.splice_cost,
        "policy-guided" if logprobs is not None else "pure DP",
        result.splice_weight,
    )
    return result
