"""PPO + behavioural cloning for the factored edit policy, CleanRL style.

``train`` reads top to bottom: setup (distributed, seeds, envs, agent,
optimiser, resume), optional behavioural-cloning-only passes, then the PPO
loop: rollout into preallocated storage, GAE, the clipped update with value
loss, entropy bonus, BC and auxiliary losses (gradient accumulation, mixed
precision, KL early stop), logging and checkpoints.

Shapes: ``S = num_steps`` per env per rollout, ``E = num_envs`` (per
process), ``W`` window; the observation fields' own shapes are in
``training.env``. With torchrun each process (rank) has its own envs and seeds and
collects ``batch_size`` transitions; DDP averages the gradients; rank 0
writes checkpoints and logs.

Checkpoints (``last.pt`` every ``checkpoint_every`` updates and at the end or
on SIGINT/SIGTERM; ``best.pt`` when the mean episode reward improves) hold
the agent's weights and config, the optimiser and grad scaler, the update
count, global step, BC epochs done, the python/numpy/torch rng states and
the configs; they are written atomically (temp file + rename).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from engine.actions import N_AMOUNTS, N_SIZES, N_TYPES, TYPES
from engine.progress import progress
from training.distributed import all_mean, finish_distributed, setup_training
from training.run_state import StopFlag, hyperparameter_table, read_checkpoint, rng_state, save_checkpoint, set_rng_state
from training.bc import BCData, bc_loss
from training.config import AgentConfig, PPOConfig
from training.dataset import Episode, feature_stats
from training.env import make_vector_env
from training.models.agent import OBS_FIELDS, ActionMasks, AuxBatch, EditAgent, Observation
from training.reward import TERMS, ReferenceStats, RewardWeights

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "editorbot.ppo/1"


# --------------------------------------------------------------------- helpers


class AgentStep(nn.Module):
    """Everything one training step differentiates, as one forward (what DDP wraps).

    ``forward(obs, masks, actions, bc_obs, aux)`` returns ``{"logprob",
    "entropy", "value"}`` (each ``(B,)``) for scored rollout actions when
    ``obs`` is given, ``"bc_logits"`` ``(B_bc, 30)`` when ``bc_obs`` is given
    and the auxiliary losses when ``aux`` is given.
    """

    def __init__(self, agent: EditAgent) -> None:
        super().__init__()
        self.agent = agent

    def forward(
        self,
        obs: Observation | None = None,
        masks: ActionMasks | None = None,
        actions: Tensor | None = None,
        bc_obs: Observation | None = None,
        aux: AuxBatch | None = None,
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
            if aux is not None and aux.obs is bc_obs and aux_out is None:
                out["bc_logits"], aux_out = self.agent.policy_and_aux(bc_obs)
            else:
                out["bc_logits"] = self.agent.policy_logits(bc_obs)
        if aux is not None:
            out.update(self.agent.aux_losses(aux, aux_out))
        return out


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (``run_state.read_checkpoint``)."""
    return read_checkpoint(path, CHECKPOINT_FORMAT)


def load_agent(path: str | os.PathLike) -> EditAgent:
    """The trained ``EditAgent`` of a checkpoint (eval mode, CPU)."""
    ckpt = load_checkpoint(path)
    agent = EditAgent(AgentConfig(**ckpt["agent_config"]))
    agent.load_state_dict(ckpt["agent"])
    return agent.eval()


def _mask_tensors(info: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    m = info["action_masks"]
    return torch.from_numpy(m["type"]), torch.from_numpy(m["size"]), torch.from_numpy(m["amount"])


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
    """
    # ------------------------------------------------------------------ setup
    cfg = ppo_config or PPOConfig()
    weights = weights or RewardWeights()
    save_dir = Path(save_dir)
    dev, ddp = setup_training(device)
    last_path, best_path = save_dir / "last.pt", save_dir / "best.pt"
    ckpt = None
    if resume:
        if last_path.is_file():
            ckpt = load_checkpoint(last_path)
            agent_config = AgentConfig(**ckpt["agent_config"])
            logger.info("resuming from %s at update %d", last_path, ckpt["update"])
        else:
            logger.warning("--resume: %s not found, starting from scratch", last_path)
    agent_config = agent_config or AgentConfig()
    if bc_data is not None:
        bc_data = bc_data.fitted(agent_config, "--bc-mixed")

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    agent = EditAgent(agent_config).to(dev)
    mean, std = feature_stats(episodes)
    agent.set_feature_stats(torch.from_numpy(mean).to(dev), torch.from_numpy(std).to(dev))
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.lr, eps=1e-5)
    amp_dtype = cfg.autocast_dtype(dev.type)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    step_module: nn.Module = AgentStep(agent)
    if ddp.enabled:
        step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=True)

    update, global_step, bc_epochs_done = 0, 0, 0
    best_reward = -float("inf")
    if ckpt is not None:
        agent.load_state_dict(ckpt["agent"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        update, global_step, bc_epochs_done = ckpt["update"], ckpt["global_step"], ckpt["bc_epochs"]
        best_reward = ckpt["best_reward"]
        set_rng_state(ckpt["rng"][min(ddp.rank, len(ckpt["rng"]) - 1)])
    else:
        torch.manual_seed(cfg.seed + 1000 * ddp.rank)  # each rank samples its own actions
        np.random.seed(cfg.seed + 1000 * ddp.rank)
        random.seed(cfg.seed + 1000 * ddp.rank)

    num_envs, num_steps = cfg.num_envs, cfg.num_steps
    total_beats = sum(e.n_beats for e in episodes)
    budget = min(cfg.total_timesteps, cfg.epochs * total_beats)
    num_updates = cfg.max_updates or max(1, -(-budget // (cfg.batch_size * ddp.world)))
    if cfg.bc_only:
        num_updates = 0

    writer = None
    if ddp.main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(save_dir / "tb"))
        writer.add_text(
            "hyperparameters",
            hyperparameter_table(
                {"agent": agent_config.to_dict(), "ppo": cfg.to_dict(), "reward": weights.to_dict(),
                 "run": {"songs": len(episodes), "num_updates": num_updates, "world": ddp.world, "device": str(dev)}}
            ),
            global_step,
        )
    progress_log = save_dir / "progress.jsonl"

    saved: tuple[int, int] | None = None  # (update, bc epochs) of the last last.pt

    def checkpoint(path: Path) -> None:
        """Gather every rank's rng state and let rank 0 write ``path`` (every rank calls it)."""
        nonlocal saved
        if path == last_path:
            saved = (update, bc_epochs_done)
        states = [rng_state()]
        if ddp.enabled:
            states = [None] * ddp.world
            dist.all_gather_object(states, rng_state())
        if ddp.main:
            save_checkpoint(
                path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "agent": agent.state_dict(),
                    "agent_config": agent_config.to_dict(),
                    "ppo_config": cfg.to_dict(),
                    "reward_weights": weights.to_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "update": update,
                    "global_step": global_step,
                    "bc_epochs": bc_epochs_done,
                    "best_reward": best_reward,
                    "rng": states,
                    "world": ddp.world,
                },
            )

    def autocast():
        return torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()

    def aux_batch(obs: Observation, targets: dict[str, Tensor]) -> AuxBatch:
        return AuxBatch(obs, agent.tempo_target(targets["tempo_bpm"]), targets["energy"], targets["phrase"])

    metrics: dict[str, float] = {}
    save_dir.mkdir(parents=True, exist_ok=True)
    with StopFlag() as stop:
        # ------------------------------------------- behavioural cloning only
        bc_epochs = cfg.bc_epochs or (cfg.epochs if cfg.bc_only else 0)  # --bc-only alone: --epochs BC passes
        if bc_data is not None and bc_epochs_done < bc_epochs:
            shard = np.arange(ddp.rank, len(bc_data), ddp.world)
            steps_per_epoch = max(1, -(-len(shard) // cfg.bc_batch_size))
            if ddp.enabled:  # equal step counts on every rank
                steps_per_epoch = -(-len(bc_data) // (cfg.bc_batch_size * ddp.world))
            for group in optimizer.param_groups:
                group["lr"] = cfg.bc_lr
            for epoch in progress(range(bc_epochs_done, bc_epochs), desc="BC epochs", quiet=quiet or not ddp.main):
                order = np.random.permutation(shard)
                losses, type_acc = [], []
                for k in range(steps_per_epoch):
                    idx = np.take(order, np.arange(k * cfg.bc_batch_size, (k + 1) * cfg.bc_batch_size), mode="wrap")
                    obs, masks, actions, conf, aux_t = bc_data.batch(idx, dev)
                    with autocast():
                        out = step_module(bc_obs=obs, aux=aux_batch(obs, aux_t) if cfg.aux_weight else None)
                    loss, acc = bc_loss(out["bc_logits"], masks, actions, conf)
                    aux_loss = sum(v for k_, v in out.items() if k_.startswith("aux_"))
                    optimizer.zero_grad()
                    scaler.scale(loss + cfg.aux_weight * aux_loss).backward()
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    losses.append(loss.item())
                    type_acc.append(acc["type"].item())
                bc_epochs_done = epoch + 1
                metrics = {"bc/loss": all_mean(float(np.mean(losses)), ddp),
                           "bc/accuracy_type": all_mean(float(np.mean(type_acc)), ddp)}
                if writer is not None:
                    for k, v in metrics.items():
                        writer.add_scalar(k, v, bc_epochs_done)
                logger.info("BC epoch %d/%d: loss %.4f, type accuracy %.3f", bc_epochs_done, bc_epochs,
                            metrics["bc/loss"], metrics["bc/accuracy_type"])
                if bc_epochs_done % cfg.checkpoint_every == 0 or bc_epochs_done == bc_epochs:
                    checkpoint(last_path)
                if all_mean(float(stop.stop), ddp) > 0:
                    break

        # -------------------------------------------------- envs and storage
        envs = None
        if update < num_updates and not stop.stop:
            envs = make_vector_env(episodes, agent_config, num_envs, weights=weights, reference=reference,
                                   use_target=use_target, subprocess=subprocess)
            W = agent_config.window
            obs_store = {  # one (S, E, *field shape) tensor per Observation field
                k: torch.zeros((num_steps, num_envs, *envs.single_observation_space[k].shape),
                               dtype=torch.bool if k == "padding_mask" else torch.float32)
                for k in OBS_FIELDS
            }
            mask_type = torch.zeros((num_steps, num_envs, N_TYPES), dtype=torch.bool)
            mask_size = torch.zeros((num_steps, num_envs, N_SIZES), dtype=torch.bool)
            mask_amount = torch.zeros((num_steps, num_envs, N_TYPES, N_AMOUNTS), dtype=torch.bool)
            actions = torch.zeros((num_steps, num_envs, 3), dtype=torch.long)
            logprobs = torch.zeros((num_steps, num_envs))
            rewards = torch.zeros((num_steps, num_envs))
            dones = torch.zeros((num_steps, num_envs))
            values = torch.zeros((num_steps, num_envs))
            aux_tempo = torch.zeros((num_steps, num_envs))
            aux_energy = torch.zeros((num_steps, num_envs), dtype=torch.long)
            aux_phrase = torch.zeros((num_steps, num_envs, W))

            next_obs, info = envs.reset(seed=cfg.seed + 1000 * ddp.rank + 7919 * update)
            next_obs_t = Observation.from_numpy(next_obs)
            next_masks = _mask_tensors(info)
            next_aux = info["aux"]
            next_done = torch.zeros(num_envs)
            episode_rewards: deque[float] = deque(maxlen=50)
            term_sums: dict[str, deque[float]] = {k: deque(maxlen=50) for k in TERMS}
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr
            if bc_data is not None and cfg.bc_weight > 0:
                logger.info("BC mixing: %d demonstrations, weight %g", len(bc_data), cfg.bc_weight)

        # ------------------------------------------------------------ PPO loop
        bar = progress(range(update, num_updates), desc="PPO updates", quiet=quiet or not ddp.main)
        for _ in bar:
            if envs is None:
                break
            update += 1
            start_time = time.time()
            if cfg.anneal_lr:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * (1.0 - (update - 1.0) / num_updates)

            # rollout
            agent.eval()
            for step in range(num_steps):
                global_step += num_envs * ddp.world
                for k in OBS_FIELDS:
                    obs_store[k][step] = getattr(next_obs_t, k)
                mask_type[step], mask_size[step], mask_amount[step] = next_masks
                dones[step] = next_done
                aux_tempo[step] = torch.from_numpy(next_aux["tempo_bpm"])
                aux_energy[step] = torch.from_numpy(next_aux["energy"])
                aux_phrase[step] = torch.from_numpy(next_aux["phrase"])
                with torch.no_grad(), autocast():
                    obs = next_obs_t.to(dev)
                    action, logprob, _, value = agent.get_action_and_value(
                        obs, ActionMasks(*(m.to(dev) for m in next_masks))
                    )
                values[step] = value.float().cpu()
                actions[step] = action.cpu()
                logprobs[step] = logprob.float().cpu()

                next_obs, reward, terminations, truncations, info = envs.step(action.cpu().numpy())
                rewards[step] = torch.as_tensor(reward, dtype=torch.float32)
                next_done = torch.as_tensor(np.logical_or(terminations, truncations), dtype=torch.float32)
                next_obs_t = Observation.from_numpy(next_obs)
                next_masks = _mask_tensors(info)
                next_aux = info["aux"]
                if "final_info" in info:
                    final = info["final_info"]
                    for i in np.flatnonzero(info["_final_info"]):
                        ep = final["episode"]
                        episode_rewards.append(float(ep["r"][i]))
                        for k in TERMS:
                            term_sums[k].append(float(ep[f"term_{k}"][i]))

            # bootstrap value, GAE
            with torch.no_grad(), autocast():
                next_value = agent.get_value(next_obs_t.to(dev)).float().cpu()
            advantages = torch.zeros_like(rewards)
            lastgaelam = torch.zeros(num_envs)
            for t in reversed(range(num_steps)):
                if t == num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + cfg.gamma * nextvalues * nextnonterminal - values[t]
                lastgaelam = delta + cfg.gamma * cfg.gae_lambda * nextnonterminal * lastgaelam
                advantages[t] = lastgaelam
            returns = advantages + values

            # flatten the batch
            B = num_steps * num_envs
            b_obs = Observation(*(obs_store[k].reshape(B, *obs_store[k].shape[2:]) for k in OBS_FIELDS))
            b_masks = ActionMasks(mask_type.reshape(B, N_TYPES), mask_size.reshape(B, N_SIZES),
                                  mask_amount.reshape(B, N_TYPES, N_AMOUNTS))
            b_actions = actions.reshape(B, 3)
            b_logprobs, b_advantages = logprobs.reshape(B), advantages.reshape(B)
            b_returns, b_values = returns.reshape(B), values.reshape(B)
            b_aux = {"tempo_bpm": aux_tempo.reshape(B), "energy": aux_energy.reshape(B), "phrase": aux_phrase.reshape(B, W)}

            # optimise policy and value
            agent.train()
            clipfracs, approx_kls = [], []
            sums = {"pg_loss": 0.0, "v_loss": 0.0, "entropy_loss": 0.0, "bc_loss": 0.0, "aux_loss": 0.0, "n": 0}
            bc_type_acc: list[float] = []
            old_approx_kl = approx_kl = torch.zeros(())
            for epoch in range(cfg.update_epochs):
                b_inds = np.random.permutation(B)
                for start in range(0, B, cfg.minibatch_size):
                    mb_all = b_inds[start : start + cfg.minibatch_size]
                    optimizer.zero_grad()
                    micro_batches = np.array_split(mb_all, cfg.grad_accum)
                    for k, mb in enumerate(micro_batches):
                        sync = nullcontext() if (not ddp.enabled or k == len(micro_batches) - 1) else step_module.no_sync()
                        mb_t = torch.from_numpy(mb)
                        obs = b_obs[mb_t].to(dev)
                        bc_obs = bc_masks = bc_actions = bc_conf = None
                        if bc_data is not None and cfg.bc_weight > 0:
                            bc_idx = np.random.randint(0, len(bc_data), size=len(mb))
                            bc_obs, bc_masks, bc_actions, bc_conf, _ = bc_data.batch(bc_idx, dev)
                        with sync:
                            with autocast():
                                out = step_module(
                                    obs, ActionMasks(*(m[mb_t].to(dev) for m in b_masks)),
                                    b_actions[mb_t].to(dev), bc_obs,
                                    aux_batch(obs, {k_: v[mb_t].to(dev) for k_, v in b_aux.items()}) if cfg.aux_weight else None,
                                )
                            newlogprob, entropy, newvalue = out["logprob"], out["entropy"].float(), out["value"].float()
                            logratio = newlogprob - b_logprobs[mb_t].to(dev)
                            ratio = logratio.exp()
                            with torch.no_grad():
                                old_approx_kl = (-logratio).mean()
                                approx_kl = ((ratio - 1) - logratio).mean()
                                clipfracs.append(((ratio - 1.0).abs() > cfg.clip_coef).float().mean().item())

                            mb_advantages = b_advantages[mb_t].to(dev)
                            if cfg.norm_adv and len(mb) > 1:
                                mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                            # policy loss
                            pg_loss1 = -mb_advantages * ratio
                            pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - cfg.clip_coef, 1 + cfg.clip_coef)
                            pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                            # value loss
                            mb_returns, mb_values = b_returns[mb_t].to(dev), b_values[mb_t].to(dev)
                            if cfg.clip_vloss:
                                v_loss_unclipped = (newvalue - mb_returns) ** 2
                                v_clipped = mb_values + torch.clamp(newvalue - mb_values, -cfg.clip_coef, cfg.clip_coef)
                                v_loss_clipped = (v_clipped - mb_returns) ** 2
                                v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                            else:
                                v_loss = 0.5 * ((newvalue - mb_returns) ** 2).mean()

                            entropy_loss = entropy.mean()
                            loss = pg_loss - cfg.ent_coef * entropy_loss + v_loss * cfg.vf_coef

                            # behavioural cloning and auxiliary losses
                            bc_l = torch.zeros((), device=dev)
                            if bc_obs is not None:
                                bc_l, bc_acc = bc_loss(out["bc_logits"], bc_masks, bc_actions, bc_conf)
                                bc_type_acc.append(bc_acc["type"].item())
                                loss = loss + cfg.bc_weight * bc_l
                            aux_l = sum((v for k_, v in out.items() if k_.startswith("aux_")), torch.zeros((), device=dev))
                            loss = loss + cfg.aux_weight * aux_l

                            scaler.scale(loss / len(micro_batches)).backward()
                        sums["pg_loss"] += pg_loss.item()
                        sums["v_loss"] += v_loss.item()
                        sums["entropy_loss"] += entropy_loss.item()
                        sums["bc_loss"] += bc_l.item()
                        sums["aux_loss"] += aux_l.item()
                        sums["n"] += 1
                    approx_kls.append(approx_kl.item())
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()

                # early stop on KL (every rank decides the same)
                if cfg.target_kl is not None and all_mean(float(np.mean(approx_kls[-cfg.num_minibatches :])), ddp) > cfg.target_kl:
                    break

            # logging
            y_pred, y_true = b_values.numpy(), b_returns.numpy()
            var_y = np.var(y_true)
            explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
            type_counts = np.bincount(b_actions[:, 0].numpy(), minlength=N_TYPES).astype(np.float64)
            type_share = type_counts / type_counts.sum()
            n = max(sums["n"], 1)
            sps = int(num_steps * num_envs * ddp.world / max(time.time() - start_time, 1e-9))
            metrics = {
                "train/episode_reward": all_mean(float(np.mean(episode_rewards)) if episode_rewards else float("nan"), ddp),
                "train/entropy": sums["entropy_loss"] / n,
                "losses/pg_loss": sums["pg_loss"] / n,
                "losses/v_loss": sums["v_loss"] / n,
                "losses/entropy_loss": sums["entropy_loss"] / n,
                "losses/bc_loss": sums["bc_loss"] / n,
                "losses/aux_loss": sums["aux_loss"] / n,
                "losses/approx_kl": float(np.mean(approx_kls)),
                "losses/old_approx_kl": old_approx_kl.item(),
                "losses/clipfrac": float(np.mean(clipfracs)),
                "losses/explained_variance": float(explained_var),
                "charts/learning_rate": optimizer.param_groups[0]["lr"],
                "charts/SPS": float(sps),
                "actions/top_type_share": float(type_share.max()),
            }
            if bc_type_acc:
                metrics["losses/bc_accuracy_type"] = float(np.mean(bc_type_acc))
            for k in TERMS:
                metrics[f"reward/{k}"] = float(np.mean(term_sums[k])) if term_sums[k] else 0.0
            for t, name in enumerate(TYPES):
                metrics[f"actions/type_share/{name}"] = float(type_share[t])
            if type_share.max() > cfg.collapse_share:
                logger.warning(
                    "update %d: action collapse, %s is %.0f%% of the actions (threshold %.0f%%)",
                    update, TYPES[int(type_share.argmax())], 100 * type_share.max(), 100 * cfg.collapse_share,
                )
            if writer is not None:
                for k, v in metrics.items():
                    writer.add_scalar(k, v, global_step)
                with open(progress_log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"update": update, "global_step": global_step,
                                         "episode_reward": metrics["train/episode_reward"]}) + "\n")
            if on_update is not None:
                on_update(update, metrics)

            # checkpoints
            reward_now = metrics["train/episode_reward"]
            if update % cfg.checkpoint_every == 0 or update == num_updates:
                if np.isfinite(reward_now) and reward_now > best_reward:
                    best_reward = reward_now
                    checkpoint(best_path)
                checkpoint(last_path)
            if all_mean(float(stop.stop), ddp) > 0:
                logger.warning("stopping at update %d on a signal", update)
                checkpoint(last_path)
                break

        if envs is not None:
            envs.close()
        if saved != (update, bc_epochs_done):
            checkpoint(last_path)

    finish_distributed(agent, ddp, save_dir)
    if writer is not None:
        writer.close()
    return {
        "updates": update,
        "global_step": global_step,
        "bc_epochs": bc_epochs_done,
        "episode_reward": metrics.get("train/episode_reward", float("nan")),
        "metrics": metrics,
    }
