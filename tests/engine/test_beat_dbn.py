"""The learned tracker's parts: the HMM beat decoder on made-up activations, BeatNet's front end and weight reader."""

from __future__ import annotations

import numpy as np
import pytest

from editorbot.engine import beat_activation, beat_dbn

FPS = 50.0


def pulse_activation(
    period_frames: float, n_frames: int, *, seed: int = 0, jitter: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy beat activation with peaks every ``period_frames``; returns (activation, true beat frames).

    Each peak spans a few frames, as a network's does (a one-frame spike
    leaves a slow pulse and its double equally likely under the model).
    """
    rng = np.random.default_rng(seed)
    beats = np.arange(5.0, n_frames - 1, period_frames)
    beats = np.round(beats + rng.normal(0.0, jitter, len(beats))).astype(int)
    act = rng.uniform(0.0, 0.08, n_frames)
    height = rng.uniform(0.5, 0.9, len(beats))
    for offset, scale in ((-2, 0.2), (-1, 0.6), (1, 0.6), (2, 0.2)):
        idx = np.clip(beats + offset, 0, n_frames - 1)
        act[idx] = np.maximum(act[idx], scale * height)
    act[beats] = height
    return act, beats


@pytest.mark.parametrize("bpm", [62.0, 90.0, 120.0, 150.0, 200.0])
def test_decoder_finds_every_beat_of_a_steady_pulse(bpm: float) -> None:
    act, truth = pulse_activation(60.0 * FPS / bpm, 1500)
    found = beat_dbn.decode_beats(act, FPS)
    assert len(found) == len(truth)
    assert np.max(np.abs(found - truth)) <= 1


def test_decoder_follows_a_tempo_change_and_skips_a_decoy() -> None:
    slow, t1 = pulse_activation(30.0, 900, seed=1)
    fast, t2 = pulse_activation(24.0, 900, seed=2)
    act = np.concatenate([slow, fast])
    truth = np.concatenate([t1, t2 + 900])
    act[t1[3] + 15] = 0.6  # one loud off-beat: a single onset must not move the pulse
    found = beat_dbn.decode_beats(act, FPS)
    matched = np.mean([np.min(np.abs(found - t)) <= 1 for t in truth])
    assert matched >= 0.97
    assert not np.any(np.abs(found - (t1[3] + 15)) <= 1)


def test_decoder_quiet_input_gives_no_beats() -> None:
    assert len(beat_dbn.decode_beats(np.zeros(500), FPS)) == 0
    assert len(beat_dbn.decode_beats(np.full(500, 0.01), FPS)) == 0


def test_front_end_shapes() -> None:
    fb = beat_activation._filterbank()
    assert fb.shape == (705, 136)
    np.testing.assert_allclose(fb.sum(axis=0), 1.0, rtol=1e-5)
    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1
    feats = beat_activation.features(y)
    assert feats.shape == (50, 272)
    assert np.all(feats[:, 136:] >= 0.0) and np.all(feats[0, 136:] == 0.0)


def test_the_bundled_weights_are_plain_arrays_of_beatnets_shapes() -> None:
    """The three networks come with editorbot as pickle-free .npz files (models/beatnet)."""
    for model in beat_activation.ENSEMBLE:
        path = beat_activation.weights_path(model)
        with np.load(path, allow_pickle=False) as npz:
            assert all(npz[name].dtype == np.float32 for name in npz.files)
        weights = beat_activation.load_weights(model)
        assert weights["lstm.weight_hh_l0"].shape == (600, 150) and weights["linear.weight"].shape == (3, 150)
    assert (path.parent / "NOTICE.md").exists() and (path.parent / "LICENSE").exists()


def test_network_marks_the_clicks_of_a_click_track() -> None:
    sr, bpm = 22050, 120.0
    y = np.zeros(12 * sr, dtype=np.float32)
    click = (np.sin(2 * np.pi * 1500 * np.arange(400) / sr) * np.exp(-np.arange(400) / 60.0)).astype(np.float32)
    times = np.arange(0.5, 11.5, 60.0 / bpm)
    for t in times:
        i = int(t * sr)
        y[i : i + len(click)] += click
    act = beat_activation.activations(y)
    beats = beat_dbn.decode_beats(act.sum(axis=1), beat_activation.FPS) / beat_activation.FPS
    late = times[times > 3.0]
    assert np.mean([np.min(np.abs(beats - t)) <= 0.07 for t in late]) >= 0.9


def test_the_default_activation_is_the_mean_of_three_different_networks() -> None:
    y = np.random.default_rng(5).standard_normal(3 * 22050).astype(np.float32) * 0.1
    singles = [beat_activation.activations(y, m) for m in beat_activation.ENSEMBLE]
    assert len(beat_activation.ENSEMBLE) == 3
    assert min(np.abs(a - b).max() for a, b in zip(singles, singles[1:])) > 1e-3  # not one network thrice
    np.testing.assert_allclose(beat_activation.activations(y), np.mean(singles, axis=0), atol=1e-6)


def test_vector_sigmoid_matches_float64_including_saturation() -> None:
    x = np.concatenate([np.linspace(-120.0, 120.0, 20001), [0.0, -1e-30, 1e-30]]).astype(np.float32)
    for scale in (1.0, 2.0):
        out = np.empty_like(x)
        pow2 = np.empty_like(x)
        beat_activation._sigmoid(x, np.full_like(x, scale), out, pow2, pow2.view(np.int32))
        exact = 1.0 / (1.0 + np.exp(-scale * x.astype(np.float64)))
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out, exact, atol=2e-7, rtol=1e-6)


def _network_float64(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """BeatNet's CRNN written out plainly in float64 (torch's LSTM equations), the reference for ``network``."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    kernel, n_t = w["conv1.weight"][:, 0], len(x)
    conv = (
        np.stack([[np.convolve(row, k[::-1], "valid") for k in kernel] for row in x]) + w["conv1.bias"][None, :, None]
    )
    n_pool = conv.shape[2] // 2
    pooled = np.maximum(np.maximum(conv[:, :, 0 : 2 * n_pool : 2], conv[:, :, 1 : 2 * n_pool : 2]), 0.0)
    h = pooled.reshape(n_t, -1) @ w["linear0.weight"].T + w["linear0.bias"]

    def sigmoid(v: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-v))

    for layer in (0, 1):
        gates_in = h @ w[f"lstm.weight_ih_l{layer}"].T + w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
        hidden = w[f"lstm.weight_hh_l{layer}"].shape[1]
        state, cell, out = np.zeros(hidden), np.zeros(hidden), np.empty((n_t, hidden))
        for t in range(n_t):
            i, f, g, o = np.split(gates_in[t] + w[f"lstm.weight_hh_l{layer}"] @ state, 4)
            cell = sigmoid(f) * cell + sigmoid(i) * np.tanh(g)
            state = sigmoid(o) * np.tanh(cell)
            out[t] = state
        h = out
    logits = h @ w["linear.weight"].T + w["linear.bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_network_equals_a_plain_float64_crnn() -> None:
    """The compiled float32 network (vector sigmoid, blocked recurrent product) against the equations, BeatNet's shapes."""
    rng = np.random.default_rng(3)
    shapes = {
        "conv1.weight": (2, 1, 10), "conv1.bias": (2,), "linear0.weight": (150, 262), "linear0.bias": (150,),
        "linear.weight": (3, 150), "linear.bias": (3,),
    }  # fmt: skip
    for layer in (0, 1):
        shapes |= {
            f"lstm.weight_ih_l{layer}": (600, 150), f"lstm.weight_hh_l{layer}": (600, 150),
            f"lstm.bias_ih_l{layer}": (600,), f"lstm.bias_hh_l{layer}": (600,),
        }  # fmt: skip
    # Large enough weights that gates saturate and the cells carry state for many frames.
    weights = {
        k: (rng.standard_normal(s) * (0.5 if "conv" in k else 0.15)).astype(np.float32) for k, s in shapes.items()
    }
    feats = np.abs(rng.standard_normal((400, 272))).astype(np.float32)
    got = beat_activation.network(feats[None], weights)[0]
    exact = _network_float64(feats, weights)
    assert got.dtype == np.float32 and got.shape == (400, 3)
    assert exact[:, 0].std() > 0.05  # the network's output moves: a real test of the recurrence
    np.testing.assert_allclose(got, exact, atol=1e-5)


def _alternating_pulse(period: float, n_frames: int, strong: float, weak: float) -> tuple[np.ndarray, np.ndarray]:
    """An activation with a peak every ``period`` frames, every other one ``weak``; returns (activation, beat frames)."""
    beats = np.round(np.arange(5.0, n_frames - 3, period)).astype(int)
    act = np.full(n_frames, 0.02)
    heights = np.where(np.arange(len(beats)) % 2 == 0, strong, weak)
    for offset, scale in ((-1, 0.5), (1, 0.7), (2, 0.3)):
        act[beats + offset] = np.maximum(act[beats + offset], scale * heights)
    act[beats] = heights
    return act, beats


def test_faster_level_doubles_a_pulse_read_at_half_tempo() -> None:
    act, beats = _alternating_pulse(21.0, 1500, 0.9, 0.6)  # 143 BPM at 50 frames/s
    faster = beat_dbn.faster_level(act, beats[::2], FPS)
    assert faster is not None
    assert len(faster) >= len(beats) - 2
    assert np.mean([np.min(np.abs(faster - b)) <= 1 for b in beats]) >= 0.97


def test_faster_level_keeps_the_tempo_without_halfway_peaks_or_confident_beats() -> None:
    act, beats = _alternating_pulse(21.0, 1500, 0.9, 0.15)  # halfway peaks too weak
    assert beat_dbn.faster_level(act, beats[::2], FPS) is None
    act, beats = _alternating_pulse(21.0, 1500, 0.6, 0.6)  # beats not confident enough
    assert beat_dbn.faster_level(act, beats[::2], FPS) is None
    act, beats = _alternating_pulse(14.0, 1500, 0.9, 0.9)  # 214 BPM: its double is out of range
    assert beat_dbn.faster_level(act, beats, FPS) is None


def test_networks_are_settled_before_the_song_starts() -> None:
    """A silent second opens the song: without the lead-in the networks answered it with 0.15-0.35 of beat."""
    y = np.zeros(4 * 22050, dtype=np.float32)
    y[22050:] = np.random.default_rng(2).standard_normal(3 * 22050).astype(np.float32) * 0.05
    act = beat_activation.activations(y).sum(axis=1)
    assert act[: int(0.9 * beat_activation.FPS)].max() < beat_dbn.THRESHOLD


def test_front_end_equals_the_dense_filterbank_product() -> None:
    """The banded filter sums and the blocks give what one dense product over every frame gives."""
    y = np.random.default_rng(4).standard_normal(3 * 22050 + 123).astype(np.float32) * 0.3
    n = -(-len(y) // beat_activation.HOP)
    padded = np.zeros(beat_activation.FRAME // 2 + n * beat_activation.HOP + beat_activation.FRAME, dtype=np.float64)
    padded[beat_activation.FRAME // 2 : beat_activation.FRAME // 2 + len(y)] = y
    frames = np.stack(
        [padded[i * beat_activation.HOP : i * beat_activation.HOP + beat_activation.FRAME] for i in range(n)]
    )
    mag = np.abs(np.fft.rfft(frames * np.hanning(beat_activation.FRAME), axis=1)[:, : beat_activation.FRAME >> 1])
    spec = np.log10(1.0 + mag @ beat_activation._filterbank().astype(np.float64))
    diff = np.vstack([np.zeros((1, spec.shape[1])), np.maximum(np.diff(spec, axis=0), 0.0)])
    np.testing.assert_allclose(beat_activation.features(y), np.hstack([spec, diff]), atol=2e-6)


def test_the_learned_grid_reads_tempo_finer_than_its_frames() -> None:
    """At 50 frames/s one 140-BPM beat is 21.4 frames: a single interval reads 142.9 or 136.4 BPM."""
    from editorbot.engine.grid import beat_grid
    from editorbot.engine.spectrum import compute_spectrum

    sr, bpm = 22050, 140.0
    y = np.zeros(20 * sr, dtype=np.float32)
    click = (np.sin(2 * np.pi * 1500 * np.arange(400) / sr) * np.exp(-np.arange(400) / 60.0)).astype(np.float32)
    for t in np.arange(0.5, 19.5, 60.0 / bpm):
        y[int(t * sr) : int(t * sr) + len(click)] += click
    grid = beat_grid(compute_spectrum(y, sr=sr), tracker="learned")
    assert abs(grid.tempo_bpm / bpm - 1.0) < 0.005, grid.tempo_bpm


def test_the_learned_grid_puts_no_beat_in_the_songs_last_half_beat() -> None:
    """A beat 30 ms before the end would span a 30-ms sliver an edit could keep alone."""
    from editorbot.engine.grid import beat_grid
    from editorbot.engine.spectrum import compute_spectrum

    sr, bpm = 22050, 120.0
    click = (np.sin(2 * np.pi * 1500 * np.arange(400) / sr) * np.exp(-np.arange(400) / 60.0)).astype(np.float32)
    times = np.arange(0.5, 12.0, 60.0 / bpm)
    y = np.zeros(int((times[-1] + 0.03) * sr), dtype=np.float32)
    for t in times:
        seg = y[int(t * sr) : int(t * sr) + len(click)]
        seg += click[: len(seg)]
    grid = beat_grid(compute_spectrum(y, sr=sr), tracker="learned")
    assert len(y) / sr - grid.beat_times[-1] >= 0.25, grid.beat_times[-3:]
    assert abs(grid.beat_times[-1] - times[-2]) < 0.07
