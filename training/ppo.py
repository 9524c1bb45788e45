"""PPO + behavioural cloning for the factored edit policy, CleanRL style.

``train`` reads top to bottom as named steps: setup (``make_run``:
distributed, seeds, agent, optimiser; resume through
``training.run_state``), optional behavioural-cloning-only passes
(``behavioural_cloning``), then the PPO loop (``ppo_updates``), one update
being ``collect_rollout`` into preallocated ``RolloutStorage``,
``compute_gae`` (both data structures and GAE live in ``training.rollout``), ``ppo_update`` (minibatches with gradient accumulation,
mixed precision and a KL early stop; ``ppo_loss`` names every term:
``policy_loss``, ``value_loss``, entropy, BC, auxiliary and per-beat label
losses), then
``update_metrics``, ``log_update`` and ``save_update``. What the steps share
(agent, optimiser, counters) is one ``Run``.

Shapes: ``S = num_steps`` per env per rollout, ``E = num_envs`` (per
process), ``W`` window; the observation fields' own shapes are in
``training.env``. With torchrun each process (rank) has its own envs and seeds and
collects ``batch_size`` transitions; DDP averages the gradients; rank 0
writes checkpoints and logs.

Checkpoints (``last.pt`` every ``checkpoint_every`` updates and at the end or
on SIGINT/SIGTERM; ``best.pt`` when the mean episode reward improves) hold
the agent's weights and config, the per-beat label head's weights (``None``
without one), the optimiser and grad scaler, the update
count, global step, BC epochs done, the python/numpy/torch rng states and
the configs; they are written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from editorbot.engine.actions import N_TYPES, TYPES
from editorbot.engine.progress import progress
from editorbot.training.bc import BCData, bc_loss
from editorbot.training.config import AgentConfig, PPOConfig
from editorbot.training.dataset import Episode, feature_stats
from editorbot.training.distributed import Distributed, all_mean, finish_distributed, setup_training
from editorbot.training.env import make_vector_env
from editorbot.training.models.agent import ActionMasks, AuxBatch, EditAgent, LabelHead, Observation
from editorbot.training.reward import TERMS, ReferenceStats, RewardWeights
from editorbot.training.rollout import EnvState, FlatBatch, RolloutStorage, compute_gae
from editorbot.training.run_state import (
    StopFlag,
    gather_rng_states,
    hyperparameter_table,
    load_resume_checkpoint,
    read_checkpoint,
    restore_training_state,
    save_checkpoint,
)

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "editorbot.ppo/1"
#: The loss terms summed per micro-batch and logged as ``losses/<name>``.
LOSS_TERMS = ("pg_loss", "v_loss", "entropy_loss", "bc_loss", "aux_loss", "label_loss")


# --------------------------------------------------------------------- helpers


class AgentStep(nn.Module):
    """Everything one training step differentiates, as one forward (what DDP wraps).

    ``forward(obs, masks, actions, bc_obs, aux, bc_label_type, bc_weight)``
    returns ``{"logprob", "entropy", "value"}`` (each ``(B,)``) for scored
    rollout actions when ``obs`` is given, ``"bc_logits"`` ``(B_bc, 30)``
    when ``bc_obs`` is given, the auxiliary losses when ``aux`` is given and
    ``"label_loss"`` (``LabelHead.loss`` of ``bc_obs`` against
    ``bc_label_type (B_bc, W)``, weighted by ``bc_weight (B_bc,)``) when
    ``label_head`` exists and ``bc_label_type`` is given.
    """

    def __init__(self, agent: EditAgent, label_head: LabelHead | None = None) -> None:
        super().__init__()
        self.agent = agent
        self.label_head = label_head

    def forward(
        self,
        obs: Observation | None = None,
        masks: ActionMasks | None = None,
        actions: Tensor | None = None,
        bc_obs: Observation | None = None,
        aux: AuxBatch | None = None,
        bc_label_type: Tensor | None = None,
        bc_weight: Tensor | None = None,
    ) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        aux_out = None  # aux head outputs, when the trunk pass they need is already made
        if obs is not None:
            logits = None
            if aux is not None and aux.obs is obs:
                logits, aux_out = self.agent.policy_and_aux(obs)
            _, out["logprob"], out["entropy"], out["value"] = self.agent.get_action_and_value(
                obs, masks, actions, logits=logits
            )
        if bc_obs is not None:
            aux_here = aux is not None and aux.obs is bc_obs and aux_out is None
            if self.label_head is not None and bc_label_type is not None:
                out["bc_logits"], bc_aux, window = self.agent.policy_aux_and_window(bc_obs)
                out["label_loss"] = self.label_head.loss(window, bc_label_type, bc_weight)
                aux_out = bc_aux if aux_here else aux_out
            elif aux_here:
                out["bc_logits"], aux_out = self.agent.policy_and_aux(bc_obs)
            else:
                out["bc_logits"] = self.agent.policy_logits(bc_obs)
        if aux is not None:
            out.update(self.agent.aux_losses(aux, aux_out))
        return out


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (``run_state.read_checkpoint``)."""
    return read_checkpoint(Path(path), CHECKPOINT_FORMAT)


def load_agent(path: str | os.PathLike) -> EditAgent:
    """The trained ``EditAgent`` of a checkpoint (eval mode, CPU)."""
    ckpt = load_checkpoint(path)
    agent = EditAgent(AgentConfig(**ckpt["agent_config"]))
    agent.load_state_dict(ckpt["agent"])
    return agent.eval()


# ------------------------------------------------------------------------ state


@dataclass
class Run:
    """One run's objects and counters: what the named steps of ``train`` share.

    ``update``, ``global_step``, ``bc_epochs`` and ``best_reward`` are what a
    checkpoint restores; ``saved`` is ``(update, bc_epochs)`` of the last
    ``last.pt`` written, so the end of ``train`` writes one only when it is stale.
    """

    cfg: PPOConfig
    agent_config: AgentConfig
    weights: RewardWeights
    dev: torch.device
    ddp: Distributed
    agent: EditAgent
    step_module: nn.Module  # AgentStep, DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    save_dir: Path
    label_head: LabelHead | None = None  # the per-beat label head, with aux_label_weight > 0
    writer: SummaryWriter | None = None
    update: int = 0
    global_step: int = 0
    bc_epochs: int = 0
    best_reward: float = -float("inf")
    saved: tuple[int, int] | None = None

    @property
    def last_path(self) -> Path:
        return self.save_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.save_dir / "best.pt"

    def autocast(self) -> AbstractContextManager[Any]:
        """bf16/fp16 autocast when mixed precision is on, else nothing."""
        return torch.autocast(self.dev.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()

    def aux_batch(self, obs: Observation, targets: dict[str, Tensor]) -> AuxBatch | None:
        """The auxiliary heads' batch for ``obs``, None when ``aux_weight`` is 0."""
        if not self.cfg.aux_weight:
            return None
        return AuxBatch(obs, self.agent.tempo_target(targets["tempo_bpm"]), targets["energy"], targets["phrase"])

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def label_target(self, aux: dict[str, Tensor]) -> Tensor | None:
        """The per-beat label target ``(B, W)`` of demonstration targets ``aux``, None without a label head."""
        return aux["label_type"] if self.label_head is not None else None

    def optimizer_step(self) -> None:
        """Unscale, clip the gradient norm to ``max_grad_norm``, step, update the scaler."""
        self.scaler.unscale_(self.optimizer)
        nn.utils.clip_grad_norm_(self.step_module.parameters(), self.cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def checkpoint(self, path: Path) -> None:
        """Gather every rank's rng state and let rank 0 write ``path`` (every rank calls it)."""
        if path == self.last_path:
            self.saved = (self.update, self.bc_epochs)
        states = gather_rng_states(self.ddp)
        if self.ddp.main:
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT,
                "agent": self.agent.state_dict(),
                "agent_config": self.agent_config.to_dict(),
                "label_head": self.label_head.state_dict() if self.label_head is not None else None,
                "ppo_config": self.cfg.to_dict(),
                "reward_weights": self.weights.to_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "update": self.update,
                "global_step": self.global_step,
                "bc_epochs": self.bc_epochs,
                "best_reward": self.best_reward,
                "rng": states,
                "world": self.ddp.world,
            })


@dataclass
class LossTerms:
    """One micro-batch's losses, each named as it is logged."""

    loss: Tensor  # what is differentiated
    pg_loss: Tensor
    v_loss: Tensor
    entropy_loss: Tensor
    bc_loss: Tensor
    aux_loss: Tensor
    label_loss: Tensor
    approx_kl: Tensor  # ((ratio - 1) - log ratio).mean()
    old_approx_kl: Tensor  # (-log ratio).mean()
    clipfrac: float
    bc_accuracy_type: float | None


@dataclass
class UpdateStats:
    """What one PPO update logs, summed or collected over its micro-batches."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(LOSS_TERMS, 0.0))
    n: int = 0
    clipfracs: list[float] = field(default_factory=list)
    approx_kls: list[float] = field(default_factory=list)  # one per minibatch (its last micro-batch's)
    bc_type_acc: list[float] = field(default_factory=list)
    approx_kl: Tensor = field(default_factory=lambda: torch.zeros(()))
    old_approx_kl: Tensor = field(default_factory=lambda: torch.zeros(()))

    def add(self, terms: LossTerms) -> None:
        for name in LOSS_TERMS:
            self.sums[name] += getattr(terms, name).item()
        self.n += 1
        self.approx_kl, self.old_approx_kl = terms.approx_kl, terms.old_approx_kl
        self.clipfracs.append(terms.clipfrac)
        if terms.bc_accuracy_type is not None:
            self.bc_type_acc.append(terms.bc_accuracy_type)

    def mean(self, name: str) -> float:
        return self.sums[name] / max(self.n, 1)


# ------------------------------------------------------------------------ train


def train(
    episodes: list[Episode],
    save_dir: str | os.PathLike,
    *,
    agent_config: AgentConfig | None = None,
    ppo_config: PPOConfig | None = None,
    weights: RewardWeights | None = None,
    reference: ReferenceStats | None = None,
    bc_data: BCData | None = None,
    resume: bool = False,
    init: str | os.PathLike | None = None,
    subprocess: bool = False,
    use_target: bool = True,
    device: str = "cpu",
    quiet: bool = False,
    on_update: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train an ``EditAgent`` on ``episodes``; see the module docstring.

    Parameters
    ----------
    episodes:
        Training songs.
    save_dir:
        Checkpoints (``last.pt``, ``best.pt``), TensorBoard events (``tb/``)
        and ``progress.jsonl`` (one line per update).
    agent_config, ppo_config, weights:
        Configs (defaults when None). On ``resume`` the checkpoint's agent
        config is used.
    reference:
        Finished tracks' statistics for the ``reference`` reward term.
    bc_data:
        Demonstrations for BC mixing (``ppo_config.bc_weight``) and BC-only
        passes (``bc_epochs``, ``bc_only``).
    resume:
        Continue from ``save_dir/last.pt`` (from scratch, with a warning,
        when there is none).
    init:
        Fine-tune: start from this policy checkpoint's weights and agent
        config (``agent_config`` is then ignored), its feature
        normalisation included, with a fresh optimiser and counters. A
        resumed run's own checkpoint wins over it.
    subprocess:
        One process per env (``AsyncVectorEnv``) instead of stepping them in
        this one.
    use_target:
        ``EditEnv``'s: give the walk each song's labelled output length
        (``output_ratio`` column, ``duration`` reward); False trains walks
        without a target, as ``editorbot edit`` runs without one.
    device:
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    on_update:
        Called with ``(update, metrics)`` after each update (tests, hooks).

    Returns
    -------
    ``{"updates", "global_step", "bc_epochs", "episode_reward", "metrics"}``
    (metrics of the last update).

    Examples
    --------
    >>> from training.dataset import synthetic_episodes
    >>> result = train(synthetic_episodes(2, n_beats=32, seed=0), "runs/tiny",
    ...                ppo_config=PPOConfig(batch_size=64, num_envs=2, max_updates=1))  # doctest: +SKIP
    >>> result["updates"]  # doctest: +SKIP
    1
    """
    cfg = ppo_config or PPOConfig()
    weights = weights or RewardWeights()
    save_dir = Path(save_dir)
    dev, ddp = setup_training(device)
    ckpt = load_resume_checkpoint(save_dir / "last.pt", CHECKPOINT_FORMAT, ("update",)) if resume else None
    start = load_checkpoint(init) if init is not None and ckpt is None else None
    if ckpt is not None:
        agent_config = AgentConfig(**ckpt["agent_config"])
    elif start is not None:
        agent_config = AgentConfig(**start["agent_config"])
        logger.info("fine-tuning from %s", init)
    agent_config = agent_config or AgentConfig()
    if episodes and episodes[0].features.shape[1] != agent_config.in_dim:
        raise ValueError(f"the songs have {episodes[0].features.shape[1]} feature columns, the policy reads {agent_config.in_dim}")
    if bc_data is not None:
        bc_data = bc_data.fitted(agent_config, "--bc-mixed").confident(cfg.bc_min_confidence).type_balanced(cfg.bc_balance)
    run = make_run(episodes, cfg, agent_config, weights, dev, ddp, save_dir)
    if run.label_head is not None and (bc_data is None or not (bc_data.label_type >= 0).any()):
        logger.warning("--aux-label-weight: the demonstrations know no beat's label (a file made before "
                       "label_type, or none): the label head learns nothing; make it again with editorbot data labels")
    if ckpt is not None:
        if (ckpt.get("label_head") is None) != (run.label_head is None):
            raise ValueError(f"--resume: {save_dir / 'last.pt'} was trained with"
                             f"{'out' if ckpt.get('label_head') is None else ''} the per-beat label head; "
                             f"resume it with {'no' if ckpt.get('label_head') is None else 'an'} --aux-label-weight")
        restore_training_state(ckpt, "agent", run.agent, run.optimizer, run.scaler, ddp.rank)
        if run.label_head is not None:
            run.label_head.load_state_dict(ckpt["label_head"])
        run.update, run.global_step, run.bc_epochs = ckpt["update"], ckpt["global_step"], ckpt["bc_epochs"]
        run.best_reward = ckpt["best_reward"]
    else:
        if start is not None:  # after make_run: the init's feature statistics replace the songs'
            run.agent.load_state_dict(start["agent"])
        torch.manual_seed(cfg.seed + 1000 * ddp.rank)  # each rank samples its own actions
        np.random.seed(cfg.seed + 1000 * ddp.rank)
        random.seed(cfg.seed + 1000 * ddp.rank)

    budget = min(cfg.total_timesteps, cfg.epochs * sum(e.n_beats for e in episodes))
    num_updates = 0 if cfg.bc_only else cfg.max_updates or max(1, -(-budget // (cfg.batch_size * ddp.world)))
    if ddp.main:
        run.writer = SummaryWriter(str(save_dir / "tb"))
        run.writer.add_text("hyperparameters", hyperparameter_table(
            {"agent": agent_config.to_dict(), "ppo": cfg.to_dict(), "reward": weights.to_dict(),
             "run": {"songs": len(episodes), "num_updates": num_updates, "world": ddp.world, "device": str(dev)}}
        ), run.global_step)

    metrics: dict[str, float] = {}
    save_dir.mkdir(parents=True, exist_ok=True)
    with StopFlag() as stop:
        bc_epochs = cfg.bc_epochs or (cfg.epochs if cfg.bc_only else 0)  # --bc-only alone: --epochs BC passes
        if bc_data is not None and run.bc_epochs < bc_epochs:
            metrics = behavioural_cloning(run, bc_data, bc_epochs, stop, quiet=quiet)
        if run.update < num_updates and not stop.stop:
            envs = make_vector_env(episodes, agent_config, cfg.num_envs, weights=weights, reference=reference,
                                   use_target=use_target, subprocess=subprocess)
            metrics = ppo_updates(run, envs, bc_data, num_updates, stop, quiet=quiet, on_update=on_update) or metrics
            envs.close()
        if run.saved != (run.update, run.bc_epochs):
            run.checkpoint(run.last_path)

    finish_distributed(run.agent, ddp, save_dir)
    if run.writer is not None:
        run.writer.close()
    return {
        "updates": run.update,
        "global_step": run.global_step,
        "bc_epochs": run.bc_epochs,
        "episode_reward": metrics.get("train/episode_reward", float("nan")),
        "metrics": metrics,
    }


def make_run(episodes: list[Episode], cfg: PPOConfig, agent_config: AgentConfig, weights: RewardWeights,
             dev: torch.device, ddp: Distributed, save_dir: Path) -> Run:
    """Seed, build the agent (feature statistics of ``episodes``), the label head, optimiser and grad scaler.

    The label head exists only with ``aux_label_weight`` > 0; it is made
    after the agent, so the agent's initial weights do not depend on it.
    """
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    agent = EditAgent(agent_config).to(dev)
    mean, std = feature_stats(episodes)
    agent.set_feature_stats(torch.from_numpy(mean).to(dev), torch.from_numpy(std).to(dev))
    label_head = LabelHead(agent_config.hidden).to(dev) if cfg.aux_label_weight > 0 else None
    step_module: nn.Module = AgentStep(agent, label_head)
    optimizer = torch.optim.Adam(step_module.parameters(), lr=cfg.lr, eps=1e-5)
    amp_dtype = cfg.autocast_dtype(dev.type)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    if ddp.enabled:
        step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=True)
    return Run(cfg, agent_config, weights, dev, ddp, agent, step_module, optimizer, scaler, amp_dtype, save_dir,
               label_head=label_head)


# ------------------------------------------------------------ behavioural cloning


def behavioural_cloning(run: Run, bc_data: BCData, bc_epochs: int, stop: StopFlag, *, quiet: bool) -> dict[str, float]:
    """BC-only passes over ``bc_data`` (this rank's shard) from ``run.bc_epochs`` to ``bc_epochs``.

    Returns the last epoch's ``{"bc/loss", "bc/accuracy_type"}`` (rank means), ``"bc/label_loss"``
    with a label head, and ``"bc/learning_rate"`` (its last step's, ``bc_learning_rate``).
    """
    cfg, ddp = run.cfg, run.ddp
    shard = np.arange(ddp.rank, len(bc_data), ddp.world)
    steps_per_epoch = max(1, -(-len(shard) // cfg.bc_batch_size))
    if ddp.enabled:  # equal step counts on every rank
        steps_per_epoch = -(-len(bc_data) // (cfg.bc_batch_size * ddp.world))
    metrics: dict[str, float] = {}
    lr = cfg.bc_lr
    for epoch in progress(range(run.bc_epochs, bc_epochs), desc="BC epochs", quiet=quiet or not ddp.main):
        order = np.random.permutation(shard)
        losses, type_acc, label_losses = [], [], []
        for k in range(steps_per_epoch):
            lr = bc_learning_rate(cfg, epoch * steps_per_epoch + k, bc_epochs * steps_per_epoch)
            run.set_lr(lr)
            idx = np.take(order, np.arange(k * cfg.bc_batch_size, (k + 1) * cfg.bc_batch_size), mode="wrap")
            loss, acc, label_loss = bc_step(run, bc_data, idx)
            losses.append(loss)
            type_acc.append(acc)
            label_losses.append(label_loss)
        run.bc_epochs = epoch + 1
        metrics = {"bc/loss": all_mean(float(np.mean(losses)), ddp),
                   "bc/accuracy_type": all_mean(float(np.mean(type_acc)), ddp), "bc/learning_rate": lr}
        if run.label_head is not None:
            metrics["bc/label_loss"] = all_mean(float(np.mean(label_losses)), ddp)
        write_scalars(run.writer, metrics, run.bc_epochs)
        logger.info("BC epoch %d/%d: loss %.4f, type accuracy %.3f", run.bc_epochs, bc_epochs,
                    metrics["bc/loss"], metrics["bc/accuracy_type"])
        if run.bc_epochs % cfg.checkpoint_every == 0 or run.bc_epochs == bc_epochs:
            run.checkpoint(run.last_path)
        if all_mean(float(stop.stop), ddp) > 0:
            break
    return metrics


def bc_learning_rate(cfg: PPOConfig, step: int, total: int) -> float:
    """BC learning rate of optimiser step ``step`` of ``total``: ``bc_lr``, or with ``bc_anneal`` falling linearly to 0."""
    return cfg.bc_lr * (1.0 - step / total) if cfg.bc_anneal else cfg.bc_lr


def bc_step(run: Run, bc_data: BCData, idx: np.ndarray) -> tuple[float, float, float]:
    """One optimiser step on the BC, auxiliary and label losses of demonstrations ``idx``.

    ``loss = bc_loss + aux_weight * aux_loss + aux_label_weight * label_loss``;
    returns ``(bc loss, type accuracy, label loss)`` (label loss 0 without a label head).
    """
    obs, masks, actions, conf, aux_t = bc_data.batch(idx, run.dev)
    with run.autocast():
        out = run.step_module(bc_obs=obs, aux=run.aux_batch(obs, aux_t), bc_label_type=run.label_target(aux_t),
                              bc_weight=conf)
    loss, acc = bc_loss(out["bc_logits"], masks, actions, conf)
    aux_loss = sum(v for k, v in out.items() if k.startswith("aux_"))
    label_loss = out.get("label_loss", torch.zeros((), device=run.dev))
    run.optimizer.zero_grad()
    run.scaler.scale(loss + run.cfg.aux_weight * aux_loss + run.cfg.aux_label_weight * label_loss).backward()
    run.optimizer_step()
    return loss.item(), acc["type"].item(), label_loss.item()


# ------------------------------------------------------------------------- PPO


def ppo_updates(run: Run, envs: Any, bc_data: BCData | None, num_updates: int, stop: StopFlag, *, quiet: bool,
                on_update: Callable[[int, dict[str, float]], None] | None) -> dict[str, float]:
    """PPO updates ``run.update + 1 .. num_updates``: rollout, GAE, update, log, checkpoint.

    Returns the last update's metrics.
    """
    cfg, ddp = run.cfg, run.ddp
    buf = RolloutStorage.allocate(envs.single_observation_space, cfg.num_steps, cfg.num_envs, run.agent_config.window)
    env = EnvState.reset(envs, cfg.seed + 1000 * ddp.rank + 7919 * run.update, cfg.num_envs)
    run.set_lr(cfg.lr)
    if bc_data is not None and cfg.bc_weight > 0:
        logger.info("BC mixing: %d demonstrations, weight %g", len(bc_data), cfg.bc_weight)
    metrics: dict[str, float] = {}
    for _ in progress(range(run.update, num_updates), desc="PPO updates", quiet=quiet or not ddp.main):
        run.update += 1
        start_time = time.time()
        if cfg.anneal_lr:
            run.set_lr(cfg.lr * (1.0 - (run.update - 1.0) / num_updates))
        next_value = collect_rollout(run, envs, buf, env)
        advantages, returns = compute_gae(buf.rewards, buf.values, buf.dones, next_value, env.done,
                                          cfg.gamma, cfg.gae_lambda)
        batch = FlatBatch.from_rollout(buf, advantages, returns)
        stats = ppo_update(run, batch, bc_data)
        metrics = update_metrics(run, batch, stats, env, start_time)
        log_update(run, metrics)
        if on_update is not None:
            on_update(run.update, metrics)
        save_update(run, metrics["train/episode_reward"], num_updates)
        if all_mean(float(stop.stop), ddp) > 0:
            logger.warning("stopping at update %d on a signal", run.update)
            run.checkpoint(run.last_path)
            break
    return metrics


def collect_rollout(run: Run, envs: Any, buf: RolloutStorage, env: EnvState) -> Tensor:
    """Step ``envs`` ``num_steps`` times with the current policy, filling ``buf``; ``env`` advances.

    Returns the value estimate of the observation after the last step, ``(E,)``.
    """
    agent, dev = run.agent, run.dev
    agent.eval()
    for step in range(run.cfg.num_steps):
        run.global_step += run.cfg.num_envs * run.ddp.world
        buf.store_inputs(step, env)
        with torch.no_grad(), run.autocast():
            action, logprob, _, value = agent.get_action_and_value(
                env.obs.to(dev), ActionMasks(*(m.to(dev) for m in env.masks))
            )
        buf.values[step] = value.float().cpu()
        buf.actions[step] = action.cpu()
        buf.logprobs[step] = logprob.float().cpu()
        next_obs, reward, terminations, truncations, info = envs.step(action.cpu().numpy())
        buf.rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
        env.advance(next_obs, terminations, truncations, info)
    with torch.no_grad(), run.autocast():
        return agent.get_value(env.obs.to(dev)).float().cpu()


def ppo_update(run: Run, batch: FlatBatch, bc_data: BCData | None) -> UpdateStats:
    """``update_epochs`` shuffled passes of minibatches over ``batch``; stops early past ``target_kl``."""
    cfg = run.cfg
    run.agent.train()
    stats = UpdateStats()
    for _ in range(cfg.update_epochs):
        b_inds = np.random.permutation(len(batch))
        for start in range(0, len(batch), cfg.minibatch_size):
            minibatch_step(run, batch, b_inds[start : start + cfg.minibatch_size], bc_data, stats)
        # every rank decides the same
        if cfg.target_kl is not None and all_mean(float(np.mean(stats.approx_kls[-cfg.num_minibatches :])), run.ddp) > cfg.target_kl:
            break
    return stats


def minibatch_step(run: Run, batch: FlatBatch, mb_all: np.ndarray, bc_data: BCData | None, stats: UpdateStats) -> None:
    """One optimiser step on minibatch ``mb_all``, accumulated over ``grad_accum`` micro-batches."""
    run.optimizer.zero_grad()
    micro_batches = np.array_split(mb_all, run.cfg.grad_accum)
    for k, mb in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        bc = None
        if bc_data is not None and run.cfg.bc_weight > 0:
            bc = bc_data.batch(np.random.randint(0, len(bc_data), size=len(mb)), run.dev)
        # DDP averages gradients on the last micro-batch only
        ddp_module = run.step_module if isinstance(run.step_module, nn.parallel.DistributedDataParallel) else None
        with nullcontext() if (ddp_module is None or last) else ddp_module.no_sync():
            terms = ppo_loss(run, batch, torch.from_numpy(mb), bc)
            run.scaler.scale(terms.loss / len(micro_batches)).backward()
        stats.add(terms)
    stats.approx_kls.append(stats.approx_kl.item())
    run.optimizer_step()


def ppo_loss(run: Run, batch: FlatBatch, mb: Tensor, bc: tuple[Any, ...] | None) -> LossTerms:
    """The clipped PPO objective on rows ``mb`` of ``batch``, plus the BC (``bc``) and auxiliary losses.

    ``loss = pg_loss - ent_coef * entropy_loss + vf_coef * v_loss + bc_weight * bc_loss + aux_weight * aux_loss
    + aux_label_weight * label_loss`` (the label loss of the BC demonstrations).
    """
    cfg, dev = run.cfg, run.dev
    obs = batch.obs[mb].to(dev)
    bc_obs, bc_masks, bc_actions, bc_conf, bc_aux = bc if bc is not None else (None,) * 5
    with run.autocast():
        out = run.step_module(
            obs, ActionMasks(*(m[mb].to(dev) for m in batch.masks)), batch.actions[mb].to(dev), bc_obs,
            run.aux_batch(obs, {k: v[mb].to(dev) for k, v in batch.aux.items()}) if cfg.aux_weight else None,
            run.label_target(bc_aux) if bc_aux is not None else None, bc_conf,
        )
    newlogprob, entropy, newvalue = out["logprob"], out["entropy"].float(), out["value"].float()
    logratio = newlogprob - batch.logprobs[mb].to(dev)
    ratio = logratio.exp()
    with torch.no_grad():
        old_approx_kl = (-logratio).mean()
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item()

    mb_advantages = batch.advantages[mb].to(dev)
    if cfg.norm_adv and len(mb) > 1:
        mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
    pg_loss = policy_loss(mb_advantages, ratio, cfg.clip_coef)
    v_loss = value_loss(newvalue, batch.returns[mb].to(dev), batch.values[mb].to(dev),
                        cfg.clip_coef if cfg.clip_vloss else None)
    entropy_loss = entropy.mean()
    loss = pg_loss - cfg.ent_coef * entropy_loss + v_loss * cfg.vf_coef

    bc_l, bc_type = torch.zeros((), device=dev), None
    if bc_obs is not None:
        bc_l, bc_acc = bc_loss(out["bc_logits"], bc_masks, bc_actions, bc_conf)
        bc_type = bc_acc["type"].item()
        loss = loss + cfg.bc_weight * bc_l
    aux_l = sum((v for k, v in out.items() if k.startswith("aux_")), torch.zeros((), device=dev))
    label_l = out.get("label_loss", torch.zeros((), device=dev))
    loss = loss + cfg.aux_weight * aux_l + cfg.aux_label_weight * label_l
    return LossTerms(loss, pg_loss, v_loss, entropy_loss, bc_l, aux_l, label_l, approx_kl, old_approx_kl, clipfrac,
                     bc_type)


def policy_loss(advantages: Tensor, ratio: Tensor, clip_coef: float) -> Tensor:
    """Clipped surrogate: ``mean(max(-A * r, -A * clip(r, 1 - c, 1 + c)))``."""
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    return torch.max(pg_loss1, pg_loss2).mean()


def value_loss(newvalue: Tensor, returns: Tensor, old_values: Tensor, clip_coef: float | None) -> Tensor:
    """``0.5 * mean((V - R)^2)``; with ``clip_coef``, the max of that and the clipped value's error."""
    if clip_coef is None:
        return 0.5 * ((newvalue - returns) ** 2).mean()
    v_loss_unclipped = (newvalue - returns) ** 2
    v_clipped = old_values + torch.clamp(newvalue - old_values, -clip_coef, clip_coef)
    v_loss_clipped = (v_clipped - returns) ** 2
    return 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()


# --------------------------------------------------------------------- logging


def update_metrics(run: Run, batch: FlatBatch, stats: UpdateStats, env: EnvState, start_time: float) -> dict[str, float]:
    """Every scalar one update logs: losses, KL, clip fraction, explained variance, SPS, reward terms, action shares."""
    y_pred, y_true = batch.values.numpy(), batch.returns.numpy()
    var_y = np.var(y_true)
    explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
    type_counts = np.bincount(batch.actions[:, 0].numpy(), minlength=N_TYPES).astype(np.float64)
    type_share = type_counts / type_counts.sum()
    sps = int(len(batch) * run.ddp.world / max(time.time() - start_time, 1e-9))
    rewards = env.episode_rewards
    metrics = {
        "train/episode_reward": all_mean(float(np.mean(rewards)) if rewards else float("nan"), run.ddp),
        "train/entropy": stats.mean("entropy_loss"),
        **{f"losses/{name}": stats.mean(name) for name in LOSS_TERMS},
        "losses/approx_kl": float(np.mean(stats.approx_kls)),
        "losses/old_approx_kl": stats.old_approx_kl.item(),
        "losses/clipfrac": float(np.mean(stats.clipfracs)),
        "losses/explained_variance": float(explained_var),
        "charts/learning_rate": run.optimizer.param_groups[0]["lr"],
        "charts/SPS": float(sps),
        "actions/top_type_share": float(type_share.max()),
    }
    if stats.bc_type_acc:
        metrics["losses/bc_accuracy_type"] = float(np.mean(stats.bc_type_acc))
    for k in TERMS:
        metrics[f"reward/{k}"] = float(np.mean(env.term_sums[k])) if env.term_sums[k] else 0.0
    for t, name in enumerate(TYPES):
        metrics[f"actions/type_share/{name}"] = float(type_share[t])
    if type_share.max() > run.cfg.collapse_share:
        logger.warning(
            "update %d: action collapse, %s is %.0f%% of the actions (threshold %.0f%%)",
            run.update, TYPES[int(type_share.argmax())], 100 * type_share.max(), 100 * run.cfg.collapse_share,
        )
    return metrics


def write_scalars(writer: SummaryWriter | None, metrics: dict[str, float], step: int) -> None:
    if writer is not None:
        for k, v in metrics.items():
            writer.add_scalar(k, v, step)


def log_update(run: Run, metrics: dict[str, float]) -> None:
    """TensorBoard scalars and a ``progress.jsonl`` line (rank 0)."""
    if run.writer is None:
        return
    write_scalars(run.writer, metrics, run.global_step)
    with open(run.save_dir / "progress.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"update": run.update, "global_step": run.global_step,
                             "episode_reward": metrics["train/episode_reward"]}) + "\n")


def save_update(run: Run, reward_now: float, num_updates: int) -> None:
    """Every ``checkpoint_every`` updates and at the last: ``best.pt`` when the reward improved, ``last.pt``."""
    if run.update % run.cfg.checkpoint_every != 0 and run.update != num_updates:
        return
    if np.isfinite(reward_now) and reward_now > run.best_reward:
        run.best_reward = reward_now
        run.checkpoint(run.best_path)
    run.checkpoint(run.last_path)
