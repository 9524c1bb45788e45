"""Scores of an estimated beat grid against ground truth (tests, benchmarks, label checks)."""

from __future__ import annotations

import numpy as np

BEAT_WINDOW_S = 0.07  # the usual beat-tracking tolerance (mir_eval's default)


def beat_f_measure(reference: np.ndarray, estimated: np.ndarray, window_s: float = BEAT_WINDOW_S) -> float:
    """mir_eval-style beat F-measure: one-to-one matches within ``+-window_s`` seconds.

    Parameters
    ----------
    reference : np.ndarray
        ``(n_ref,)`` true beat times in seconds.
    estimated : np.ndarray
        ``(n_est,)`` estimated beat times in seconds.
    window_s : float
        largest distance of a match in seconds.

    Returns
    -------
    float
        F-measure in [0, 1]; 0 when either side is empty. Matching is greedy
        (nearest unused estimate), which equals mir_eval's maximum matching
        while the window is under half the beat period.
    """
    reference = np.asarray(reference, dtype=np.float64)
    estimated = np.asarray(estimated, dtype=np.float64)
    if len(reference) == 0 or len(estimated) == 0:
        return 0.0
    used = np.zeros(len(estimated), dtype=bool)
    hits = 0
    for r in reference:
        dist = np.abs(estimated - r)
        dist[used] = np.inf
        j = int(np.argmin(dist))
        if dist[j] <= window_s:
            used[j] = True
            hits += 1
    if hits == 0:
        return 0.0
    precision, recall = hits / len(estimated), hits / len(reference)
    return 2 * precision * recall / (precision + recall)
