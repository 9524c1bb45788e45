"""Labels made on one beat grid move onto the analysed grid beat for beat (``training.dataset.labels_on_grid``)."""

from __future__ import annotations

import numpy as np

from editorbot.training.dataset import labels_on_grid

PERIOD_S = 0.5


def _labels(n: int) -> np.ndarray:
    """``(n, 3)`` labels whose type column is the beat's own index, so a shift shows as an off-by-one."""
    return np.stack([np.arange(n), np.zeros(n, np.int64), np.ones(n, np.int64)], axis=1).astype(np.int64)


def test_a_tracker_beat_a_few_ms_early_keeps_its_own_label() -> None:
    true_s = 1.0 + PERIOD_S * np.arange(40)
    jitter_s = np.random.default_rng(0).uniform(-0.007, 0.007, true_s.size)  # the learned tracker's spread
    jitter_s[::2] = -0.004  # half the beats early: looked up at their own time they took the beat before's label
    out = labels_on_grid(_labels(40), true_s, true_s + jitter_s)
    np.testing.assert_array_equal(out[:, 0], np.arange(40))


def test_a_double_tempo_grid_gives_each_off_beat_the_beat_before_it() -> None:
    true_s = PERIOD_S * np.arange(10)
    analysed_s = PERIOD_S / 2 * np.arange(20) + 0.003
    out = labels_on_grid(_labels(10), true_s, analysed_s)
    np.testing.assert_array_equal(out[:, 0], np.repeat(np.arange(10), 2))


def test_beats_before_the_first_labelled_one_have_no_label() -> None:
    true_s = 2.0 + PERIOD_S * np.arange(8)
    analysed_s = PERIOD_S * np.arange(12)
    out = labels_on_grid(_labels(8), true_s, analysed_s)
    np.testing.assert_array_equal(out[:4], -1)
    np.testing.assert_array_equal(out[4:, 0], np.arange(8))


def test_the_same_grid_passes_the_labels_through_cut_to_its_length() -> None:
    times_s = PERIOD_S * np.arange(6)
    out = labels_on_grid(_labels(8), None, times_s)
    np.testing.assert_array_equal(out, _labels(8)[:6])
    np.testing.assert_array_equal(labels_on_grid(_labels(6), times_s, times_s), _labels(6))
