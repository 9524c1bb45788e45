"""EditAgent: the factored PPO policy (type x size x amount), its value network
and auxiliary heads (DESIGN sections 4, 7).

Shapes: ``B`` batch (one row per cursor position), ``W`` beats in an
observation window, cursor at index ``W // 2``, ``K`` history beats, ``L``
beats of a padded song.

The policy trunk is a ``HybridNATTENEncoder`` over the walk-independent
columns (features, position, the song summary as its global context). The
cursor beat's embedding and the walk context (the ``done`` rows of the
``K`` beats before the cursor and the output-length ratio) feed a small
MLP whose last linear layer emits ``20 + 5 + 5`` logits, split with
``torch.split`` into one categorical per factor (stable-baselines3
``MultiCategoricalDistribution`` style). Masks set disallowed logits to
``MASK_LOGIT`` before the split; the amount mask depends on the type, so its
row is picked by the sampled (or given) type. Log-prob and entropy are
summed over the three factors.

Because the encoders never see the walk and the window covers their
receptive field (``AgentConfig.window``), encoding a window gives at its
cursor exactly what encoding the whole song gives at that beat:
``song_outputs`` runs the encoders once per song and the heads at any
number of cursors, which is the exported graph (``export.onnx``).

The value network is separate: its own small encoder and MLP, sharing no
parameter with the policy trunk (the input normalisation buffers are
constants, not parameters).

``LabelHead`` is a training-only auxiliary head: it reads the policy trunk's
per-beat outputs and predicts each window beat's labelled action type, so a
demonstration supervises every beat of its window, not only the cursor's
decision. It is not a module of ``EditAgent``: the trainer owns it
(``training.ppo``), and neither the agent's weights, the exported graph nor
inference know of it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from editorbot.engine.actions import N_AMOUNTS, N_SIZES, N_TYPES
from editorbot.training.config import AgentConfig
from editorbot.training.models.encoder import HybridNATTENEncoder

#: ``Observation`` fields in order (also the keys of ``training.env.EditEnv``'s observation dict).
OBS_FIELDS: tuple[str, ...] = ("features", "position", "padding_mask", "summary", "done", "output_ratio")

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
    position:
        ``(B, W, n_pos_feats)`` float: where each beat is
        (``engine.observation.POSITION_LAYOUT``).
    padding_mask:
        ``(B, W)`` bool, True where the window runs past the song's start or
        end (those rows' contents are ignored).
    summary:
        ``(B, in_dim)`` float: the song's mean raw features.
    done:
        ``(B, K, n_done_feats)`` float: what was done to each of the ``K``
        beats before the cursor (``engine.observation.DONE_LAYOUT``; zeros
        before the song's start).
    output_ratio:
        ``(B,)`` float: output beats so far over the target length (0
        without a target).
    """

    features: Tensor
    position: Tensor
    padding_mask: Tensor
    summary: Tensor
    done: Tensor
    output_ratio: Tensor

    @staticmethod
    def from_numpy(obs: dict[str, Any], device: torch.device | str = "cpu") -> Observation:
        """From an ``EditEnv`` observation dict (one env or a vector env's stacked arrays)."""
        t = {k: torch.as_tensor(np.asarray(obs[k])) for k in OBS_FIELDS}
        t["padding_mask"] = t["padding_mask"].bool()
        return Observation(**t).to(device)

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

    feature_mean: Tensor  # (in_dim,) buffer
    feature_std: Tensor  # (in_dim,) buffer

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
            summary_dim=config.in_dim,
        )
        # Cursor embedding (+ an MLP of it and the walk context) -> one layer
        # for all three factors; its zero init makes the initial policy uniform.
        self.policy_mlp = nn.Sequential(nn.Linear(config.context_dim, config.hidden), nn.GELU())
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
            summary_dim=config.in_dim,
        )
        self.value_head = nn.Sequential(
            nn.Linear(2 * config.value_hidden + config.context_dim, config.value_hidden),
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

    def _inputs(self, features: Tensor, position: Tensor, padding_mask: Tensor) -> Tensor:
        """``(B, L, obs_dim)``: normalised features and position columns, zero at padded beats."""
        x = torch.cat([(features - self.feature_mean) / self.feature_std, position.to(features.dtype)], -1)
        return x.masked_fill(padding_mask[..., None], 0.0)

    def _summary(self, summary: Tensor) -> Tensor:
        """``(B, in_dim)`` normalised song summary."""
        return (summary - self.feature_mean) / self.feature_std

    @staticmethod
    def _context(done: Tensor, output_ratio: Tensor) -> Tensor:
        """``(B, context_dim)``: the walk at the cursor, from ``done (B, K, D)`` and ``output_ratio (B,)``.

        The last beat's row, the mean row of the last bar (4 beats) and of
        all ``K``, then the ratio: a few smooth numbers rather than ``K * D``
        raw flags, which a policy trained on a few hundred songs would
        otherwise fit to noise.
        """
        return torch.cat(
            [done[:, -1], done[:, -4:].mean(1), done.mean(1), output_ratio.to(done.dtype)[:, None]], dim=-1
        )

    @staticmethod
    def _at_cursor(h: Tensor) -> Tensor:
        """``(B, W, C)`` -> ``(B, C)``: the cursor beat (index ``W // 2``)."""
        return h[:, h.shape[1] // 2]

    # ------------------------------------------------------------------ trunk

    def encode(self, obs: Observation) -> tuple[Tensor, Tensor]:
        """Policy trunk: ``(h (B, W, hidden), song (B, hidden))``."""
        x = self._inputs(obs.features, obs.position, obs.padding_mask)
        return self.policy_encoder(x, obs.padding_mask, self._summary(obs.summary))

    def _policy_from(self, cursor_h: Tensor, context: Tensor) -> Tensor:
        """``(B, hidden)``, ``(B, context_dim)`` -> unmasked logits ``(B, 30)`` float32."""
        # residual: the cursor embedding reaches the head linearly, the walk context adds to it
        z = cursor_h + self.policy_mlp(context.to(cursor_h.dtype))
        return self.policy_head(z).float()

    def _value_from(self, cursor_h: Tensor, song: Tensor, context: Tensor) -> Tensor:
        """Value head: ``(B, value_hidden)`` x2, ``(B, context_dim)`` -> ``(B,)`` float32."""
        return self.value_head(torch.cat([cursor_h, song, context.to(cursor_h.dtype)], dim=-1)).squeeze(-1).float()

    def policy_logits(self, obs: Observation) -> Tensor:
        """Unmasked logits ``(B, 20 + 5 + 5)`` in float32, type | size | amount."""
        h, _ = self.encode(obs)
        return self._policy_from(self._at_cursor(h), self._context(obs.done, obs.output_ratio))

    def get_value(self, obs: Observation) -> Tensor:
        """Value estimate ``(B,)`` float32 from the separate value network."""
        x = self._inputs(obs.features, obs.position, obs.padding_mask)
        h, song = self.value_encoder(x, obs.padding_mask, self._summary(obs.summary))
        return self._value_from(self._at_cursor(h), song, self._context(obs.done, obs.output_ratio))

    def song_outputs(
        self,
        features: Tensor,
        position: Tensor,
        padding_mask: Tensor,
        summary: Tensor,
        cursors: Tensor,
        done: Tensor,
        output_ratio: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Whole-song evaluation: encoders once, heads at ``B`` cursors (the exported graph).

        Parameters
        ----------
        features, position, padding_mask:
            ``(1, L, in_dim)``, ``(1, L, n_pos_feats)``, ``(1, L)`` bool: one
            song with ``window // 2`` padded beats before and after it.
        summary:
            ``(1, in_dim)`` the song's mean raw features.
        cursors:
            ``(B,)`` int64 indices into ``L`` (beat + ``window // 2``).
        done, output_ratio:
            ``(B, K, n_done_feats)`` and ``(B,)``: each cursor's walk context.

        Returns
        -------
        ``logits (B, 30)`` (unmasked), ``value (B,)``, ``tempo (1,)``
        (normalised), ``energy (B, n_energy_classes)`` logits at the cursors
        and ``phrase_boundary (1, L)`` logits; float32. Row ``b`` equals
        ``policy_logits`` / ``get_value`` / the aux heads of the window
        observation centred on cursor ``b``.
        """
        x = self._inputs(features, position, padding_mask)
        s = self._summary(summary)
        context = self._context(done, output_ratio)
        plan = self.policy_encoder.plan(x, padding_mask)  # the value encoder has the same kernel
        h, song = self.policy_encoder(x, padding_mask, s, plan)
        hv, song_v = self.value_encoder(x, padding_mask, s, plan)
        cursor_h, cursor_hv = h[0, cursors], hv[0, cursors]
        logits = self._policy_from(cursor_h, context)
        value = self._value_from(cursor_hv, song_v.expand(cursor_hv.shape[0], -1), context)
        tempo = self.tempo_head(song).squeeze(-1).float()
        energy = self.energy_head(cursor_h).float()
        phrase = self.phrase_head(h).squeeze(-1).float()
        return logits, value, tempo, energy, phrase

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

        type_logits = torch.split(logits, list(ACTION_DIMS), dim=-1)[0]
        if action is None:
            type_choice = _sample(type_logits.masked_fill(~masks.type, MASK_LOGIT), deterministic)
        else:
            type_choice = action[:, 0].long()
        rows = torch.arange(batch, device=logits.device)
        amount_row = masks.amount[rows, type_choice]  # (B, N_AMOUNTS)
        flat_mask = torch.cat([masks.type, masks.size, amount_row], dim=-1)
        type_l, size_l, amount_l = torch.split(
            logits.masked_fill(~flat_mask, MASK_LOGIT), list(ACTION_DIMS), dim=-1
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

    def _aux_from(self, h: Tensor, song: Tensor) -> dict[str, Tensor]:
        return {
            "tempo": self.tempo_head(song).squeeze(-1).float(),
            "energy": self.energy_head(self._at_cursor(h)).float(),
            "phrase_boundary": self.phrase_head(h).squeeze(-1).float(),
        }

    def policy_and_aux(self, obs: Observation) -> tuple[Tensor, dict[str, Tensor]]:
        """``(policy_logits(obs), aux_outputs(obs))`` from one pass of the policy trunk."""
        logits, aux, _ = self.policy_aux_and_window(obs)
        return logits, aux

    def policy_aux_and_window(self, obs: Observation) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """``policy_and_aux(obs)`` and the policy trunk's per-beat outputs ``h (B, W, hidden)`` (``LabelHead``'s input)."""
        h, song = self.encode(obs)
        logits = self._policy_from(self._at_cursor(h), self._context(obs.done, obs.output_ratio))
        return logits, self._aux_from(h, song), h

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


class LabelHead(nn.Module):
    """Training-only head: the labelled action type of every window beat from the policy trunk's outputs.

    ``forward(h (B, W, hidden))`` -> logits ``(B, W, N_TYPES)`` float32.
    One linear layer, so what it needs must be in the trunk's per-beat
    outputs: its loss pushes the persona's per-beat distinctions into the
    encoder the policy head reads at the cursor.

    Parameters
    ----------
    hidden:
        ``AgentConfig.hidden``, the policy trunk's width.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, N_TYPES)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h).float()

    def loss(self, h: Tensor, label_type: Tensor, weight: Tensor | None = None) -> Tensor:
        """Cross-entropy over the beats whose label is known.

        Parameters
        ----------
        h:
            ``(B, W, hidden)`` policy trunk outputs (``EditAgent.policy_aux_and_window``).
        label_type:
            ``(B, W)`` int64 labelled type per beat, -1 where unknown or padded
            (``training.bc.BCData.label_type``).
        weight:
            ``(B,)`` per-example weight (label confidence), or None.

        Returns
        -------
        Scalar: the weighted mean cross-entropy over known beats; 0 (with a
        gradient) when no beat is known.
        """
        logits = self(h)
        known = label_type >= 0
        ce = F.cross_entropy(logits.reshape(-1, N_TYPES), label_type.clamp(min=0).reshape(-1), reduction="none")
        w = known.float() if weight is None else known.float() * weight.float()[:, None]
        return (ce.reshape(label_type.shape) * w).sum() / w.sum().clamp(min=1e-6)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
