"""The one shared STFT of the analysis copy (DESIGN section 3).

Beat tracking and every spectral feature read from the same ``Spectrum``, so
a song is transformed once. Shapes follow librosa: ``(n_bins, n_frames)``.
Framing matches ``librosa.stft(center=True, window="hann")`` so the fast path
and ``engine.features.reference_features`` see the same frames.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft

ANALYSIS_SR = 22050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128

# The FFT is the largest single cost of analysis; pocketfft splits a batch of
# frames across threads, and two already give most of the gain.
FFT_WORKERS = max(1, min(4, os.cpu_count() or 1))
# Frames per FFT batch: ~4 MB of windowed float32 frames stays cache-friendly,
# where windowing the whole song at once streams ~100 MB through memory twice.
_FRAMES_PER_BLOCK = 512


@dataclass(frozen=True)
class Spectrum:
    """Magnitude STFT and mel spectrogram of a mono analysis signal.

    Attributes
    ----------
    magnitude : np.ndarray
        ``(1 + n_fft // 2, n_frames)`` float32 |STFT|.
    mel_db : np.ndarray
        ``(n_mels, n_frames)`` float32 power mel spectrogram in dB
        (ref 1.0, floor -80 dB below the peak, as ``librosa.power_to_db``).
    sr : int
        sample rate of the analysed signal (Hz).
    n_fft : int
        FFT size (samples).
    hop_length : int
        hop between frames (samples).
    y : np.ndarray | None
        ``(n_samples,)`` float32 analysed signal, kept (not copied) for the
        few time-domain features (zero-crossing rate, exact frame RMS);
        ``None`` when the spectrum was built from elsewhere.
    """

    magnitude: np.ndarray
    mel_db: np.ndarray
    sr: int
    n_fft: int
    hop_length: int
    y: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return self.magnitude.shape[1]

    def frame_times(self) -> np.ndarray:
        """``(n_frames,)`` centre time of each frame in seconds."""
        return np.arange(self.n_frames) * (self.hop_length / self.sr)


def hz_to_mel(frequencies_hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(frequencies_hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    with np.errstate(divide="ignore"):
        log_part = min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log_part, f / f_sp)


def mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    m = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_basis(sr: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` float32 Slaney mel filterbank, 0 Hz to ``sr / 2``.

    Numerically ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)``
    (triangles on the Slaney scale, area-normalised), written out in numpy:
    importing librosa's filters loads its numba-compiled utilities, about a
    second of start-up that a CLI run on a short file should not pay.
    """
    fft_hz = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    widths_hz = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths_hz[:-1, None]
    falling = ramps[2:] / widths_hz[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def _mel_row_blocks(sr: int, n_fft: int, n_mels: int) -> tuple[tuple[int, int, int, int], ...]:
    """``(first_row, stop_row, first_bin, stop_bin)`` blocks of 16 mel filters and the bins they touch.

    Each mel filter is non-zero over a short contiguous run of bins, so 16
    neighbouring filters cover a narrow band: multiplying each block by its
    band alone does ~1/7 of the dense product's work, with the same sums.
    """
    basis = mel_basis(sr, n_fft, n_mels)
    blocks = []
    for first in range(0, n_mels, 16):
        stop = min(first + 16, n_mels)
        nonzero = np.flatnonzero(np.any(basis[first:stop] != 0, axis=0))
        if len(nonzero) == 0:
            blocks.append((first, stop, 0, 0))
        else:
            blocks.append((first, stop, int(nonzero[0]), int(nonzero[-1]) + 1))
    return tuple(blocks)


def mel_power(power: np.ndarray, *, sr: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """Mel power ``mel_basis(sr, n_fft, n_mels) @ power``, computed band by band.

    Parameters
    ----------
    power : np.ndarray
        ``(1 + n_fft // 2, n_frames)`` power spectrogram (|STFT|^2).

    Returns
    -------
    np.ndarray
        ``(n_mels, n_frames)`` float32.
    """
    basis = mel_basis(sr, n_fft, n_mels)
    out = np.zeros((n_mels, power.shape[1]), dtype=np.float32)
    for first, stop, lo, hi in _mel_row_blocks(sr, n_fft, n_mels):
        if hi > lo:
            np.matmul(basis[first:stop, lo:hi], power[lo:hi], out=out[first:stop])
    return out


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """``(n_fft,)`` periodic Hann window, as ``scipy.signal.get_window("hann")``."""
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


def stft_magnitude(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """|STFT| of a mono signal, centred frames, Hann window, zero padding.

    Parameters
    ----------
    y : np.ndarray
        ``(n_samples,)`` float signal.
    n_fft : int
        FFT size (samples).
    hop_length : int
        hop between frames (samples).

    Returns
    -------
    np.ndarray
        ``(1 + n_fft // 2, n_frames)`` float32 magnitude with
        ``n_frames = 1 + n_samples // hop_length``. The array is a transposed
        view of a C-ordered ``(n_frames, n_bins)`` buffer, so each frame's bins
        are contiguous (fast per-frame sorts and reductions along axis 0).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"stft_magnitude expects a mono (n_samples,) signal, got shape {y.shape}")
    pad = n_fft // 2
    padded = np.pad(y, (pad, pad), mode="constant")
    n_frames = 1 + (len(padded) - n_fft) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    window = _hann(n_fft)
    out = np.empty((n_frames, n_fft // 2 + 1), dtype=np.float32)
    for start in range(0, n_frames, _FRAMES_PER_BLOCK):
        stop = min(start + _FRAMES_PER_BLOCK, n_frames)
        # float32 in -> complex64 out: half the memory traffic of numpy's float64 FFT
        spec = scipy.fft.rfft(frames[start:stop] * window, axis=1, workers=FFT_WORKERS)
        np.abs(spec, out=out[start:stop])
    return out.T


def compute_spectrum(
    y: np.ndarray, *, sr: int = ANALYSIS_SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH
) -> Spectrum:
    """STFT + mel of a mono float signal ``y`` of shape ``(n_samples,)`` at ``sr`` Hz."""
    y = np.asarray(y, dtype=np.float32)
    magnitude = stft_magnitude(y, n_fft=n_fft, hop_length=hop_length)
    mel = mel_power(magnitude * magnitude, sr=sr, n_fft=n_fft)
    mel_db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    mel_db = np.maximum(mel_db, mel_db.max(initial=-100.0) - 80.0).astype(np.float32, copy=False)
    return Spectrum(magnitude=magnitude, mel_db=mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length, y=y)


def onset_strength(spec: Spectrum, *, lag: int = 1) -> np.ndarray:
    """``(n_frames,)`` spectral-flux onset envelope, as ``librosa.onset.onset_strength``.

    Mean over mel bands of the positive first difference of ``mel_db``; the
    first ``lag`` frames are zero so frame ``t`` stays aligned with time ``t``
    (librosa's ``center=False``; its default delays the envelope by a further
    ``n_fft // (2 * hop_length)`` frames).
    """
    flux = np.maximum(0.0, spec.mel_db[:, lag:] - spec.mel_db[:, :-lag])
    env = np.zeros(spec.n_frames, dtype=np.float32)
    env[lag:] = flux.mean(axis=0)
    return env
