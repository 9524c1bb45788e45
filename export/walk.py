"""The policy's walk over a song, and the song -> EditPlan calls built on it.

- ``plan_file(path, policy)``: decode and analyse a file, decide, return
  the ``EditPlan`` (one call);
- ``plan_analysis(analysis, policy)``: the same from an ``Analysis``;
  ``target_duration_s`` and ``keep`` run the length-constrained search of
  ``export.retime`` over the policy's log-probabilities;
- ``policy_walk(policy, song)``: the action walk (greedy, or sampled
  with a seed), evaluated in whole-song batches (``export.runtime``), every
  step under ``WalkRules`` (``walk_rules``: the shortest edit
  ``--min-keep`` allows, fades to and from silence).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editorbot.engine.actions import (
    AMOUNT_MASK,
    N_AMOUNTS,
    N_TYPES,
    SIZE_BEATS,
    TYPES,
    FactoredAction,
    output_beats,
)
from editorbot.engine.analysis import Analysis
from editorbot.engine.errors import BadInput, BadRequest
from editorbot.engine.observation import history_windows, mark_done
from editorbot.engine.plan import EditPlan
from editorbot.export.request import MIN_KEEP
from editorbot.export.retime import SongSpans
from editorbot.export.runtime import (
    PolicyModel,
    SongInputs,
    SongLogProbs,
    WalkHistory,
    check_song,
    decide,
    evaluate,
    policy_inputs,
    song_logprobs,
)
from editorbot.export.splice import SpliceCost, protected_beats, tail_guard, walk_splice_cost

log = logging.getLogger(__name__)

_CUT, _KEEP = TYPES.index("CUT"), TYPES.index("KEEP")
_SILENCE, _FADE_IN, _FADE_OUT = TYPES.index("SILENCE"), TYPES.index("FADE_IN"), TYPES.index("FADE_OUT")


def _output_factors() -> np.ndarray:
    """``(N_TYPES, N_AMOUNTS)`` output seconds per source second of each (type, amount)
    (``engine.actions.output_beats`` of one beat; 1 where the amount is not the type's, 0 for CUT)."""
    f = np.ones((N_TYPES, N_AMOUNTS))
    for t, a in zip(*np.nonzero(AMOUNT_MASK)):
        f[t, a] = output_beats(int(t), int(a), 1)
    f[_CUT] = 0.0
    return f


_OUTPUT_FACTOR = _output_factors()
#: Types allowed while the output is faded out (after a FADE_OUT, until a FADE_IN).
_WHILE_FADED = np.isin(np.arange(N_TYPES), [_FADE_IN, _CUT, _SILENCE])


@dataclass
class WalkRules:
    """What every step of a policy walk must respect, whatever the policy prefers.

    - Length: the edit lasts at least ``min_out_s`` seconds. A step is
      allowed only if keeping every beat after it (and the tail, unless
      the step ends the walk faded out) still reaches it; KEEP always
      passes when the walk so far did, so the walk can always go on.
    - Fades: after a FADE_OUT only FADE_IN, CUT or SILENCE until a
      FADE_IN (so a fade-out is followed by a fade-in, silence or the end,
      never by a jump back up); a FADE_IN only where the output is silent
      (its start, after a fade-out or a SILENCE), so it rises from silence.
      Protected beats (``--keep``) are exempt: they allow KEEP only.
    - A last beat the song's end clips to under half a beat
      (``sliver_last``) is cut, or kept only after a KEEP (which it then
      extends): on its own it would be a sliver of sound.

    Attributes
    ----------
    beat_s:
        ``(N,)`` seconds of each beat's source span (``engine.plan.beat_spans``
        with ``fold_edges``).
    lead_s, tail_s:
        Source audio before the first span / after the last one, kept as is.
    min_out_s:
        Shortest edit allowed, seconds (0: no length rule).
    sliver_last:
        The last beat lasts under half the median beat.
    """

    beat_s: np.ndarray
    lead_s: float = 0.0
    tail_s: float = 0.0
    min_out_s: float = 0.0
    sliver_last: bool = False

    def __post_init__(self) -> None:
        self.beat_s = np.asarray(self.beat_s, dtype=np.float64)
        self._rest = np.concatenate([np.cumsum(self.beat_s[::-1])[::-1], [0.0]])  # (N + 1,) seconds from beat i on

    @property
    def max_out_s(self) -> float:
        """The longest edit without loops or slow-downs: everything kept."""
        return self.lead_s + float(self._rest[0]) + self.tail_s

    def output_s(self, a: FactoredAction, cursor: int) -> float:
        """Output seconds of step ``a`` at ``cursor``."""
        b1 = min(cursor + a.beats, len(self.beat_s))
        return float(_OUTPUT_FACTOR[a.type_idx, a.amount_idx] * (self._rest[cursor] - self._rest[b1]))

    def allowed(
        self, cursor: int, out_s: float, faded: bool, silent: bool, protected: bool = False, prev_type: int | None = None
    ) -> np.ndarray:
        """``(N_TYPES, N_SIZES, N_AMOUNTS)`` bool: the steps allowed at ``cursor``.

        ``out_s``: output seconds of the steps so far (lead-in included);
        ``faded``: after a FADE_OUT with no FADE_IN since; ``silent``: the
        output so far ends in silence (or is empty); ``prev_type``: the
        type of the step before.
        """
        n = len(self.beat_s)
        b1 = np.minimum(cursor + np.asarray(SIZE_BEATS), n)  # (S,)
        span = self._rest[cursor] - self._rest[b1]  # (S,) seconds
        out = _OUTPUT_FACTOR[:, None, :] * span[None, :, None]  # (T, S, A)
        ends_faded = (np.arange(N_TYPES) == _FADE_OUT) | (faded & _WHILE_FADED & (np.arange(N_TYPES) != _FADE_IN))
        tail = np.where(ends_faded[:, None] & (b1 == n)[None, :], 0.0, self.tail_s)  # (T, S)
        best = out_s + out + self._rest[b1][None, :, None] + tail[:, :, None]
        ok = best >= self.min_out_s - 1e-9
        if not protected:
            types_ok = _WHILE_FADED.copy() if faded else np.ones(N_TYPES, bool)
            types_ok[_FADE_IN] = silent
            ok &= types_ok[:, None, None]
            if self.sliver_last and cursor == n - 1:
                sliver_ok = np.isin(np.arange(N_TYPES), [_CUT] + ([_KEEP] if prev_type == _KEEP else []))
                if (ok & sliver_ok[:, None, None]).any():
                    ok &= sliver_ok[:, None, None]
        return ok


def step_state(a: FactoredAction, faded: bool, silent: bool) -> tuple[bool, bool]:
    """``(faded, silent)`` after step ``a`` (see ``WalkRules.allowed``)."""
    t = a.type_idx
    faded = t == _FADE_OUT or (faded and t in (_CUT, _SILENCE))
    silent = t in (_FADE_OUT, _SILENCE) or (silent and t == _CUT)
    return faded, silent


@dataclass
class WalkResult:
    """A policy walk and what it cost.

    Attributes
    ----------
    walk:
        Factored actions from beat 0.
    cursors:
        The beat each step starts at.
    rounds:
        Graph calls until every step's log-probs were computed under its
        own walk's history.
    evaluated:
        Cursors evaluated in all.
    confidence:
        Per step, the policy's probability of the (type, size, amount) it
        took there, under the walk's own history (``choice_probability``).
    """

    walk: list[FactoredAction]
    cursors: list[int]
    rounds: int
    evaluated: int
    confidence: list[float] = field(default_factory=list)


def policy_walk(
    policy: PolicyModel,
    song: SongInputs,
    *,
    seed: int | None = None,
    greedy: bool | None = None,
    protected: np.ndarray | None = None,
    no_tail: np.ndarray | None = None,
    initial: SongLogProbs | None = None,
    rules: WalkRules | None = None,
) -> WalkResult:
    """Walk the song with the policy: greedy, or sampled reproducibly from ``seed``.

    The decision at a cursor depends on what was done to the ``K`` beats
    before it (the ``done`` input), which one batched call cannot know in
    advance. The walk is found by fixed-point iteration: round 0 evaluates
    every beat with the "all kept" history; each round walks the song with
    the latest log-probs, finds the steps whose log-probs were computed
    under another history than the walk's own, and evaluates all of those
    in one call with the walk's history. The first such step is exact after
    its round, so the loop ends, and its result is the walk a step-by-step
    evaluation would take. Sampling draws one uniform per (beat, factor)
    from ``seed``, so a cursor's choice depends only on its log-probs.

    Parameters
    ----------
    seed:
        Sample with this seed; None is greedy (the most likely type, then
        size, then amount).
    greedy:
        Force greedy (True) or sampling (False, needs ``seed``).
    protected:
        ``(N,)`` bool beats only KEEP may cover (``--keep``).
    no_tail:
        ``(N,)`` bool beats where no reverb or delay may start (their tails
        would reach a protected beat; ``export.splice.tail_guard``).
    initial:
        Round 0's log-probs when already computed (``song_logprobs``).
    rules:
        Length and fade rules every step obeys (``WalkRules``); None: none.
    """
    check_song(policy, song)
    n, k = song.n_beats, policy.spec.history
    greedy = seed is None if greedy is None else greedy
    if not greedy and seed is None:
        raise ValueError("sampling needs a seed")
    uniforms = None if greedy else np.random.default_rng(seed).random((n, 3))
    lp0 = initial if initial is not None else song_logprobs(policy, song)
    # Per cursor: the latest log-probs and the done rows they saw.
    cache_lp = (lp0.type.copy(), lp0.size.copy(), lp0.amount.copy())
    cache_done = history_windows(WalkHistory.keep_all(n).done, np.arange(n), k)  # (N, K, 26)
    evaluated, rounds = n, 1
    while True:
        steps: list[tuple[int, FactoredAction]] = []
        stale: list[int] = []
        cursor = 0
        history = WalkHistory.empty(n)
        out_s = rules.lead_s if rules is not None else 0.0
        faded, silent = False, rules is None or rules.lead_s == 0.0
        while cursor < n:
            if not np.array_equal(history_windows(history.done, np.array([cursor]), k)[0], cache_done[cursor]):
                stale.append(cursor)
            allowed = None
            if rules is not None:
                allowed = rules.allowed(
                    cursor,
                    out_s,
                    faded,
                    silent,
                    protected is not None and bool(protected[cursor]),
                    steps[-1][1].type_idx if steps else None,
                )
            a = decide(
                cache_lp[0][cursor],
                cache_lp[1][cursor],
                cache_lp[2][cursor],
                cursor,
                n,
                protected=protected,
                no_tail=no_tail,
                u=None if uniforms is None else uniforms[cursor],
                allowed=allowed,
            )
            steps.append((cursor, a))
            b1 = min(cursor + a.beats, n)
            if rules is not None:
                out_s += rules.output_s(a, cursor)
                faded, silent = step_state(a, faded, silent)
            mark_done(history.done, cursor, b1, a.type_idx, a.amount_idx)
            cursor = b1
        # Every step whose log-probs came from another history is stale. The
        # first one's history is made of exact steps, so evaluating it with
        # the walk's own history makes it exact for good: each round progresses.
        if not stale:
            break
        cur = np.asarray(stale)
        inputs = policy_inputs(song, cur, WalkHistory.of(steps, n), policy.spec)
        lp = evaluate(policy, inputs, n)
        cache_lp[0][cur], cache_lp[1][cur], cache_lp[2][cur] = lp.type, lp.size, lp.amount
        cache_done[cur] = inputs.done
        evaluated += len(cur)
        rounds += 1
    log.debug("policy walk: %d steps, %d rounds, %d cursors evaluated", len(steps), rounds, evaluated)
    confidence = [choice_probability(cache_lp[0][c], cache_lp[1][c], cache_lp[2][c], a) for c, a in steps]
    return WalkResult([a for _, a in steps], [c for c, _ in steps], rounds, evaluated, confidence)


def choice_probability(lp_type: np.ndarray, lp_size: np.ndarray, lp_amount: np.ndarray, a: FactoredAction) -> float:
    """The policy's probability (0-1) of choosing ``a`` from one cursor's log-probs
    (``(20,)``, ``(5,)``, ``(20, 5)``): type, size, and amount given the type. The
    policy's own distribution, before the walk's rules or ``--keep`` narrow it."""
    logp = lp_type[a.type_idx] + lp_size[a.size_idx] + lp_amount[a.type_idx, a.amount_idx]
    return float(np.exp(logp)) if np.isfinite(logp) else 0.0


def walk_confidence(lp: SongLogProbs, walk: Sequence[FactoredAction]) -> list[float]:
    """``choice_probability`` of each step of a walk from beat 0 under one set of log-probs
    (every beat's, as ``song_logprobs`` gives them): the length-constrained search's walks."""
    out, cursor = [], 0
    n = len(lp.cursors)
    for a in walk:
        out.append(choice_probability(lp.type[cursor], lp.size[cursor], lp.amount[cursor], a))
        cursor = min(cursor + a.beats, n)
    return out


# ----------------------------------------------------------------------------- plans


@dataclass
class Decision:
    """What ``plan_analysis`` decided and how long it took.

    Attributes
    ----------
    plan:
        The ``EditPlan`` (``plan.model`` names the policy).
    walk:
        Its factored actions.
    policy_s:
        Seconds spent running the policy.
    search_s:
        Seconds spent walking/searching over its outputs.
    splice_cost:
        Total ``export.splice.SpliceCost`` of the walk.
    baseline_splice_cost:
        With a target duration: the pure DP retimer's cost for the same
        target (None otherwise).
    rounds:
        Batched evaluation rounds (policy walk), 1 for the search.
    splice_weight:
        With a target duration: the splice weight the search ended at
        (raised until the walk splices no worse than the pure DP).
    """

    plan: EditPlan
    walk: list[FactoredAction]
    policy_s: float
    search_s: float
    splice_cost: float
    baseline_splice_cost: float | None = None
    rounds: int = 1
    splice_weight: float | None = None


def plan_analysis(
    analysis: Analysis,
    policy: PolicyModel,
    *,
    seed: int | None = None,
    target_duration_s: float | None = None,
    keep: Sequence[tuple[float, float]] = (),
    splice_weight: float = 1.0,
    baseline: bool = True,
    min_keep: float = MIN_KEEP,
) -> Decision:
    """Analysis -> plan.

    Without a target: the policy walk (greedy, or sampled from ``seed``),
    protected ranges kept, under ``WalkRules``: the edit keeps at least
    ``min_keep`` of the source's length (0..1) and its fades go to and
    from silence. With ``target_duration_s``: the length-constrained
    search over the policy's log-probabilities (``export.retime``); with
    ``baseline`` the pure DP retimer runs first and its splice cost is the
    search's budget (``retime(max_splice_cost=)``) and is reported.

    Examples
    --------
    >>> from engine.analysis import analyze
    >>> decision = plan_analysis(analyze("song.wav"), load_policy(), target_duration_s=90.0)  # doctest: +SKIP
    >>> decision.plan.duration_s, decision.splice_cost <= decision.baseline_splice_cost  # doctest: +SKIP
    (89.87, True)
    """
    from editorbot.engine.plan import ModelInfo, plan_from_actions
    from editorbot.export import retime as rt

    n = analysis.n_beats
    if n < 1:
        raise BadInput(analysis.audio.path, "no beats found: nothing to decide on")
    spans = rt.SongSpans.of(analysis)
    starts, ends = spans.starts_s, spans.ends_s
    song = SongInputs.of(analysis, policy.spec)
    song.features = song.features[: len(starts)]
    features = np.asarray(analysis.features, dtype=np.float32)[: len(starts)]
    protected = protected_beats(starts, ends, keep) if keep else None
    no_tail = tail_guard(starts, ends, protected) if protected is not None else None
    splice = SpliceCost(features, analysis.feature_names)
    t0 = time.perf_counter()
    base_cost, weight_used = None, None
    if target_duration_s is None:
        rules = walk_rules(analysis, min_keep, spans=spans)
        lp = song_logprobs(policy, song)
        t1 = time.perf_counter()
        result = policy_walk(policy, song, seed=seed, protected=protected, no_tail=no_tail, initial=lp, rules=rules)
        t2 = time.perf_counter()
        # rounds after the first are policy time too; split by cursors evaluated
        extra = (t2 - t1) * (result.evaluated - len(starts)) / max(result.evaluated, 1)
        policy_s, search_s = (t1 - t0) + extra, (t2 - t1) - extra
        walk, rounds, confidence = result.walk, result.rounds, result.confidence
        cost = walk_splice_cost(walk, splice)
    else:
        lp = song_logprobs(policy, song, target_beats=spans.target_beats(target_duration_s))
        t1 = time.perf_counter()
        if baseline:  # the pure DP's splice cost is the policy search's budget
            base_cost = rt.retime(analysis, target_duration_s, spans=spans, keep=keep).splice_cost
        res = rt.retime(
            analysis, target_duration_s, spans=spans, logprobs=lp, keep=keep, splice_weight=splice_weight,
            max_splice_cost=base_cost,
        )
        t2 = time.perf_counter()
        policy_s, search_s = t1 - t0, t2 - t1
        walk, rounds, cost = res.walk, 1, res.splice_cost
        weight_used = res.splice_weight
        confidence = walk_confidence(lp, walk)
    plan = plan_from_actions(analysis, walk, confidence=confidence)
    spec = policy.spec
    plan.model = ModelInfo(name=spec.name, version=spec.version, sha256=spec.sha256)
    return Decision(plan, walk, policy_s, search_s, cost, base_cost, rounds, weight_used)


def walk_rules(analysis: Analysis, min_keep: float = MIN_KEEP, *, spans: SongSpans | None = None) -> WalkRules:
    """``WalkRules`` for an analysed song: its beat spans as ``plan_from_actions``
    builds them (``spans``, derived when not given) and the shortest edit
    ``min_keep`` (a share of the source, 0..1) allows. BadRequest naming
    ``min_keep`` outside 0..1 or when no edit keeps that much."""
    if not 0.0 <= min_keep <= 1.0:
        raise BadRequest("min_keep", f"must be a share of the source between 0 and 1, got {min_keep:g}")
    spans = spans or SongSpans.of(analysis)
    src = spans.duration_s
    starts, ends = spans.starts_s, spans.ends_s
    lead = float(starts[0]) if len(starts) else 0.0
    tail = src - float(ends[-1]) if len(ends) else 0.0
    beat_s = ends - starts
    sliver = len(beat_s) >= 2 and beat_s[-1] < 0.5 * float(np.median(beat_s))
    rules = WalkRules(beat_s, lead_s=lead, tail_s=max(tail, 0.0), min_out_s=min_keep * src, sliver_last=bool(sliver))
    if rules.max_out_s < rules.min_out_s - 1e-6:
        raise BadRequest(
            "min_keep",
            f"no edit of the beats of {analysis.audio.path} can keep {min_keep:.0%} of it"
            f" ({rules.max_out_s:.2f} of {src:.2f} s at most); ask for less",
        )
    return rules


def plan_file(path: str | os.PathLike, policy: PolicyModel, **options: Any) -> Decision:
    """File -> plan: ``engine.analysis.analyze`` then ``plan_analysis`` (same options)."""
    from editorbot.engine.analysis import analyze

    return plan_analysis(analyze(path), policy, **options)
