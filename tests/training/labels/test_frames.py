"""training.labels.frames: frame features that a gain or an EQ does not change, and offsets found on the samples."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter

from editorbot.training.labels.frames import (
    FRAME_HOP,
    FRAME_SR,
    frame_features,
    match_at,
    periodicity,
    refine_offset,
    similarity,
)


def _noise_song(seconds: float, seed: int) -> np.ndarray:
    """Band-limited noise bursts of changing colour: frames that differ from one another."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(int(seconds * FRAME_SR)).astype(np.float32)
    hop = FRAME_SR // 8
    for k in range(0, y.shape[0], hop):
        y[k : k + hop] = lfilter(*butter(2, 0.05 + 0.4 * rng.random()), y[k : k + hop])
    return 0.2 * y


def test_gain_and_eq_keep_the_frames_alike() -> None:
    """The same song turned down 6 dB and through a shelf matches itself frame for frame, not shifted frames."""
    y = _noise_song(4.0, 0)
    edit = lfilter(*butter(1, 0.3, btype="high"), 0.5 * y).astype(np.float32) + 0.5 * y
    s = similarity(frame_features(edit), frame_features(y, variants=True))
    diag = np.diag(s)[2:-2]
    assert float(np.median(diag)) > 0.9
    assert float(np.median(np.diag(s, k=8))) < 0.5


def test_silent_frames_match_only_silence() -> None:
    y = _noise_song(2.0, 1)
    y[FRAME_SR // 2 : FRAME_SR] = 0.0
    f = frame_features(y)
    assert f.silent[40:50].all() and not f.silent[:20].any()
    s = similarity(f, f)
    assert s[45, 46] == 1.0 and s[45, 10] == 0.0


def test_refine_offset_and_match_at_find_a_shifted_span() -> None:
    y = _noise_song(3.0, 2)
    shift = 173
    edit = np.concatenate([np.zeros(shift, np.float32), y])
    assert refine_offset(y, edit, 20000, 20000, 4000) == shift
    assert match_at(y, edit, 20000, 20000, 4000) > 0.99
    assert match_at(y, np.flip(edit).copy(), 20000, 20000, 4000) < 0.5


def _periodicity_by_definition(y: np.ndarray, lag: float, n_frames: int, half_window: int = 512, spread: int = 1) -> np.ndarray:
    """``periodicity`` summed window by window in float64: the definition the fast kernel must meet."""
    y = y.astype(np.float64)
    n = y.shape[0]
    best = np.zeros(n_frames)
    for lg in range(max(1, round(lag) - spread), round(lag) + spread + 1):
        for i in range(n_frames):
            a = min(max(i * FRAME_HOP - half_window, lg), n)
            b = max(min(max(i * FRAME_HOP + half_window, 0), n), a)
            num = y[a:b] @ y[a - lg : b - lg]
            den = np.sqrt((y[a:b] @ y[a:b]) * (y[a - lg : b - lg] @ y[a - lg : b - lg]))
            if den > 1e-8 * (b - a + 1):
                best[i] = max(best[i], num / den)
    return best


def test_periodicity_matches_its_definition_at_every_frame() -> None:
    """A slice repeated at a lag scores ~1 there and the sums agree with the direct ones, edge frames included."""
    y = _noise_song(3.0, 3)
    lag = 2205.4  # 0.1 s, not a whole number of samples
    y[FRAME_SR : 2 * FRAME_SR] = np.tile(y[FRAME_SR : FRAME_SR + 2205], 11)[:FRAME_SR]
    y[-3000:] = 0.0  # a silent tail: quiet windows give 0
    n_frames = y.shape[0] // FRAME_HOP + 2  # the last frames run past the signal
    got = periodicity(y, lag, n_frames)
    want = _periodicity_by_definition(y, lag, n_frames)
    assert got.shape == (n_frames,) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)
    inside = slice(FRAME_SR // FRAME_HOP + 9, 2 * FRAME_SR // FRAME_HOP - 2)
    assert float(got[inside].min()) > 0.99
    assert float(np.median(got[: FRAME_SR // FRAME_HOP - 2])) < 0.3
    assert got[-2:].max() == 0.0
