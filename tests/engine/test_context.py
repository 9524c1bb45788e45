"""engine.context: per-bar ranks, levels and repeats, on feature matrices and on an analysed song."""

from __future__ import annotations

import numpy as np
import pytest

from editorbot.engine.context import (
    CONTEXT_NAMES,
    REPEAT_GAP,
    bar_index,
    context_columns,
    context_feature_names,
    reads_context,
    with_context,
)
from editorbot.engine.features import feature_names

NAMES = feature_names()
RANK, LOUDER, LEVEL, REPEAT, FIRST = range(len(CONTEXT_NAMES))


def _song(bar_levels: list[float], bar_timbres: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 109)`` features of 4-beat bars with the given RMS levels and timbre patterns, and downbeats."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(max(bar_timbres) + 1, len(NAMES)))
    rows = []
    for level, pattern in zip(bar_levels, bar_timbres, strict=True):
        for _ in range(4):
            row = patterns[pattern] + 0.05 * rng.normal(size=len(NAMES))
            row[NAMES.index("rms")] = level * (1 + 0.01 * rng.normal())
            rows.append(row)
    return np.asarray(rows, np.float32), np.arange(0, 4 * len(bar_levels), 4)


def test_bar_index_counts_a_pickup_as_a_bar() -> None:
    np.testing.assert_array_equal(bar_index(7, np.array([2, 5, 99])), [0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(bar_index(3, np.array([], dtype=np.int64)), [0, 0, 0])


def test_the_loudest_bar_ranks_one_and_the_others_below() -> None:
    levels = [0.1, 0.12, 0.11, 0.5, 0.09, 0.13, 0.1, 0.12]
    feats, downbeats = _song(levels, list(range(8)))
    ctx = context_columns(feats, NAMES, downbeats)
    assert ctx.shape == (32, len(CONTEXT_NAMES)) and ctx.dtype == np.float32
    loud = slice(12, 16)
    np.testing.assert_array_equal(ctx[loud, RANK], 1.0)
    np.testing.assert_array_equal(ctx[loud, LOUDER], 1.0)
    others = np.r_[0:12, 16:32]
    assert ctx[others, RANK].max() < 1.0 and ctx[others, LOUDER].max() <= 0.5
    assert ctx[np.r_[16:20], RANK].min() == 0.0  # the quietest bar (0.09)
    # the runner-up (0.13) is "one louder bar" away: 1/2
    np.testing.assert_array_equal(ctx[20:24, LOUDER], 0.5)
    # relative level: the loud bar far above the 80th percentile, the quietest below the 20th
    assert ctx[12, LEVEL] > 1.0 and ctx[16, LEVEL] < 0.0
    # every beat of a bar carries its bar's values
    for b in range(8):
        assert np.ptp(ctx[4 * b : 4 * b + 4], axis=0).max() == 0.0


def test_repeats_are_found_and_first_occurrences_marked() -> None:
    # bars: A B C D E A B F G H; A and B come back 5 bars later
    timbres = [0, 1, 2, 3, 4, 0, 1, 5, 6, 7]
    feats, downbeats = _song([0.2] * 10, timbres, seed=1)
    ctx = context_columns(feats, NAMES, downbeats)
    per_bar = ctx[::4]
    assert per_bar[5, REPEAT] > 0.9 and per_bar[6, REPEAT] > 0.9
    np.testing.assert_array_equal(per_bar[[5, 6], FIRST], 0.0)
    np.testing.assert_array_equal(per_bar[[0, 1, 2, 3, 4, 7, 8, 9], FIRST], 1.0)
    assert per_bar[[7, 8, 9], REPEAT].max() < 0.8
    # the first REPEAT_GAP bars have no bar far enough back
    np.testing.assert_array_equal(per_bar[:REPEAT_GAP, REPEAT], 0.0)
    # a repeat closer than REPEAT_GAP bars does not count
    near_feats, near_downbeats = _song([0.2] * 6, [0, 1, 0, 2, 3, 4], seed=2)
    near = context_columns(near_feats, NAMES, near_downbeats)[::4]
    np.testing.assert_array_equal(near[:, FIRST], 1.0)


def test_equal_bars_and_one_bar_songs_stay_finite() -> None:
    feats, downbeats = _song([0.2] * 3, [0, 0, 0], seed=3)
    feats[:, NAMES.index("rms")] = 0.2
    ctx = context_columns(feats, NAMES, downbeats)
    assert np.isfinite(ctx).all()
    np.testing.assert_array_equal(ctx[:, RANK], 0.5)
    np.testing.assert_array_equal(ctx[:, LEVEL], 0.5)
    one = context_columns(feats[:3], NAMES, np.array([0]))
    np.testing.assert_array_equal(one[:, RANK], 1.0)
    assert context_columns(feats[:0], NAMES, np.array([0])).shape == (0, len(CONTEXT_NAMES))


def test_names_mark_a_model_that_reads_context() -> None:
    names = context_feature_names(NAMES)
    assert reads_context(names) and not reads_context(NAMES) and not reads_context(list(CONTEXT_NAMES))
    feats, downbeats = _song([0.1, 0.3], [0, 1])
    wide = with_context(feats, NAMES, downbeats)
    assert wide.shape == (8, len(names)) and np.array_equal(wide[:, : len(NAMES)], feats)
    with pytest.raises(ValueError, match="rms"):
        context_columns(feats[:, 2:], NAMES[2:], downbeats)


def test_the_loudest_bar_of_an_analysed_song_ranks_one(tmp_path) -> None:
    """A 120-bpm click song whose 5th of 8 bars is 14 dB louder: its beats carry rank 1."""
    import soundfile as sf

    from editorbot.engine.analysis import analyze

    sr, beat_s, n_bars = 22050, 0.5, 8
    t = np.arange(int(sr * beat_s * 4 * n_bars + sr)) / sr
    rng = np.random.default_rng(0)
    y = 0.02 * rng.normal(size=t.size)
    for k in range(int(t[-1] / beat_s)):
        at = int(k * beat_s * sr)
        burst = np.exp(-np.arange(2000) / 300.0) * np.sin(2 * np.pi * (880 if k % 4 == 0 else 440) * np.arange(2000) / sr)
        y[at : at + 2000] += 0.3 * burst[: len(y[at : at + 2000])]
    loud = (t >= 16 * beat_s) & (t < 20 * beat_s)
    y[loud] *= 5.0
    y *= 0.9 / np.abs(y).max()
    path = tmp_path / "loud_bar.wav"
    sf.write(path, y.astype(np.float32), sr)
    analysis = analyze(path, cache=False)
    ctx = context_columns(analysis.features, analysis.feature_names, analysis.grid.downbeats)
    in_loud = (analysis.grid.beat_times > 16 * beat_s - 0.1) & (analysis.grid.beat_times < 20 * beat_s - 0.1)
    top = ctx[:, RANK] == 1.0
    # the detected bars need not start where the loud span does: the top bar is the one holding most of it
    assert 1 <= top.sum() <= 4 and (top & in_loud).sum() >= 3
    assert ctx[~(top | in_loud), RANK].max() < 0.9
