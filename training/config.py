"""Dataclass configs for the RL agent and its PPO + behavioural-cloning trainer.

Defaults follow DESIGN section 9 (PPO: lr 1e-4, entropy 0.02, clip 0.2,
target_kl 0.02, batch 2048, gradient accumulation 4, mixed precision on) and
section 7 (policy: HybridNATTENEncoder, hidden 512, 8 heads, 3 layers, kernel
33; a separate value network; BC weight 0.3). Each default is written once,
here; the trainer and the CLI map their flags onto these fields.
``SupervisedConfig`` holds the supervised model (Option A) and its trainer,
with the DESIGN section 9 defaults.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "natten")


@dataclass
class AgentConfig:
    """Shape of the policy/value networks and of the observation they read.

    Observation (``training.models.agent.Observation``, layout in
    ``engine.observation``): a window of ``window`` beats around the cursor
    (the cursor at ``window // 2``) of per-beat features and position
    columns, the song's mean feature vector, the ``done`` rows of the
    ``history`` beats before the cursor and the output-length ratio.

    The encoders read only what does not depend on the walk (features,
    position, song summary), so a beat's encoding is the same in every
    window that holds its whole receptive field (``layers * (kernel // 2)``
    beats each side). ``window`` is at least that wide, which makes the
    per-window encoding used in training equal to one pass over the whole
    song (what ``export.runtime`` runs); the walk enters only the heads.

    Attributes
    ----------
    in_dim:
        Per-beat feature columns, ``len(engine.features.feature_names())``
        (109 without stems; 115 or 121 with, by separator), plus the
        ``engine.context.CONTEXT_NAMES`` columns with ``context``.
    context:
        The model reads the whole-song context columns
        (``engine.context``) after the audio columns.
    n_done_feats:
        Columns of a ``done`` row (``engine.observation.DONE_LAYOUT``, 26).
    n_pos_feats:
        Per-beat position columns read, the first ``n_pos_feats`` of
        ``engine.observation.POSITION_LAYOUT`` (at most 4).
    window:
        Beats of context in one training observation; None (the default)
        is the smallest exact one, ``2 * layers * (kernel // 2) + 1``.
    history:
        Beats before the cursor whose ``done`` rows the heads read
        (summarised: the last beat, the last bar, all of them).
    hidden, heads, layers, kernel:
        Policy encoder width, attention heads, blocks and neighbourhood size
        (beats each query attends to; odd).
    mlp_ratio:
        Feed-forward width as a multiple of ``hidden`` in each block.
    dropout:
        Dropout inside the encoder blocks (0 for PPO: the ratio needs the
        same network at rollout and update time).
    backend:
        Neighbourhood attention implementation: ``"auto"`` (natten when it is
        installed and the tensors are on CUDA, pure torch otherwise),
        ``"torch"`` or ``"natten"``.
    value_hidden, value_heads, value_layers:
        The separate value network's own (small) encoder (its layers count
        towards the receptive field too).
    n_energy_classes:
        Classes of the auxiliary energy head (low / mid / high).
    tempo_center_bpm, tempo_scale_bpm:
        Normalised tempo target = ``(bpm - center) / scale``.
    """

    in_dim: int = 109
    context: bool = False
    n_done_feats: int = 26
    n_pos_feats: int = 4
    # None until __post_init__ sets it: every user of a built config reads an int
    window: int = None  # type: ignore[assignment]
    history: int = 16
    hidden: int = 512
    heads: int = 8
    layers: int = 3
    kernel: int = 33
    mlp_ratio: int = 4
    dropout: float = 0.0
    backend: str = "auto"
    value_hidden: int = 128
    value_heads: int = 4
    value_layers: int = 1
    n_energy_classes: int = 3
    tempo_center_bpm: float = 120.0
    tempo_scale_bpm: float = 60.0

    def __post_init__(self) -> None:
        if self.window is None:
            self.window = 2 * self.receptive_field + 1
        positive = {
            "in_dim": self.in_dim,
            "window": self.window,
            "history": self.history,
            "hidden": self.hidden,
            "heads": self.heads,
            "layers": self.layers,
            "kernel": self.kernel,
            "mlp_ratio": self.mlp_ratio,
            "value_hidden": self.value_hidden,
            "value_heads": self.value_heads,
            "value_layers": self.value_layers,
            "n_energy_classes": self.n_energy_classes,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"AgentConfig.{name} must be >= 1, got {value}")
        for name in ("n_done_feats", "n_pos_feats"):
            if getattr(self, name) < 0:
                raise ValueError(f"AgentConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.n_pos_feats > 4:
            raise ValueError(f"AgentConfig.n_pos_feats is at most 4 (engine.observation.POSITION_LAYOUT), got {self.n_pos_feats}")
        if min(self.window // 2, self.window - 1 - self.window // 2) < self.receptive_field:
            raise ValueError(
                f"window {self.window} is narrower than the encoders' receptive field "
                f"({self.receptive_field} beats each side of the cursor): use at least "
                f"{2 * self.receptive_field + 1}, or leave it unset"
            )
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by heads {self.heads}")
        if self.value_hidden % self.value_heads:
            raise ValueError(
                f"value_hidden {self.value_hidden} is not divisible by "
                f"value_heads {self.value_heads}"
            )
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (a centred neighbourhood), got {self.kernel}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.tempo_scale_bpm <= 0:
            raise ValueError(f"tempo_scale_bpm must be > 0, got {self.tempo_scale_bpm}")

    @property
    def receptive_field(self) -> int:
        """Beats each side of a beat that its encoding depends on (policy and value encoders)."""
        return max(self.layers, self.value_layers) * (self.kernel // 2)

    @property
    def obs_dim(self) -> int:
        """Columns the encoders read per beat: features + position."""
        return self.in_dim + self.n_pos_feats

    @property
    def context_dim(self) -> int:
        """Columns the heads read about the walk: three done-row summaries + the output ratio
        (``EditAgent._context``)."""
        return 3 * self.n_done_feats + 1

    @property
    def cursor_index(self) -> int:
        """Index of the cursor beat inside an observation window."""
        return self.window // 2

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for checkpoints and the export sidecar)."""
        return asdict(self)

    @classmethod
    def observation_only(cls, **observation: Any) -> AgentConfig:
        """A config for making observations (window, history, columns) and no model.

        Its network fields are the smallest any window holds (one layer,
        kernel 1), so only the observation fields' own limits apply.
        """
        return cls(**observation, layers=1, kernel=1)


@dataclass
class PPOConfig:
    """PPO + behavioural cloning hyperparameters (CleanRL naming).

    One update collects ``batch_size`` transitions (``num_envs`` songs walked
    in parallel for ``num_steps`` steps each), then runs ``update_epochs``
    passes over them in ``num_minibatches`` shuffled minibatches. Each
    minibatch's gradient is accumulated over ``grad_accum`` micro-batches of
    ``micro_batch_size`` before one optimiser step, so memory scales with the
    micro-batch and the update with the minibatch.

    Attributes
    ----------
    lr:
        Adam learning rate (annealed linearly to 0 when ``anneal_lr``).
    ent_coef, vf_coef, clip_coef:
        Entropy bonus, value loss weight, policy ratio clip.
    clip_vloss:
        Clip the value loss around the old value as in CleanRL.
    target_kl:
        Stop the update epochs early once ``approx_kl`` exceeds this.
    gamma, gae_lambda:
        Discount and GAE lambda.
    batch_size, num_envs, num_minibatches, update_epochs, grad_accum:
        See above; ``batch_size`` must divide by ``num_envs`` and by
        ``num_minibatches``, and the minibatch by ``grad_accum``.
    max_grad_norm:
        Global gradient norm clip.
    norm_adv:
        Normalise advantages per minibatch.
    mixed_precision:
        Autocast the forward pass: bf16 on CPU, fp16 on CUDA (with a grad
        scaler); see ``autocast_dtype``.
    bc_weight:
        Weight of the behavioural-cloning loss (CLI ``--bc-weight``); its
        demonstrations come from ``bc_path`` (CLI ``--bc-mixed``).
    aux_weight:
        Weight of the summed auxiliary losses (tempo, energy, phrase).
    aux_label_weight:
        Weight of the per-beat label loss (CLI ``--aux-label-weight``): a
        training-only head (``training.models.agent.LabelHead``) predicts
        the labelled type of every beat of a demonstration's window from
        the policy trunk, over the beats whose label is known
        (``BCData.label_type``; older files have none, so the term is 0).
        It supervises the BC passes and the BC-mixed PPO term, not the
        rollouts (they carry no labels). 0 builds no head.
    total_timesteps:
        Environment steps to train for.
    epochs:
        Passes over the training songs (CLI ``--epochs``); the trainer stops
        at whichever of this and ``total_timesteps`` comes first.
    collapse_share:
        Warn when the most frequent action type exceeds this share of a
        rollout (action collapse, DESIGN section 9).
    checkpoint_every:
        Updates between checkpoints (a kill loses at most this many).
    seed:
        Seed for torch, numpy and the environments.
    max_updates:
        Stop after this many updates (None: from ``total_timesteps`` and
        ``epochs``).
    bc_epochs:
        Behavioural-cloning-only passes over the demonstrations before PPO
        (CLI ``--bc-epochs``).
    bc_only:
        Train by behavioural cloning alone, no PPO (CLI ``--bc-only``).
    bc_lr:
        Adam learning rate of the BC-only passes.
    bc_batch_size:
        Demonstrations per optimiser step in the BC-only passes.
    bc_min_confidence:
        Leave out demonstrations whose label confidence (inferred labels,
        ``editorbot data labels``) is below this, 0-1 (CLI
        ``--bc-min-confidence``); the rest keep their confidence as a loss
        weight. 0 keeps them all.
    bc_balance:
        Type balance of the demonstrations' loss (CLI ``--bc-balance``):
        each example weighs ``share ** -bc_balance``, ``share`` the
        fraction of examples whose labelled type is its own, times its
        confidence; weights are normalised to mean 1. 0 weighs every
        example alike (on the relational personas' validation songs 0.5
        did worse than 0 with one-beat KEEP walks: docs/policy_quality.md).
    bc_anneal:
        Lower the BC learning rate linearly from ``bc_lr`` to 0 over the
        BC passes (CLI ``--bc-anneal``), so the last passes settle instead
        of ending wherever a constant rate left the weights.
    """

    lr: float = 1e-4
    ent_coef: float = 0.02
    vf_coef: float = 0.5
    clip_coef: float = 0.2
    clip_vloss: bool = True
    target_kl: float | None = 0.02
    gamma: float = 0.99
    gae_lambda: float = 0.95
    batch_size: int = 2048
    num_envs: int = 8
    num_minibatches: int = 4
    update_epochs: int = 4
    grad_accum: int = 4
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    anneal_lr: bool = True
    mixed_precision: bool = True
    bc_weight: float = 0.3
    bc_path: str | None = None
    aux_weight: float = 0.1
    aux_label_weight: float = 0.0
    total_timesteps: int = 1_000_000
    epochs: int = 10
    collapse_share: float = 0.9
    checkpoint_every: int = 10
    seed: int = 1
    max_updates: int | None = None
    bc_epochs: int = 0
    bc_only: bool = False
    bc_lr: float = 3e-4
    bc_batch_size: int = 256
    bc_min_confidence: float = 0.0
    bc_balance: float = 0.0
    bc_anneal: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_envs", "num_minibatches", "update_epochs", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"PPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.num_envs:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by num_envs {self.num_envs}"
            )
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by "
                f"num_minibatches {self.num_minibatches}"
            )
        if self.minibatch_size % self.grad_accum:
            raise ValueError(
                f"minibatch size {self.minibatch_size} is not divisible by "
                f"grad_accum {self.grad_accum}"
            )
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError("gamma and gae_lambda must be in [0, 1]")
        if self.bc_weight < 0 or self.aux_weight < 0 or self.aux_label_weight < 0 or self.ent_coef < 0:
            raise ValueError("bc_weight, aux_weight, aux_label_weight and ent_coef must be >= 0")
        if self.max_updates is not None and self.max_updates < 1:
            raise ValueError(f"max_updates must be >= 1, got {self.max_updates}")
        if self.bc_epochs < 0 or self.bc_batch_size < 1 or self.bc_lr <= 0 or self.checkpoint_every < 1:
            raise ValueError("bc_epochs must be >= 0, bc_batch_size and checkpoint_every >= 1, bc_lr > 0")
        if not 0.0 <= self.bc_balance <= 1.0:
            raise ValueError(f"bc_balance must be in [0, 1], got {self.bc_balance}")
        if not 0.0 <= self.bc_min_confidence <= 1.0:
            raise ValueError(f"bc_min_confidence must be in [0, 1], got {self.bc_min_confidence}")

    @property
    def num_steps(self) -> int:
        """Steps per environment per rollout."""
        return self.batch_size // self.num_envs

    @property
    def minibatch_size(self) -> int:
        """Transitions per optimiser step."""
        return self.batch_size // self.num_minibatches

    @property
    def micro_batch_size(self) -> int:
        """Transitions per forward/backward pass (gradient accumulation)."""
        return self.minibatch_size // self.grad_accum

    def autocast_dtype(self, device_type: str) -> torch.dtype | None:
        """Autocast dtype for ``device_type`` ("cpu" or "cuda"), None when off.

        bf16 on CPU, fp16 on CUDA (DESIGN section 9). torch is imported here
        so that reading a config (e.g. for ``--help``) does not load it.
        """
        import torch

        if not self.mixed_precision:
            return None
        return torch.float16 if device_type == "cuda" else torch.bfloat16

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TensorBoard hyperparameter table, checkpoints)."""
        return asdict(self)


@dataclass
class SupervisedConfig:
    """The supervised "sound of the edit" model (Option A) and its trainer.

    Defaults of the model size, learning rate, batch and loss weights follow
    DESIGN section 9; the rest are this trainer's own. The model reads
    ``n_mels`` log-mel bands of the DSP render of a plan (the base) and of
    the plan's structural re-sequencing of the raw audio, per STFT frame,
    with the frame's edit label, and predicts a per-band gain in dB.

    Attributes
    ----------
    encoder_dim, decoder_dim:
        Widths of the EditEncoder and MelDecoder transformers.
    n_layers:
        Transformer blocks in each of the encoder and the decoder.
    n_heads:
        Attention heads (must divide both widths).
    ff_mult:
        Feed-forward width as a multiple of the block width.
    dropout:
        Dropout inside the transformer blocks.
    n_mels:
        Mel bands of the model's input and of its gain mask.
    max_gain_db:
        The predicted gain is ``max_gain_db * tanh(x / max_gain_db)`` dB.
    raw_mix:
        Also predict, per frame and mel band, a weight in [0, 1] that puts
        the structural re-sequencing of the raw audio (phase included) in
        place of the DSP render before the gain: lets the model undo an
        effect the plan has and the edit has not (a mislabelled span of an
        inferred plan). Off: a per-band gain only.
    learn_timing:
        Before the network, fit the timing model on the training pairs
        (``training.models.timing``: the edit's lag against the DSP render
        per output beat, a linear function of time and the plan's splices,
        and an output level rule) and train the network on the DSP render
        retimed and levelled by it. Off: the network sees the DSP render.
    lr, weight_decay, max_grad_norm:
        AdamW settings and the global gradient-norm clip.
    batch_size:
        Crops per optimiser step (per process under torchrun).
    l1_weight, multiscale_stft_weight, edit_consistency_weight:
        Loss weights: L1 on log-mel, multi-scale STFT on the waveform, and
        unedited (KEEP) frames kept as the base has them.
    crop_s:
        Length of a training crop in seconds.
    crops_per_epoch:
        Training crops drawn per epoch (None: about one pass over the
        training audio, ``total seconds / crop_s``).
    epochs:
        Most epochs to train.
    patience:
        Stop when ``val/total_loss`` has not improved for this many epochs.
    val_fraction:
        Share of songs held out for validation (at least one song).
    checkpoint_every:
        Optimiser steps between ``last.pt`` writes (a kill loses at most this many).
    mixed_precision:
        Autocast the network: bf16 on CPU, fp16 on CUDA.
    seed:
        Seed of the weights, the split and the crops.
    chunk_frames, overlap_frames:
        Whole songs are rendered in chunks of this many frames, overlapping
        and cross-faded over ``overlap_frames``.
    """

    encoder_dim: int = 512
    decoder_dim: int = 512
    n_layers: int = 6
    n_heads: int = 8
    ff_mult: int = 4
    dropout: float = 0.1
    n_mels: int = 128
    max_gain_db: float = 30.0
    raw_mix: bool = False
    learn_timing: bool = True
    lr: float = 1e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    batch_size: int = 8
    l1_weight: float = 1.0
    multiscale_stft_weight: float = 1.0
    edit_consistency_weight: float = 0.5
    crop_s: float = 3.0
    crops_per_epoch: int | None = None
    epochs: int = 100
    patience: int = 5
    val_fraction: float = 0.2
    checkpoint_every: int = 50
    mixed_precision: bool = True
    seed: int = 1
    chunk_frames: int = 512
    overlap_frames: int = 64

    def __post_init__(self) -> None:
        for name in ("encoder_dim", "decoder_dim", "n_layers", "n_heads", "ff_mult", "n_mels", "batch_size",
                     "epochs", "patience", "checkpoint_every", "chunk_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"SupervisedConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("encoder_dim", "decoder_dim"):
            if getattr(self, name) % self.n_heads:
                raise ValueError(f"{name} {getattr(self, name)} is not divisible by n_heads {self.n_heads}")
        if self.lr <= 0 or self.crop_s <= 0 or self.max_gain_db <= 0:
            raise ValueError("lr, crop_s and max_gain_db must be > 0")
        if min(self.l1_weight, self.multiscale_stft_weight, self.edit_consistency_weight, self.weight_decay) < 0:
            raise ValueError("loss weights and weight_decay must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.crops_per_epoch is not None and self.crops_per_epoch < 1:
            raise ValueError(f"crops_per_epoch must be >= 1, got {self.crops_per_epoch}")
        if not 0 <= self.overlap_frames < self.chunk_frames // 2:
            raise ValueError("overlap_frames must be in [0, chunk_frames / 2)")

    def autocast_dtype(self, device_type: str) -> torch.dtype | None:
        """bf16 on CPU, fp16 on CUDA, None when ``mixed_precision`` is off."""
        import torch

        if not self.mixed_precision:
            return None
        return torch.float16 if device_type == "cuda" else torch.bfloat16

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoints, the TensorBoard hyperparameter table)."""
        return asdict(self)
