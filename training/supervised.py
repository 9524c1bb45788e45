"""Supervised trainer for ``training.models.supervised.EditSoundModel``, CleanRL style.

``train`` reads top to bottom as named steps: setup (``make_run``:
distributed, the checkpoint to resume, the timing model fitted once on the
training pairs, seeds, model, optimiser, grad scaler, crop sizes;
``restore`` puts a resumed run's counters back; ``open_writer`` starts
TensorBoard), then one ``train_epoch`` per epoch (``epoch_crops`` drawn,
``train_step`` per batch: the three losses, mixed precision, a clipped
optimiser step; ``log_step``; ``last.pt`` every ``checkpoint_every``
steps; a stop on a signal or the budget), then ``end_epoch``
(``validate`` on fixed crops of held-out songs, early-stopping state,
``log_epoch``, checkpoints). What the steps share (model, optimiser,
songs, counters) is one ``Run``. The pairs themselves come from
``training.song_pairs``; the trained model is read back by
``training.supervised_checkpoint`` and rendered by
``training.learned_render``.

One training example is a crop of ``crop_s`` seconds of one song's edited
timeline, mono (the mask is shared by all channels at render time):
``base`` (the DSP render of the plan), ``raw`` (the plan's structural
re-sequencing of the raw audio), ``target`` (the desired edit) and the
frame labels. Losses (``training.losses``): L1 on log-mel, multi-scale STFT
on the waveform, edit consistency on KEEP frames of songs whose editor
leaves KEEP spans alone (every style but the whole-output studio chain).

Checkpoints (format ``supervised_checkpoint.CHECKPOINT_FORMAT``):
``last.pt`` every ``checkpoint_every`` optimiser steps, at each epoch's end
and on SIGINT/SIGTERM; ``best.pt`` when ``val/total_loss`` improves. Both
hold the weights, the learned timing, the config, the sample rate, the
optimiser and grad scaler, the step, the epoch and the step inside it, the
early-stopping state and history, the split and every rank's python/numpy/
torch rng states; written atomically. With torchrun each rank draws its own
crops and DDP (gloo on CPU, nccl on CUDA) averages the gradients; rank 0
writes checkpoints and logs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from editorbot.engine.errors import BadInput
from editorbot.engine.progress import progress
from editorbot.training.config import SupervisedConfig
from editorbot.training.distributed import Distributed, finish_distributed, setup_training
from editorbot.training.losses import edit_consistency, l1_log_mel, magnitude, multiscale_stft
from editorbot.training.models.supervised import GAIN_UNIT_DB, EditSoundModel, label_tensors
from editorbot.training.models.timing import TimingModel
from editorbot.training.run_state import (
    StopFlag,
    gather_rng_states,
    hyperparameter_table,
    load_resume_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from editorbot.training.song_pairs import SongPair, fit_song_timing, retimed_songs
from editorbot.training.supervised_checkpoint import CHECKPOINT_FORMAT

logger = logging.getLogger(__name__)

#: Most validation crops taken from one held-out song.
VAL_CROPS_PER_SONG = 8
#: Loss names, in the order they are logged.
LOSS_NAMES: tuple[str, ...] = ("l1_loss", "msstft_loss", "consistency_loss", "total_loss")


# --------------------------------------------------------------------------- state


@dataclass
class Run:
    """One run's objects and counters: what the named steps of ``train`` share.

    ``train_songs`` and ``val_songs`` are retimed by ``timing``. ``step``,
    ``epoch``, ``step_in_epoch``, ``best_val``, ``best_epoch``,
    ``bad_epochs`` and ``history`` are what a checkpoint restores;
    ``saved_step`` is the step of the last ``last.pt`` written, so the end
    of ``train`` writes one only when it is stale. ``max_steps`` and
    ``max_seconds`` (counted from ``started_s``, ``time.monotonic``) are the
    run's budget.
    """

    cfg: SupervisedConfig
    dev: torch.device
    ddp: Distributed
    model: EditSoundModel
    net: nn.Module  # the model, DDP-wrapped under torchrun
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    timing: TimingModel
    train_songs: Sequence[SongPair]
    val_songs: Sequence[SongPair]
    sample_rate: int  # Hz
    crop_frames: int
    steps_per_epoch: int
    fixed_val_crops: list[tuple[int, int]]  # (song, start frame), ``val_crops``
    save_dir: Path
    writer: SummaryWriter | None = None
    max_steps: int | None = None
    max_seconds: float | None = None
    started_s: float = 0.0
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    saved_step: int | None = None

    @property
    def last_path(self) -> Path:
        return self.save_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.save_dir / "best.pt"

    @property
    def hop(self) -> int:
        """STFT hop of the model's front end, samples."""
        return self.model.frontend.hop

    def autocast(self) -> AbstractContextManager[Any]:
        """bf16/fp16 autocast when mixed precision is on, else nothing."""
        return torch.autocast(self.dev.type, dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext()

    def to_device(self, b: Batch) -> Batch:
        return Batch(b.base.to(self.dev), b.raw.to(self.dev), b.target.to(self.dev),
                     tuple(t.to(self.dev) for t in b.labels), b.keep.to(self.dev))

    def out_of_budget(self) -> bool:
        """``max_steps`` reached or ``max_seconds`` spent (on any rank: every rank stops at the same step)."""
        return (self.max_steps is not None and self.step >= self.max_steps) or (
            self.max_seconds is not None and _any_rank(time.monotonic() - self.started_s >= self.max_seconds, self.ddp)
        )

    def log_line(self, doc: dict[str, Any]) -> None:
        """A line of ``progress.jsonl`` (rank 0)."""
        if self.ddp.main:
            with open(self.save_dir / "progress.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(doc) + "\n")

    def checkpoint(self, path: Path) -> None:
        """Gather every rank's rng state and let rank 0 write ``path`` (every rank calls it)."""
        if path == self.last_path:
            self.saved_step = self.step
        states = gather_rng_states(self.ddp)
        if self.ddp.main:
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT,
                "model": self.model.state_dict(),
                "timing": self.timing.to_dict(),
                "config": self.cfg.to_dict(),
                "sample_rate": self.sample_rate,
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "best_val": self.best_val,
                "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs,
                "history": self.history,
                "rng": states,
                "world": self.ddp.world,
                "train_songs": sorted({s.song for s in self.train_songs}),
                "val_songs": sorted({s.song for s in self.val_songs}),
            })


# --------------------------------------------------------------------------- train


def train(
    train_songs: Sequence[SongPair],
    val_songs: Sequence[SongPair],
    save_dir: str | os.PathLike,
    *,
    config: SupervisedConfig | None = None,
    resume: bool = False,
    device: str = "cpu",
    quiet: bool = False,
    max_steps: int | None = None,
    max_seconds: float | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train an ``EditSoundModel``; see the module docstring.

    Parameters
    ----------
    train_songs, val_songs:
        Pairs to train on and held-out pairs for validation and early stopping.
    save_dir:
        ``last.pt``, ``best.pt``, TensorBoard events (``tb/``) and
        ``progress.jsonl`` (a line per step and per epoch).
    config:
        Defaults when None; on ``resume`` the checkpoint's config is used.
    resume:
        Continue from ``save_dir/last.pt`` (from scratch, with a warning, when there is none).
    device:
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    max_steps, max_seconds:
        Stop (and save) after this many optimiser steps in all / seconds of this run.
    on_step:
        Called with ``(step, losses)`` after each optimiser step.

    Returns
    -------
    ``{"step", "epoch", "best_epoch", "best_val", "stopped_early", "history"}``;
    ``history`` has one ``{"epoch", "train_loss", "val_loss", ...}`` per epoch.
    """
    if not train_songs or not val_songs:
        raise BadInput(None, "need at least one training and one validation song")
    run = make_run(train_songs, val_songs, Path(save_dir), config, resume=resume, device=device)
    run.max_steps, run.max_seconds = max_steps, max_seconds
    open_writer(run)
    cfg = run.cfg
    run.started_s = time.monotonic()
    stopped_early = False
    run.save_dir.mkdir(parents=True, exist_ok=True)
    run.model.train()
    with StopFlag() as stop:
        for _ in progress(range(run.epoch, cfg.epochs), desc="epochs", quiet=quiet or not run.ddp.main):
            if run.bad_epochs >= cfg.patience:
                stopped_early = True
                break
            train_loss, out_of_budget = train_epoch(run, stop, on_step)
            if run.step_in_epoch < run.steps_per_epoch:  # interrupted inside the epoch
                break
            end_epoch(run, train_loss)
            if run.bad_epochs >= cfg.patience:
                logger.info("early stop: val/total_loss has not improved for %d epochs (best %.4f at epoch %d)",
                            run.bad_epochs, run.best_val, run.best_epoch)
                stopped_early = True
                break
            if stop.stop or out_of_budget:
                break
        if run.saved_step != run.step:
            run.checkpoint(run.last_path)

    finish_distributed(run.model, run.ddp, run.save_dir)
    if run.writer is not None:
        run.writer.close()
    return {"step": run.step, "epoch": run.epoch, "best_epoch": run.best_epoch, "best_val": run.best_val,
            "stopped_early": stopped_early, "history": run.history}


# --------------------------------------------------------------------------- setup


def make_run(
    train_songs: Sequence[SongPair], val_songs: Sequence[SongPair], save_dir: Path, config: SupervisedConfig | None,
    *, resume: bool, device: str,
) -> Run:
    """Distributed setup, the checkpoint to resume (its config wins), the timing model, the songs retimed by it,
    the model (the same initial weights on every rank), optimiser, grad scaler, crop sizes, then the resumed
    counters (``restore``) or each rank's own dropout seed."""
    dev, ddp = setup_training(device)
    ckpt = load_resume_checkpoint(save_dir / "last.pt", CHECKPOINT_FORMAT, ("step", "epoch")) if resume else None
    if ckpt is not None:
        config = SupervisedConfig(**ckpt["config"])
    cfg = config or SupervisedConfig()
    sr = train_songs[0].sample_rate
    if any(s.sample_rate != sr for s in [*train_songs, *val_songs]):
        raise BadInput(None, "songs at different sample rates")
    timing = run_timing(cfg, ckpt, train_songs)
    train_songs, val_songs = retimed_songs(train_songs, timing), retimed_songs(val_songs, timing)

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = EditSoundModel(cfg, sr).to(dev)
    model.timing = timing
    hop = model.frontend.hop
    shortest = min(s.n_samples for s in [*train_songs, *val_songs]) // hop
    crop_frames = max(4, min(round(cfg.crop_s * sr / hop), shortest))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype = cfg.autocast_dtype(dev.type)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    net: nn.Module = nn.parallel.DistributedDataParallel(model) if ddp.enabled else model
    total_s = sum(s.duration_s for s in train_songs)
    n_crops = cfg.crops_per_epoch or max(cfg.batch_size, round(total_s / (crop_frames * hop / sr)))
    run = Run(cfg, dev, ddp, model, net, optimizer, scaler, amp_dtype, timing, train_songs, val_songs, sr, crop_frames,
              steps_per_epoch=max(1, math.ceil(n_crops / (cfg.batch_size * ddp.world))),
              fixed_val_crops=val_crops(val_songs, crop_frames, hop), save_dir=save_dir)
    if ckpt is not None:
        restore(run, ckpt)
    else:
        torch.manual_seed(cfg.seed + 1000 * ddp.rank)  # each rank its own dropout
    return run


def run_timing(cfg: SupervisedConfig, ckpt: dict[str, Any] | None, train_songs: Sequence[SongPair]) -> TimingModel:
    """The resumed checkpoint's timing model, else one fitted once, before the network, on the training pairs
    only (``learn_timing``), else the identity."""
    if ckpt is not None:
        return TimingModel.from_dict(ckpt.get("timing"))
    if cfg.learn_timing:
        return fit_song_timing(train_songs)
    return TimingModel()


def restore(run: Run, ckpt: dict[str, Any]) -> None:
    """Weights, optimiser, scaler, this rank's rng state and the counters of a resumed checkpoint."""
    restore_training_state(ckpt, "model", run.model, run.optimizer, run.scaler, run.ddp.rank)
    run.step, run.epoch, run.step_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"]
    run.best_val, run.best_epoch, run.bad_epochs = ckpt["best_val"], ckpt["best_epoch"], ckpt["bad_epochs"]
    run.history = list(ckpt["history"])
    if ckpt.get("val_songs") and sorted(ckpt["val_songs"]) != sorted({s.song for s in run.val_songs}):
        logger.warning("resuming with a different validation split than the checkpoint's")


def open_writer(run: Run) -> None:
    """TensorBoard events under ``save_dir/tb`` with the hyperparameters as a table (rank 0)."""
    if not run.ddp.main:
        return
    cfg, timing = run.cfg, run.timing
    run.save_dir.mkdir(parents=True, exist_ok=True)
    run.writer = SummaryWriter(str(run.save_dir / "tb"))
    run.writer.add_text("hyperparameters", hyperparameter_table({
        "supervised": cfg.to_dict(),
        "run": {"train_songs": len(run.train_songs), "val_songs": len(run.val_songs), "sample_rate": run.sample_rate,
                "crop_frames": run.crop_frames, "steps_per_epoch": run.steps_per_epoch, "world": run.ddp.world,
                "device": str(run.dev), "parameters": sum(p.numel() for p in run.model.parameters())},
        "timing": {"weights_s": timing.weights, "level_rule": timing.level_rule, "level_db": timing.level_db,
                   "keep_scale": timing.keep_scale, **{k: v for k, v in timing.fit.items() if not isinstance(v, dict)}},
    }), run.step)


# --------------------------------------------------------------------------- one epoch


def train_epoch(run: Run, stop: StopFlag, on_step: Callable[[int, dict[str, float]], None] | None) -> tuple[float, bool]:
    """The optimiser steps of epoch ``run.epoch`` from ``run.step_in_epoch`` on; stops early (after
    writing ``last.pt``) on a signal or when the budget is spent.

    Returns ``(train_loss, out_of_budget)``: the mean ``total_loss`` of the steps taken, and whether the
    budget stopped it.
    """
    cfg = run.cfg
    crops = epoch_crops(run.train_songs, run.steps_per_epoch * cfg.batch_size, run.crop_frames, run.hop, cfg.seed,
                        run.epoch, run.ddp.rank)
    total, n_done = 0.0, 0
    out_of_budget = False
    while run.step_in_epoch < run.steps_per_epoch:
        part = crops[run.step_in_epoch * cfg.batch_size : (run.step_in_epoch + 1) * cfg.batch_size]
        done = train_step(run, part)
        if done is None:
            continue
        values, grad_norm = done
        total += values["total_loss"]
        n_done += 1
        log_step(run, values, grad_norm)
        if on_step is not None:
            on_step(run.step, values)
        if run.step % cfg.checkpoint_every == 0:
            run.checkpoint(run.last_path)
        signalled = _any_rank(stop.stop, run.ddp)
        out_of_budget = run.out_of_budget()
        if signalled or out_of_budget:
            if signalled:
                logger.warning("stopping at step %d on a signal", run.step)
            run.checkpoint(run.last_path)
            break
    return total / max(n_done, 1), out_of_budget


def train_step(run: Run, crops: Sequence[tuple[int, int]]) -> tuple[dict[str, float], float] | None:
    """One optimiser step on a batch of ``crops``: the losses under autocast, the scaled backward pass,
    the gradient norm clipped to ``max_grad_norm``.

    Returns ``(losses, grad_norm)``, or None when the loss is not finite on some rank (every rank
    skips the batch; it still counts in the epoch).
    """
    batch = run.to_device(make_batch(run.train_songs, crops, run.crop_frames, run.hop))
    run.optimizer.zero_grad(set_to_none=True)
    losses = compute_losses(run.net, run.model, batch, run.cfg, run.autocast)
    if not _all_finite(losses["total_loss"], run.ddp):
        logger.warning("step %d: non-finite loss, batch skipped", run.step + 1)
        run.step_in_epoch += 1
        return None
    run.scaler.scale(losses["total_loss"]).backward()
    run.scaler.unscale_(run.optimizer)
    grad_norm = nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.max_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.step += 1
    run.step_in_epoch += 1
    return {name: float(v.item()) for name, v in losses.items()}, float(grad_norm)


def log_step(run: Run, values: dict[str, float], grad_norm: float) -> None:
    """The step's losses and gradient norm to TensorBoard and its ``progress.jsonl`` line (rank 0)."""
    if run.writer is not None:
        for name in LOSS_NAMES:
            run.writer.add_scalar(f"train/{name}", values[name], run.step)
        run.writer.add_scalar("charts/grad_norm", grad_norm, run.step)
    run.log_line({"kind": "step", "step": run.step, "epoch": run.epoch, **values})


# --------------------------------------------------------------------------- end of an epoch


def end_epoch(run: Run, train_loss: float) -> None:
    """Validation, the early-stopping state, the epoch's logs, then ``best.pt`` (when it improved) and ``last.pt``."""
    val = validate(run)
    improved = val["total_loss"] < run.best_val - 1e-6
    if improved:
        run.best_val, run.best_epoch, run.bad_epochs = val["total_loss"], run.epoch, 0
    else:
        run.bad_epochs += 1
    run.history.append({"epoch": run.epoch, "train_loss": train_loss, "val_loss": val["total_loss"],
                        **{f"val_{k}": v for k, v in val.items() if k != "total_loss"}})
    log_epoch(run, train_loss, val)
    run.epoch += 1
    run.step_in_epoch = 0
    if improved:
        run.checkpoint(run.best_path)
    run.checkpoint(run.last_path)


def validate(run: Run) -> dict[str, float]:
    """Mean losses (``LOSS_NAMES``) over the fixed validation crops, the model in eval mode."""
    cfg, crops = run.cfg, run.fixed_val_crops
    run.model.eval()
    sums = dict.fromkeys(LOSS_NAMES, 0.0)
    with torch.no_grad():
        for k in range(0, len(crops), cfg.batch_size):
            part = crops[k : k + cfg.batch_size]
            batch = run.to_device(make_batch(run.val_songs, part, run.crop_frames, run.hop))
            losses = compute_losses(run.model, run.model, batch, cfg, run.autocast)
            for name in LOSS_NAMES:
                sums[name] += losses[name].item() * len(part)
    run.model.train()
    return {name: v / len(crops) for name, v in sums.items()}


def log_epoch(run: Run, train_loss: float, val: dict[str, float]) -> None:
    """The epoch's validation losses and training loss to TensorBoard, ``progress.jsonl`` and the log."""
    if run.writer is not None:
        for name, v in val.items():
            run.writer.add_scalar(f"val/{name}", v, run.step)
        run.writer.add_scalar("epoch/train_loss", train_loss, run.step)
    run.log_line({"kind": "epoch", "epoch": run.epoch, "step": run.step, "train_loss": train_loss,
                  "val_loss": val["total_loss"], "best_epoch": run.best_epoch})
    logger.info("epoch %d: train %.4f, val %.4f (best %.4f at epoch %d)",
                run.epoch, train_loss, val["total_loss"], run.best_val, run.best_epoch)


# --------------------------------------------------------------------------- batches and losses


@dataclass
class Batch:
    """Crops stacked for one step: waveforms ``(B, n)``, labels ``(B, T)``, consistency mask ``(B, T)`` bool."""

    base: Tensor
    raw: Tensor
    target: Tensor
    labels: tuple[Tensor, ...]  # types, sizes, amounts, position (label_tensors)
    keep: Tensor


def make_batch(songs: Sequence[SongPair], crops: Sequence[tuple[int, int]], crop_frames: int, hop: int) -> Batch:
    """Stack ``(song index, start frame)`` crops of ``crop_frames * hop`` samples (zero-padded past the end)."""
    n = crop_frames * hop
    cols: dict[str, list[np.ndarray]] = {"base": [], "raw": [], "target": []}
    labels, keep = [], []
    for i, f0 in crops:
        s = songs[i]
        a = f0 * hop
        for key in cols:
            x = getattr(s, key)[a : a + n]
            cols[key].append(np.pad(x, (0, n - x.shape[0])))
        lab = s.labels.slice(f0, f0 + crop_frames + 1)
        labels.append(lab)
        keep.append(lab.keep & s.consistency)
    base, raw, target = (torch.from_numpy(np.stack(cols[k])) for k in ("base", "raw", "target"))
    return Batch(
        base, raw, target,
        labels=label_tensors(labels),
        keep=torch.from_numpy(np.stack(keep)),
    )


def compute_losses(
    net: nn.Module, model: EditSoundModel, batch: Batch, cfg: SupervisedConfig, autocast: Callable[[], Any]
) -> dict[str, Tensor]:
    """The three loss terms and their weighted sum (``LOSS_NAMES``) for one batch; ``net`` is the
    model or its DDP wrapper."""
    n = batch.base.shape[1]
    spec, base_lm, raw_lm = model.features(batch.base, batch.raw)
    with autocast():
        gain = net(base_lm, raw_lm, *batch.labels)
    gain = gain.float()
    raw_spec = model.frontend.stft(batch.raw) if cfg.raw_mix else None
    out_spec, out_wave = model.masked(spec, gain, n, raw_spec)
    target_lm = model.frontend.log_mel(magnitude(model.frontend.stft(batch.target)))
    consistency = edit_consistency(gain[..., : cfg.n_mels], batch.keep)
    if cfg.raw_mix:  # KEEP frames hold the base: no raw mixed in either (a weight of 1 counts as GAIN_UNIT_DB)
        consistency = consistency + edit_consistency(gain[..., cfg.n_mels :] * GAIN_UNIT_DB, batch.keep)
    losses = {
        "l1_loss": l1_log_mel(model.frontend.log_mel(magnitude(out_spec)), target_lm),
        "msstft_loss": multiscale_stft(out_wave, batch.target),
        "consistency_loss": consistency,
    }
    losses["total_loss"] = (
        cfg.l1_weight * losses["l1_loss"]
        + cfg.multiscale_stft_weight * losses["msstft_loss"]
        + cfg.edit_consistency_weight * losses["consistency_loss"]
    )
    return losses


def epoch_crops(
    songs: Sequence[SongPair], n_crops: int, crop_frames: int, hop: int, seed: int, epoch: int, rank: int
) -> list[tuple[int, int]]:
    """``n_crops`` random ``(song, start frame)`` crops for one epoch and rank, songs weighted by length.

    Depends only on its arguments, so a resumed run redraws the same crops.
    """
    rng = np.random.default_rng([seed, epoch, rank])
    frames = np.array([1 + s.n_samples // hop for s in songs], dtype=np.float64)
    which = rng.choice(len(songs), size=n_crops, p=frames / frames.sum())
    starts = [int(rng.integers(0, max(1, int(frames[i]) - crop_frames))) for i in which]
    return [(int(i), f) for i, f in zip(which, starts, strict=True)]


def val_crops(songs: Sequence[SongPair], crop_frames: int, hop: int) -> list[tuple[int, int]]:
    """Fixed validation crops: up to ``VAL_CROPS_PER_SONG`` evenly spaced crops per song."""
    out = []
    for i, s in enumerate(songs):
        n_frames = 1 + s.n_samples // hop
        k = max(1, min(VAL_CROPS_PER_SONG, n_frames // crop_frames))
        for f in np.linspace(0, max(0, n_frames - crop_frames - 1), k):
            out.append((i, int(f)))
    return out


# --------------------------------------------------------------------------- ranks agree


def _any_rank(flag: bool, ddp: Distributed) -> bool:
    """True on every rank when it is true on any."""
    if not ddp.enabled:
        return bool(flag)
    t = torch.tensor([float(flag)])
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _all_finite(x: Tensor, ddp: Distributed) -> bool:
    """True on every rank when ``x`` is finite on every rank (all skip a bad batch together)."""
    return not _any_rank(not bool(torch.isfinite(x).all()), ddp)
