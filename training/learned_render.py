"""The learned render: an EditPlan, its source audio and a supervised model -> audio.

``render_learned`` renders the plan with the DSP renderer (and its
structural re-sequencing of the raw audio, ``song_pairs.structural_plan``),
retimes and levels both by the model's learned timing, and applies the
network's per-band gains (and raw mix) to the render's STFT;
``predict_gain_db`` runs the network over a whole timeline in overlapping
chunks; ``render_learned_to_file`` is the file -> file layer under
``editorbot render --renderer learned``. The model is an ``EditSoundModel``
(``training.supervised_checkpoint.load_model``) or its ONNX export
(``export.learned.OnnxEditSound``): anything that is a
``training.models.supervised.GainModel``.
"""

from __future__ import annotations

import copy
import logging
import os

import numpy as np
import torch
from torch import Tensor

from editorbot.engine.atomic import check_destination
from editorbot.engine.audio import load_audio, output_subtype, source_subtype, write_audio
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan, check_source
from editorbot.engine.render import RenderResult, render_plan, stage_gain
from editorbot.training.models.supervised import (
    FrameLabels,
    GainModel,
    apply_output,
    frame_labels,
    label_tensors,
    output_width,
)
from editorbot.training.models.timing import timing_blocks
from editorbot.training.song_pairs import channel_mean, structural_plan
from editorbot.training.supervised_checkpoint import load_model

logger = logging.getLogger(__name__)


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
        _, base_lm, raw_lm = fe.features(torch.from_numpy(channel_mean(base))[None], torch.from_numpy(channel_mean(raw))[None])
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
