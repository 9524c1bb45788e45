"""The supervised "sound of the edit" model (Option A, DESIGN section 7).

What it learns. A plan's DSP render (``engine.render.render_plan``) is the
base: structural edits (cuts, loops, repeats, reverses, silences, speed) and
the vocabulary's effects are already in it. The network learns what the
person's edit sounds like *on top of* that base: a per-frame, per-mel-band
gain in dB. The gain is spread to linear-frequency bins through the mel
filterbank's transpose (each bin takes the weighted mean of the gains of the
bands that cover it, ``SpectralFrontEnd.mel_to_linear``) and multiplies the
base's STFT, phase kept; the inverse STFT gives the audio. A gain of 0 dB
everywhere returns the base (up to the STFT round trip), and the decoder's
last layer starts at zero, so an untrained model is the DSP renderer.

Inputs per STFT frame ``t`` of the edited timeline:

- the base's log-mel and the log-mel of the plan's structural re-sequencing
  of the raw audio (the raw frames the edit placed there, no processing),
  ``(B, T, n_mels)`` each, natural log of mel magnitude;
- the edit label of the segment playing at ``t``: action type, size and
  amount indices and the position inside the segment (0 at its start,
  1 at its end), ``FrameLabels``.

``EditEncoder`` embeds both log-mels and the labels and runs a transformer
over the frames; ``MelDecoder`` runs a second transformer and predicts the
gain, a residual on the base's log-mel (``log-mel out = log-mel base +
gain``). Frame parameters follow the sample rate: ``frame_params(sr)``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from editorbot.engine import actions as vocab
from editorbot.engine.spectrum import mel_basis
from editorbot.training.config import SupervisedConfig
from editorbot.training.losses import LOG_EPS, MAG_FLOOR, NEPER_PER_DB, log_mel, magnitude
from editorbot.training.models.timing import TimingModel
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from editorbot.engine.plan import EditPlan

#: Log-mel normalisation for the network input: ``(x - LOG_MEL_CENTER) / LOG_MEL_SCALE``.
LOG_MEL_CENTER = -5.0
LOG_MEL_SCALE = 3.0
#: dB per unit of the decoder's head output: a studio-sized gain (tens of dB) is a few units away.
GAIN_UNIT_DB = 10.0


def frame_params(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop_samples)`` for a rate: a power of two near 2048 at 44.1 kHz (46 ms), hop a quarter."""
    n_fft = int(2 ** round(math.log2(2048.0 * sample_rate / 44100.0)))
    return n_fft, n_fft // 4


# --------------------------------------------------------------------------- frame labels


@dataclass
class FrameLabels:
    """The edit label of every frame of an edited timeline.

    Attributes
    ----------
    type_idx, size_idx, amount_idx : np.ndarray
        ``(n_frames,)`` int64 indices into
        ``engine.actions.TYPES`` / ``SIZES`` / ``AMOUNTS``; frames no
        segment covers are KEEP / BEAT / NEUTRAL.
    position : np.ndarray
        ``(n_frames,)`` float32, 0 at the segment's start, 1 at its end.
    """

    type_idx: np.ndarray
    size_idx: np.ndarray
    amount_idx: np.ndarray
    position: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.type_idx.shape[0])

    @property
    def keep(self) -> np.ndarray:
        """``(n_frames,)`` bool: frames whose segment is a plain KEEP."""
        return self.type_idx == int(vocab.ActionType.KEEP)

    def slice(self, start: int, stop: int) -> FrameLabels:
        """Frames ``[start, stop)``, padded with KEEP past the end."""
        n = stop - start
        out = FrameLabels(
            np.full(n, int(vocab.ActionType.KEEP), dtype=np.int64),
            np.zeros(n, dtype=np.int64),
            np.full(n, int(vocab.Amount.NEUTRAL), dtype=np.int64),
            np.zeros(n, dtype=np.float32),
        )
        m = max(0, min(stop, self.n_frames) - start)
        for dst, src in zip(
            (out.type_idx, out.size_idx, out.amount_idx, out.position),
            (self.type_idx, self.size_idx, self.amount_idx, self.position),
            strict=True,
        ):
            dst[:m] = src[start : start + m]
        return out


def frame_labels(plan: EditPlan, n_frames: int, hop_s: float) -> FrameLabels:
    """Per-frame labels of a plan's output timeline; frame ``t`` is centred at ``t * hop_s`` seconds.

    A segment's label is the plan action that made it (matched on its
    ``beat`` and ``action`` type; size BEAT and the first valid amount when
    no action matches, e.g. hand-written plans).
    """
    out = FrameLabels(
        np.full(n_frames, int(vocab.ActionType.KEEP), dtype=np.int64),
        np.zeros(n_frames, dtype=np.int64),
        np.full(n_frames, int(vocab.Amount.NEUTRAL), dtype=np.int64),
        np.zeros(n_frames, dtype=np.float32),
    )
    by_key = {(int(a.beat), a.type): a for a in plan.actions}
    times = np.arange(n_frames, dtype=np.float64) * hop_s
    for seg in plan.segments:
        a0, length = float(seg.dst_start_s), float(seg.length_s)
        i0, i1 = np.searchsorted(times, [a0, a0 + length], side="left")
        if i1 <= i0:
            continue
        t = vocab.type_index(seg.action)
        act = by_key.get((int(seg.beat), seg.action))
        if act is not None:
            s, a = vocab.size_index(act.size), vocab.amount_index(act.amount)
        else:
            s = int(vocab.Size.BEAT)
            a = int(np.flatnonzero(vocab.AMOUNT_MASK[t])[0])
        out.type_idx[i0:i1], out.size_idx[i0:i1], out.amount_idx[i0:i1] = t, s, a
        out.position[i0:i1] = ((times[i0:i1] - a0) / max(length, 1e-9)).clip(0.0, 1.0)
    return out


def label_tensors(labels: list[FrameLabels], device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Stack equal-length labels -> ``(types, sizes, amounts)`` int64 ``(B, T)`` and ``position`` float ``(B, T)``."""
    return (
        torch.from_numpy(np.stack([x.type_idx for x in labels])).to(device),
        torch.from_numpy(np.stack([x.size_idx for x in labels])).to(device),
        torch.from_numpy(np.stack([x.amount_idx for x in labels])).to(device),
        torch.from_numpy(np.stack([x.position for x in labels])).to(device),
    )


# --------------------------------------------------------------------------- spectral front end


class SpectralFrontEnd(nn.Module):
    """STFT, log-mel and mel-gain -> linear-gain mapping at one sample rate (no parameters).

    Buffers: ``window`` ``(n_fft,)``, ``mel`` ``(n_mels, n_bins)`` (Slaney,
    ``engine.spectrum.mel_basis``), ``mel_to_linear`` ``(n_bins, n_mels)``:
    the filterbank's transpose with each bin's row normalised to sum to 1
    (bins no band covers take the nearest band's gain).
    """

    window: Tensor  # (n_fft,) buffer
    mel: Tensor  # (n_mels, n_bins) buffer
    mel_to_linear: Tensor  # buffer

    def __init__(self, sample_rate: int, n_mels: int) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_fft, self.hop = frame_params(self.sample_rate)
        basis = mel_basis(self.sample_rate, self.n_fft, n_mels).astype(np.float64)
        weights = basis.T.copy()  # (n_bins, n_mels)
        sums = weights.sum(axis=1, keepdims=True)
        centres = np.argmax(basis, axis=1)  # peak bin of each band
        for b in np.flatnonzero(sums[:, 0] <= 0.0):
            weights[b, int(np.argmin(np.abs(centres - b)))] = 1.0
        weights /= weights.sum(axis=1, keepdims=True)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("mel", torch.from_numpy(basis.astype(np.float32)), persistent=False)
        self.register_buffer("mel_to_linear", torch.from_numpy(weights.astype(np.float32)), persistent=False)

    @property
    def hop_s(self) -> float:
        return self.hop / self.sample_rate

    def n_frames(self, n_samples: int) -> int:
        """Frames of a centred STFT of ``n_samples`` samples."""
        return 1 + n_samples // self.hop

    def stft(self, x: Tensor) -> Tensor:
        """``(B, n_samples)`` -> complex ``(B, n_bins, T)``."""
        return torch.stft(x.float(), self.n_fft, self.hop, window=self.window, center=True, return_complex=True)

    def istft(self, spec: Tensor, length: int) -> Tensor:
        """Complex ``(B, n_bins, T)`` -> ``(B, length)``."""
        return torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=length)

    def log_mel(self, magnitude: Tensor) -> Tensor:
        """``(B, n_bins, T)`` magnitude -> ``(B, T, n_mels)`` natural-log mel magnitude."""
        return log_mel(magnitude, self.mel)

    def linear_gain(self, gain_db: Tensor) -> Tensor:
        """Mel gains ``(B, T, n_mels)`` dB -> linear amplitude gains ``(B, n_bins, T)``."""
        lin_db = torch.matmul(gain_db.float(), self.mel_to_linear.T).transpose(1, 2)
        return torch.exp(lin_db * NEPER_PER_DB)

    def features(self, base: Tensor, raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Waveforms ``(B, n_samples)`` -> base STFT (complex ``(B, n_bins, T)``) and both log-mels ``(B, T, n_mels)``."""
        spec = self.stft(base)
        return spec, self.log_mel(magnitude(spec)), self.log_mel(magnitude(self.stft(raw)))

    def spec_hash(self) -> str:
        """sha256 of what this front end computes around a model: frames, window, mel bands, log and gain maps.

        An exported model records it; a front end that would feed it
        different log-mels or spread its gains differently has another hash.
        """
        h = hashlib.sha256()
        h.update(json.dumps({
            "sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop": self.hop, "window": "hann",
            "log_mel": [MAG_FLOOR, LOG_EPS], "neper_per_db": NEPER_PER_DB,
        }, sort_keys=True).encode())
        for buf in (self.mel, self.mel_to_linear):
            h.update(np.round(buf.numpy().astype(np.float64), 6).tobytes())
        return h.hexdigest()


# --------------------------------------------------------------------------- network


def sinusoidal_positions(n: int, dim: int, device: torch.device) -> Tensor:
    """``(n, dim)`` sinusoidal encoding of frame index (as in "Attention is all you need")."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    out = torch.zeros(n, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


def _blocks(dim: int, cfg: SupervisedConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        dim, cfg.n_heads, dim * cfg.ff_mult, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
    )
    return nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)


class EditEncoder(nn.Module):
    """Raw and base log-mel frames plus per-frame edit-label embeddings -> ``(B, T, encoder_dim)``."""

    def __init__(self, cfg: SupervisedConfig) -> None:
        super().__init__()
        d = cfg.encoder_dim
        self.in_proj = nn.Linear(2 * cfg.n_mels, d)
        self.type_emb = nn.Embedding(vocab.N_TYPES, d)
        self.size_emb = nn.Embedding(vocab.N_SIZES, d)
        self.amount_emb = nn.Embedding(vocab.N_AMOUNTS, d)
        self.position_proj = nn.Linear(1, d)
        self.blocks = _blocks(d, cfg)
        self.norm = nn.LayerNorm(d)

    def forward(
        self, base_log_mel: Tensor, raw_log_mel: Tensor, types: Tensor, sizes: Tensor, amounts: Tensor, position: Tensor
    ) -> Tensor:
        """Log-mels ``(B, T, n_mels)``, label indices ``(B, T)`` int64, ``position`` ``(B, T)`` -> ``(B, T, d)``."""
        x = torch.cat([base_log_mel, raw_log_mel], dim=-1)
        x = (x - LOG_MEL_CENTER) / LOG_MEL_SCALE
        h = self.in_proj(x) + self.type_emb(types) + self.size_emb(sizes) + self.amount_emb(amounts)
        h = h + self.position_proj(position[..., None].to(h.dtype))
        h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device).to(h.dtype)
        return self.norm(self.blocks(h))


class MelDecoder(nn.Module):
    """Encoded frames -> per-band gain in dB ``(B, T, n_mels)``, a residual on the base's log-mel.

    The output head starts at zero (gain 0 dB: the DSP render); its output
    is in units of ``GAIN_UNIT_DB`` and the gain is bounded softly to
    ``+-max_gain_db``. With ``cfg.raw_mix`` it also predicts, per frame and
    band, how much of the structural re-sequencing of the raw audio to put in
    place of the base (``(B, T, n_mels)`` in [0, 1], also starting at 0),
    returned after the gain: ``(B, T, 2 n_mels)``.
    """

    def __init__(self, cfg: SupervisedConfig) -> None:
        super().__init__()
        d = cfg.decoder_dim
        self.max_gain_db = float(cfg.max_gain_db)
        self.n_mels = cfg.n_mels
        self.raw_mix = bool(cfg.raw_mix)
        self.in_proj = nn.Linear(cfg.encoder_dim, d)
        self.mel_proj = nn.Linear(cfg.n_mels, d)
        self.blocks = _blocks(d, cfg)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.n_mels * (2 if self.raw_mix else 1))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, encoded: Tensor, base_log_mel: Tensor) -> Tensor:
        """``encoded`` ``(B, T, encoder_dim)``, ``base_log_mel`` ``(B, T, n_mels)`` -> gain dB ``(B, T, n_mels)``
        (``(B, T, 2 n_mels)``, gain then raw-mix weight, with ``raw_mix``)."""
        h = self.in_proj(encoded) + self.mel_proj((base_log_mel - LOG_MEL_CENTER) / LOG_MEL_SCALE)
        out = self.head(self.norm(self.blocks(h)))
        gain = self.max_gain_db * torch.tanh(out[..., : self.n_mels] * (GAIN_UNIT_DB / self.max_gain_db))
        if not self.raw_mix:
            return gain
        # clamp passes the gradient at its bounds, so the zero-initialised head still learns
        return torch.cat([gain, out[..., self.n_mels :].clamp(0.0, 1.0)], dim=-1)


class EditSoundModel(nn.Module):
    """EditEncoder + MelDecoder with the spectral front end of one sample rate, and the learned timing.

    ``forward`` is the network alone (log-mels and labels in, gain in dB
    out); ``features`` and ``masked`` are the waveform side around it.
    ``timing`` (``training.models.timing.TimingModel``, fitted by the
    trainer before the network, identity until then) retimes and levels the
    DSP render the network's input and output are made from.
    """

    def __init__(self, cfg: SupervisedConfig, sample_rate: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.timing = TimingModel()
        self.frontend = SpectralFrontEnd(sample_rate, cfg.n_mels)
        self.encoder = EditEncoder(cfg)
        self.decoder = MelDecoder(cfg)

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    def forward(
        self, base_log_mel: Tensor, raw_log_mel: Tensor, types: Tensor, sizes: Tensor, amounts: Tensor, position: Tensor
    ) -> Tensor:
        """Gain in dB ``(B, T, n_mels)`` (shapes as ``EditEncoder.forward``)."""
        encoded = self.encoder(base_log_mel, raw_log_mel, types, sizes, amounts, position)
        return self.decoder(encoded, base_log_mel)

    def features(self, base: Tensor, raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``SpectralFrontEnd.features`` of this model's front end."""
        return self.frontend.features(base, raw)

    def masked(
        self, base_spec: Tensor, gain_db: Tensor, length: int, raw_spec: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Apply the network's output to the base STFT: ``(output STFT (B, n_bins, T), waveform (B, length))``.

        ``gain_db`` is ``forward``'s output. With ``cfg.raw_mix`` its second
        half mixes in ``raw_spec`` (the STFT of the structural re-sequencing,
        ``(B, n_bins, T)``) per band before the gain: ``((1 - w) base + w raw) * gain``.
        """
        return apply_output(self.frontend, self.cfg, base_spec, gain_db, length, raw_spec)



def apply_output(
    frontend: SpectralFrontEnd, cfg: SupervisedConfig, base_spec: Tensor, out: Tensor, length: int,
    raw_spec: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``EditSoundModel.masked`` for any ``GainModel``: ``(output STFT (B, n_bins, T), waveform (B, length))``."""
    n_mels = cfg.n_mels
    spec = base_spec
    if cfg.raw_mix:
        if raw_spec is None:
            raise ValueError("a raw-mix model needs the raw STFT")
        w = torch.matmul(out[..., n_mels:].float(), frontend.mel_to_linear.T).transpose(1, 2)
        spec = base_spec + w * (raw_spec - base_spec)
    out_spec = spec * frontend.linear_gain(out[..., :n_mels])
    return out_spec, frontend.istft(out_spec, length)


def output_width(cfg: SupervisedConfig) -> int:
    """Channels of the network's output per frame: ``n_mels``, twice that with ``raw_mix``."""
    return cfg.n_mels * (2 if cfg.raw_mix else 1)


class GainModel(Protocol):
    """What the learned render reads of a model: ``EditSoundModel`` or its ONNX export
    (``export.learned.OnnxEditSound``).

    ``cfg`` (chunking: ``chunk_frames``, ``overlap_frames``), ``frontend``
    (the spectral front end of ``sample_rate``), ``timing`` (the learned
    timing and level applied to the DSP render first) and a call with the
    arguments of ``EditSoundModel.forward`` returning the gain in dB.
    """

    cfg: SupervisedConfig
    frontend: SpectralFrontEnd
    timing: TimingModel

    @property
    def sample_rate(self) -> int: ...

    def __call__(
        self, base_log_mel: Tensor, raw_log_mel: Tensor, types: Tensor, sizes: Tensor, amounts: Tensor, position: Tensor
    ) -> Tensor: ...
