"""Each reward term moves the right way."""

from __future__ import annotations

import numpy as np
import pytest

from editorbot.engine.actions import ActionType as T
from editorbot.engine.actions import Amount as A
from editorbot.engine.actions import Size as S
from editorbot.training.dataset import Episode
from editorbot.training.reward import (
    TERMS,
    EditState,
    ReferenceStats,
    RewardWeights,
    SongReward,
    output_beats,
    step_reward,
)

N = 64


def song(labels: np.ndarray | None = None, target: float | None = None, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    # a smooth song: neighbouring beats are alike
    feats = np.cumsum(rng.normal(scale=0.1, size=(N, 109)), axis=0).astype(np.float32)
    return Episode("s", feats, np.arange(0, N, 4), np.arange(0, N, 16), labels=labels, target_beats=target)


def walk(ep: Episode, steps: list[tuple[tuple[int, int, int], int]], reference=None, target=None, weights=None):
    """Apply ``[(action, span)]`` from beat 0; the per-step reward dicts."""
    sr = SongReward.of(ep, reference)
    state = EditState.start(sr.n_bars)
    out, c = [], 0
    for action, span in steps:
        stop = min(c + span, N)
        out.append(step_reward(ep, sr, state, action, c, stop, weights or RewardWeights(),
                               reference=reference, target_beats=target))
        c = stop
    return out, state


def test_every_term_is_reported_and_total_is_their_sum() -> None:
    r, _ = walk(song(), [((T.KEEP, S.BAR, A.NEUTRAL), 4)])
    assert set(r[0]) == set(TERMS) | {"total"}
    assert r[0]["total"] == pytest.approx(sum(r[0][k] for k in TERMS))


def test_label_agreement() -> None:
    labels = np.tile(np.array([T.GAIN, S.BAR, A.POS_SMALL]), (N, 1))
    ep = song(labels)
    exact, _ = walk(ep, [((T.GAIN, S.BAR, A.POS_SMALL), 4)])
    type_only, _ = walk(ep, [((T.GAIN, S.BEAT, A.POS_LARGE), 1)])
    wrong, _ = walk(ep, [((T.CUT, S.BAR, A.NEUTRAL), 4)])
    assert exact[0]["label"] > 0 > wrong[0]["label"]
    assert exact[0]["label"] / 4 > type_only[0]["label"] / 1 > wrong[0]["label"] / 4
    none, _ = walk(song(None), [((T.CUT, S.BAR, A.NEUTRAL), 4)])
    assert none[0]["label"] == 0


def test_splice_continuity() -> None:
    ep = song()
    ep.features[8:12] += 50.0  # beats 8..11 are nothing like the rest
    keep4 = ((T.KEEP, S.BAR, A.NEUTRAL), 4)
    cut4 = ((T.CUT, S.BAR, A.NEUTRAL), 4)
    smooth, _ = walk(ep, [keep4, keep4, keep4])
    jump, _ = walk(ep, [keep4, cut4, keep4])  # beat 3 joined to beat 8
    assert smooth[2]["continuity"] == 0
    assert jump[2]["continuity"] < 0
    mild, _ = walk(ep, [keep4, keep4, keep4, cut4, keep4])  # beat 11 -> 16: back from the odd part
    assert jump[2]["continuity"] <= mild[4]["continuity"] <= 0
    loop_odd, _ = walk(ep, [keep4, ((T.LOOP, S.TWO_BARS, A.NEG_LARGE), 8)])  # wraps 11 -> 4
    loop_plain, _ = walk(ep, [keep4, keep4, keep4, ((T.LOOP, S.BAR, A.NEG_LARGE), 4)])  # wraps 15 -> 12
    assert loop_odd[1]["continuity"] < loop_plain[3]["continuity"] <= 0


def test_alignment_of_edit_boundaries() -> None:
    ep = song()
    on_phrase, _ = walk(ep, [((T.REVERSE, S.PHRASE, A.NEUTRAL), 16)])
    on_bar, _ = walk(ep, [((T.KEEP, S.BAR, A.NEUTRAL), 4), ((T.REVERSE, S.BAR, A.NEUTRAL), 4)])
    off, _ = walk(ep, [((T.KEEP, S.BEAT, A.NEUTRAL), 1), ((T.REVERSE, S.BAR, A.NEUTRAL), 4)])
    assert on_phrase[0]["alignment"] > on_bar[1]["alignment"] > off[1]["alignment"]
    keep, _ = walk(ep, [((T.KEEP, S.BEAT, A.NEUTRAL), 1)])
    assert keep[0]["alignment"] == 0


def test_duration_match_at_the_end() -> None:
    ep = song()
    keep_all = [((T.KEEP, S.PHRASE, A.NEUTRAL), 16)] * 4
    cut_one = [((T.CUT, S.PHRASE, A.NEUTRAL), 16)] + keep_all[1:]
    hit, _ = walk(ep, cut_one, target=48.0)
    miss, _ = walk(ep, keep_all, target=48.0)
    far, _ = walk(ep, [((T.LOOP, S.PHRASE, A.POS_LARGE), 16)] + keep_all[1:], target=48.0)
    assert hit[-1]["duration"] == pytest.approx(RewardWeights().duration)
    assert hit[-1]["duration"] > miss[-1]["duration"] > far[-1]["duration"]
    assert all(r["duration"] == 0 for r in hit[:-1])
    no_target, _ = walk(ep, keep_all)
    assert no_target[-1]["duration"] == 0


def test_edit_density() -> None:
    ep = song()
    beat_edits = [((T.GAIN, S.BEAT, A.POS_SMALL), 1)] * 4
    r, state = walk(ep, beat_edits)
    assert r[0]["density"] == 0 and r[1]["density"] < 0 and r[3]["density"] < r[1]["density"]
    assert state.edits_in_bar[0] == 4
    spread, _ = walk(ep, [((T.GAIN, S.BAR, A.POS_SMALL), 4)] * 4)
    assert all(x["density"] == 0 for x in spread)


def test_reference_statistics() -> None:
    ep = song()
    ep.features[16:32, :52] += 20.0  # one loud phrase; finished tracks are like the rest
    quiet = np.concatenate([ep.features[:16], ep.features[32:]])
    ref = ReferenceStats.from_features([quiet, quiet[::-1]])
    keep = ((T.KEEP, S.PHRASE, A.NEUTRAL), 16)
    cut_loud, _ = walk(ep, [keep, ((T.CUT, S.PHRASE, A.NEUTRAL), 16), keep, keep], reference=ref)
    keep_all, _ = walk(ep, [keep] * 4, reference=ref)
    loop_loud, _ = walk(ep, [keep, ((T.LOOP, S.PHRASE, A.POS_LARGE), 16), keep, keep], reference=ref)
    assert cut_loud[-1]["reference"] > 0
    assert keep_all[-1]["reference"] == pytest.approx(0, abs=1e-9)
    assert loop_loud[-1]["reference"] < 0
    none, _ = walk(ep, [keep] * 4)
    assert none[-1]["reference"] == 0


def test_weights_scale_and_switch_off_terms() -> None:
    labels = np.tile(np.array([T.KEEP, S.BAR, A.NEUTRAL]), (N, 1))
    ep = song(labels)
    base, _ = walk(ep, [((T.KEEP, S.BAR, A.NEUTRAL), 4)])
    double, _ = walk(ep, [((T.KEEP, S.BAR, A.NEUTRAL), 4)], weights=RewardWeights(label=2.0))
    off, _ = walk(ep, [((T.KEEP, S.BAR, A.NEUTRAL), 4)], weights=RewardWeights(label=0.0))
    assert double[0]["label"] == pytest.approx(2 * base[0]["label"]) and off[0]["label"] == 0
    with pytest.raises(ValueError):
        RewardWeights(density=-1)


def test_output_beats() -> None:
    assert output_beats(T.KEEP, A.NEUTRAL, 4) == 4
    assert output_beats(T.CUT, A.NEUTRAL, 4) == 0
    assert output_beats(T.LOOP, A.NEG_LARGE, 4) == 8  # one extra repeat
    assert output_beats(T.SPEED, A.POS_LARGE, 5) == pytest.approx(4)
