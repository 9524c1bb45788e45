"""Benchmark engine.render on a 4-minute 44.1 kHz stereo song.

Prints the real-time factor (seconds of output per second of rendering) of
a plan that uses every action type and every effect, of a plain copy plan
(every bar KEEP, no effects) measured in the same run, and their ratio.

    .venv/bin/python bench/render.py [--repeats N] [--duration S]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from editorbot.engine.plan import EditPlan, Effect, Grid, Segment, Source
from editorbot.engine.render import render_plan
from editorbot.training.data.synth import synth_song

log = logging.getLogger("bench.render")

# one bar each, cycled through the song: every segment behaviour and every effect
BAR_ACTIONS: list[tuple[str, dict]] = [
    ("KEEP", {}),
    ("LOOP", {}),
    ("REVERSE", {"reverse": True}),
    ("STUTTER", {}),
    ("SILENCE", {"mute": True}),
    ("FADE_IN", {"fade_in_s": 1.0}),
    ("FADE_OUT", {"fade_out_s": 1.0}),
    ("GAIN", {"gain_db": 3.0}),
    ("PITCH", {"pitch_semitones": 2.0}),
    ("SPEED", {"rate": 1.25}),
    ("LOWPASS", {"effects": [Effect("lowpass", {"cutoff_hz": 800.0})]}),
    ("HIGHPASS", {"effects": [Effect("highpass", {"cutoff_hz": 400.0})]}),
    ("BASS", {"effects": [Effect("bass", {"gain_db": 6.0})]}),
    ("TREBLE", {"effects": [Effect("treble", {"gain_db": -3.0})]}),
    ("REVERB", {"effects": [Effect("reverb", {"room_size": 0.7, "wet": 0.35})]}),
    ("DELAY", {"effects": [Effect("delay", {"delay_s": 0.25, "feedback": 0.45, "mix": 0.3})]}),
    ("DISTORTION", {"effects": [Effect("distortion", {"drive_db": 20.0})]}),
    ("COMPRESS", {"effects": [Effect("compress", {"threshold_db": -24.0, "ratio": 6.0})]}),
    ("WIDTH", {"effects": [Effect("width", {"width": 1.5})]}),
    ("CUT", {}),
]


def every_action_plan(bar_starts: np.ndarray, bar_s: float, source: Source, grid: Grid) -> EditPlan:
    """A plan cycling ``BAR_ACTIONS`` bar by bar (LOOP plays its bar twice, STUTTER a beat 4 times)."""
    segments: list[Segment] = []
    dst = 0.0

    def put(start: float, end: float, action: str, **extra: object) -> None:
        nonlocal dst
        seg = Segment(src_start_s=start, src_end_s=end, dst_start_s=dst, action=action, **extra)
        segments.append(seg)
        dst += seg.length_s

    for i, start in enumerate(bar_starts):
        action, extra = BAR_ACTIONS[i % len(BAR_ACTIONS)]
        end = start + bar_s
        if action == "CUT":
            continue
        if action == "LOOP":
            put(start, end, action)
        if action == "STUTTER":
            for _ in range(4):
                put(start, start + bar_s / 16, action)
            put(start + bar_s / 4, end, "KEEP")
            continue
        put(start, end, action, **extra)
    return EditPlan(source=source, grid=grid, segments=segments)


def copy_plan(bar_starts: np.ndarray, bar_s: float, source: Source, grid: Grid) -> EditPlan:
    """Every bar KEEP: the plain copy."""
    segments = [Segment(src_start_s=s, src_end_s=s + bar_s, dst_start_s=s - bar_starts[0]) for s in bar_starts]
    return EditPlan(source=source, grid=grid, segments=segments)


def time_render(plan: EditPlan, samples: np.ndarray, sr: int, repeats: int) -> tuple[float, float]:
    """(best wall seconds over ``repeats``, output seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = render_plan(plan, samples, sr)
        best = min(best, time.perf_counter() - t0)
    return best, out.shape[1] / sr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of N renders per plan")
    parser.add_argument("--duration", type=float, default=240.0, help="song length in seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    song = synth_song(7, duration_s=args.duration, tempo_bpm=120.0)
    sr, samples = song.sample_rate, song.samples
    bar_s = 4 * 60.0 / song.tempo_bpm
    downbeats = song.beat_times[song.downbeats]
    bar_starts = downbeats[downbeats + bar_s <= samples.shape[1] / sr]
    source = Source("bench.wav", "0" * 64, sr, samples.shape[0], samples.shape[1] / sr)
    grid = Grid(song.tempo_bpm, song.beat_times.tolist(), song.downbeats.tolist())
    print(f"song: {samples.shape[1] / sr:.1f} s, {samples.shape[0]} channels, {sr} Hz, {len(bar_starts)} bars")

    plans = {
        "every effect": every_action_plan(bar_starts, bar_s, source, grid),
        "plain copy": copy_plan(bar_starts, bar_s, source, grid),
    }
    rtf = {}
    for name, plan in plans.items():
        wall_s, out_s = time_render(plan, samples, sr, args.repeats)
        rtf[name] = out_s / wall_s
        print(f"{name:>13}: {len(plan.segments):4d} segments, {out_s:6.1f} s out in {wall_s:.3f} s: RTF {rtf[name]:8.1f}x")
    print(f"ratio plain copy / every effect: {rtf['plain copy'] / rtf['every effect']:.1f}")


if __name__ == "__main__":
    main()
