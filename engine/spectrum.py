"""The one shared STFT of the analysis copy (DESIGN section 3).

Beat tracking and every spectral feature read from the same ``Spectrum``, so
a song is transformed once. Shapes follow librosa: ``(n_bins, n_frames)``.
Framing matches ``librosa.stft(center=True, window="hann")`` so the fast path
and ``engine.features.reference_features`` see the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ANALYSIS_SR = 22050
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128


@dataclass(frozen=True)
class Spectrum:
    """Magnitude STFT and mel spectrogram of a mono analysis signal.

    Attributes:
        magnitude: ``(1 + n_fft // 2, n_frames)`` float32 |STFT|.
        mel_db: ``(n_mels, n_frames)`` float32 power mel spectrogram in dB
            (ref 1.0, floor -80 dB below the peak, as ``librosa.power_to_db``).
        sr: sample rate of the analysed signal (Hz).
        n_fft: FFT size (samples).
        hop_length: hop between frames (samples).
    """

    magnitude: np.ndarray
    mel_db: np.ndarray
    sr: int
    n_fft: int
    hop_length: int

    @property
    def n_frames(self) -> int:
        return self.magnitude.shape[1]

    def frame_times(self) -> np.ndarray:
        """``(n_frames,)`` centre time of each frame in seconds."""
        return np.arange(self.n_frames) * (self.hop_length / self.sr)


@lru_cache(maxsize=8)
def mel_basis(sr: int, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` Slaney mel filterbank (librosa's default)."""
    import librosa

    return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


def stft_magnitude(y: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """``(1 + n_fft // 2, n_frames)`` float32 |STFT| of ``y`` (centred, Hann, zero padding)."""
    y = np.asarray(y, dtype=np.float32)
    pad = n_fft // 2
    padded = np.pad(y, (pad, pad), mode="constant")
    n_frames = 1 + (len(padded) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, n_fft), strides=(padded.strides[0] * hop_length, padded.strides[0])
    )
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann, as scipy.signal.get_window
    spec = np.fft.rfft(frames * window, axis=1)
    return np.abs(spec).astype(np.float32).T


def compute_spectrum(
    y: np.ndarray, *, sr: int = ANALYSIS_SR, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH
) -> Spectrum:
    """STFT + mel of a mono float signal ``y`` of shape ``(n_samples,)`` at ``sr`` Hz."""
    magnitude = stft_magnitude(y, n_fft=n_fft, hop_length=hop_length)
    mel_power = mel_basis(sr, n_fft) @ (magnitude * magnitude)
    mel_db = 10.0 * np.log10(np.maximum(mel_power, 1e-10))
    mel_db = np.maximum(mel_db, mel_db.max(initial=-100.0) - 80.0).astype(np.float32)
    return Spectrum(magnitude=magnitude, mel_db=mel_db, sr=sr, n_fft=n_fft, hop_length=hop_length)


def onset_strength(spec: Spectrum, *, lag: int = 1) -> np.ndarray:
    """``(n_frames,)`` spectral-flux onset envelope, as ``librosa.onset.onset_strength``.

    Mean over mel bands of the positive first difference of ``mel_db``; the
    first ``lag`` frames are zero so frame ``t`` stays aligned with time ``t``.
    """
    flux = np.maximum(0.0, spec.mel_db[:, lag:] - spec.mel_db[:, :-lag])
    env = np.zeros(spec.n_frames, dtype=np.float32)
    env[lag:] = flux.mean(axis=0)
    return env
