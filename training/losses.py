"""Losses of the supervised "sound of the edit" model (DESIGN sections 7 and 9).

Three named terms, weighted by ``training.config.SupervisedConfig``:

- ``l1_log_mel``: L1 between log-mel magnitudes (natural log) of the
  prediction and of the desired edit.
- ``multiscale_stft``: on the waveform, at FFT sizes 512, 1024 and 2048
  (hop a quarter of the size, Hann window): spectral convergence
  ``||S_t - S_p||_F / ||S_t||_F`` plus the mean absolute difference of log
  magnitudes, averaged over the sizes. The same function is the distance
  the benchmark and the tests report.
- ``edit_consistency``: frames labelled KEEP stay as the base has them: the
  mean absolute predicted gain (in nepers, natural-log amplitude) over those
  frames.

Shapes: waveforms ``(B, n_samples)``; spectrograms ``(B, n_bins, n_frames)``;
gains ``(B, n_frames, n_mels)``; frame masks ``(B, n_frames)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

#: FFT sizes of the multi-scale STFT loss.
MSSTFT_FFT_SIZES: tuple[int, ...] = (512, 1024, 2048)
#: Added to magnitudes before the log (about -100 dB re full scale).
LOG_EPS = 1e-5
#: dB -> nepers (natural log of amplitude).
NEPER_PER_DB = math.log(10.0) / 20.0
#: Added to |X|^2 under the square root so silence (exact zeros) has a finite gradient.
MAG_FLOOR = 1e-14

_WINDOWS: dict[tuple[int, torch.device], Tensor] = {}


def _window(n_fft: int, device: torch.device) -> Tensor:
    key = (n_fft, device)
    if key not in _WINDOWS:
        _WINDOWS[key] = torch.hann_window(n_fft, device=device)
    return _WINDOWS[key]


def magnitude(spec: Tensor) -> Tensor:
    """``|spec|`` of a complex tensor with a finite gradient at 0 (``sqrt(re^2 + im^2 + MAG_FLOOR)``)."""
    return torch.sqrt(spec.real.square() + spec.imag.square() + MAG_FLOOR)


def stft_magnitude(x: Tensor, n_fft: int, hop_length: int | None = None) -> Tensor:
    """|STFT| of ``x`` ``(B, n_samples)`` float -> ``(B, n_fft // 2 + 1, n_frames)`` (centred, Hann)."""
    hop = hop_length or n_fft // 4
    spec = torch.stft(x.float(), n_fft, hop, window=_window(n_fft, x.device), center=True, return_complex=True)
    return magnitude(spec)


def spectral_convergence(target_mag: Tensor, pred_mag: Tensor) -> Tensor:
    """``||T - P||_F / ||T||_F`` over everything but the batch, averaged over the batch; ``()``."""
    num = torch.linalg.vector_norm(target_mag - pred_mag, dim=(-2, -1))
    den = torch.linalg.vector_norm(target_mag, dim=(-2, -1)).clamp_min(1e-8)
    return (num / den).mean()


def log_magnitude_l1(target_mag: Tensor, pred_mag: Tensor) -> Tensor:
    """Mean ``|log(T + eps) - log(P + eps)|``; ``()``."""
    return (torch.log(target_mag + LOG_EPS) - torch.log(pred_mag + LOG_EPS)).abs().mean()


def multiscale_stft(pred: Tensor, target: Tensor, fft_sizes: Sequence[int] = MSSTFT_FFT_SIZES) -> Tensor:
    """Multi-scale STFT loss between waveforms ``(B, n_samples)`` (or ``(n_samples,)``); ``()``.

    Mean over ``fft_sizes`` of spectral convergence + log-magnitude L1.
    Zero only when the magnitudes agree at every scale.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if pred.dim() == 1:
        pred, target = pred[None], target[None]
    total = pred.new_zeros((), dtype=torch.float32)
    for n_fft in fft_sizes:
        p, t = stft_magnitude(pred, n_fft), stft_magnitude(target, n_fft)
        total = total + spectral_convergence(t, p) + log_magnitude_l1(t, p)
    return total / len(fft_sizes)


def log_mel(mag: Tensor, mel_basis: Tensor) -> Tensor:
    """Natural-log mel magnitude: ``log(sqrt(M @ |X|^2) + eps)``.

    ``mag`` ``(B, n_bins, T)``, ``mel_basis`` ``(n_mels, n_bins)``
    -> ``(B, T, n_mels)`` (frames first, as the model reads them).
    """
    power = torch.matmul(mel_basis, mag.float() ** 2)
    return torch.log(power.clamp_min(MAG_FLOOR).sqrt() + LOG_EPS).transpose(1, 2)


def l1_log_mel(pred_log_mel: Tensor, target_log_mel: Tensor, frame_mask: Tensor | None = None) -> Tensor:
    """L1 between log-mels ``(B, T, n_mels)``, over frames where ``frame_mask`` ``(B, T)`` is true; ``()``."""
    diff = (pred_log_mel - target_log_mel).abs()
    if frame_mask is None:
        return diff.mean()
    w = frame_mask.to(diff.dtype)[..., None].expand_as(diff)
    return (diff * w).sum() / w.sum().clamp_min(1.0)


def edit_consistency(gain_db: Tensor, keep_mask: Tensor) -> Tensor:
    """Mean ``|gain|`` in nepers over KEEP frames; ``gain_db`` ``(B, T, n_mels)``, ``keep_mask`` ``(B, T)``.

    Zero when no frame is KEEP (nothing to hold still).
    """
    w = keep_mask.to(gain_db.dtype)[..., None].expand_as(gain_db)
    return (gain_db.abs() * NEPER_PER_DB * w).sum() / w.sum().clamp_min(1.0)
