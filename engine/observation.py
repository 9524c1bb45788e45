"""The policy's observation of a song, shared by the training env and the runtime.

DESIGN section 7. The policy reads two kinds of input:

- per-beat columns that do not depend on the walk, which an encoder can read
  over a whole song at once: the audio features ``(N, F)``, the position
  columns ``POSITION_LAYOUT`` ``(N, 4)`` (``song_position``; both padded
  around the song by ``padded_song``) and the song's mean feature vector
  ``(F,)`` (``song_summary``, its global context);
- the walk so far at the cursor: the ``DONE_LAYOUT`` rows of the ``K``
  beats before it (``history_windows``) and the output length so far over
  the target length (0 without a target).

``training.env.EditEnv`` and ``export.runtime`` both build their arrays
with these functions, so a model sees the same numbers in training and in
use.
"""

from __future__ import annotations

import numpy as np

from editorbot.engine.actions import N_AMOUNTS, N_TYPES

#: Columns of a ``done`` row: decided flag, one-hot type (20), one-hot amount (5).
DONE_LAYOUT: tuple[str, ...] = ("decided",) + tuple(f"type_{k}" for k in range(N_TYPES)) + tuple(
    f"amount_{k}" for k in range(N_AMOUNTS)
)
#: Per-beat position columns (the first ``n_pos_feats`` are read).
POSITION_LAYOUT: tuple[str, ...] = ("progress", "remaining", "phrase_sin", "phrase_cos")
#: Beats per phrase of the phrase-position columns.
PHRASE_BEATS = 16


def song_position(n_beats: int, phrase_starts: np.ndarray) -> np.ndarray:
    """Position columns of every beat.

    Parameters
    ----------
    n_beats:
        ``N`` (>= 1).
    phrase_starts:
        Beat indices of phrase starts (out-of-range ones are ignored).

    Returns
    -------
    ``(N, 4)`` float32: ``beat / N``, ``(N - beat) / N``, and the beat's
    place in its phrase (beats since the last phrase start, counted back
    from the first one before it) as sin and cos over ``PHRASE_BEATS``.
    """
    n = int(n_beats)
    beats = np.arange(n, dtype=np.float64)
    out = np.zeros((n, len(POSITION_LAYOUT)), np.float32)
    out[:, 0] = beats / n
    out[:, 1] = (n - beats) / n
    starts = np.asarray(phrase_starts, dtype=np.int64)
    starts = starts[(starts >= 0) & (starts < n)]
    first = int(starts[0]) if len(starts) else 0
    since = np.where(
        beats >= first,
        beats - np.concatenate([[first], starts])[np.searchsorted(starts, beats, side="right")],
        (beats - first) % PHRASE_BEATS,
    )
    angle = 2 * np.pi * since / PHRASE_BEATS
    out[:, 2] = np.sin(angle)
    out[:, 3] = np.cos(angle)
    return out


def padded_song(
    features: np.ndarray, phrase_starts: np.ndarray, *, before: int, after: int, n_pos_feats: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The walk-independent per-beat columns of a song with padding beats around it.

    Parameters
    ----------
    features:
        ``(N, F)`` per-beat features.
    phrase_starts:
        Beat indices of phrase starts.
    before, after:
        Padding beats before and after the song.
    n_pos_feats:
        Position columns kept (the first of ``POSITION_LAYOUT``).

    Returns
    -------
    ``features (L, F)`` float32, ``position (L, n_pos_feats)`` float32 (both
    0 on padding) and ``padding (L,)`` bool (True outside the song), ``L =
    before + N + after``; beat ``b`` is row ``before + b``.
    """
    n = len(features)
    rows = before + n + after
    out_features = np.zeros((rows, features.shape[1]), np.float32)
    out_features[before : before + n] = features
    position = np.zeros((rows, n_pos_feats), np.float32)
    position[before : before + n] = song_position(n, phrase_starts)[:, :n_pos_feats]
    padding = np.ones(rows, bool)
    padding[before : before + n] = False
    return out_features, position, padding


def song_summary(features: np.ndarray) -> np.ndarray:
    """``(N, F)`` per-beat features -> ``(F,)`` float32 mean over the song."""
    return np.asarray(features, dtype=np.float64).mean(axis=0).astype(np.float32)


def mark_done(done: np.ndarray, start: int, stop: int, type_idx: int, amount_idx: int) -> None:
    """Record an action covering beats ``[start, stop)`` in ``done`` rows ``(N, 26)`` in place."""
    rows = done[start:stop]
    rows[:, 0] = 1.0
    rows[:, 1 + type_idx] = 1.0
    rows[:, 1 + N_TYPES + amount_idx] = 1.0


def history_windows(done: np.ndarray, cursors: np.ndarray, history: int) -> np.ndarray:
    """The ``done`` rows of the ``history`` beats before each cursor.

    Parameters
    ----------
    done:
        ``(N, 26)`` rows of the walk (``mark_done``).
    cursors:
        ``(B,)`` beat indices.
    history:
        ``K`` beats.

    Returns
    -------
    ``(B, K, 26)`` float32, row ``k`` = beat ``cursor - K + k``; zeros
    before the song's start.
    """
    cursors = np.asarray(cursors, dtype=np.int64)
    if len(cursors) and (cursors.min() < 0 or cursors.max() > len(done)):
        raise ValueError(f"cursors outside 0..{len(done)}")
    # ``history`` zero rows stand for the beats before the song: one gather, no mask
    padded = np.zeros((history + len(done), done.shape[1]), np.float32)
    padded[history:] = done
    return padded[cursors[:, None] + np.arange(history)[None, :]]
