"""Supervised trainer and learned renderer for ``training.models.supervised``.

Top to bottom: data (pairs on disk -> in-memory songs, the split by song,
studio pairs), the learned renderer (a plan + source audio + checkpoint ->
audio), then ``train``: setup (distributed, seeds, model, optimiser, resume),
the epoch loop (random crops, the three losses, mixed precision), validation
on fixed crops of held-out songs, early stopping, logging and checkpoints.

One training example is a crop of ``crop_s`` seconds of one song's edited
timeline, mono (the mask is shared by all channels at render time):
``base`` (the DSP render of the plan), ``raw`` (the plan's structural
re-sequencing of the raw audio), ``target`` (the desired edit) and the
frame labels. Losses (``training.losses``): L1 on log-mel, multi-scale STFT
on the waveform, edit consistency on KEEP frames of songs whose editor
leaves KEEP spans alone (every style but the whole-output studio chain).

Checkpoints: ``last.pt`` every ``checkpoint_every`` optimiser steps, at
each epoch's end and on SIGINT/SIGTERM; ``best.pt`` when ``val/total_loss``
improves. Both hold the weights, the config, the sample rate, the
optimiser and grad scaler, the step, the epoch and the step inside it, the
early-stopping state and history, the split and every rank's python/numpy/
torch rng states; written atomically. With torchrun each rank draws its own
crops and DDP (gloo on CPU, nccl on CUDA) averages the gradients; rank 0
writes checkpoints and logs.
"""

from __future__ import annotations

import glob
import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan
from editorbot.engine.progress import progress
from editorbot.engine.render import RenderResult
from editorbot.training.config import SupervisedConfig
from editorbot.training.distributed import Distributed, finish_distributed, setup_training
from editorbot.training.losses import edit_consistency, l1_log_mel, magnitude, multiscale_stft
from editorbot.training.models.supervised import (
    GAIN_UNIT_DB,
    EditSoundModel,
    FrameLabels,
    GainModel,
    apply_output,
    frame_labels,
    label_tensors,
    output_width,
)
from editorbot.training.models.timing import (
    TimingBlocks,
    TimingExample,
    TimingModel,
    fit_timing,
    peak_dbfs,
    timing_blocks,
)
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

CHECKPOINT_FORMAT = "editorbot.supervised/1"
#: Most validation crops taken from one held-out song.
VAL_CROPS_PER_SONG = 8
#: Largest length difference (share of the plan's render) accepted between the desired edit and the
#: render of a plan label inference found (label files with ``"plan_source": "inferred"``).
INFERRED_LENGTH_TOLERANCE = 0.05
#: Loss names, in the order they are logged.
LOSS_NAMES: tuple[str, ...] = ("l1_loss", "msstft_loss", "consistency_loss", "total_loss")


# --------------------------------------------------------------------------- data


def structural_plan(plan: EditPlan) -> EditPlan:
    """The plan's re-sequencing alone: every segment's source span, place, direction, mute and rate
    kept; gain, fades, pitch and effects dropped. Its render is the raw audio the edit placed on each
    output frame, on the same timeline as the plan's own render."""
    segments = [
        replace(s, gain_db=0.0, fade_in_s=0.0, fade_out_s=0.0, pitch_semitones=0.0, effects=[]) for s in plan.segments
    ]
    return replace(plan, segments=segments)


@dataclass
class SongPair:
    """One pair in memory, on the edited timeline, mono float32.

    Attributes
    ----------
    name : str
        The pair's name.
    song : str
        Key of the underlying song (pairs of one song share it; the split is by song).
    sample_rate : int
        Hz.
    base : np.ndarray
        ``(n,)`` DSP render of the plan.
    raw : np.ndarray
        ``(n,)`` render of ``structural_plan(plan)``.
    target : np.ndarray
        ``(n,)`` the desired edit.
    labels : FrameLabels
        Per-frame labels over the whole timeline.
    consistency : bool
        Whether KEEP frames are held to the base (False when the editor's
        sound covers every frame).
    blocks : TimingBlocks or None
        The plan's output beats and their features (``training.models.timing``).
    base_peak_db, target_peak_db : float or None
        Peaks of the DSP render and the edit over all their channels, dBFS
        (None: the mono signals'), for the level rule.
    """

    name: str
    song: str
    sample_rate: int
    base: np.ndarray
    raw: np.ndarray
    target: np.ndarray
    labels: FrameLabels
    consistency: bool = True
    blocks: TimingBlocks | None = None
    base_peak_db: float | None = None
    target_peak_db: float | None = None

    @property
    def n_samples(self) -> int:
        return int(self.base.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate


def _mono(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).mean(axis=0)


def load_song_pair(label_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> SongPair:
    """Read one pair (label file, raw and desired audio), render its base and re-sequenced raw.

    Raises BadInput (naming the file) for a missing or unreadable file or a
    desired edit whose length is not the plan's (within 10 ms; within
    ``INFERRED_LENGTH_TOLERANCE`` for a plan label inference found, whose
    label file says ``"plan_source": "inferred"``).
    """
    from editorbot.engine.audio import load_audio
    from editorbot.engine.render import render_plan
    from editorbot.training.data.editors import STUDIO_SCOPE_OF
    from editorbot.training.data.pairs import load_pair_plan, read_label_doc
    from editorbot.training.models.supervised import frame_params

    path = os.fspath(label_path)
    root = os.fspath(data_dir) if data_dir is not None else os.path.dirname(os.path.dirname(os.path.abspath(path)))
    doc = read_label_doc(path)
    plan = load_pair_plan(path)
    raw_audio = load_audio(plan.source.path)
    edit_rel = doc.get("edit") or f"desired_output/{doc.get('name', Path(path).stem)}_edit.wav"
    desired = load_audio(os.path.join(root, edit_rel))
    if desired.sample_rate != raw_audio.sample_rate:
        raise BadInput(desired.path, f"{desired.sample_rate} Hz, its raw file is {raw_audio.sample_rate} Hz")
    sr = raw_audio.sample_rate
    base_st = render_plan(plan, raw_audio.samples, sr)
    base = _mono(base_st)
    raw = _mono(render_plan(structural_plan(plan), raw_audio.samples, sr))
    target = _mono(desired.samples)
    # A plan label inference found for another editor's work does not reproduce its splices to the
    # sample (overlapping joins shorten the edit); the common length is used.
    inferred = doc.get("plan_source") == "inferred"
    tolerance = max(sr // 100, int(INFERRED_LENGTH_TOLERANCE * base.shape[0])) if inferred else sr // 100
    if abs(target.shape[0] - base.shape[0]) > tolerance:
        raise BadInput(desired.path, f"{target.shape[0]} samples, the plan renders {base.shape[0]}")
    n = min(base.shape[0], target.shape[0])
    _, hop = frame_params(sr)
    song = (doc.get("original") or {}).get("sha256") or f"synth:{doc.get('seed')}"
    return SongPair(
        name=str(doc.get("name", Path(path).stem)),
        song=str(song),
        sample_rate=sr,
        base=base[:n],
        raw=raw[:n],
        target=target[:n],
        labels=frame_labels(plan, 1 + n // hop, hop / sr),
        consistency=STUDIO_SCOPE_OF.get(str(doc.get("style")), "") != "all",
        blocks=timing_blocks(plan, n, sr),
        base_peak_db=peak_dbfs(base_st[:, :n]),
        target_peak_db=peak_dbfs(desired.samples[:, :n]),
    )


def fit_song_timing(songs: Sequence[SongPair]) -> TimingModel:
    """``training.models.timing.fit_timing`` on pairs in memory (DSP render against the desired edit)."""
    examples = [TimingExample(s.base, s.target, s.blocks if s.blocks is not None else _whole(s), s.song,
                              s.base_peak_db, s.target_peak_db) for s in songs]
    return fit_timing(examples, songs[0].sample_rate)


def _whole(song: SongPair) -> TimingBlocks:
    """One block over the whole timeline (pairs made without a plan's beats)."""
    return TimingBlocks(np.zeros(1, dtype=np.int64), np.array([[song.duration_s / 2, 0.0, 0.0, 1.0]]))


def retimed_songs(songs: Sequence[SongPair], timing: TimingModel) -> list[SongPair]:
    """The pairs with base and raw retimed and levelled by ``timing`` (the same list when it is the identity)."""
    if timing.is_identity:
        return list(songs)
    out = []
    for s in songs:
        blocks = s.blocks if s.blocks is not None else _whole(s)
        base, raw = timing.apply([s.base, s.raw], blocks, s.sample_rate, peak_db=s.base_peak_db)
        out.append(replace(s, base=base, raw=raw))
    return out


def load_song_pairs(data_dir: str | os.PathLike, *, quiet: bool = False) -> list[SongPair]:
    """Every pair under ``data_dir`` (``labels/*.json``), sorted by name; BadInput when there are none
    or their sample rates differ."""
    folder = os.path.join(os.fspath(data_dir), "labels")
    files = sorted(glob.glob(os.path.join(folder, "*.json")))
    if not files:
        raise BadInput(folder, "no label files (labels/*.json); make pairs with `editorbot data synth`")
    songs = [load_song_pair(f, data_dir) for f in progress(files, desc="pairs", quiet=quiet)]
    rates = {s.sample_rate for s in songs}
    if len(rates) > 1:
        raise BadInput(folder, f"pairs at several sample rates {sorted(rates)}; use one rate per data folder")
    return songs


def split_by_song(songs: Sequence[SongPair], val_fraction: float, seed: int) -> tuple[list[SongPair], list[SongPair]]:
    """``(train, val)``: whole songs held out (never one song on both sides); at least one on each."""
    keys = sorted({s.song for s in songs})
    if len(keys) < 2:
        raise BadInput(None, f"need pairs of at least 2 different songs for a train/val split, got {len(keys)}")
    order = np.random.default_rng(seed).permutation(len(keys))
    n_val = min(len(keys) - 1, max(1, round(val_fraction * len(keys))))
    val_keys = {keys[int(i)] for i in order[:n_val]}
    return [s for s in songs if s.song not in val_keys], [s for s in songs if s.song in val_keys]


def make_studio_pairs(
    n: int, out_dir: str | os.PathLike, *, style: str = "studio", seed: int = 0, duration_s: float | None = None
) -> list[str]:
    """Write ``n`` synthetic pairs of a studio style (``training.data.editors.STUDIO_STYLES``).

    Each is ``training.data.pairs.make_synth_pair`` (song, plan, labels, the
    DSP render run through the style's studio chain), as ``editorbot data
    synth --styles studio`` makes them. Seeds ``seed .. seed+n-1``. Returns
    the label file paths.
    """
    from editorbot.training.data.editors import STUDIO_SCOPE_OF
    from editorbot.training.data.pairs import make_synth_pair

    if style not in STUDIO_SCOPE_OF:
        raise ValueError(f"unknown studio style {style!r} (one of {', '.join(STUDIO_SCOPE_OF)})")
    return [make_synth_pair(seed + i, style, out_dir, duration_s).label_path for i in range(n)]


# --------------------------------------------------------------------------- learned render


def load_model(path: str | os.PathLike) -> EditSoundModel:
    """The trained model of a checkpoint (eval mode, CPU); BadInput naming the file if it is not one."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise BadInput(p, "no such checkpoint")
    try:
        return model_from_checkpoint(load_supervised_checkpoint(p))
    except (OSError, ValueError, RuntimeError, EOFError, KeyError, TypeError, pickle.UnpicklingError) as err:
        raise BadInput(p, f"not a supervised checkpoint ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None


def model_from_checkpoint(ckpt: dict[str, Any]) -> EditSoundModel:
    """The model (eval mode, CPU) of a loaded checkpoint dict (KeyError / TypeError / RuntimeError if it does not fit)."""
    model = EditSoundModel(SupervisedConfig(**ckpt["config"]), int(ckpt["sample_rate"]))
    model.load_state_dict(ckpt["model"])
    model.timing = TimingModel.from_dict(ckpt.get("timing"))
    return model.eval()


def predict_gain_db(
    model: GainModel, base_log_mel: Tensor, raw_log_mel: Tensor, labels: FrameLabels,
    *, chunk_frames: int | None = None, overlap_frames: int | None = None,
) -> Tensor:
    """The network's output for a whole timeline, in overlapping chunks cross-faded linearly.

    ``base_log_mel``, ``raw_log_mel``: ``(T, n_mels)``. Returns gain in dB
    ``(T, n_mels)`` (``(T, 2 n_mels)``, gain then raw-mix weight, with ``cfg.raw_mix``).
    """
    cfg = model.cfg
    chunk = chunk_frames or cfg.chunk_frames
    overlap = cfg.overlap_frames if overlap_frames is None else overlap_frames
    n = base_log_mel.shape[0]
    out = torch.zeros(n, output_width(cfg))
    weight = torch.zeros(n, 1)
    step = max(1, chunk - overlap)
    starts = list(range(0, max(1, n - overlap), step))
    for s in starts:
        e = min(n, s + chunk)
        lab = label_tensors([labels.slice(s, e)])
        with torch.no_grad():
            g = model(base_log_mel[None, s:e], raw_log_mel[None, s:e], *lab)[0].float()
        w = torch.ones(e - s, 1)
        k = min(overlap, e - s)
        if k:
            ramp = torch.linspace(0.0, 1.0, overlap + 2)[1:-1, None]
            if s > 0:
                w[:k] = ramp[:k]
            if e < n:
                w[-k:] = torch.minimum(w[-k:], ramp.flip(0)[-k:])
        out[s:e] += g * w
        weight[s:e] += w
    return out / weight.clamp_min(1e-8)


def render_learned(plan: EditPlan, samples: np.ndarray, sample_rate: int, model: GainModel) -> np.ndarray:
    """The learned render: the DSP render of ``plan``, retimed and levelled by the model's timing, with the
    network's gains (and raw mix) applied to its STFT.

    Parameters
    ----------
    plan : EditPlan
        The edit.
    samples : np.ndarray
        Source audio ``(n_channels, n_samples)`` float32.
    sample_rate : int
        Hz; must be the model's.
    model : GainModel
        A trained ``EditSoundModel`` or its ONNX export.

    Returns
    -------
    np.ndarray
        ``(n_channels, n_out)`` float32, the length of the DSP render. One
        gain (from the channels' mean) is applied to every channel.
    """
    from editorbot.engine.render import render_plan

    if sample_rate != model.sample_rate:
        raise BadInput(None, f"the model was trained at {model.sample_rate} Hz, the source is {sample_rate} Hz")
    base = render_plan(plan, samples, sample_rate)
    raw = render_plan(structural_plan(plan), samples, sample_rate)
    n = base.shape[1]
    if not model.timing.is_identity:
        blocks = timing_blocks(plan, n, sample_rate)
        base, raw = model.timing.apply([base, raw], blocks, sample_rate)
    fe = model.frontend
    with torch.no_grad():
        _, base_lm, raw_lm = fe.features(torch.from_numpy(_mono(base))[None], torch.from_numpy(_mono(raw))[None])
        labels = frame_labels(plan, base_lm.shape[1], fe.hop_s)
        gain = predict_gain_db(model, base_lm[0], raw_lm[0], labels)
        out = np.empty_like(base)
        for c in range(base.shape[0]):
            spec = fe.stft(torch.from_numpy(base[c])[None])
            raw_spec = fe.stft(torch.from_numpy(raw[c])[None]) if model.cfg.raw_mix else None
            out[c] = apply_output(fe, model.cfg, spec, gain[None], n, raw_spec)[1][0].numpy()
    return out


def render_learned_to_file(
    plan: EditPlan,
    out_path: str | os.PathLike,
    checkpoint: str | os.PathLike,
    *,
    model: GainModel | None = None,
    source_path: str | None = None,
    subtype: str | None = None,
) -> RenderResult:
    """Load the plan's source and the checkpoint, render with ``render_learned``, write ``out_path`` atomically.

    ``model``: the model of ``checkpoint`` when the caller has loaded it
    (e.g. an ONNX export, ``export.learned.OnnxEditSound``); else the
    checkpoint is loaded here. Source checks, peak ceiling and sample format as
    ``engine.render.render_to_file`` (present, unchanged, never
    overwritten); a model/source mismatch is a BadInput naming the
    checkpoint.
    """
    import copy

    from editorbot.engine.atomic import check_destination
    from editorbot.engine.audio import load_audio, output_subtype, source_subtype, write_audio
    from editorbot.engine.plan import check_source
    from editorbot.engine.render import stage_gain

    dest = os.fspath(out_path)
    src = check_source(plan, source_path)
    check_destination(dest, [src, os.fspath(checkpoint)])
    model = model or load_model(checkpoint)
    audio = load_audio(src)
    try:
        rendered = render_learned(plan, audio.samples, audio.sample_rate, model)
    except BadInput as err:
        if err.path is None and "model was trained" in err.problem:
            raise BadInput(os.fspath(checkpoint), err.problem) from None
        raise
    rendered, gain_db = stage_gain(copy.deepcopy(plan), rendered)
    if gain_db:
        logger.warning("%s: the learned render peaks over the ceiling: written %.2f dB down", dest, -gain_db)
    subtype = subtype or output_subtype(dest, source_subtype(src))
    write_audio(dest, rendered, audio.sample_rate, protect=(src,), subtype=subtype)
    return RenderResult(path=dest, duration_s=rendered.shape[1] / audio.sample_rate, sample_rate=audio.sample_rate,
                        n_channels=rendered.shape[0], n_segments=len(plan.segments))


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


# --------------------------------------------------------------------------- checkpoints


def load_supervised_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``train`` (``run_state.read_checkpoint``)."""
    return read_checkpoint(Path(path), CHECKPOINT_FORMAT)


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
    # ------------------------------------------------------------------ setup
    if not train_songs or not val_songs:
        raise BadInput(None, "need at least one training and one validation song")
    save_dir = Path(save_dir)
    dev, ddp = setup_training(device)
    last_path, best_path = save_dir / "last.pt", save_dir / "best.pt"
    ckpt = load_resume_checkpoint(last_path, CHECKPOINT_FORMAT, ("step", "epoch")) if resume else None
    if ckpt is not None:
        config = SupervisedConfig(**ckpt["config"])
    cfg = config or SupervisedConfig()
    sr = train_songs[0].sample_rate
    if any(s.sample_rate != sr for s in [*train_songs, *val_songs]):
        raise BadInput(None, "songs at different sample rates")
    # the timing model is fitted once, before the network, on the training pairs only
    if ckpt is not None:
        timing = TimingModel.from_dict(ckpt.get("timing"))
    elif cfg.learn_timing:
        timing = fit_song_timing(train_songs)
    else:
        timing = TimingModel()
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
    net: nn.Module = model
    if ddp.enabled:
        net = nn.parallel.DistributedDataParallel(model)

    step, epoch, step_in_epoch = 0, 0, 0
    best_val, best_epoch, bad_epochs = math.inf, -1, 0
    history: list[dict[str, float]] = []
    if ckpt is not None:
        restore_training_state(ckpt, "model", model, optimizer, scaler, ddp.rank)
        step, epoch, step_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"]
        best_val, best_epoch, bad_epochs = ckpt["best_val"], ckpt["best_epoch"], ckpt["bad_epochs"]
        history = list(ckpt["history"])
        if ckpt.get("val_songs") and sorted(ckpt["val_songs"]) != sorted({s.song for s in val_songs}):
            logger.warning("resuming with a different validation split than the checkpoint's")
    else:
        torch.manual_seed(cfg.seed + 1000 * ddp.rank)  # each rank its own dropout

    total_s = sum(s.duration_s for s in train_songs)
    n_crops = cfg.crops_per_epoch or max(cfg.batch_size, round(total_s / (crop_frames * hop / sr)))
    steps_per_epoch = max(1, math.ceil(n_crops / (cfg.batch_size * ddp.world)))
    v_crops = val_crops(val_songs, crop_frames, hop)

    writer = None
    if ddp.main:
        from torch.utils.tensorboard import SummaryWriter

        save_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(save_dir / "tb"))
        writer.add_text("hyperparameters", hyperparameter_table({
            "supervised": cfg.to_dict(),
            "run": {"train_songs": len(train_songs), "val_songs": len(val_songs), "sample_rate": sr,
                    "crop_frames": crop_frames, "steps_per_epoch": steps_per_epoch, "world": ddp.world,
                    "device": str(dev), "parameters": sum(p.numel() for p in model.parameters())},
            "timing": {"weights_s": timing.weights, "level_rule": timing.level_rule, "level_db": timing.level_db,
                       "keep_scale": timing.keep_scale, **{k: v for k, v in timing.fit.items() if not isinstance(v, dict)}},
        }), step)
    progress_log = save_dir / "progress.jsonl"

    def log_line(doc: dict[str, Any]) -> None:
        if ddp.main:
            with open(progress_log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(doc) + "\n")

    saved_step: int | None = None

    def checkpoint(path: Path) -> None:
        """Gather every rank's rng state and let rank 0 write ``path`` (every rank calls it)."""
        nonlocal saved_step
        if path == last_path:
            saved_step = step
        states = gather_rng_states(ddp)
        if ddp.main:
            save_checkpoint(path, {
                "format": CHECKPOINT_FORMAT,
                "model": model.state_dict(),
                "timing": timing.to_dict(),
                "config": cfg.to_dict(),
                "sample_rate": sr,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "epoch": epoch,
                "step_in_epoch": step_in_epoch,
                "best_val": best_val,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "history": history,
                "rng": states,
                "world": ddp.world,
                "train_songs": sorted({s.song for s in train_songs}),
                "val_songs": sorted({s.song for s in val_songs}),
            })

    def autocast() -> Any:
        return torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()

    def to_dev(b: Batch) -> Batch:
        return Batch(b.base.to(dev), b.raw.to(dev), b.target.to(dev), tuple(t.to(dev) for t in b.labels), b.keep.to(dev))

    def validate() -> dict[str, float]:
        model.eval()
        sums = dict.fromkeys(LOSS_NAMES, 0.0)
        with torch.no_grad():
            for k in range(0, len(v_crops), cfg.batch_size):
                part = v_crops[k : k + cfg.batch_size]
                losses = compute_losses(model, model, to_dev(make_batch(val_songs, part, crop_frames, hop)), cfg, autocast)
                for name in LOSS_NAMES:
                    sums[name] += losses[name].item() * len(part)
        model.train()
        return {name: v / len(v_crops) for name, v in sums.items()}

    started = time.monotonic()
    stopped_early = False
    out_of_budget = False
    save_dir.mkdir(parents=True, exist_ok=True)
    model.train()
    with StopFlag() as stop:
        bar = progress(range(epoch, cfg.epochs), desc="epochs", quiet=quiet or not ddp.main)
        for _ in bar:
            if bad_epochs >= cfg.patience:
                stopped_early = True
                break
            crops = epoch_crops(train_songs, steps_per_epoch * cfg.batch_size, crop_frames, hop, cfg.seed, epoch, ddp.rank)
            sums = dict.fromkeys(LOSS_NAMES, 0.0)
            n_done = 0
            while step_in_epoch < steps_per_epoch:
                part = crops[step_in_epoch * cfg.batch_size : (step_in_epoch + 1) * cfg.batch_size]
                batch = to_dev(make_batch(train_songs, part, crop_frames, hop))
                optimizer.zero_grad(set_to_none=True)
                losses = compute_losses(net, model, batch, cfg, autocast)
                if not _all_finite(losses["total_loss"], ddp):
                    logger.warning("step %d: non-finite loss, batch skipped", step + 1)
                    step_in_epoch += 1
                    continue
                scaler.scale(losses["total_loss"]).backward()
                scaler.unscale_(optimizer)
                grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                step_in_epoch += 1
                values = {name: float(v.item()) for name, v in losses.items()}
                for name in LOSS_NAMES:
                    sums[name] += values[name]
                n_done += 1
                if writer is not None:
                    for name in LOSS_NAMES:
                        writer.add_scalar(f"train/{name}", values[name], step)
                    writer.add_scalar("charts/grad_norm", float(grad_norm), step)
                log_line({"kind": "step", "step": step, "epoch": epoch, **values})
                if on_step is not None:
                    on_step(step, values)
                if step % cfg.checkpoint_every == 0:
                    checkpoint(last_path)
                signalled = _any_rank(stop.stop, ddp)
                out_of_budget = (max_steps is not None and step >= max_steps) or (
                    max_seconds is not None and _any_rank(time.monotonic() - started >= max_seconds, ddp)
                )
                if signalled or out_of_budget:
                    if signalled:
                        logger.warning("stopping at step %d on a signal", step)
                    checkpoint(last_path)
                    break
            if step_in_epoch < steps_per_epoch:  # interrupted inside the epoch
                break

            # end of epoch: validation, early stopping, checkpoints
            val = validate()
            train_loss = sums["total_loss"] / max(n_done, 1)
            improved = val["total_loss"] < best_val - 1e-6
            if improved:
                best_val, best_epoch, bad_epochs = val["total_loss"], epoch, 0
            else:
                bad_epochs += 1
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val["total_loss"],
                             **{f"val_{k}": v for k, v in val.items() if k != "total_loss"}})
            if writer is not None:
                for name, v in val.items():
                    writer.add_scalar(f"val/{name}", v, step)
                writer.add_scalar("epoch/train_loss", train_loss, step)
            log_line({"kind": "epoch", "epoch": epoch, "step": step, "train_loss": train_loss,
                      "val_loss": val["total_loss"], "best_epoch": best_epoch})
            logger.info("epoch %d: train %.4f, val %.4f (best %.4f at epoch %d)",
                        epoch, train_loss, val["total_loss"], best_val, best_epoch)
            epoch += 1
            step_in_epoch = 0
            if improved:
                checkpoint(best_path)
            checkpoint(last_path)
            if bad_epochs >= cfg.patience:
                logger.info("early stop: val/total_loss has not improved for %d epochs (best %.4f at epoch %d)",
                            bad_epochs, best_val, best_epoch)
                stopped_early = True
                break
            if stop.stop or out_of_budget:
                break
        if saved_step != step:
            checkpoint(last_path)

    finish_distributed(model, ddp, save_dir)
    if writer is not None:
        writer.close()
    return {"step": step, "epoch": epoch, "best_epoch": best_epoch, "best_val": best_val,
            "stopped_early": stopped_early, "history": history}


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
