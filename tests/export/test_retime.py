"""export.retime: target durations met within one beat (50%..150%) by the
policy-guided search and the pure DP retimer, keep ranges preserved, the
splice cost shared and reported next to the baseline."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from editorbot.engine.actions import SIZE_BEATS
from editorbot.engine.errors import BadRequest
from editorbot.engine.plan import beat_spans, plan_from_actions
from editorbot.engine.render import render_plan
from editorbot.export.retime import retime
from editorbot.export.runtime import OnnxPolicy, SongInputs, song_logprobs
from editorbot.export.splice import SpliceCost, protected_beats, walk_splice_cost
from editorbot.export.walk import plan_analysis
from tests.export import median_beat_s, song_analysis, tiny_model

logger = logging.getLogger(__name__)

RATIOS = (0.5, 0.65, 0.8, 1.0, 1.2, 1.35, 1.5)
SONGS = ((21, 22.0), (22, 38.0))


@pytest.mark.parametrize("seed,duration_s", SONGS)
def test_target_duration_met_within_one_beat(seed: int, duration_s: float) -> None:
    analysis = song_analysis(seed, duration_s)
    assert 20.0 <= analysis.audio.duration_s <= 42.0
    beat_s = median_beat_s(analysis)
    model, _ = tiny_model()
    lp = song_logprobs(OnnxPolicy(model, device="cpu"), SongInputs.of(analysis))
    for ratio in RATIOS:
        target = ratio * analysis.audio.duration_s
        for logprobs in (None, lp):
            result = retime(analysis, target, logprobs=logprobs)
            plan = plan_from_actions(analysis, result.walk)
            assert abs(plan.duration_s - target) <= beat_s, (ratio, logprobs is None, plan.duration_s, target)
            if ratio != 1.0:
                assert any(a.type in ("CUT", "LOOP") for a in plan.actions)


def test_keep_ranges_survive_unchanged() -> None:
    analysis = song_analysis(21, 22.0)
    audio = analysis.audio
    keep = [(4.0, 7.5), (15.0, 17.0)]
    starts, ends = beat_spans(analysis.grid.beat_times, audio.duration_s, tempo_bpm=analysis.grid.tempo_bpm)
    prot = protected_beats(starts, ends, keep)
    model, _ = tiny_model()
    lp = song_logprobs(OnnxPolicy(model, device="cpu"), SongInputs.of(analysis))
    for ratio in (0.55, 1.45):
        for logprobs in (None, lp):
            result = retime(analysis, ratio * audio.duration_s, logprobs=logprobs, keep=keep)
            plan = plan_from_actions(analysis, result.walk)
            rendered = render_plan(plan, audio.samples, audio.sample_rate)
            for lo, hi in keep:
                # the beats covering the range play once, as one plain KEEP run
                b = np.flatnonzero(prot & (starts < hi) & (ends > lo))
                s0, s1 = starts[b[0]], ends[b[-1]]
                covering = [s for s in plan.segments if s.src_start_s < s1 - 1e-6 and s.src_end_s > s0 + 1e-6]
                assert len(covering) == 1, (ratio, [(s.src_start_s, s.src_end_s, s.action) for s in covering])
                seg = covering[0]
                assert seg.action == "KEEP" and not seg.effects and seg.gain_db == 0.0 and seg.rate == 1.0
                assert seg.src_start_s <= s0 + 1e-6 and seg.src_end_s >= s1 - 1e-6
                # and the audio is the source's (away from the splice crossfades)
                sr = audio.sample_rate
                a = int(round((s0 - seg.src_start_s + seg.dst_start_s) * sr)) + sr // 20
                n = int((s1 - s0) * sr) - sr // 10
                src0 = int(round(s0 * sr)) + sr // 20
                np.testing.assert_allclose(rendered[:, a : a + n], audio.samples[:, src0 : src0 + n], atol=1e-5)


def test_policy_retime_reports_continuity_next_to_baseline() -> None:
    analysis = song_analysis(22, 38.0)
    model, _ = tiny_model()
    policy = OnnxPolicy(model, device="cpu")
    for ratio in (0.6, 1.3):
        decision = plan_analysis(analysis, policy, target_duration_s=ratio * analysis.audio.duration_s)
        assert decision.baseline_splice_cost is not None
        splice = SpliceCost(analysis.features, analysis.feature_names)
        assert decision.splice_cost == pytest.approx(walk_splice_cost(decision.walk, splice))
        # the pure DP minimises exactly this cost over the same moves and length, and it is
        # the policy search's budget: the splice weight rises until the policy meets it
        assert decision.splice_cost == pytest.approx(decision.baseline_splice_cost, abs=1e-6)
        assert decision.splice_weight is not None and decision.splice_weight >= 1.0
        assert decision.splice_cost > 0 and decision.plan.model.name == "tiny"
    # without the budget, the random tiny policy buys its preferences with worse splices
    lp = song_logprobs(policy, SongInputs.of(analysis))
    free = retime(analysis, 0.6 * analysis.audio.duration_s, logprobs=lp)
    capped = retime(analysis, 0.6 * analysis.audio.duration_s, logprobs=lp, max_splice_cost=0.0)
    assert free.splice_cost > capped.splice_cost and capped.splice_weight == 1.0e6


def test_policy_search_score_is_the_walks_logprob_less_its_weighted_splices() -> None:
    """Re-scoring the returned walk action by action gives the search's own objective."""
    analysis = song_analysis(22, 38.0)
    model, _ = tiny_model()
    lp = song_logprobs(OnnxPolicy(model, device="cpu"), SongInputs.of(analysis))
    n = len(lp.type)
    for ratio, weight in ((0.6, 1.0), (1.3, 4.0), (0.8, 64.0)):
        result = retime(analysis, ratio * analysis.audio.duration_s, logprobs=lp, splice_weight=weight)
        cursor, logprob = 0, 0.0
        for a in result.walk:
            logprob += (
                lp.type[cursor, a.type_idx] + lp.size[cursor, a.size_idx] + lp.amount[cursor, a.type_idx, a.amount_idx]
            )
            cursor = min(cursor + SIZE_BEATS[a.size_idx], n)
        assert cursor == n and result.splice_weight == weight
        assert any(a.type == "CUT" for a in result.walk) or any(a.type == "LOOP" for a in result.walk)
        assert result.score == pytest.approx(logprob - weight * result.splice_cost, rel=1e-9, abs=1e-9)


def test_pure_dp_objective_is_the_splice_cost() -> None:
    analysis = song_analysis(21, 22.0)
    result = retime(analysis, 0.7 * analysis.audio.duration_s)
    splice = SpliceCost(analysis.features, analysis.feature_names)
    assert result.score == pytest.approx(-result.splice_cost)
    assert result.splice_cost == pytest.approx(walk_splice_cost(result.walk, splice))


def test_bad_targets_and_keep_ranges() -> None:
    analysis = song_analysis(21, 22.0)
    with pytest.raises(BadRequest, match="target_duration_s.*50%..150%"):
        retime(analysis, 0.3 * analysis.audio.duration_s)
    with pytest.raises(BadRequest, match="target_duration_s"):
        retime(analysis, 1.7 * analysis.audio.duration_s)


def test_targets_are_met_on_an_uneven_grid() -> None:
    """Where some beats last twice the others (a tracker that skipped beats, rubato), a walk of the
    target's mean-beat count misses it by more than a beat: the search aims again by what it lasted."""
    import dataclasses

    analysis = song_analysis(22, 38.0)
    n = analysis.n_beats
    kept = np.array([i for i in range(n) if i % 3 != 1 or i > n // 2])  # the first half: every third beat doubled
    grid = dataclasses.replace(
        analysis.grid,
        beat_times=analysis.grid.beat_times[kept],
        downbeats=np.arange(0, len(kept), 4),
        phrase_starts=np.arange(0, len(kept), 16),
    )
    uneven = dataclasses.replace(analysis, grid=grid, features=analysis.features[kept])
    beat_s = median_beat_s(uneven)
    for ratio in (0.5, 0.6, 0.7):
        target = ratio * uneven.audio.duration_s
        plan = plan_from_actions(uneven, retime(uneven, target).walk)
        assert abs(plan.duration_s - target) <= beat_s, (ratio, plan.duration_s, target)
