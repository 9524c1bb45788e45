"""The onset tracker's beat grid on generated songs with known beats (tests/drumkit.py).

Its octave cues were tuned on these songs, so they test it by name
(``tracker="onset"``); the default learned tracker's checks on synthetic
songs are in tests/training/test_synth.py and tests/engine/test_beat_dbn.py.

Scores follow mir_eval: beat F-measure with a 70 ms window (each reference
beat matched to at most one estimate), tempo within 2% (so an octave error
fails), downbeat accuracy = share of reference bar starts with an estimated
downbeat within 70 ms.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from editorbot.engine import grid as grid_mod
from editorbot.engine.grid import Grid, band_onsets, beat_grid, estimate_tempo, track_beats
from editorbot.engine.grid_scores import beat_f_measure
from editorbot.engine.metre import find_downbeats, phrase_starts
from editorbot.engine.spectrum import compute_spectrum
from tests.drumkit import PATTERNS, chord_song, drum_song

SR = 22050
WINDOW_S = 0.07
SWEEP_BPM = (70, 84, 96, 110, 128, 140, 160, 174, 180)


def downbeat_accuracy(ref_beats: np.ndarray, ref_downbeats: np.ndarray, grid: Grid) -> float:
    """Share of reference bar starts with an estimated downbeat within 70 ms."""
    est = grid.beat_times[grid.downbeats]
    ref = ref_beats[ref_downbeats]
    if len(ref) == 0:
        return 1.0
    if len(est) == 0:
        return 0.0
    return float(np.mean([np.min(np.abs(est - t)) <= WINDOW_S for t in ref]))


def check_invariants(g: Grid) -> None:
    """Shapes, dtypes and orderings every Grid must have."""
    assert np.isfinite(g.tempo_bpm) and g.tempo_bpm > 0
    assert g.beat_times.dtype == np.float64 and g.beat_times.ndim == 1
    assert np.all(np.diff(g.beat_times) > 0)
    assert np.all(g.beat_times >= 0)
    for idx in (g.downbeats, g.phrase_starts):
        assert idx.dtype.kind == "i" and idx.ndim == 1
        assert np.all(np.diff(idx) > 0)
        assert np.all((idx >= 0) & (idx < max(g.n_beats, 1)))
    assert set(g.phrase_starts.tolist()) <= set(g.downbeats.tolist()) or g.n_beats == 0
    assert g.beats_per_bar in (3, 4)


def analyse(y: np.ndarray) -> Grid:
    g = beat_grid(compute_spectrum(y, sr=SR), tracker="onset")
    check_invariants(g)
    return g


# ---------------------------------------------------------------------------
# The metric itself, so a broken scorer cannot pass everything.


def test_f_measure_scorer() -> None:
    ref = np.arange(0.5, 10.0, 0.5)
    assert beat_f_measure(ref, ref + 0.03) == 1.0
    assert beat_f_measure(ref, ref + 0.25) == 0.0  # off-beat: no match
    assert beat_f_measure(ref, np.arange(0.5, 10.0, 0.25)) == pytest.approx(2 / 3, abs=0.02)  # double tempo
    assert beat_f_measure(ref, ref[::2]) == pytest.approx(2 / 3, abs=0.03)  # half tempo


# ---------------------------------------------------------------------------
# The BPM sweep: every pattern, accented downbeats (bass note + crash).


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_sweep_accented(pattern: str) -> None:
    rows = []
    for i, bpm in enumerate(SWEEP_BPM):
        y, ref_beats, ref_down = drum_song(bpm, seconds=20, pattern=pattern, seed=i, pickup_beats=i % 3)
        g = analyse(y)
        f = beat_f_measure(ref_beats, g.beat_times)
        tempo_err = g.tempo_bpm / bpm - 1.0
        down = downbeat_accuracy(ref_beats, ref_down, g)
        rows.append((bpm, g.tempo_bpm, f, down))
        assert abs(tempo_err) < 0.02, f"{pattern} {bpm}: tempo {g.tempo_bpm:.2f}"
        assert f >= 0.95, f"{pattern} {bpm}: F={f:.3f}"
        assert down >= 0.9, f"{pattern} {bpm}: downbeats {down:.2f}"
        assert g.beats_per_bar == 4
        # Phrases: every 16 beats from the first downbeat, on downbeats.
        assert g.phrase_starts[0] == g.downbeats[0]
        assert np.all(np.diff(g.phrase_starts) == 16)
        assert len(g.phrase_starts) == len(range(int(g.downbeats[0]), g.n_beats, 16))
    print(pattern, " ".join(f"{b}:{t:.1f}/F{f:.2f}/D{d:.2f}" for b, t, f, d in rows))


@pytest.mark.parametrize("pattern", ["four_on_floor", "backbeat"])
def test_sweep_drums_only_no_octave_error(pattern: str) -> None:
    """Without bass or crash: the kick/snare backbone alone sets the octave.

    (84 BPM four-on-the-floor read as 168 and 128 read as 64 are the classic
    failures.) Half-time and breakbeat patterns are left out here on purpose:
    with no bar accents, "half-time at 2x" and "breakbeat at x" are the same
    audio, so their tempo is decided by the bar accents tested above.
    """
    for i, bpm in enumerate(SWEEP_BPM):
        y, ref_beats, _ = drum_song(bpm, seconds=20, pattern=pattern, seed=10 + i, accent_downbeat=False)
        g = analyse(y)
        assert abs(g.tempo_bpm / bpm - 1.0) < 0.02, f"{pattern} {bpm}: tempo {g.tempo_bpm:.2f}"
        assert beat_f_measure(ref_beats, g.beat_times) >= 0.95


def test_chords_and_bass_without_drums() -> None:
    for bpm in (72, 100, 140):
        y, ref_beats, ref_down = chord_song(bpm, seconds=20)
        g = analyse(y)
        assert abs(g.tempo_bpm / bpm - 1.0) < 0.02, f"{bpm}: tempo {g.tempo_bpm:.2f}"
        assert beat_f_measure(ref_beats, g.beat_times) >= 0.95
        # Chord changes mark the bars.
        assert downbeat_accuracy(ref_beats, ref_down, g) >= 0.9


# ---------------------------------------------------------------------------
# Timing feel: swing and drift.


@pytest.mark.parametrize("swing", [0.4, 1.0])
def test_swing(swing: float) -> None:
    for pattern, bpm in (("backbeat", 96), ("breakbeat", 120), ("four_on_floor", 150)):
        y, ref_beats, ref_down = drum_song(bpm, seconds=20, pattern=pattern, swing=swing, seed=5)
        g = analyse(y)
        assert abs(g.tempo_bpm / bpm - 1.0) < 0.02, f"{pattern} {bpm} swing {swing}: {g.tempo_bpm:.2f}"
        assert beat_f_measure(ref_beats, g.beat_times) >= 0.95
        assert downbeat_accuracy(ref_beats, ref_down, g) >= 0.9


@pytest.mark.parametrize("drift", [0.04, -0.04])
def test_tempo_drift(drift: float) -> None:
    y, ref_beats, _ = drum_song(124, seconds=30, pattern="backbeat", drift=drift, seed=2)
    g = analyse(y)
    ref_tempo = 60.0 / np.polyfit(np.arange(len(ref_beats)), ref_beats, 1)[0]
    assert abs(g.tempo_bpm / ref_tempo - 1.0) < 0.02
    assert beat_f_measure(ref_beats, g.beat_times) >= 0.95


# ---------------------------------------------------------------------------
# Edges: pickups, silence, short clips, arbitrary input.


def test_pickup_beats_are_not_a_phrase() -> None:
    y, ref_beats, ref_down = drum_song(110, seconds=20, pattern="backbeat", pickup_beats=3, seed=1)
    g = analyse(y)
    assert ref_down[0] == 3
    first = int(np.argmin(np.abs(g.beat_times - ref_beats[ref_down[0]])))
    assert g.downbeats[0] == first
    assert g.phrase_starts[0] == first


def test_silence_padding() -> None:
    y, ref_beats, ref_down = drum_song(128, seconds=20, pattern="four_on_floor", seed=4)
    pad_s = 3.0
    pad = np.zeros(int(pad_s * SR), dtype=np.float32)
    g = analyse(np.concatenate([pad, y, pad]))
    assert abs(g.tempo_bpm / 128 - 1.0) < 0.02
    assert beat_f_measure(ref_beats + pad_s, g.beat_times) >= 0.95
    # No beats in the silence.
    assert g.beat_times[0] > pad_s - WINDOW_S
    assert g.beat_times[-1] < pad_s + 20.0 + WINDOW_S
    assert downbeat_accuracy(ref_beats + pad_s, ref_down, g) >= 0.9


@pytest.mark.parametrize("seconds", [3.0, 5.0])
def test_short_input(seconds: float) -> None:
    y, ref_beats, _ = drum_song(124, seconds=seconds, pattern="backbeat", seed=3)
    g = analyse(y)
    assert abs(g.tempo_bpm / 124 - 1.0) < 0.03
    assert beat_f_measure(ref_beats, g.beat_times) >= 0.9


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros(0, dtype=np.float32),
        np.zeros(1, dtype=np.float32),
        np.zeros(3 * SR, dtype=np.float32),
        np.full(2 * SR, 0.5, dtype=np.float32),
        np.random.default_rng(0).standard_normal(5 * SR).astype(np.float32),
        np.sin(2 * np.pi * 440 * np.arange(4 * SR) / SR).astype(np.float32),
        (np.arange(SR // 2) % 1000 == 0).astype(np.float32),
        np.full(SR, 1e-30, dtype=np.float32),
    ],
    ids=["empty", "one-sample", "silence", "dc", "noise", "sine", "half-second-clicks", "denormal"],
)
def test_any_finite_input_gives_a_valid_grid(signal: np.ndarray) -> None:
    g = analyse(signal)
    assert 30.0 <= g.tempo_bpm <= 300.0


def test_silence_gives_default_tempo_and_no_beats() -> None:
    g = analyse(np.zeros(5 * SR, dtype=np.float32))
    assert g.tempo_bpm == grid_mod.DEFAULT_TEMPO_BPM
    assert g.n_beats == 0 and len(g.downbeats) == 0 and len(g.phrase_starts) == 0


def _random_bursts(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts at random times (exponential gaps, mean 0.35 s): onsets with no pulse."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR), dtype=np.float32)
    n = int(0.05 * SR)
    burst_decay = np.exp(-np.arange(n) / (0.01 * SR))
    for t in np.cumsum(rng.exponential(0.35, int(seconds / 0.2))):
        i = int(t * SR)
        if i + n > len(y):
            break
        y[i : i + n] += (0.5 * rng.standard_normal(n) * burst_decay).astype(np.float32)
    return y


def test_confidence_is_high_on_a_pulse_and_low_without_one() -> None:
    for bpm in (80, 128, 174):
        y, _, _ = drum_song(bpm, seconds=20, pattern="backbeat", seed=1)
        assert analyse(y).confidence >= 0.8, bpm
    y, _, _ = chord_song(100, seconds=20)
    assert analyse(y).confidence >= 0.8
    # The tracker still lays beats over random onsets (many on them), but
    # the envelope does not repeat at their period.
    for seed in range(3):
        g = analyse(_random_bursts(20.0, seed))
        assert 0.0 <= g.confidence < 0.3, seed
    assert analyse(np.zeros(5 * SR, dtype=np.float32)).confidence == 0.0


# ---------------------------------------------------------------------------
# The array functions on their own.


def test_phrase_starts_function() -> None:
    # Pickup of 2 beats, then bars of 4.
    downbeats = np.arange(2, 70, 4)
    assert phrase_starts(70, downbeats).tolist() == [2, 18, 34, 50, 66]
    # A bar phase shift (a dropped beat at 30) keeps phrases on downbeats.
    shifted = np.concatenate([np.arange(2, 30, 4), np.arange(29, 70, 4)])
    starts = phrase_starts(70, shifted)
    assert set(starts.tolist()) <= set(shifted.tolist())
    assert starts.tolist()[:3] == [2, 18, 33]
    assert phrase_starts(0, np.zeros(0, dtype=np.int64)).tolist() == []
    assert phrase_starts(10, np.zeros(0, dtype=np.int64)).tolist() == [0]


def test_array_functions_on_an_envelope() -> None:
    y, ref_beats, ref_down = drum_song(100, seconds=15, pattern="backbeat", seed=7)
    spec = compute_spectrum(y, sr=SR)
    env = grid_mod.band_onsets(spec)["full"]
    tempo = estimate_tempo(env, sr=SR, hop_length=spec.hop_length)
    assert abs(tempo / 100 - 1.0) < 0.03
    beats = track_beats(env, tempo, sr=SR, hop_length=spec.hop_length)
    assert beat_f_measure(ref_beats, beats) >= 0.95
    down = find_downbeats(spec, ref_beats, envs=band_onsets(spec), beats_per_bar=4)
    assert down.tolist() == ref_down.tolist()


# ---------------------------------------------------------------------------
# Speed: the whole analysis of 4 minutes has about 1 s; the grid's share is 0.15 s.


def test_beat_grid_speed_four_minutes() -> None:
    y, ref_beats, _ = drum_song(123, seconds=240, pattern="breakbeat", seed=9)
    spec = compute_spectrum(y, sr=SR)
    beat_grid(spec, tracker="onset")  # first call pays imports and caches
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        g = beat_grid(spec, tracker="onset")
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"beat_grid on 240 s: best {best * 1000:.1f} ms of {[round(t * 1000, 1) for t in times]} ms")
    assert beat_f_measure(ref_beats, g.beat_times) >= 0.95
    # Generous: this machine is shared; the target (0.15 s on one core) is
    # checked by hand and reported, this only catches a gross regression.
    assert best < 1.0


def test_three_four_is_detected_and_four_four_is_not() -> None:
    for bpm in (90, 150):
        y, ref_beats, ref_down = chord_song(bpm, seconds=20, beats_per_bar=3)
        g = analyse(y)
        assert g.beats_per_bar == 3
        assert abs(g.tempo_bpm / bpm - 1.0) < 0.02
        assert downbeat_accuracy(ref_beats, ref_down, g) >= 0.9
        # Phrases stay on bar lines: 15 beats (5 bars) is the nearest to 16.
        assert set(np.diff(g.phrase_starts).tolist()) <= {15, 18}
    y, _, _ = chord_song(120, seconds=20, beats_per_bar=4)
    assert analyse(y).beats_per_bar == 4
