"""EditEnv: a gymnasium environment that walks one song beat by beat.

One episode is one song. At each step the agent picks ``(type, size,
amount)`` for the span of ``SIZE_BEATS[size]`` beats starting at the cursor
(clipped at the song's end); the cursor moves past the span; the episode
ends when it passes the last beat. Nothing is rendered: the reward
(``training.reward``) reads the per-beat features only.

Observation (``training.models.agent.Observation`` fields, layout in
``engine.observation``; ``W = AgentConfig.window`` beats with the cursor at
``W // 2``, ``K = AgentConfig.history``), a dict of arrays:

``features`` ``(W, F)`` float32
    Raw per-beat features (the agent normalises them); 0 on padding.
``position`` ``(W, n_pos_feats)`` float32
    The first ``n_pos_feats`` of ``POSITION_LAYOUT``: song progress ``beat /
    n_beats``, beats remaining over ``n_beats``, the beat's place in its
    16-beat phrase as sin and cos; 0 on padding.
``padding_mask`` ``(W,)`` int8
    1 where the window runs past the song's start or end.
``summary`` ``(F,)`` float32
    The song's mean raw features.
``done`` ``(K, n_done_feats)`` float32
    What was done to each of the ``K`` beats before the cursor
    (``DONE_LAYOUT``: 1 "decided", one-hot of the covering action's type
    (20), one-hot of its amount (5)); zeros before the song's start.
``output_ratio`` ``()`` float32
    Output length so far over the target length (0 with no target).

Action: ``MultiDiscrete([20, 5, 5])``. Allowed choices at the cursor are in
``info["action_masks"]`` (``{"type": (20,), "size": (5,), "amount": (20,
5)}`` bool, from ``engine.actions.action_masks``). A policy that applies
them never picks a masked action; one that does not is made legal: indices
are clipped into range, a size that runs past the end becomes the longest
allowed one below it, an amount its type does not allow becomes the nearest
allowed one. ``info["invalid_action"]`` says when that happened and
``info["applied_action"]`` what was applied.

Other info: ``aux`` (targets of the agent's auxiliary heads: ``tempo_bpm``,
``energy`` class of the cursor beat, ``phrase`` ``(W,)`` 1 at phrase
starts), ``reward_terms`` (the step's weighted reward terms; zeros after
``reset``, where ``applied_action`` is -1) and, on the last step, ``episode`` (``r`` return, ``l`` steps, ``out_beats``, the
summed terms).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from editorbot.engine.actions import AMOUNT_MASK, N_AMOUNTS, N_SIZES, N_TYPES, SIZE_BEATS, action_masks
from editorbot.engine.observation import DONE_LAYOUT, POSITION_LAYOUT, mark_done, padded_song, song_summary
from editorbot.training.config import AgentConfig
from editorbot.training.dataset import Episode, energy_classes
from editorbot.training.reward import TERMS, EditState, ReferenceStats, RewardWeights, SongReward, step_reward

logger = logging.getLogger(__name__)

_BIG = float(np.finfo(np.float32).max)  # bounds of the unbounded Box spaces


@functools.lru_cache(maxsize=64)
def _masks_for(left: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``engine.actions.action_masks`` with ``left`` beats from the cursor to the end (read-only)."""
    masks = action_masks(0, left)
    for m in masks:
        m.setflags(write=False)
    return masks


def masks_at(cursor: int, n_beats: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``action_masks(cursor, n_beats)``, cached (they depend only on beats left, up to 32)."""
    return _masks_for(min(n_beats - cursor, SIZE_BEATS[-1]))


def legal_action(action: Any, cursor: int, n_beats: int) -> tuple[tuple[int, int, int], bool]:
    """The action made legal at ``cursor``, and whether it had to change.

    Raises ValueError for something that is not three finite numbers.
    """
    if isinstance(action, np.ndarray) and action.dtype.kind in "iu" and action.shape == (3,):
        t0, s0, a0 = action.tolist()
    else:
        arr = np.asarray(action, dtype=np.float64).reshape(-1)
        if arr.shape != (3,) or not np.isfinite(arr).all():
            raise ValueError(f"an action is three indices (type, size, amount), got {action!r}")
        t0, s0, a0 = (int(round(v)) for v in arr)
    t = min(max(t0, 0), N_TYPES - 1)
    s = min(max(s0, 0), N_SIZES - 1)
    a = min(max(a0, 0), N_AMOUNTS - 1)
    _, size_mask, _ = masks_at(cursor, n_beats)
    while not size_mask[s]:
        s -= 1  # BEAT is always allowed
    if not AMOUNT_MASK[t, a]:
        allowed = np.flatnonzero(AMOUNT_MASK[t])
        a = int(allowed[np.argmin(np.abs(allowed - a) - 0.1 * (allowed > a))])
    return (t, s, a), (t, s, a) != (t0, s0, a0)


class EditEnv(gym.Env):
    """Walk a song beat by beat, one action per span (see the module docstring).

    Parameters
    ----------
    episodes:
        The songs; ``reset`` draws one (or takes ``options={"song": i}``).
    config:
        ``AgentConfig``: ``window``, ``history``, ``in_dim``,
        ``n_done_feats`` (26) and ``n_pos_feats`` (<= 4) shape the
        observation.
    weights:
        Reward term weights.
    reference:
        Statistics of finished tracks for the ``reference`` term, or None.
    use_target:
        Use each song's ``target_beats`` (the labelled edit's length) for
        the ``duration`` term and the ``output_ratio`` column.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        episodes: Sequence[Episode],
        config: AgentConfig | None = None,
        weights: RewardWeights | None = None,
        *,
        reference: ReferenceStats | None = None,
        use_target: bool = True,
    ) -> None:
        super().__init__()
        if not episodes:
            raise ValueError("EditEnv needs at least one song")
        self.episodes = list(episodes)
        self.config = config = config or AgentConfig()
        self.weights = weights or RewardWeights()
        self.reference = reference
        self.use_target = use_target
        if config.n_done_feats != len(DONE_LAYOUT):
            raise ValueError(f"EditEnv writes {len(DONE_LAYOUT)} done columns, config has {config.n_done_feats}")
        if config.n_pos_feats > len(POSITION_LAYOUT):
            raise ValueError(f"EditEnv writes at most {len(POSITION_LAYOUT)} position columns")
        for e in self.episodes:
            if e.features.ndim != 2 or e.features.shape[1] != config.in_dim or e.n_beats < 1:
                raise ValueError(f"{e.name}: features {e.features.shape}, expected (n_beats >= 1, {config.in_dim})")
        w = config.window
        self._pad = w // 2
        self.observation_space = spaces.Dict(
            {
                "features": spaces.Box(-_BIG, _BIG, (w, config.in_dim), np.float32),
                "position": spaces.Box(-_BIG, _BIG, (w, config.n_pos_feats), np.float32),
                "padding_mask": spaces.MultiBinary(w),
                "summary": spaces.Box(-_BIG, _BIG, (config.in_dim,), np.float32),
                "done": spaces.Box(0.0, 1.0, (config.history, config.n_done_feats), np.float32),
                "output_ratio": spaces.Box(0.0, _BIG, (), np.float32),
            }
        )
        self.action_space = spaces.MultiDiscrete([N_TYPES, N_SIZES, N_AMOUNTS])
        self._songs: dict[int, dict[str, Any]] = {}
        self._song = -1
        self.cursor = 0

    # ------------------------------------------------------------- song data

    def _song_arrays(self, index: int) -> dict[str, Any]:
        """Padded per-song arrays (built once per song): rows ``[beat + W//2]``."""
        if index in self._songs:
            return self._songs[index]
        e = self.episodes[index]
        n, w, p = e.n_beats, self.config.window, self._pad
        features, position, padding = padded_song(
            e.features, e.phrase_starts, before=p, after=w - p, n_pos_feats=self.config.n_pos_feats
        )
        padding = padding.astype(np.int8)  # the MultiBinary observation
        phrase = np.zeros(n + w, dtype=np.float32)
        starts = np.asarray(e.phrase_starts, dtype=np.int64)
        phrase[p + starts[(starts >= 0) & (starts < n)]] = 1.0
        for a in (features, padding, position, phrase):
            a.setflags(write=False)
        arrays = {
            "features": features,
            "padding": padding,
            "position": position,
            "phrase": phrase,
            "summary": song_summary(e.features),
            "energy": energy_classes(e.features, self.config.n_energy_classes),
            "reward": SongReward.of(e, self.reference),
            "target": float(e.target_beats) if (self.use_target and e.target_beats) else None,
        }
        self._songs[index] = arrays
        return arrays

    # ------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a song: ``options={"song": i}`` or a random one."""
        super().reset(seed=seed)
        if options and "song" in options:
            song = int(options["song"])
            if not 0 <= song < len(self.episodes):
                raise ValueError(f"song index {song} outside 0..{len(self.episodes) - 1}")
        else:
            song = int(self.np_random.integers(len(self.episodes)))
        self._song = song
        self._arrays = self._song_arrays(song)
        e = self.episodes[song]
        self._episode = e
        self.cursor = 0
        # done rows of beat b at b + K, after K rows of "before the song"
        self._done = np.zeros((self.config.history + e.n_beats, self.config.n_done_feats), dtype=np.float32)
        self._state = EditState.start(self._arrays["reward"].n_bars)
        self._return = 0.0
        self._steps = 0
        self._term_sums = dict.fromkeys(TERMS, 0.0)
        info = self._info()
        # the step-only keys too, so that a vector env's merged info always has them
        info["reward_terms"] = dict.fromkeys(TERMS, 0.0)
        info["invalid_action"] = False
        info["applied_action"] = np.full(3, -1, dtype=np.int64)
        return self._observation(), info

    def step(self, action: Any):
        """Apply ``action`` to the span at the cursor; see the module docstring."""
        if self._song < 0:
            raise RuntimeError("call reset() before step()")
        e = self._episode
        n = e.n_beats
        if self.cursor >= n:
            raise RuntimeError("the episode has ended; call reset()")
        (t, s, a), invalid = legal_action(action, self.cursor, n)
        start = self.cursor
        stop = min(start + SIZE_BEATS[s], n)
        terms = step_reward(
            e,
            self._arrays["reward"],
            self._state,
            (t, s, a),
            start,
            stop,
            self.weights,
            reference=self.reference,
            target_beats=self._arrays["target"],
        )
        k = self.config.history
        mark_done(self._done, start + k, stop + k, t, a)
        self.cursor = stop
        reward = terms.pop("total")
        self._return += reward
        self._steps += 1
        for name, v in terms.items():
            self._term_sums[name] += v
        terminated = stop >= n
        info = self._info()
        info["reward_terms"] = terms
        info["invalid_action"] = invalid
        info["applied_action"] = np.array((t, s, a), dtype=np.int64)
        if terminated:
            info["episode"] = {
                "r": self._return,
                "l": self._steps,
                "out_beats": self._state.out_beats,
                **{f"term_{k}": v for k, v in self._term_sums.items()},
            }
        return self._observation(), float(reward), terminated, False, info

    # ------------------------------------------------------------ helpers

    def _view_cursor(self) -> int:
        """Cursor used for the observation (the last beat once the walk has ended)."""
        return min(self.cursor, self._episode.n_beats - 1)

    def _observation(self) -> dict[str, np.ndarray]:
        c = self._view_cursor()
        w, k = self.config.window, self.config.history
        arr = self._arrays
        ratio = self._state.out_beats / arr["target"] if arr["target"] else 0.0
        return {
            "features": arr["features"][c : c + w].copy(),
            "position": arr["position"][c : c + w].copy(),
            "padding_mask": arr["padding"][c : c + w].copy(),
            "summary": arr["summary"].copy(),
            "done": self._done[c : c + k].copy(),
            "output_ratio": np.float32(ratio),
        }

    def _info(self) -> dict[str, Any]:
        c = self._view_cursor()
        type_mask, size_mask, amount_mask = masks_at(c, self._episode.n_beats)
        arr = self._arrays
        return {
            "action_masks": {"type": type_mask.copy(), "size": size_mask.copy(), "amount": amount_mask.copy()},
            "aux": {
                "tempo_bpm": float(self._episode.tempo_bpm),
                "energy": int(arr["energy"][c]),
                "phrase": arr["phrase"][c : c + self.config.window].copy(),
            },
            "cursor": int(c),
            "song": int(self._song),
        }


def make_env(
    episodes: Sequence[Episode],
    config: AgentConfig,
    weights: RewardWeights | None = None,
    *,
    reference: ReferenceStats | None = None,
    use_target: bool = True,
):
    """A picklable thunk building an ``EditEnv`` (for the vector envs)."""
    return functools.partial(EditEnv, list(episodes), config, weights, reference=reference, use_target=use_target)


def make_vector_env(
    episodes: Sequence[Episode],
    config: AgentConfig,
    num_envs: int,
    *,
    weights: RewardWeights | None = None,
    reference: ReferenceStats | None = None,
    use_target: bool = True,
    subprocess: bool = False,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies in a Sync (or, with ``subprocess``, Async) vector env.

    Autoreset is same-step: a finished song's last observation is in
    ``info["final_obs"]`` and its stats in ``info["final_info"]``, and the
    returned observation (and masks) are already the next song's.
    """
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    thunk = make_env(episodes, config, weights, reference=reference, use_target=use_target)
    cls = AsyncVectorEnv if subprocess else SyncVectorEnv
    return cls([thunk] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
