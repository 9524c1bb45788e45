"""Beats from a beat activation by a hidden Markov model over tempo and phase (DESIGN section 3).

The hidden state is (tempo, frame within the beat): the beat pointer of
Whiteley et al. (2006) as Krebs et al. (2015) discretised it, one bar of one
beat. Each frame the pointer moves one frame on; at the end of a beat it
wraps to the next beat and may change tempo, with probability
``exp(-lambda * |new / old - 1|)`` (normalised over the new tempi). The
first ``1 / obs_lambda`` of each beat emits the beat activation, the rest
emits what is left over, spread over the ``obs_lambda - 1`` other parts.
The Viterbi path's beats are then moved to the strongest activation inside
their beat region.
``faster_level`` then checks the octave: a confident pulse read at half
tempo, with clear peaks halfway between its beats, is decoded again at
twice the tempo.

Back-pointers are kept only where a beat starts (elsewhere a state has one
predecessor), so memory is ``frames x tempi`` small integers, not
``frames x states``. Downbeats are not decoded here: ``engine.grid`` places
the bars over these beats with its own evidence and the network's
downbeat activation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MIN_BPM, MAX_BPM = 55.0, 215.0
NUM_TEMPI = 60
# Tuned on the dev half of the real-music corpus (bench/grid_real.py).
TRANSITION_LAMBDA = 100.0
OBS_LAMBDA = 12
THRESHOLD = 0.05


def tempo_intervals(
    fps: float, min_bpm: float = MIN_BPM, max_bpm: float = MAX_BPM, num_tempi: int = NUM_TEMPI
) -> np.ndarray:
    """``(K,)`` int64 beat intervals in frames, log-spaced from ``max_bpm`` to ``min_bpm``, duplicates merged."""
    lo, hi = 60.0 * fps / max_bpm, 60.0 * fps / min_bpm
    return np.unique(np.round(np.logspace(np.log2(lo), np.log2(hi), num_tempi, base=2.0))).astype(np.int64)


def _tempo_transition(intervals: np.ndarray, lam: float) -> np.ndarray:
    """``(K, K)`` log-probabilities of moving from tempo ``i`` to ``j`` at a beat boundary (-inf: never)."""
    ratio = intervals[None, :] / intervals[:, None]
    prob = np.exp(-lam * np.abs(ratio - 1.0))
    prob[prob <= np.spacing(1.0)] = 0.0
    prob /= prob.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(prob)


@njit(cache=True)
def _viterbi(log_beat: np.ndarray, log_none: np.ndarray, intervals: np.ndarray, log_trans: np.ndarray, obs_lambda: int):
    """Viterbi over (tempo, frame in beat); returns ``(tempo index, phase)`` per frame.

    ``log_beat``, ``log_none`` ``(T,)``: log densities of the beat region and of the rest.
    """
    n_t = log_beat.shape[0]
    n_k = intervals.shape[0]
    offsets = np.zeros(n_k + 1, dtype=np.int64)
    for k in range(n_k):
        offsets[k + 1] = offsets[k] + intervals[k]
    n_s = offsets[n_k]
    # The beat region of tempo k is its first ``region[k]`` states (p * obs_lambda < interval).
    region = np.empty(n_k, dtype=np.int64)
    for k in range(n_k):
        region[k] = (intervals[k] + obs_lambda - 1) // obs_lambda
    # Tempo changes beyond the band of finite transitions never win: skip them.
    j_lo = np.zeros(n_k, dtype=np.int64)
    j_hi = np.zeros(n_k, dtype=np.int64)
    for k in range(n_k):
        j_lo[k], j_hi[k] = n_k, -1
        for j in range(n_k):
            if log_trans[j, k] != -np.inf:
                j_lo[k] = min(j_lo[k], j)
                j_hi[k] = j
    prev = np.empty(n_s)
    cur = np.empty(n_s)
    init = -np.log(float(n_s))
    for k in range(n_k):
        for p in range(intervals[k]):
            prev[offsets[k] + p] = init + (log_beat[0] if p < region[k] else log_none[0])
    back = np.zeros((n_t, n_k), dtype=np.int16)
    for t in range(1, n_t):
        lb, ln = log_beat[t], log_none[t]
        for k in range(n_k):
            best = -np.inf
            arg = 0
            for j in range(j_lo[k], j_hi[k] + 1):
                lt = log_trans[j, k]
                if lt == -np.inf:
                    continue
                v = prev[offsets[j + 1] - 1] + lt
                if v > best:
                    best = v
                    arg = j
            back[t, k] = arg
            s0 = offsets[k]
            cur[s0] = best + lb
            # Elsewhere the pointer moves one state on: two branch-free runs.
            for s in range(s0 + 1, s0 + region[k]):
                cur[s] = prev[s - 1] + lb
            for s in range(s0 + region[k], offsets[k + 1]):
                cur[s] = prev[s - 1] + ln
        prev, cur = cur, prev
    best_s = 0
    for s in range(1, n_s):
        if prev[s] > prev[best_s]:
            best_s = s
    k = 0
    while offsets[k + 1] <= best_s:
        k += 1
    p = best_s - offsets[k]
    tempo = np.empty(n_t, dtype=np.int64)
    phase = np.empty(n_t, dtype=np.int64)
    for t in range(n_t - 1, -1, -1):
        tempo[t] = k
        phase[t] = p
        if p > 0:
            p -= 1
        elif t > 0:
            k = back[t, k]
            p = intervals[k] - 1
    return tempo, phase


def decode_beats(
    activation: np.ndarray,
    fps: float,
    *,
    min_bpm: float = MIN_BPM,
    max_bpm: float = MAX_BPM,
    num_tempi: int = NUM_TEMPI,
    transition_lambda: float = TRANSITION_LAMBDA,
    obs_lambda: int = OBS_LAMBDA,
) -> np.ndarray:
    """Frames of the beats in ``activation (T,)``, the beat probability per frame at ``fps`` frames/s.

    Leading and trailing frames under ``THRESHOLD`` are left out of the
    decoding; an input that never reaches it gives no beats.

    Returns
    -------
    np.ndarray
        ``(n_beats,)`` int64 increasing frame indices into ``activation``.
    """
    act = np.asarray(activation, dtype=np.float64)
    loud = np.flatnonzero(act >= THRESHOLD)
    if len(loud) < 2:
        return np.zeros(0, dtype=np.int64)
    first, last = int(loud[0]), int(loud[-1]) + 1
    a = np.clip(act[first:last], 1e-7, 1.0 - 1e-7)
    intervals = tempo_intervals(fps, min_bpm, max_bpm, num_tempi)
    tempo, phase = _viterbi(
        np.log(a),
        np.log((1.0 - a) / (obs_lambda - 1)),
        intervals,
        _tempo_transition(intervals, transition_lambda),
        obs_lambda,
    )
    region = phase * obs_lambda < intervals[tempo]
    # Each run of frames in a beat region is one beat, at its strongest activation.
    edges = np.diff(np.concatenate([[0], region.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    frames = np.array([s + int(np.argmax(a[s:e])) for s, e in zip(starts, ends)], dtype=np.int64)
    return frames + first


# The octave check after decoding (``faster_level``), measured on the dev
# half of the real-music corpus and on synthetic songs (bench/grid_real.py):
# the decoder reads some drum-led songs of 125-175 BPM at half tempo, where
# every skipped beat still carries a clear activation peak.
DOUBLE_MIN_BEAT_PEAK = 0.75
DOUBLE_MIN_HALF_PEAK = 0.325
PEAK_RADIUS = 2  # frames either side of a beat in which its activation peak is read


def peak_near(activation: np.ndarray, frames: np.ndarray, radius: int = PEAK_RADIUS) -> np.ndarray:
    """``(len(frames),)`` the largest ``activation`` within ``radius`` frames of each frame."""
    lo = np.clip(frames - radius, 0, len(activation) - 1)
    hi = np.clip(frames + radius + 1, 1, len(activation))
    return np.array([activation[a:b].max() for a, b in zip(lo, hi)], dtype=np.float64)


def faster_level(activation: np.ndarray, frames: np.ndarray, fps: float) -> np.ndarray | None:
    """The beats at twice the tempo of ``frames`` when the activation asks for it, else None.

    It asks for it when the median activation peak at the decoded beats is
    at least ``DOUBLE_MIN_BEAT_PEAK`` (a confident, drum-led pulse), the
    median peak halfway between them at least ``DOUBLE_MIN_HALF_PEAK`` (a
    pulse at twice the rate that the decoder skipped), and twice the tempo
    is within the decoder's range. The faster beats are decoded again with
    the tempo held within 20 % of the double, not made by adding midpoints,
    so that each keeps its own peak.

    Parameters
    ----------
    activation : np.ndarray
        ``(T,)`` beat probability per frame.
    frames : np.ndarray
        ``(n,)`` int64 beat frames ``decode_beats`` found in it.
    fps : float
        frames per second.
    """
    if len(frames) < 4:
        return None
    bpm = 60.0 * fps / float(np.median(np.diff(frames)))
    if 2.0 * bpm > MAX_BPM:
        return None
    halves = np.round((frames[:-1] + frames[1:]) / 2.0).astype(np.int64)
    act = np.asarray(activation, dtype=np.float64)
    if (
        np.median(peak_near(act, frames)) < DOUBLE_MIN_BEAT_PEAK
        or np.median(peak_near(act, halves)) < DOUBLE_MIN_HALF_PEAK
    ):
        return None
    faster = decode_beats(act, fps, min_bpm=2.0 * bpm / 1.2, max_bpm=min(2.0 * bpm * 1.2, MAX_BPM))
    return faster if len(faster) > len(frames) else None
