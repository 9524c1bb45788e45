"""Per-beat features: names, shapes, fast path against the librosa reference, rhythm, deltas, robustness."""

from __future__ import annotations

import dataclasses
import re

import librosa
import numpy as np
import pytest

from editorbot.engine import descriptors as D
from editorbot.engine import features as F
from editorbot.engine.grid import Grid, beat_grid
from editorbot.engine.spectrum import compute_spectrum

SR = 22050


# --------------------------------------------------------------------------- test audio


def make_song(
    seed: int,
    *,
    seconds: float = 24.0,
    bpm: float = 120.0,
    root_midi: int = 45,
    detune_cents: float = 0.0,
    drift: float = 0.03,
) -> tuple[np.ndarray, Grid]:
    """A music-like mono song at 22,050 Hz and its true beat grid.

    Drums (kick, snare, hats), a saw bass and sine triads over a 4-chord loop,
    in 4-bar sections (chords only / + drums / full / break) so every column
    moves. The tempo drifts by ``drift`` (sinusoidally over 32 beats) so the
    tempo-deviation column varies too.

    Returns
    -------
    tuple[np.ndarray, Grid]
        ``(y, grid)``: ``(n_samples,)`` float32 peak 0.9, and its true ``Grid``.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    y = np.zeros(n)
    base_period = 60.0 / bpm
    periods = base_period * (1.0 + drift * np.sin(2 * np.pi * np.arange(4096) / 32.0))
    beat_times = np.concatenate([[0.0], np.cumsum(periods)])
    beat_times = beat_times[beat_times < seconds - 0.05]
    tune = 2.0 ** (detune_cents / 1200.0)
    progression = (0, 5, 7, 3) if seed % 2 else (0, 8, 3, 10)
    third = 4 if seed % 3 else 3

    def hz(midi: float) -> float:
        return 440.0 * 2.0 ** ((midi - 69) / 12.0) * tune

    for i, t0 in enumerate(beat_times):
        bar, beat_in_bar = divmod(i, 4)
        section = (bar // 4) % 4
        start = int(t0 * SR)
        period = beat_times[i + 1] - t0 if i + 1 < len(beat_times) else base_period
        stop = min(n, start + int(period * SR))
        t = np.arange(stop - start) / SR
        root = root_midi + 12 + progression[bar % 4]
        for interval in (0, third, 7):
            level = (0.15, 0.1, 0.2, 0.05)[section]
            y[start:stop] += (
                level
                * np.sin(2 * np.pi * hz(root + interval) * t + rng.uniform(0, 2 * np.pi))
                * (0.6 + 0.4 * np.exp(-2.0 * t))
            )
        if section >= 1:
            if beat_in_bar % 2 == 0:
                sweep_hz = 50.0 + 100.0 * np.exp(-30.0 * t)
                y[start:stop] += 0.8 * np.sin(2 * np.pi * np.cumsum(sweep_hz) / SR) * np.exp(-12.0 * t)
            else:
                y[start:stop] += 0.4 * rng.standard_normal(stop - start) * np.exp(-25.0 * t)
            for half in (0, 1):
                h0 = start + int(half * period * SR / 2)
                h1 = min(stop, h0 + 2000)
                if h1 > h0:
                    hat = np.diff(rng.standard_normal(h1 - h0), prepend=0.0)
                    y[h0:h1] += 0.08 * hat * np.exp(-60.0 * np.arange(h1 - h0) / SR)
        if section in (1, 2):
            phase = 2 * np.pi * hz(root_midi + progression[bar % 4] + (12 if beat_in_bar == 3 else 0)) * t
            saw = sum(np.sin(k * phase) / k for k in range(1, 8))
            y[start:stop] += 0.25 * saw * np.exp(-3.0 * t)
    y += 1e-4 * rng.standard_normal(n)
    y = (0.9 * y / np.abs(y).max()).astype(np.float32)
    n_beats = len(beat_times)
    grid = Grid(
        tempo_bpm=bpm,
        beat_times=beat_times,
        downbeats=np.arange(0, n_beats, 4),
        beats_per_bar=4,
        phrase_starts=np.arange(0, n_beats, 16),
    )
    return y, grid


SONGS = {
    "a_minor_120": dict(seed=1, bpm=120.0, root_midi=45),
    "f_major_97_detuned": dict(seed=2, bpm=97.0, root_midi=41, detune_cents=30.0, drift=0.05),
    "d_major_143": dict(seed=3, bpm=143.0, root_midi=50, drift=0.02),
}


@pytest.fixture(scope="module")
def computed() -> dict[str, dict[str, object]]:
    """Each song's audio, grid, fast and reference matrices (computed once per module)."""
    out: dict[str, dict[str, object]] = {}
    for name, kwargs in SONGS.items():
        y, grid = make_song(**kwargs)
        spec = compute_spectrum(y, sr=SR)
        out[name] = {
            "y": y,
            "grid": grid,
            "spec": spec,
            "fast": F.beat_features(spec, grid),
            "reference": F.reference_features(y, SR, grid),
        }
    return out


# --------------------------------------------------------------------------- names and config


def test_feature_names_count_order_and_uniqueness() -> None:
    names = F.feature_names()
    with_stems = F.feature_names(stems=True)
    assert len(names) == 109
    assert len(with_stems) == 121
    assert with_stems[:109] == names
    assert len(set(with_stems)) == 121
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in with_stems)
    # block order of DESIGN section 3
    assert names[:7] == ["onset_strength", "rms", "centroid", "zcr", "rolloff", "bandwidth", "flatness"]
    assert names[7:14] == [f"contrast_{k:02d}" for k in range(7)]
    assert names[14] == "mfcc_00" and names[17] == "mfcc_03" and names[26] == "mfcc_12"
    assert names[27] == "mfcc_delta_00" and names[39] == "mfcc_delta_12"
    assert names[40] == "chroma_c" and names[41] == "chroma_c_sharp" and names[51] == "chroma_b"
    assert names[52:57] == ["beat_phase_sin", "beat_phase_cos", "tempo_deviation", "beat_strength", "downbeat"]
    assert names[57:] == [f"delta_{n}" for n in names[:52]]
    assert "delta_rms" in names
    # stem columns name the separator and the stem; True means demucs' four
    assert with_stems[109:112] == [
        "stem_demucs_drums_rms",
        "stem_demucs_drums_centroid",
        "stem_demucs_drums_onset_strength",
    ]
    assert with_stems[-1] == "stem_demucs_other_onset_strength"
    builtin = F.stem_column_names("builtin", ("other", "drums"))
    assert builtin[0] == "stem_builtin_drums_rms" and len(builtin) == 6
    assert F.feature_names(stems=builtin)[109:] == list(builtin)
    with pytest.raises(ValueError):
        F.stem_column_names("builtin", ("guitar",))


def test_config_hash_is_stable_and_tracks_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    first = F.config_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert F.config_hash() == first
    for key in ("sr", "n_fft", "hop_length", "n_mels", "n_mfcc", "version"):
        assert key in F.FEATURE_CONFIG
    changed = dict(F.FEATURE_CONFIG, n_mfcc=20)
    monkeypatch.setattr(F, "FEATURE_CONFIG", changed)
    assert F.config_hash() != first


# --------------------------------------------------------------------------- fast path vs reference


def test_shapes_and_dtype(computed: dict[str, dict[str, object]]) -> None:
    for song in computed.values():
        n_beats = len(song["grid"].beat_times)
        assert song["fast"].shape == (n_beats, 109)
        assert song["fast"].dtype == np.float32
        assert song["reference"].shape == (n_beats, 109)
        assert song["reference"].dtype == np.float32


@pytest.mark.parametrize("song_name", list(SONGS))
def test_fast_path_matches_reference_per_column(computed: dict[str, dict[str, object]], song_name: str) -> None:
    fast = computed[song_name]["fast"].astype(np.float64)
    ref = computed[song_name]["reference"].astype(np.float64)
    names = F.feature_names()
    varying = 0
    for k, name in enumerate(names):
        a, b = fast[:, k], ref[:, k]
        if np.ptp(b) == 0.0:
            # constant by construction (e.g. the first delta row): must be equal, not just correlated
            assert np.array_equal(a, b), name
            continue
        varying += 1
        corr = np.corrcoef(a, b)[0, 1]
        assert corr >= 0.99, f"{song_name}: {name} correlation {corr:.4f}"
        # same units too, not just the same shape of curve
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 0.05 * scale + 1e-6, f"{song_name}: {name} values differ"
    # the songs are built so that nearly every column moves; a flat song would make this test vacuous
    assert varying >= 105


def test_rhythmic_columns_shared_exactly(computed: dict[str, dict[str, object]]) -> None:
    """The grid-only rhythm columns come from one function in both paths."""
    for song in computed.values():
        rhythm = slice(52, 57)
        grid_only = [0, 1, 2, 4]  # phase sin/cos, tempo deviation, downbeat flag
        np.testing.assert_array_equal(song["fast"][:, rhythm][:, grid_only], song["reference"][:, rhythm][:, grid_only])


def test_columns_vary_across_sections(computed: dict[str, dict[str, object]]) -> None:
    fast = computed["a_minor_120"]["fast"]
    names = F.feature_names()
    rms = fast[:, names.index("rms")]
    # 4-bar sections: chords only (beats 0-15) are quieter than the full band (beats 32-47)
    assert rms[32:48].mean() > 1.5 * rms[0:16].mean()


# --------------------------------------------------------------------------- deltas and rhythm


def test_deltas_are_first_differences_of_the_spectral_block(computed: dict[str, dict[str, object]]) -> None:
    for song in computed.values():
        for matrix in (song["fast"], song["reference"]):
            spectral = matrix[:, :52].astype(np.float64)
            deltas = matrix[:, 57:109]
            np.testing.assert_array_equal(deltas[0], np.zeros(52, dtype=np.float32))
            np.testing.assert_allclose(deltas[1:], np.diff(spectral, axis=0), rtol=1e-5, atol=1e-4)


def test_rhythmic_columns_on_a_known_grid() -> None:
    beat_times = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.4, 3.8, 4.2])
    grid = Grid(
        tempo_bpm=120.0,
        beat_times=beat_times,
        downbeats=np.array([1, 5, 9]),  # a pickup beat before the first bar
        beats_per_bar=4,
        phrase_starts=np.array([1]),
    )
    env = np.zeros(200, dtype=np.float32)
    env[round(2.0 * SR / 512)] = 4.0  # strong onset on beat 4
    env[round(3.0 * SR / 512)] = 1.0
    rhythm = F.rhythmic_columns(grid, env, sr=SR, hop_length=512)
    sin, cos, deviation, strength, downbeat = rhythm.T
    for d in (1, 5, 9):
        assert (sin[d], cos[d]) == (0.0, 1.0)
    np.testing.assert_allclose(cos[[2, 3, 4]], [0.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(sin[[2, 4]], [1.0, -1.0], atol=1e-12)
    assert sin[0] == pytest.approx(-1.0)  # the pickup is the 4th beat of a bar
    np.testing.assert_array_equal(downbeat, [0, 1, 0, 0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_allclose(deviation[:5], 0.0, atol=1e-12)  # 0.5 s = 120 BPM
    assert deviation[7] == pytest.approx(0.5 / 0.4 - 1.0)  # 0.4 s beats are 25 % faster
    assert strength[4] == pytest.approx(1.0)
    assert strength[6] == pytest.approx(0.25)
    assert strength[0] == 0.0


def test_rhythmic_phase_on_downbeats_of_a_song(computed: dict[str, dict[str, object]]) -> None:
    names = F.feature_names()
    for song in computed.values():
        fast = song["fast"]
        downbeats = song["grid"].downbeats
        np.testing.assert_array_equal(fast[downbeats, names.index("beat_phase_sin")], 0.0)
        np.testing.assert_array_equal(fast[downbeats, names.index("beat_phase_cos")], 1.0)
        np.testing.assert_array_equal(fast[downbeats, names.index("downbeat")], 1.0)
        strength = fast[:, names.index("beat_strength")]
        assert strength.min() >= 0.0 and strength.max() <= 1.0


# --------------------------------------------------------------------------- pooling


def test_beat_spans_cover_each_beat_and_are_never_empty() -> None:
    hop_s = 512 / SR
    beat_times = np.array([0.0, 0.5, 0.51, 1.0, 1.5, 2.0])  # 0.5 -> 0.51 is shorter than a hop
    # a song that ends (frame 80 = 1.86 s) before the last beat's span: clipped, still non-empty
    starts, stops = F.beat_frame_spans(beat_times, n_frames=80, sr=SR, hop_length=512)
    assert np.all(stops > starts) and stops.max() == 80 and starts.max() == 79
    starts, stops = F.beat_frame_spans(beat_times, n_frames=200, sr=SR, hop_length=512)
    assert np.all(stops > starts)
    for i, t in enumerate(beat_times):
        assert starts[i] * hop_s >= t - 1e-9  # first frame centre at or after the beat
        assert (starts[i] - 1) * hop_s < t or starts[i] == 0
    assert stops[1] == starts[1] + 1  # the 10 ms beat keeps its one frame
    # the last beat spans one median period (0.5 s)
    assert (starts[-1], stops[-1]) == (int(np.ceil(2.0 / hop_s)), int(np.ceil(2.5 / hop_s)))
    frames = np.random.default_rng(0).standard_normal((3, 200))
    pooled = F.pool_frames(frames, starts, stops)
    expected = np.stack([frames[:, s:e].mean(axis=1) for s, e in zip(starts, stops)])
    np.testing.assert_allclose(pooled, expected, rtol=1e-12, atol=1e-12)


def test_beat_times_must_increase() -> None:
    with pytest.raises(ValueError, match="increasing"):
        F.beat_frame_spans(np.array([0.0, 1.0, 0.5]), n_frames=100, sr=SR, hop_length=512)


# --------------------------------------------------------------------------- robustness


def test_no_nan_or_inf_on_silence_padded_audio() -> None:
    y, grid = make_song(4, seconds=8.0, bpm=120.0)
    pad_s = 3.0
    padded = np.concatenate([np.zeros(int(pad_s * SR), np.float32), y, np.zeros(int(pad_s * SR), np.float32)])
    period = 0.5
    beat_times = np.arange(0.0, len(padded) / SR - 0.1, period)  # beats run through the silence too
    padded_grid = Grid(
        tempo_bpm=120.0,
        beat_times=beat_times,
        downbeats=np.arange(0, len(beat_times), 4),
        beats_per_bar=4,
        phrase_starts=np.arange(0, len(beat_times), 16),
    )
    spec = compute_spectrum(padded, sr=SR)
    fast = F.beat_features(spec, padded_grid)
    ref = F.reference_features(padded, SR, padded_grid)
    for matrix in (fast, ref):
        assert matrix.dtype == np.float32
        assert np.all(np.isfinite(matrix))
    names = F.feature_names()
    # silent beats: no energy, no crossings
    assert fast[0, names.index("rms")] == pytest.approx(0.0, abs=1e-6)
    assert fast[0, names.index("zcr")] == 0.0
    silent = slice(0, 5)
    np.testing.assert_allclose(fast[silent, :7], ref[silent, :7], rtol=1e-3, atol=1e-3)


def test_all_silent_and_tiny_inputs_stay_finite() -> None:
    silence = np.zeros(SR * 2, dtype=np.float32)
    grid = Grid(
        tempo_bpm=120.0,
        beat_times=np.arange(0.0, 2.0, 0.5),
        downbeats=np.array([0]),
        beats_per_bar=4,
        phrase_starts=np.array([0]),
    )
    out = F.beat_features(compute_spectrum(silence, sr=SR), grid)
    assert out.shape == (4, 109) and np.all(np.isfinite(out))
    short = make_song(5, seconds=0.1)[0]  # 5 frames: shorter than the delta window
    one_beat = Grid(
        tempo_bpm=120.0,
        beat_times=np.array([0.0]),
        downbeats=np.array([0]),
        beats_per_bar=4,
        phrase_starts=np.array([0]),
    )
    out = F.beat_features(compute_spectrum(short, sr=SR), one_beat)
    assert out.shape == (1, 109) and np.all(np.isfinite(out))
    no_beats = Grid(
        tempo_bpm=120.0,
        beat_times=np.zeros(0),
        downbeats=np.zeros(0, int),
        beats_per_bar=4,
        phrase_starts=np.zeros(0, int),
    )
    assert F.beat_features(compute_spectrum(short, sr=SR), no_beats).shape == (0, 109)


# --------------------------------------------------------------------------- stems, tuning, fallbacks


def test_stem_columns_are_appended(computed: dict[str, dict[str, object]]) -> None:
    song = computed["a_minor_120"]
    n_beats = len(song["grid"].beat_times)
    stems = np.arange(n_beats * 12, dtype=np.float64).reshape(n_beats, 12)
    out = F.beat_features(song["spec"], song["grid"], stems=stems)
    assert out.shape == (n_beats, 121)
    np.testing.assert_array_equal(out[:, :109], song["fast"])
    np.testing.assert_array_equal(out[:, 109:], stems.astype(np.float32))
    assert F.beat_features(song["spec"], song["grid"], stems=stems[:, :6]).shape == (n_beats, 115)
    with pytest.raises(ValueError, match="stems"):
        F.beat_features(song["spec"], song["grid"], stems=stems[:, :11])


def test_tuning_estimate_matches_librosa(computed: dict[str, dict[str, object]]) -> None:
    for song in computed.values():
        power = song["spec"].magnitude.astype(np.float64) ** 2
        ours = D.estimate_tuning(song["spec"].magnitude ** 2, sr=SR, n_fft=2048)
        theirs = librosa.estimate_tuning(S=power, sr=SR, bins_per_octave=12)
        assert ours == pytest.approx(theirs, abs=0.011)
    detuned = computed["f_major_97_detuned"]["spec"]
    # 30 cents sharp is 0.3 of a semitone; piptrack's estimate lands near it (librosa's too)
    assert 0.2 <= D.estimate_tuning(detuned.magnitude**2, sr=SR, n_fft=2048) <= 0.45
    in_tune = computed["a_minor_120"]["spec"]
    assert abs(D.estimate_tuning(in_tune.magnitude**2, sr=SR, n_fft=2048)) <= 0.1


def test_without_the_time_signal_rms_and_zcr_are_estimated(computed: dict[str, dict[str, object]]) -> None:
    names = F.feature_names()
    for song in computed.values():
        bare = dataclasses.replace(song["spec"], y=None)
        estimated = F.beat_features(bare, song["grid"])
        exact = song["fast"]
        for name in ("rms", "zcr"):
            k = names.index(name)
            assert np.corrcoef(estimated[:, k], exact[:, k])[0, 1] >= 0.9, name
        other = [k for k, n in enumerate(names) if n not in ("rms", "zcr", "delta_rms", "delta_zcr")]
        np.testing.assert_array_equal(estimated[:, other], exact[:, other])
        # passing y explicitly is the same as the kept one
        np.testing.assert_array_equal(F.beat_features(bare, song["grid"], y=song["y"]), exact)


def test_on_the_tracked_grid(computed: dict[str, dict[str, object]]) -> None:
    """The pipeline as analysis runs it: beat_grid on the shared spectrum, then both feature paths."""
    song = computed["d_major_143"]
    grid = beat_grid(song["spec"])
    assert grid.n_beats > 8
    fast = F.beat_features(song["spec"], grid)
    ref = F.reference_features(song["y"], SR, grid)
    assert fast.shape == ref.shape == (grid.n_beats, 109)
    assert np.all(np.isfinite(fast))
    for k, name in enumerate(F.feature_names()):
        if np.ptp(ref[:, k]) == 0.0:
            assert np.array_equal(fast[:, k], ref[:, k]), name
        else:
            assert np.corrcoef(fast[:, k], ref[:, k])[0, 1] >= 0.99, name


def test_fast_path_never_imports_librosa() -> None:
    """A CLI run on a short file must not pay librosa's numba start-up (1-2 s) nor scipy.signal's import."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from editorbot.engine.spectrum import compute_spectrum\n"
        "from editorbot.engine.features import beat_features\n"
        "from editorbot.engine.grid import Grid\n"
        "y = np.random.default_rng(0).standard_normal(22050 * 3).astype(np.float32) * 0.1\n"
        "g = Grid(120.0, np.arange(0.0, 3.0, 0.5), np.array([0, 4]), 4, np.array([0]))\n"
        "assert beat_features(compute_spectrum(y), g).shape == (6, 109)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('librosa', 'numba') or m == 'scipy.signal'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_non_finite_input_is_refused_not_hidden() -> None:
    y, grid = make_song(7, seconds=3.0)
    y[SR] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        F.beat_features(compute_spectrum(y, sr=SR), grid)
