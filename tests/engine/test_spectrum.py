"""The shared STFT matches librosa's framing and numbers."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from editorbot.engine.spectrum import Spectrum, compute_spectrum, mel_basis, onset_strength, stft_magnitude

SR = 22050


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    """6.3 s of a chirp, a few tone bursts and noise (not a whole number of hops long)."""
    rng = np.random.default_rng(7)
    t = np.arange(int(6.3 * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * (100 * t + 300 * t**2))
    for onset_s in (1.0, 2.5, 4.0):
        burst = (t >= onset_s) & (t < onset_s + 0.3)
        y[burst] += 0.5 * np.sin(2 * np.pi * 660 * t[burst]) * np.exp(-5 * (t[burst] - onset_s))
    y += 0.01 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def test_stft_magnitude_matches_librosa(signal: np.ndarray) -> None:
    ours = stft_magnitude(signal)
    theirs = np.abs(librosa.stft(signal, n_fft=2048, hop_length=512, window="hann", center=True, pad_mode="constant"))
    assert ours.shape == theirs.shape == (1025, 1 + len(signal) // 512)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * theirs.max())


def test_stft_handles_odd_lengths_and_batches(signal: np.ndarray) -> None:
    # more frames than one FFT batch, and lengths around the hop
    for n in (0, 1, 511, 512, 513, len(signal)):
        mag = stft_magnitude(signal[:n])
        assert mag.shape == (1025, 1 + n // 512)
        assert np.all(np.isfinite(mag))
    with pytest.raises(ValueError, match="mono"):
        stft_magnitude(np.zeros((2, 1000), dtype=np.float32))


def test_compute_spectrum_mel_db_matches_librosa(signal: np.ndarray) -> None:
    spec = compute_spectrum(signal, sr=SR)
    assert isinstance(spec, Spectrum)
    assert (spec.sr, spec.n_fft, spec.hop_length) == (SR, 2048, 512)
    assert spec.mel_db.shape == (128, spec.n_frames) and spec.mel_db.dtype == np.float32
    mel = librosa.feature.melspectrogram(y=signal, sr=SR, n_fft=2048, hop_length=512, n_mels=128)
    expected = librosa.power_to_db(mel, ref=1.0, top_db=80.0)
    np.testing.assert_allclose(spec.mel_db, expected, atol=0.05)
    assert spec.y is not None and spec.y.shape == signal.shape
    np.testing.assert_allclose(spec.frame_times()[:3], [0.0, 512 / SR, 1024 / SR])
    assert mel_basis(SR, 2048).shape == (128, 1025)


def test_onset_strength_matches_librosa_uncentred(signal: np.ndarray) -> None:
    spec = compute_spectrum(signal, sr=SR)
    ours = onset_strength(spec)
    theirs = librosa.onset.onset_strength(y=signal, sr=SR, n_fft=2048, hop_length=512, lag=1, center=False)
    assert ours.shape == theirs.shape == (spec.n_frames,)
    np.testing.assert_allclose(ours, theirs, atol=1e-3 * theirs.max())
    # the bursts' onsets are where the envelope peaks (within a frame)
    for onset_s in (2.5, 4.0):
        frame = round(onset_s * SR / 512)
        window = ours[frame - 4 : frame + 5]
        assert abs(int(np.argmax(window)) - 4) <= 1


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(22050, 2048, 128), (44100, 1024, 64), (16000, 512, 40)])
def test_mel_basis_matches_librosa(sr: int, n_fft: int, n_mels: int) -> None:
    ours = mel_basis(sr, n_fft, n_mels)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * theirs.max())
    assert np.array_equal(ours != 0, theirs != 0)  # the banded product relies on the exact support
