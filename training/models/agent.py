"""EditAgent: the factored PPO policy (type x size x amount), its value network
and auxiliary heads (DESIGN sections 4, 7).

Shapes: ``B`` batch (one row per cursor position), ``W`` beats in an
observation window, cursor at index ``W // 2`` (``AgentConfig.cursor_index``).

The policy trunk is a ``HybridNATTENEncoder`` over the window; the cursor
beat's embedding feeds ONE linear layer that emits ``20 + 5 + 5`` logits,
split with ``torch.split`` into one categorical per factor
(stable-baselines3 ``MultiCategoricalDistribution`` style). Masks set
disallowed logits to ``MASK_LOGIT`` before the split; the amount mask depends
on the type, so its row is picked by the sampled (or given) type. Log-prob
and entropy are summed over the three factors.

The value network is separate: its own small encoder and MLP, sharing no
parameter with the policy trunk (the input normalisation buffers are
constants, not parameters).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.actions import N_AMOUNTS, N_SIZES, N_TYPES
from training.config import AgentConfig
from training.models.encoder import HybridNATTENEncoder

logger = logging.getLogger(__name__)

#: Logits per factor, in the order of the policy head's output.
ACTION_DIMS: tuple[int, int, int] = (N_TYPES, N_SIZES, N_AMOUNTS)
#: Logit given to a masked choice: its probability underflows to exactly 0.
MASK_LOGIT = -1.0e8
#: Entropy of the uniform policy with nothing masked: ln 20 + 2 ln 5 (~6.2).
MAX_ENTROPY = math.log(N_TYPES) + math.log(N_SIZES) + math.log(N_AMOUNTS)


@dataclass
class Observation:
    """What the agent sees at one cursor position (or a batch of them).

    Attributes
    ----------
    features:
        ``(B, W, in_dim)`` float: per-beat audio features
        (``engine.features``), raw; the agent normalises them.
    done:
        ``(B, W, n_done_feats)`` float: what has been done so far at each
        beat (layout in ``AgentConfig.n_done_feats``).
    position:
        ``(B, W, n_pos_feats)`` float: where each beat is (layout in
        ``AgentConfig.n_pos_feats``).
    padding_mask:
        ``(B, W)`` bool, True where the window runs past the song's start or
        end (those rows' contents are ignored).
    """

    features: Tensor
    done: Tensor
    position: Tensor
    padding_mask: Tensor

    @property
    def batch_size(self) -> int:
        """``B``."""
        return self.features.shape[0]

    @property
    def window(self) -> int:
        """``W``."""
        return self.features.shape[1]

    def to(self, device: torch.device | str) -> Observation:
        """Copy on ``device``."""
        return Observation(*(getattr(self, f.name).to(device) for f in fields(self)))

    def __getitem__(self, index: int | slice | Tensor) -> Observation:
        """Rows ``index`` of the batch (a slice or index tensor keeps ``B``)."""
        return Observation(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def cat(observations: list[Observation]) -> Observation:
        """Concatenate along the batch axis."""
        return Observation(
            *(torch.cat([getattr(o, f.name) for o in observations]) for f in fields(Observation))
        )


class ActionMasks(NamedTuple):
    """Allowed choices (True = allowed), batched ``engine.actions.action_masks``.

    Attributes
    ----------
    type:
        ``(B, N_TYPES)`` bool.
    size:
        ``(B, N_SIZES)`` bool.
    amount:
        ``(B, N_TYPES, N_AMOUNTS)`` bool; row ``t`` applies when type ``t``
        is chosen.
    """

    type: Tensor
    size: Tensor
    amount: Tensor

    def rows(self, index: slice | Tensor) -> ActionMasks:
        """Rows ``index`` of the batch."""
        return ActionMasks(self.type[index], self.size[index], self.amount[index])


@dataclass
class AuxBatch:
    """Targets for the auxiliary heads; a None target skips its loss.

    Attributes
    ----------
    obs:
        The observations.
    tempo:
        ``(B,)`` float, normalised tempo (``EditAgent.tempo_target``).
    energy:
        ``(B,)`` int64 in ``[0, n_energy_classes)``: energy class of the
        cursor beat.
    phrase_boundary:
        ``(B, W)`` float in {0, 1}: 1 where a phrase starts; padded beats are
        ignored.
    """

    obs: Observation
    tempo: Tensor | None = None
    energy: Tensor | None = None
    phrase_boundary: Tensor | None = None


@dataclass
class SongPolicy:
    """Masked log-probabilities at every cursor position of a song.

    Attributes
    ----------
    type_logp:
        ``(N, N_TYPES)``.
    size_logp:
        ``(N, N_SIZES)``.
    amount_logp:
        ``(N, N_TYPES, N_AMOUNTS)``: amount log-probabilities given each type
        (the amount mask depends on the type).
    value:
        ``(N,)``.
    """

    type_logp: Tensor
    size_logp: Tensor
    amount_logp: Tensor
    value: Tensor


def _check_masks(masks: ActionMasks) -> None:
    """ValueError if some row allows nothing in a factor (sampling would be undefined)."""
    checks = (("type", masks.type), ("size", masks.size), ("amount", masks.amount))
    for name, mask in checks:
        if not bool(mask.any(dim=-1).all()):
            raise ValueError(f"action mask allows no {name} for some row")


def _categorical_terms(logits: Tensor, choice: Tensor) -> tuple[Tensor, Tensor]:
    """Log-prob of ``choice`` and entropy of one masked categorical.

    ``logits (B, K)`` float32 (masked entries at ``MASK_LOGIT``), ``choice
    (B,)`` int64 -> ``(logprob (B,), entropy (B,))``. Masked entries have
    probability exactly 0 and add 0 to the entropy.
    """
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    return logp.gather(-1, choice[:, None]).squeeze(-1), entropy


def _sample(logits: Tensor, deterministic: bool) -> Tensor:
    """``(B, K)`` logits -> ``(B,)`` int64 choice (argmax when deterministic)."""
    if deterministic:
        return logits.argmax(dim=-1)
    return torch.distributions.Categorical(logits=logits).sample()


class EditAgent(nn.Module):
    """Policy, separate value network and auxiliary heads over an ``Observation``.

    Parameters
    ----------
    config:
        ``AgentConfig`` (sizes, window, backend).
    """

    def __init__(self, config: AgentConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or AgentConfig()
        # Per-feature normalisation, filled from training data by
        # ``set_feature_stats`` and saved with the weights.
        self.register_buffer("feature_mean", torch.zeros(config.in_dim))
        self.register_buffer("feature_std", torch.ones(config.in_dim))

        self.policy_encoder = HybridNATTENEncoder(
            config.obs_dim,
            config.hidden,
            config.heads,
            config.layers,
            config.kernel,
            config.backend,
            mlp_ratio=config.mlp_ratio,
            dropout=config.dropout,
        )
        # One layer for all three factors; zero init = uniform initial policy.
        self.policy_head = nn.Linear(config.hidden, sum(ACTION_DIMS))
        nn.init.zeros_(self.policy_head.weight)
        nn.init.zeros_(self.policy_head.bias)

        self.value_encoder = HybridNATTENEncoder(
            config.obs_dim,
            config.value_hidden,
            config.value_heads,
            config.value_layers,
            config.kernel,
            config.backend,
            mlp_ratio=config.mlp_ratio,
            dropout=config.dropout,
        )
        self.value_head = nn.Sequential(
            nn.Linear(2 * config.value_hidden, config.value_hidden),
            nn.Tanh(),
            nn.Linear(config.value_hidden, 1),
        )

        self.tempo_head = nn.Linear(config.hidden, 1)
        self.energy_head = nn.Linear(config.hidden, config.n_energy_classes)
        self.phrase_head = nn.Linear(config.hidden, 1)

    # ----------------------------------------------------------------- inputs

    def set_feature_stats(self, mean: Tensor, std: Tensor) -> None:
        """Per-feature mean and std ``(in_dim,)`` used to normalise ``features``."""
        shape = (self.config.in_dim,)
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise ValueError(f"feature stats must have shape {shape}")
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp(min=1e-6))

    def _inputs(self, obs: Observation) -> Tensor:
        """``(B, W, obs_dim)``: normalised features, done and position columns,
        zero at padded beats."""
        features = (obs.features - self.feature_mean) / self.feature_std
        x = torch.cat([features, obs.done.to(features.dtype), obs.position.to(features.dtype)], -1)
        return x.masked_fill(obs.padding_mask[..., None], 0.0)

    @staticmethod
    def _at_cursor(h: Tensor) -> Tensor:
        """``(B, W, C)`` -> ``(B, C)``: the cursor beat (index ``W // 2``).

        Selected with a one-hot product rather than indexing, so that export
        with a dynamic window axis needs no guard on ``W // 2 < W``.
        """
        positions = torch.arange(h.shape[1], device=h.device)
        one_hot = (positions == h.shape[1] // 2).to(h.dtype)
        return torch.einsum("bwc,w->bc", h, one_hot)

    # ------------------------------------------------------------------ trunk

    def encode(self, obs: Observation) -> tuple[Tensor, Tensor]:
        """Policy trunk: ``(h (B, W, hidden), pooled (B, hidden))``."""
        return self.policy_encoder(self._inputs(obs), obs.padding_mask)

    def policy_logits(self, obs: Observation) -> Tensor:
        """Unmasked logits ``(B, 20 + 5 + 5)`` in float32, type | size | amount."""
        h, _ = self.encode(obs)
        return self.policy_head(self._at_cursor(h)).float()

    def get_value(self, obs: Observation) -> Tensor:
        """Value estimate ``(B,)`` float32 from the separate value network."""
        h, pooled = self.value_encoder(self._inputs(obs), obs.padding_mask)
        features = torch.cat([self._at_cursor(h), pooled], dim=-1)
        return self.value_head(features).squeeze(-1).float()

    def forward(
        self, features: Tensor, done: Tensor, position: Tensor, padding_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Plain-tensor entry point (for export): ``(logits (B, 30), value (B,))``.

        Arguments as the fields of ``Observation``; logits are unmasked.
        """
        obs = Observation(features, done, position, padding_mask)
        return self.policy_logits(obs), self.get_value(obs)

    # ----------------------------------------------------------------- policy

    def get_action_and_value(
        self,
        obs: Observation,
        masks: ActionMasks | tuple[Tensor, Tensor, Tensor] | None = None,
        action: Tensor | None = None,
        *,
        deterministic: bool = False,
        logits: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Sample (or score) an action and estimate the value.

        Parameters
        ----------
        obs:
            ``Observation`` with batch ``B``.
        masks:
            ``ActionMasks`` (or the same three tensors as a tuple); None
            allows everything. Every row must allow at least one choice per
            factor (ValueError otherwise).
        action:
            ``(B, 3)`` int64 (type, size, amount) to score instead of
            sampling; a masked action gets a log-prob near ``MASK_LOGIT``.
        deterministic:
            Take the most likely choice per factor instead of sampling.
        logits:
            ``policy_logits(obs)`` when the caller already has them (e.g.
            from ``policy_and_aux``), so the trunk runs once.

        Returns
        -------
        ``action (B, 3)`` int64, ``logprob (B,)`` (sum over factors),
        ``entropy (B,)`` (sum over factors; the amount term is the entropy
        of the amount distribution given the chosen type), ``value (B,)``.
        """
        if logits is None:
            logits = self.policy_logits(obs)
        batch = logits.shape[0]
        if masks is None:
            masks = ActionMasks(
                logits.new_ones((batch, N_TYPES), dtype=torch.bool),
                logits.new_ones((batch, N_SIZES), dtype=torch.bool),
                logits.new_ones((batch, N_TYPES, N_AMOUNTS), dtype=torch.bool),
            )
        else:
            masks = ActionMasks(*masks)
            _check_masks(masks)

        type_logits = torch.split(logits, ACTION_DIMS, dim=-1)[0]
        if action is None:
            type_choice = _sample(type_logits.masked_fill(~masks.type, MASK_LOGIT), deterministic)
        else:
            type_choice = action[:, 0].long()
        rows = torch.arange(batch, device=logits.device)
        amount_row = masks.amount[rows, type_choice]  # (B, N_AMOUNTS)
        flat_mask = torch.cat([masks.type, masks.size, amount_row], dim=-1)
        type_l, size_l, amount_l = torch.split(
            logits.masked_fill(~flat_mask, MASK_LOGIT), ACTION_DIMS, dim=-1
        )

        if action is None:
            action = torch.stack(
                [type_choice, _sample(size_l, deterministic), _sample(amount_l, deterministic)],
                dim=-1,
            )
        action = action.long()
        logprob = torch.zeros(batch, device=logits.device)
        entropy = torch.zeros(batch, device=logits.device)
        for k, head in enumerate((type_l, size_l, amount_l)):
            lp, ent = _categorical_terms(head, action[:, k])
            logprob = logprob + lp
            entropy = entropy + ent
        return action, logprob, entropy, self.get_value(obs)

    @torch.no_grad()
    def evaluate_all(
        self,
        obs_song: Observation,
        masks: ActionMasks | tuple[Tensor, Tensor, Tensor] | None = None,
        *,
        chunk_size: int = 512,
    ) -> SongPolicy:
        """Masked log-probabilities and values at every cursor position at once.

        Parameters
        ----------
        obs_song:
            One window per beat of a song: ``B = n_beats`` rows.
        masks:
            ``ActionMasks`` with ``B = n_beats`` rows, or None.
        chunk_size:
            Windows per forward pass (bounds memory on long songs).

        Returns
        -------
        ``SongPolicy`` with ``N = n_beats``: what the length-constrained
        decoder (DESIGN section 10) searches over.
        """
        n = obs_song.batch_size
        parts: list[SongPolicy] = []
        for start in range(0, n, chunk_size):
            obs = obs_song[start : start + chunk_size]
            type_l, size_l, amount_l = torch.split(self.policy_logits(obs), ACTION_DIMS, dim=-1)
            amount_all = amount_l[:, None, :].expand(-1, N_TYPES, -1)
            if masks is not None:
                m = ActionMasks(*masks).rows(slice(start, start + chunk_size))
                _check_masks(m)
                type_l = type_l.masked_fill(~m.type, MASK_LOGIT)
                size_l = size_l.masked_fill(~m.size, MASK_LOGIT)
                amount_all = amount_all.masked_fill(~m.amount, MASK_LOGIT)
            parts.append(
                SongPolicy(
                    torch.log_softmax(type_l, dim=-1),
                    torch.log_softmax(size_l, dim=-1),
                    torch.log_softmax(amount_all, dim=-1),
                    self.get_value(obs),
                )
            )
        return SongPolicy(
            *(torch.cat([getattr(p, f.name) for p in parts]) for f in fields(SongPolicy))
        )

    # -------------------------------------------------------------- auxiliary

    def tempo_target(self, bpm: Tensor) -> Tensor:
        """Normalised tempo target ``(bpm - center) / scale`` (same shape)."""
        return (bpm - self.config.tempo_center_bpm) / self.config.tempo_scale_bpm

    def tempo_bpm(self, normalised: Tensor) -> Tensor:
        """Inverse of ``tempo_target``."""
        return normalised * self.config.tempo_scale_bpm + self.config.tempo_center_bpm

    def aux_outputs(self, obs: Observation) -> dict[str, Tensor]:
        """Auxiliary predictions from the policy trunk.

        Returns
        -------
        ``{"tempo": (B,) normalised, "energy": (B, n_energy_classes) logits
        at the cursor beat, "phrase_boundary": (B, W) logits}``, float32.
        """
        return self._aux_from(*self.encode(obs))

    def _aux_from(self, h: Tensor, pooled: Tensor) -> dict[str, Tensor]:
        return {
            "tempo": self.tempo_head(pooled).squeeze(-1).float(),
            "energy": self.energy_head(self._at_cursor(h)).float(),
            "phrase_boundary": self.phrase_head(h).squeeze(-1).float(),
        }

    def policy_and_aux(self, obs: Observation) -> tuple[Tensor, dict[str, Tensor]]:
        """``(policy_logits(obs), aux_outputs(obs))`` from one pass of the policy trunk."""
        h, pooled = self.encode(obs)
        return self.policy_head(self._at_cursor(h)).float(), self._aux_from(h, pooled)

    def aux_losses(self, batch: AuxBatch, outputs: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Auxiliary losses, one scalar per given target.

        ``outputs`` are ``aux_outputs(batch.obs)`` when the caller already
        has them (``policy_and_aux``); None computes them.

        Returns
        -------
        Any of ``{"aux_tempo": MSE, "aux_energy": cross-entropy,
        "aux_phrase": BCE over valid beats}``.
        """
        out = outputs if outputs is not None else self.aux_outputs(batch.obs)
        losses: dict[str, Tensor] = {}
        if batch.tempo is not None:
            losses["aux_tempo"] = F.mse_loss(out["tempo"], batch.tempo.float())
        if batch.energy is not None:
            losses["aux_energy"] = F.cross_entropy(out["energy"], batch.energy.long())
        if batch.phrase_boundary is not None:
            valid = (~batch.obs.padding_mask).float()
            bce = F.binary_cross_entropy_with_logits(
                out["phrase_boundary"], batch.phrase_boundary.float(), reduction="none"
            )
            losses["aux_phrase"] = (bce * valid).sum() / valid.sum().clamp(min=1.0)
        return losses


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
