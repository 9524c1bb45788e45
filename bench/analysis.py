"""Analysis speed: the fast path against the librosa reference, in one process.

Fast path:      soxr resample to 22,050 Hz mono -> engine.spectrum.compute_spectrum
                -> engine.grid.beat_grid -> engine.features.beat_features
Reference path: librosa.resample -> librosa.beat.beat_track
                -> engine.features.reference_features (separate librosa calls)

Decoding is excluded from both: the song is generated in memory (a 4-minute
stereo 44.1 kHz drums + bass + chords track with changing sections) or, with
``--audio PATH``, decoded once before timing (its decode time is printed on
its own). Both paths are warmed up first on a 10 s excerpt so that imports,
numba compilation (librosa's beat tracker and zero-crossing code) and filter
caches are not billed to the measured runs; the warm-up times are printed.
Each path then runs ``--repeats`` times and the median of each stage is
reported, with each path's process CPU time (all threads), which a busy
shared machine distorts less than wall time.

    .venv/bin/python bench/analysis.py [--seconds 240] [--audio PATH] [--repeats 3] [--tracker onset|learned] [--check]

Targets: fast path >= 250x real time and >= 5x faster than the reference;
``--check`` turns a miss into exit status 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from editorbot.engine.audio import Audio, analysis_mono, load_audio
from editorbot.engine.features import beat_features, reference_features
from editorbot.engine.grid import Grid, beat_grid
from editorbot.engine.spectrum import ANALYSIS_SR, compute_spectrum

TARGET_RTF = 250.0
TARGET_RATIO = 5.0


# --------------------------------------------------------------------------- test song


def synth_song(seconds: float, *, sr: int = 44100, bpm: float = 124.0, seed: int = 0) -> np.ndarray:
    """A music-like stereo song: ``(2, n_samples)`` float32 at ``sr`` Hz, peak 0.9.

    Kick/snare/hats, a saw bass and sine-triad chords over a 4-chord loop, in
    8-bar sections (intro: chords; verse: + drums + bass; chorus: louder,
    open hats; break: chords + hats), each instrument panned so the two
    channels differ.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    period = 60.0 / bpm
    beat_len = int(period * sr)
    t = np.arange(beat_len, dtype=np.float32) / sr
    progression = (0, 8, 3, 10)  # i - VI - iii - VII in A minor
    root_midi = 45

    def hz(midi: float) -> float:
        return 440.0 * 2.0 ** ((midi - 69) / 12.0)

    kick = (0.9 * np.sin(2 * np.pi * np.cumsum(50.0 + 110.0 * np.exp(-30.0 * t)) / sr) * np.exp(-10.0 * t)).astype(
        np.float32
    )
    snare_env = np.exp(-22.0 * t).astype(np.float32)
    hat_len = min(beat_len // 2, 2500)
    hat_env = np.exp(-np.arange(hat_len) / sr * 70.0).astype(np.float32)
    open_hat_env = np.exp(-np.arange(hat_len) / sr * 18.0).astype(np.float32)
    sustain = (0.6 + 0.4 * np.exp(-2.0 * t)).astype(np.float32)

    n_beats = n // beat_len
    for i in range(n_beats):
        bar, beat_in_bar = divmod(i, 4)
        section = (bar // 8) % 4  # 0 intro, 1 verse, 2 chorus, 3 break
        s = i * beat_len
        e = s + beat_len
        chord_root = root_midi + 12 + progression[bar % 4]
        level = (0.12, 0.10, 0.16, 0.08)[section]
        chord = np.zeros(beat_len, dtype=np.float32)
        for interval in (0, 3, 7, 12):
            chord += np.sin(2 * np.pi * hz(chord_root + interval) * t + rng.uniform(0, 2 * np.pi)).astype(np.float32)
        chord *= level * sustain
        left[s:e] += 0.8 * chord
        right[s:e] += 0.5 * chord
        if section in (1, 2):
            drum = kick if beat_in_bar % 2 == 0 else 0.45 * rng.standard_normal(beat_len).astype(np.float32) * snare_env
            left[s:e] += drum
            right[s:e] += drum
            f_bass = hz(root_midi + progression[bar % 4] + (12 if beat_in_bar == 3 else 0))
            phase = 2 * np.pi * f_bass * t
            saw = sum(np.sin(k * phase) / k for k in range(1, 8)).astype(np.float32)
            bass = (0.22 if section == 1 else 0.3) * saw * np.exp(-3.0 * t).astype(np.float32)
            left[s:e] += bass
            right[s:e] += bass
        if section >= 1:
            env = open_hat_env if section == 2 else hat_env
            for half in (0, 1):
                hs = s + half * (beat_len // 2)
                hat = np.diff(rng.standard_normal(hat_len + 1)).astype(np.float32) * env
                right[hs : hs + hat_len] += 0.07 * hat
                left[hs : hs + hat_len] += 0.03 * hat
    stereo = np.stack([left, right])
    stereo += 1e-4 * rng.standard_normal(stereo.shape).astype(np.float32)
    return (0.9 * stereo / np.abs(stereo).max()).astype(np.float32)


# --------------------------------------------------------------------------- the two paths


@dataclass
class PathResult:
    stage_s: dict[str, float]
    n_beats: int
    tempo_bpm: float
    features: np.ndarray
    cpu_s: float = 0.0  # process CPU time over all threads: less sensitive to other load than wall time

    @property
    def total_s(self) -> float:
        return sum(self.stage_s.values())


def _timed(stages: dict[str, float], name: str, fn: Callable[[], object]) -> object:
    start = time.perf_counter()
    result = fn()
    stages[name] = time.perf_counter() - start
    return result


def run_fast(audio: Audio, tracker: str = "onset") -> PathResult:
    cpu_start = time.process_time()
    stages: dict[str, float] = {}
    y = _timed(stages, "mix + resample (soxr)", lambda: analysis_mono(audio, ANALYSIS_SR))
    spec = _timed(stages, "compute_spectrum", lambda: compute_spectrum(y, sr=ANALYSIS_SR))
    grid = _timed(stages, "beat_grid", lambda: beat_grid(spec, tracker=tracker))
    feats = _timed(stages, "beat_features", lambda: beat_features(spec, grid))
    return PathResult(stages, len(grid.beat_times), float(grid.tempo_bpm), feats, time.process_time() - cpu_start)


def run_reference(audio: Audio) -> PathResult:
    import librosa

    cpu_start = time.process_time()
    stages: dict[str, float] = {}

    def mono_resampled() -> np.ndarray:
        # the same mono mix as engine.audio.analysis_mono, so both paths pay for it
        mono = audio.samples.mean(axis=0, dtype=np.float32)
        return librosa.resample(mono, orig_sr=audio.sample_rate, target_sr=ANALYSIS_SR)

    y = _timed(stages, "mix + resample (librosa)", mono_resampled)

    def track() -> Grid:
        tempo, beat_times = librosa.beat.beat_track(y=y, sr=ANALYSIS_SR, hop_length=512, units="time")
        n_beats = len(beat_times)
        return Grid(
            tempo_bpm=float(np.atleast_1d(tempo)[0]),
            beat_times=np.asarray(beat_times, dtype=np.float64),
            downbeats=np.arange(0, n_beats, 4),
            beats_per_bar=4,
            phrase_starts=np.arange(0, n_beats, 16),
        )

    grid = _timed(stages, "librosa.beat.beat_track", track)
    feats = _timed(stages, "reference_features", lambda: reference_features(y, ANALYSIS_SR, grid))
    return PathResult(stages, len(grid.beat_times), float(grid.tempo_bpm), feats, time.process_time() - cpu_start)


def _median_stages(results: list[PathResult]) -> dict[str, float]:
    return {name: statistics.median(r.stage_s[name] for r in results) for name in results[0].stage_s}


def _report(title: str, stages: dict[str, float], duration_s: float) -> float:
    total = sum(stages.values())
    print(f"{title}: {total:.3f} s  ({duration_s / total:.0f}x real time)")
    for name, seconds in stages.items():
        print(f"    {name:<26s} {seconds * 1000:8.1f} ms")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=240.0, help="length of the generated song (default 240)")
    parser.add_argument("--audio", help="benchmark this file instead of a generated song (decode not timed)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each path; medians are reported")
    parser.add_argument(
        "--tracker", choices=("onset", "learned"), default="learned", help="editorbot.engine.grid tracker of the fast path"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    if args.audio:
        start = time.perf_counter()
        audio = load_audio(args.audio)
        decode_s = time.perf_counter() - start
        source = f"{args.audio} (decode {decode_s:.2f} s, excluded)"
    else:
        start = time.perf_counter()
        audio = Audio(synth_song(args.seconds), 44100, None)
        source = f"generated drums + bass + chords (synthesis {time.perf_counter() - start:.1f} s, excluded)"
    duration_s = audio.duration_s
    print(f"song: {source}")
    print(f"      {duration_s:.1f} s, {audio.n_channels} ch, {audio.sample_rate} Hz; decode/synthesis excluded")

    excerpt = Audio(audio.samples[:, : int(10 * audio.sample_rate)], audio.sample_rate, None)
    start = time.perf_counter()
    run_fast(excerpt, args.tracker)
    warm_fast = time.perf_counter() - start
    start = time.perf_counter()
    run_reference(excerpt)
    warm_ref = time.perf_counter() - start
    print(f"warm-up on 10 s (imports, JIT, caches; excluded): fast {warm_fast:.2f} s, reference {warm_ref:.2f} s")

    fast_runs: list[PathResult] = []
    ref_runs: list[PathResult] = []
    for _ in range(max(args.repeats, 1)):
        # interleaved, so a burst of load from elsewhere hits both paths alike
        fast_runs.append(run_fast(audio, args.tracker))
        ref_runs.append(run_reference(audio))

    print(f"medians of {len(fast_runs)} runs each:")
    fast_total = _report("fast path", _median_stages(fast_runs), duration_s)
    ref_total = _report("reference path", _median_stages(ref_runs), duration_s)
    fast_best = min(r.total_s for r in fast_runs)
    ref_best = min(r.total_s for r in ref_runs)
    print(
        f"best runs: fast {fast_best:.3f} s ({duration_s / fast_best:.0f}x), "
        f"reference {ref_best:.3f} s ({duration_s / ref_best:.1f}x), ratio {ref_best / fast_best:.1f}x"
    )
    fast_rtf = duration_s / fast_total
    ref_rtf = duration_s / ref_total
    ratio = ref_total / fast_total
    fast_cpu = statistics.median(r.cpu_s for r in fast_runs)
    ref_cpu = statistics.median(r.cpu_s for r in ref_runs)
    print(
        f"CPU time (all threads, medians): fast {fast_cpu:.3f} s, reference {ref_cpu:.3f} s, "
        f"ratio {ref_cpu / fast_cpu:.1f}x"
    )
    fast, ref = fast_runs[0], ref_runs[0]
    # the first full-size run also pays the process's first touch of ~100 MB of fresh memory
    print(
        f"first timed run: fast {fast.total_s:.3f} s ({duration_s / fast.total_s:.0f}x), "
        f"reference {ref.total_s:.3f} s ({duration_s / ref.total_s:.1f}x)"
    )
    print(f"beats: fast {fast.n_beats} at {fast.tempo_bpm:.1f} BPM, reference {ref.n_beats} at {ref.tempo_bpm:.1f} BPM")
    print(f"medians: fast RTF {fast_rtf:.0f}x, reference RTF {ref_rtf:.1f}x, ratio {ratio:.1f}x")

    ok_rtf = fast_rtf >= TARGET_RTF
    ok_ratio = ratio >= TARGET_RATIO
    print(f"target fast >= {TARGET_RTF:.0f}x real time: {'met' if ok_rtf else 'MISSED'}")
    print(f"target ratio >= {TARGET_RATIO:.0f}x: {'met' if ok_ratio else 'MISSED'}")
    if args.check and not (ok_rtf and ok_ratio):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
