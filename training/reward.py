"""Reward for the editing environment: named, weighted, separately logged terms.

Every step of ``training.env.EditEnv`` covers a span of source beats
``[start, stop)`` with one action. ``step_reward`` scores it with these
terms (each weighted by ``RewardWeights``; all are in the returned dict, 0
where a term does not apply, so every term can be logged every step):

``label``
    Agreement with the reference labels (where a song has them): per beat
    covered, half for the type, a quarter each for the size and the amount
    matching the label of that beat; ``2 * agreement - 1`` per beat, summed
    over the span and divided by the beats in a bar (so a whole song scores
    the same whatever the step sizes were).
``continuity``
    Splice continuity: where the output jumps in the source (after a CUT,
    at each LOOP wrap), the feature distance across the join relative to the
    song's typical beat-to-beat distance; 0 for a join no rougher than a
    natural beat change, down to ``-MAX_SPLICE_PENALTY``.
``alignment``
    Bar/phrase alignment of the boundaries of an edit (any non-KEEP action):
    each of its two ends scores 1 on a phrase start (or the song's end), 0.5
    on a downbeat, -1 elsewhere; the term is their mean.
``duration``
    At the episode's end, when a target length is set: 1 when the output
    lands within one beat of it, otherwise minus the relative error
    (clipped at 2).
``density``
    Minus the number of edits that start in the current bar beyond
    ``max_edits_per_bar``.
``reference``
    At the episode's end, when reference statistics are given (finished
    tracks in ``training_data/reference/``): how much closer the edited
    result's per-feature mean and std are to the references' than the
    unedited song's were (clipped to +-2).

Lengths are counted in output beats (``output_beats``): a CUT outputs
nothing, a LOOP its span ``1 + repeats`` times, a SPEED change its span over
the rate, everything else its span.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from editorbot.engine.actions import N_AMOUNTS, N_SIZES, N_TYPES, ActionType, output_beats, output_multiplicity
from editorbot.training.dataset import Episode

logger = logging.getLogger(__name__)

#: Reward terms in logging order.
TERMS: tuple[str, ...] = ("label", "continuity", "alignment", "duration", "density", "reference")
#: Worst splice score (a join this many typical beat changes rougher, or worse).
MAX_SPLICE_PENALTY = 3.0
#: Spectral columns of the per-beat features (engine.features.SPECTRAL_NAMES):
#: the ones splice continuity and reference statistics compare.
N_SPECTRAL = 52

_KEEP = int(ActionType.KEEP)
_CUT = int(ActionType.CUT)
_LOOP = int(ActionType.LOOP)
_SPEED = int(ActionType.SPEED)


@dataclass
class RewardWeights:
    """Weight of each reward term (0 switches a term off), plus the density limit.

    The defaults are the one place the reward's balance is set: label
    agreement leads (it is what "edit like this person" means where labels
    exist); the other terms shape edits on unlabelled songs.
    """

    label: float = 1.0
    continuity: float = 0.2
    alignment: float = 0.2
    duration: float = 1.0
    density: float = 0.1
    reference: float = 0.5
    max_edits_per_bar: int = 1

    def __post_init__(self) -> None:
        for name in TERMS:
            if getattr(self, name) < 0:
                raise ValueError(f"RewardWeights.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_edits_per_bar < 0:
            raise ValueError(f"max_edits_per_bar must be >= 0, got {self.max_edits_per_bar}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoints, hyperparameter table)."""
        return asdict(self)


@dataclass
class ReferenceStats:
    """Per-column mean and std of finished tracks' features.

    Attributes
    ----------
    mean, std:
        ``(N_SPECTRAL,)`` float64: the references' column means and the
        references' column standard deviations (each the average over the
        reference tracks).
    scale:
        ``(N_SPECTRAL,)`` float64: spread used to express distances in
        comparable units (the pooled std of the references, floored).
    """

    mean: np.ndarray
    std: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_features(cls, tracks: list[np.ndarray]) -> ReferenceStats:
        """Statistics of reference tracks' features, each ``(n_beats, >= N_SPECTRAL)``."""
        if not tracks:
            raise ValueError("no reference tracks")
        cols = [np.asarray(t, dtype=np.float64)[:, :N_SPECTRAL] for t in tracks]
        means = np.stack([c.mean(0) for c in cols])
        stds = np.stack([c.std(0) for c in cols])
        pooled = np.concatenate(cols).std(0)
        return cls(means.mean(0), stds.mean(0), np.maximum(pooled, 1e-3))

    def distance(self, mean: np.ndarray, std: np.ndarray) -> float:
        """Mean over columns of ``(|mean - ref mean| + |std - ref std|) / scale``."""
        return float(np.mean((np.abs(mean - self.mean) + np.abs(std - self.std)) / self.scale))


@dataclass
class EditState:
    """What a walk has done so far in one song (the reward's memory).

    Attributes
    ----------
    out_beats:
        Output length so far, in beats.
    last_heard:
        Index of the last source beat that reached the output, -1 for none.
    edits_in_bar:
        Non-KEEP actions started in each bar so far, ``(n_bars,)`` int.
    stat_sum, stat_sumsq, stat_count:
        Running sums of the output's spectral feature columns ``(N_SPECTRAL,)``
        (weighted by how often each beat is heard) and their weight.
    """

    out_beats: float = 0.0
    last_heard: int = -1
    edits_in_bar: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stat_sum: np.ndarray = field(default_factory=lambda: np.zeros(N_SPECTRAL))
    stat_sumsq: np.ndarray = field(default_factory=lambda: np.zeros(N_SPECTRAL))
    stat_count: float = 0.0

    @classmethod
    def start(cls, n_bars: int) -> EditState:
        """Fresh state for a song with ``n_bars`` bars."""
        return cls(edits_in_bar=np.zeros(max(n_bars, 1), dtype=np.int64))


@dataclass
class SongReward:
    """Per-song arrays the reward reads, computed once per song.

    Attributes
    ----------
    z:
        ``(n_beats, N_SPECTRAL)`` float32: the song's spectral columns
        z-scored per song (splice distances).
    typical_step:
        Median distance between neighbouring beats in ``z`` (> 0).
    boundary_score:
        ``(n_beats + 1,)`` float32: score of an edit boundary before beat
        ``i`` (1 phrase start or song end, 0.5 downbeat, -1 elsewhere).
    bar_of_beat:
        ``(n_beats,)`` int64: bar index of each beat (beats before the
        first downbeat are bar 0).
    n_bars:
        Number of bars.
    raw_distance:
        Reference distance of the unedited song (None without references).
    label_counts:
        ``(n_beats + 1, 1 + 20 + 5 + 5)`` float64 cumulative counts of known
        labels and of each label type / size / amount over beats ``[0, i)``
        (None for an unlabelled song): a span's agreement in O(1).
    stat_cumsum:
        ``(n_beats + 1, 2 * N_SPECTRAL)`` float64 cumulative sums of the
        spectral columns and their squares (None without references).
    """

    z: np.ndarray
    typical_step: float
    boundary_score: np.ndarray
    bar_of_beat: np.ndarray
    n_bars: int
    raw_distance: float | None
    label_counts: np.ndarray | None = None
    stat_cumsum: np.ndarray | None = None

    @classmethod
    def of(cls, episode: Episode, reference: ReferenceStats | None = None) -> SongReward:
        """Precompute the arrays for ``episode``."""
        spectral = np.asarray(episode.features[:, :N_SPECTRAL], dtype=np.float64)
        z = (spectral - spectral.mean(0)) / np.maximum(spectral.std(0), 1e-6)
        steps = np.abs(np.diff(z, axis=0)).mean(1) if len(z) > 1 else np.ones(1)
        typical = float(max(np.median(steps), 1e-3))
        n = episode.n_beats
        boundary = np.full(n + 1, -1.0, dtype=np.float32)
        down = np.asarray(episode.downbeats, dtype=np.int64)
        boundary[down[(down >= 0) & (down <= n)]] = 0.5
        phrases = np.asarray(episode.phrase_starts, dtype=np.int64)
        boundary[phrases[(phrases >= 0) & (phrases <= n)]] = 1.0
        boundary[0] = 1.0
        boundary[n] = 1.0
        beats = np.arange(n)
        if len(down):
            bar = np.searchsorted(down, beats, side="right") - 1
            if down[0] > 0:  # a pickup before the first downbeat is bar 0
                bar += 1
        else:
            bar = beats // max(episode.beats_per_bar, 1)
        n_bars = int(bar.max()) + 1 if n else 1
        raw = cumsum = None
        if reference is not None:
            raw = reference.distance(spectral.mean(0), spectral.std(0))
            cumsum = _cumulative(np.concatenate([spectral, spectral * spectral], axis=1))
        counts = None
        if episode.labels is not None:
            lab = np.asarray(episode.labels, dtype=np.int64)
            known = lab[:, 0] >= 0
            onehot = np.zeros((n, 1 + N_TYPES + N_SIZES + N_AMOUNTS))
            onehot[:, 0] = known
            rows = np.flatnonzero(known)
            onehot[rows, 1 + lab[rows, 0]] = 1.0
            onehot[rows, 1 + N_TYPES + lab[rows, 1]] = 1.0
            onehot[rows, 1 + N_TYPES + N_SIZES + lab[rows, 2]] = 1.0
            counts = _cumulative(onehot)
        return cls(z.astype(np.float32), typical, boundary, bar.astype(np.int64), n_bars, raw, counts, cumsum)


def _cumulative(x: np.ndarray) -> np.ndarray:
    """``(n, C)`` -> ``(n + 1, C)`` float64 prefix sums (row ``i``: rows ``[0, i)``)."""
    out = np.zeros((x.shape[0] + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=out[1:])
    return out


def _splice(song: SongReward, before: int, after: int) -> float:
    """Score of joining source beat ``before`` to source beat ``after`` (<= 0)."""
    if before < 0 or after == before + 1 or after >= len(song.z):
        return 0.0
    d = float(np.abs(song.z[after] - song.z[before]).mean())
    return -min(max(d / song.typical_step - 1.0, 0.0), MAX_SPLICE_PENALTY)


def step_reward(
    episode: Episode,
    song: SongReward,
    state: EditState,
    action: tuple[int, int, int],
    start: int,
    stop: int,
    weights: RewardWeights,
    *,
    reference: ReferenceStats | None = None,
    target_beats: float | None = None,
) -> dict[str, float]:
    """Score one step and advance ``state`` past it.

    Parameters
    ----------
    episode:
        The song (features ``(n_beats, F)``, labels ``(n_beats, 3)`` or None).
    song:
        ``SongReward.of(episode, reference)``.
    state:
        The walk's state before this step; updated in place.
    action:
        ``(type_idx, size_idx, amount_idx)``, a valid action.
    start, stop:
        Source beats the action covers, ``[start, stop)``, ``stop`` clipped
        at the song's end.
    weights:
        Term weights.
    reference:
        Reference statistics, or None (the ``reference`` term is then 0).
    target_beats:
        Target output length in beats, or None (``duration`` is then 0).

    Returns
    -------
    ``{term: weighted value}`` for every name in ``TERMS``, plus ``"total"``
    (their sum). Terms that only apply at the song's end (duration,
    reference) are non-zero only on the step that reaches it.
    """
    t, s, a = action
    span = stop - start
    terms = dict.fromkeys(TERMS, 0.0)

    # label agreement, per covered beat
    counts = song.label_counts
    if counts is not None and weights.label:
        c0, c1 = counts[start], counts[stop]
        known = c1[0] - c0[0]
        if known > 0:
            agree = (
                0.5 * (c1[1 + t] - c0[1 + t])
                + 0.25 * (c1[1 + N_TYPES + s] - c0[1 + N_TYPES + s])
                + 0.25 * (c1[1 + N_TYPES + N_SIZES + a] - c0[1 + N_TYPES + N_SIZES + a])
            )
            terms["label"] = float(2.0 * agree - known) / max(episode.beats_per_bar, 1)

    # splice continuity: into the span after cuts, and at each loop wrap
    heard = t != _CUT
    if heard and weights.continuity:
        score = _splice(song, state.last_heard, start)
        if t == _LOOP:
            score += _splice(song, stop - 1, start)
        terms["continuity"] = score
    if heard:
        state.last_heard = stop - 1

    # alignment of edit boundaries, and edit density per bar
    if t != _KEEP:
        terms["alignment"] = 0.5 * float(song.boundary_score[start] + song.boundary_score[stop])
        bar = int(song.bar_of_beat[start])
        state.edits_in_bar[bar] += 1
        terms["density"] = -float(max(int(state.edits_in_bar[bar]) - weights.max_edits_per_bar, 0))

    # output length and statistics
    state.out_beats += output_beats(t, a, span)
    mult = output_multiplicity(t, a)
    if mult and song.stat_cumsum is not None:
        sums = song.stat_cumsum[stop] - song.stat_cumsum[start]
        state.stat_sum += mult * sums[:N_SPECTRAL]
        state.stat_sumsq += mult * sums[N_SPECTRAL:]
        state.stat_count += mult * span

    if stop >= len(song.bar_of_beat):
        if target_beats:
            err = abs(state.out_beats - target_beats)
            terms["duration"] = 1.0 if err <= 1.0 else -min(err / target_beats, 2.0)
        if reference is not None and song.raw_distance is not None and state.stat_count > 0:
            mean = state.stat_sum / state.stat_count
            std = np.sqrt(np.maximum(state.stat_sumsq / state.stat_count - mean * mean, 0.0))
            gain = song.raw_distance - reference.distance(mean, std)
            terms["reference"] = float(np.clip(gain, -2.0, 2.0))

    out = {name: getattr(weights, name) * value for name, value in terms.items()}
    out["total"] = float(sum(out.values()))
    return out

