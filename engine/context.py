"""Whole-song context columns: where each beat's bar stands among the song's bars.

A policy that reads a window of beats plus the song's mean cannot tell
whether a bar is the loudest of the song, among its quietest, or the repeat
of an earlier one: those are comparisons with every other bar. These
columns make them per-beat inputs, computed once per song from the per-beat
features (``engine.features``), so a windowed encoder reads them like any
other feature.

Bars run from one downbeat to the next; beats before the first downbeat
form a bar of their own (a pickup). Every beat carries its bar's values.

Columns (``CONTEXT_NAMES``, all float32):

- ``ctx_bar_rms_rank``: the bar's level rank among the song's bars, 0
  (quietest) .. 1 (loudest); ties share the mean rank; 1 in a one-bar song.
- ``ctx_bar_louder``: ``1 / (1 + bars louder than this one)``: 1 for the
  loudest, 0.5 for the runner-up, ...
- ``ctx_bar_level``: the bar's level relative to the song's 20th and 80th
  percentiles of bar levels, ``(dB - p20) / (p80 - p20)`` clipped to
  -2..3 (0 at p20, 1 at p80; 0.5 everywhere in a song of equal bars).
- ``ctx_bar_repeat``: the bar's best cosine similarity (timbre, standardised
  over the song's bars) to any earlier bar at least ``REPEAT_GAP`` bars
  before it, 0 where there is none.
- ``ctx_bar_first``: 1 where the bar repeats no earlier bar (``ctx_bar_repeat
  < REPEAT_SIM``), 0 where it does.

A model opts in by naming these columns after its audio feature columns
(``context_feature_names``), as the bundled model does; a model that does
not reads the audio columns alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Column names, in order.
CONTEXT_NAMES: tuple[str, ...] = (
    "ctx_bar_rms_rank",
    "ctx_bar_louder",
    "ctx_bar_level",
    "ctx_bar_repeat",
    "ctx_bar_first",
)
#: Smallest distance, in bars, to an earlier bar that counts as a repeat.
REPEAT_GAP = 4
#: Similarity at or above which a bar repeats an earlier one.
REPEAT_SIM = 0.8
#: Per-beat feature columns the bar level and timbre (their non-delta columns) are measured from.
_RMS = "rms"
_TIMBRE_PREFIXES = ("chroma_", "contrast_", "mfcc_")


def bar_index(n_beats: int, downbeats: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 bar of every beat: bar ``k`` starts at the ``k``-th bar start.

    Bar starts are beat 0 and the in-range ``downbeats``; beats before the
    first downbeat form bar 0 (a pickup). With no downbeats the song is one bar.
    """
    starts = np.asarray(downbeats, dtype=np.int64)
    starts = np.unique(np.concatenate([[0], starts[(starts > 0) & (starts < n_beats)]]))
    return np.searchsorted(starts, np.arange(n_beats), side="right") - 1


def rank01(values: np.ndarray) -> np.ndarray:
    """``(B,)`` -> ``(B,)`` rank of each value in 0..1 (ties share their mean rank; 1 for one value)."""
    n = len(values)
    if n == 1:
        return np.ones(1)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n, dtype=np.float64)
    # ties: every member of a group of equal values gets the group's mean rank
    _, inverse = np.unique(values, return_inverse=True)
    ranks = (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]
    return ranks / (n - 1)


def repeat_similarity(timbre: np.ndarray, min_gap: int = REPEAT_GAP) -> np.ndarray:
    """Best cosine similarity of each bar to a bar at least ``min_gap`` bars before it.

    Parameters
    ----------
    timbre:
        ``(B, D)`` per-bar timbre; each dimension is standardised over the
        song's bars first, so the comparison is relative to this song.
    min_gap:
        Smallest distance in bars.

    Returns
    -------
    ``(B,)`` float64 in -1..1, NaN where no bar is far enough back.
    """
    b = timbre.shape[0]
    out = np.full(b, np.nan)
    if b <= min_gap:
        return out
    z = (timbre - timbre.mean(axis=0)) / (timbre.std(axis=0) + 1e-9)
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    cos = z @ z.T
    # bar j may match bars 0 .. j - min_gap: mask the rest of each row
    allowed = np.arange(b)[None, :] <= np.arange(b)[:, None] - min_gap
    out[min_gap:] = np.where(allowed, cos, -np.inf).max(axis=1)[min_gap:]
    return out


def context_columns(features: np.ndarray, feature_names: Sequence[str], downbeats: np.ndarray) -> np.ndarray:
    """The ``CONTEXT_NAMES`` columns of every beat of a song.

    Parameters
    ----------
    features:
        ``(N, F)`` per-beat features, columns named by ``feature_names``
        (``engine.features.feature_names()``; ``rms`` is linear amplitude).
    feature_names:
        ``F`` column names; must hold ``rms`` and the chroma, contrast and
        mfcc columns.
    downbeats:
        Beat indices of bar starts.

    Returns
    -------
    ``(N, len(CONTEXT_NAMES))`` float32.
    """
    feats = np.asarray(features, dtype=np.float64)
    n = feats.shape[0]
    names = list(feature_names)
    if _RMS not in names:
        raise ValueError("context columns need the 'rms' feature column")
    timbre_cols = [i for i, name in enumerate(names) if name.startswith(_TIMBRE_PREFIXES) and "delta" not in name]
    bar = bar_index(n, downbeats)
    n_bars = int(bar[-1]) + 1 if n else 0
    out = np.zeros((n, len(CONTEXT_NAMES)), np.float32)
    if n == 0:
        return out
    counts = np.bincount(bar, minlength=n_bars).astype(np.float64)
    # a bar's level: RMS over its beats (mean power), in dB
    power = np.bincount(bar, feats[:, names.index(_RMS)] ** 2, minlength=n_bars) / counts
    level_db = 10.0 * np.log10(np.maximum(power, 1e-12))
    timbre = np.stack([np.bincount(bar, feats[:, c], minlength=n_bars) for c in timbre_cols], axis=1) / counts[:, None]

    rank = rank01(level_db)
    louder = 1.0 / (1.0 + (level_db[None, :] > level_db[:, None]).sum(axis=1))
    p20, p80 = np.percentile(level_db, [20, 80])
    spread = p80 - p20
    level = np.clip((level_db - p20) / spread, -2.0, 3.0) if spread > 1e-6 else np.full(n_bars, 0.5)
    sim = repeat_similarity(timbre)
    repeat = np.nan_to_num(sim, nan=0.0)
    first = ~(sim >= REPEAT_SIM)  # NaN (no earlier bar far enough) counts as a first occurrence

    per_bar = np.stack([rank, louder, level, repeat, first.astype(np.float64)], axis=1)
    out[:] = per_bar[bar]
    return out


def context_feature_names(base: Sequence[str]) -> list[str]:
    """``base`` audio column names followed by the context columns (what an opting-in model reads)."""
    return list(base) + list(CONTEXT_NAMES)


def reads_context(feature_names: Sequence[str]) -> bool:
    """Whether a model whose columns are ``feature_names`` reads the context columns (they end it)."""
    k = len(CONTEXT_NAMES)
    return len(feature_names) > k and tuple(feature_names[-k:]) == CONTEXT_NAMES


def with_context(features: np.ndarray, feature_names: Sequence[str], downbeats: np.ndarray) -> np.ndarray:
    """``(N, F)`` features -> ``(N, F + len(CONTEXT_NAMES))`` float32: the context columns appended."""
    ctx = context_columns(features, feature_names, downbeats)
    return np.concatenate([np.asarray(features, dtype=np.float32), ctx], axis=1)
