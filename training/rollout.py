"""One PPO rollout's data: the preallocated storage, the env's last outputs, the flat batch, and GAE.

``collect_rollout`` (``training.ppo``) steps the vector env into a
``RolloutStorage``; ``compute_gae`` turns its rewards and values into
advantages and returns; ``FlatBatch`` flattens both for the minibatches.
Shapes: ``S = num_steps`` per env, ``E = num_envs``, ``W`` window; the
observation fields' own shapes are in ``training.env``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from editorbot.engine.actions import N_AMOUNTS, N_SIZES, N_TYPES
from editorbot.training.models.agent import OBS_FIELDS, ActionMasks, Observation
from editorbot.training.reward import TERMS


def mask_tensors(info: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """The env's action masks of ``info`` as bool tensors: type ``(E, N_TYPES)``, size ``(E, N_SIZES)``, amount ``(E, N_TYPES, N_AMOUNTS)``."""
    m = info["action_masks"]
    return torch.from_numpy(m["type"]), torch.from_numpy(m["size"]), torch.from_numpy(m["amount"])


@dataclass
class RolloutStorage:
    """One rollout, preallocated: every tensor is ``(S, E, ...)``."""

    obs: dict[str, Tensor]  # one (S, E, *field shape) tensor per Observation field
    mask_type: Tensor  # (S, E, N_TYPES) bool
    mask_size: Tensor  # (S, E, N_SIZES) bool
    mask_amount: Tensor  # (S, E, N_TYPES, N_AMOUNTS) bool
    actions: Tensor  # (S, E, 3) long: type, size, amount
    logprobs: Tensor  # (S, E)
    rewards: Tensor  # (S, E)
    dones: Tensor  # (S, E): 1 where the step starts a new episode
    values: Tensor  # (S, E)
    aux_tempo: Tensor  # (S, E) bpm
    aux_energy: Tensor  # (S, E) long
    aux_phrase: Tensor  # (S, E, W)

    @classmethod
    def allocate(cls, space: Any, num_steps: int, num_envs: int, window: int) -> RolloutStorage:
        """Zeros for ``num_steps`` steps of ``num_envs`` envs with observation space ``space``."""
        S, E = num_steps, num_envs
        return cls(
            obs={k: torch.zeros((S, E, *space[k].shape), dtype=torch.bool if k == "padding_mask" else torch.float32)
                 for k in OBS_FIELDS},
            mask_type=torch.zeros((S, E, N_TYPES), dtype=torch.bool),
            mask_size=torch.zeros((S, E, N_SIZES), dtype=torch.bool),
            mask_amount=torch.zeros((S, E, N_TYPES, N_AMOUNTS), dtype=torch.bool),
            actions=torch.zeros((S, E, 3), dtype=torch.long),
            logprobs=torch.zeros((S, E)),
            rewards=torch.zeros((S, E)),
            dones=torch.zeros((S, E)),
            values=torch.zeros((S, E)),
            aux_tempo=torch.zeros((S, E)),
            aux_energy=torch.zeros((S, E), dtype=torch.long),
            aux_phrase=torch.zeros((S, E, window)),
        )

    def store_inputs(self, step: int, env: EnvState) -> None:
        """Record what the policy sees at ``step``: observation, masks, done flag, aux targets."""
        for k in OBS_FIELDS:
            self.obs[k][step] = getattr(env.obs, k)
        self.mask_type[step], self.mask_size[step], self.mask_amount[step] = env.masks
        self.dones[step] = env.done
        self.aux_tempo[step] = torch.from_numpy(env.aux["tempo_bpm"])
        self.aux_energy[step] = torch.from_numpy(env.aux["energy"])
        self.aux_phrase[step] = torch.from_numpy(env.aux["phrase"])


@dataclass
class EnvState:
    """What the vector env returned last (the next step's inputs) and the finished episodes' returns."""

    obs: Observation  # (E, ...) per field
    masks: tuple[Tensor, Tensor, Tensor]  # type (E, N_TYPES), size (E, N_SIZES), amount (E, N_TYPES, N_AMOUNTS)
    aux: dict[str, np.ndarray]
    done: Tensor  # (E,)
    episode_rewards: deque[float] = field(default_factory=lambda: deque(maxlen=50))
    term_sums: dict[str, deque[float]] = field(default_factory=lambda: {k: deque(maxlen=50) for k in TERMS})

    @classmethod
    def reset(cls, envs: Any, seed: int, num_envs: int) -> EnvState:
        obs, info = envs.reset(seed=seed)
        return cls(Observation.from_numpy(obs), mask_tensors(info), info["aux"], torch.zeros(num_envs))

    def advance(self, obs: dict[str, np.ndarray], terminations: np.ndarray, truncations: np.ndarray,
                info: dict[str, Any]) -> None:
        """Take one ``envs.step`` result; keep the returns and reward terms of episodes that ended."""
        self.done = torch.as_tensor(np.logical_or(terminations, truncations), dtype=torch.float32)
        self.obs = Observation.from_numpy(obs)
        self.masks = mask_tensors(info)
        self.aux = info["aux"]
        if "final_info" not in info:
            return
        ep = info["final_info"]["episode"]
        for i in np.flatnonzero(info["_final_info"]):
            self.episode_rewards.append(float(ep["r"][i]))
            for k in TERMS:
                self.term_sums[k].append(float(ep[f"term_{k}"][i]))


@dataclass
class FlatBatch:
    """A rollout with its advantages, flattened to ``B = S * E`` rows."""

    obs: Observation
    masks: ActionMasks
    actions: Tensor  # (B, 3)
    logprobs: Tensor  # (B,)
    advantages: Tensor  # (B,)
    returns: Tensor  # (B,)
    values: Tensor  # (B,)
    aux: dict[str, Tensor]  # tempo_bpm (B,), energy (B,), phrase (B, W)

    @classmethod
    def from_rollout(cls, buf: RolloutStorage, advantages: Tensor, returns: Tensor) -> FlatBatch:
        S, E, W = buf.aux_phrase.shape
        B = S * E
        return cls(
            obs=Observation(*(buf.obs[k].reshape(B, *buf.obs[k].shape[2:]) for k in OBS_FIELDS)),
            masks=ActionMasks(buf.mask_type.reshape(B, N_TYPES), buf.mask_size.reshape(B, N_SIZES),
                              buf.mask_amount.reshape(B, N_TYPES, N_AMOUNTS)),
            actions=buf.actions.reshape(B, 3),
            logprobs=buf.logprobs.reshape(B),
            advantages=advantages.reshape(B),
            returns=returns.reshape(B),
            values=buf.values.reshape(B),
            aux={"tempo_bpm": buf.aux_tempo.reshape(B), "energy": buf.aux_energy.reshape(B),
                 "phrase": buf.aux_phrase.reshape(B, W)},
        )

    def __len__(self) -> int:
        return len(self.logprobs)


def compute_gae(rewards: Tensor, values: Tensor, dones: Tensor, next_value: Tensor, next_done: Tensor,
                gamma: float, gae_lambda: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over a rollout.

    ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_{t+1}) - V(s_t)``,
    ``A_t = delta_t + gamma * lambda * (1 - done_{t+1}) * A_{t+1}``.

    Parameters
    ----------
    rewards, values, dones:
        ``(S, E)``; ``dones[t]`` is 1 where step ``t`` starts a new episode.
    next_value, next_done:
        ``(E,)``: the value and done flag after the last step.

    Returns
    -------
    ``(advantages, returns)``, each ``(S, E)``; ``returns = advantages + values``.
    """
    num_steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros(rewards.shape[1])
    for t in reversed(range(num_steps)):
        if t == num_steps - 1:
            nextnonterminal, nextvalues = 1.0 - next_done, next_value
        else:
            nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
        delta = rewards[t] + gamma * nextvalues * nextnonterminal - values[t]
        lastgaelam = delta + gamma * gae_lambda * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values
