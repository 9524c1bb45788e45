"""engine.descriptors: each frame-level descriptor against the librosa function it replaces."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from editorbot.engine import descriptors as D
from tests.engine.test_features import SR, make_song


@pytest.mark.parametrize("n_fft", [2048, 2000])  # whole hops (block sums) and not (cumulative sums)
def test_time_domain_rms_and_zcr_match_librosa(n_fft: int) -> None:
    y, _ = make_song(6, seconds=3.0)
    y[SR : SR + 3000] = 0.0  # a stretch of exact zeros
    n_frames = 1 + len(y) // 512
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=512)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=512)[0]
    np.testing.assert_allclose(D.frame_rms_exact(y, n_frames, n_fft, 512), rms, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(D.frame_zcr_exact(y, n_frames, n_fft, 512), zcr, rtol=0, atol=1e-12)


@pytest.mark.parametrize("tuning", [0.0, 0.23, -0.41])
def test_chroma_filters_match_librosa(tuning: float) -> None:
    ours = D.chroma_filters(SR, 2048, tuning)
    theirs = librosa.filters.chroma(sr=SR, n_fft=2048, tuning=tuning, n_chroma=12)
    assert ours.shape == theirs.shape == (12, 1025)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_pitch_tuning_matches_librosa() -> None:
    rng = np.random.default_rng(3)
    freqs = 440.0 * 2.0 ** ((rng.integers(-24, 24, 500) + 0.17 + 0.03 * rng.standard_normal(500)) / 12.0)
    assert D.pitch_tuning(freqs) == pytest.approx(librosa.pitch_tuning(freqs), abs=1e-12)
    assert D.pitch_tuning(np.zeros(3)) == 0.0


@pytest.mark.parametrize("n_frames", [40, 9, 7, 2])
def test_mfcc_delta_matches_librosa(n_frames: int) -> None:
    mfcc = np.random.default_rng(n_frames).standard_normal((13, n_frames)).astype(np.float32)
    ours = D.mfcc_delta(mfcc)
    width = D.delta_width(n_frames)
    expected = librosa.feature.delta(mfcc, width=width) if width >= 3 else np.zeros_like(mfcc)
    assert ours.shape == mfcc.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
