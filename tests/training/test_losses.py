"""training.losses: multi-scale STFT, log-mel L1 and edit consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from editorbot.engine.spectrum import mel_basis, mel_power, stft_magnitude
from editorbot.training.losses import (
    LOG_EPS,
    MSSTFT_FFT_SIZES,
    NEPER_PER_DB,
    edit_consistency,
    l1_log_mel,
    log_mel,
    multiscale_stft,
)

torch.set_num_threads(1)


def noise(n: int = 22050, seed: int = 0, batch: int = 2) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(0.0, 0.3, (batch, n)).astype(np.float32))


def test_msstft_is_zero_for_equal_signals_and_grows_with_difference() -> None:
    x = noise()
    assert float(multiscale_stft(x, x)) == pytest.approx(0.0, abs=1e-6)
    small = float(multiscale_stft(x * 10 ** (1 / 20), x))  # +1 dB
    large = float(multiscale_stft(x * 10 ** (6 / 20), x))  # +6 dB
    assert 0.0 < small < large


def test_msstft_value_for_a_pure_gain() -> None:
    """Doubling a loud signal: spectral convergence 1 and log-magnitude ln 2 at every scale."""
    x = noise()
    assert float(multiscale_stft(2.0 * x, x)) == pytest.approx(1.0 + math.log(2.0), rel=1e-3)
    assert MSSTFT_FFT_SIZES == (512, 1024, 2048)


def test_msstft_sees_spectral_shape_not_just_level() -> None:
    """A low-passed copy with the same energy is far from the original."""
    x = noise(batch=1)
    spec = torch.fft.rfft(x)
    spec[:, spec.shape[1] // 8 :] = 0
    low = torch.fft.irfft(spec, n=x.shape[1])
    low = low * (x.norm() / low.norm())
    assert float(multiscale_stft(low, x)) > 1.0


def test_msstft_refuses_mismatched_shapes_and_takes_1d() -> None:
    with pytest.raises(ValueError):
        multiscale_stft(torch.zeros(2, 100), torch.zeros(2, 101))
    x = noise(batch=1)
    assert float(multiscale_stft(x[0], 0.5 * x[0])) == pytest.approx(float(multiscale_stft(x, 0.5 * x)))


def test_msstft_has_gradients() -> None:
    x = noise(batch=1)
    p = (0.5 * x).requires_grad_(True)
    multiscale_stft(p, x).backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_log_mel_matches_engine_mel_power() -> None:
    y = noise(batch=1)[0].numpy()
    mag = stft_magnitude(y, n_fft=2048, hop_length=512)
    want = np.log(np.sqrt(mel_power(mag * mag, sr=22050, n_fft=2048)) + LOG_EPS).T
    got = log_mel(torch.from_numpy(np.ascontiguousarray(mag))[None], torch.from_numpy(mel_basis(22050, 2048)))[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


def test_l1_log_mel_counts_only_masked_frames() -> None:
    a = torch.zeros(1, 4, 3)
    b = torch.zeros(1, 4, 3)
    b[0, 2] = 2.0
    assert float(l1_log_mel(a, b)) == pytest.approx(0.5)
    mask = torch.tensor([[True, True, False, True]])
    assert float(l1_log_mel(a, b, mask)) == pytest.approx(0.0)
    mask = torch.tensor([[False, False, True, False]])
    assert float(l1_log_mel(a, b, mask)) == pytest.approx(2.0)


def test_edit_consistency_is_mean_abs_gain_over_keep_frames_in_nepers() -> None:
    gain = torch.zeros(2, 5, 4)
    gain[0, 1] = 6.0
    gain[1, 3] = -20.0
    keep = torch.zeros(2, 5, dtype=torch.bool)
    assert float(edit_consistency(gain, keep)) == 0.0  # nothing to hold still
    keep[0, 1] = keep[0, 2] = True
    assert float(edit_consistency(gain, keep)) == pytest.approx(3.0 * NEPER_PER_DB)
    g = gain.clone().requires_grad_(True)
    edit_consistency(g, keep).backward()
    assert g.grad[1].abs().sum() == 0  # edited frames are free
    assert g.grad[0, 1].abs().sum() > 0
