"""Beat-grid survey on synthesized songs: how often engine.grid recovers the true grid.

Each song comes from ``training.data.synth.synth_song(seed, duration_s=,
tempo_bpm=)`` with tempos spread evenly over 70-180 BPM (song ``k`` of ``n``
at ``70 + 110 (k + 0.5) / n`` BPM, seed ``first_seed + k``; the seed picks
the drum family, swing, key, form and sounds). The analysis is what
``engine.analysis.analyze`` runs: ``beat_grid(compute_spectrum(mono 22,050 Hz))``.

A song passes when the beat F-measure (70 ms window, one-to-one matching)
is >= 0.95 and an estimated downbeat lies within 70 ms of >= 90% of the true
bar starts. Printed: one line per song (with ``--verbose`` or when it fails),
pass rates per drum family and per swing, the worst F, octave errors
(tracker tempo about 2x or 0.5x the true one), off-beat locks (right tempo,
beats half a beat off), and the median time of ``beat_grid`` alone, scaled to
a 4-minute song.

    .venv/bin/python bench/grid.py [--songs 60] [--first-seed 1000] [--seconds 30]
                                   [--cache DIR] [--verbose] [--check]

``--cache DIR`` keeps each song's 22,050 Hz mono mix and labels in DIR so a
second run skips the synthesis. ``--check`` exits 1 unless every song passes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from editorbot.engine.audio import Audio, analysis_mono
from editorbot.engine.grid import beat_grid
from editorbot.engine.grid_scores import beat_f_measure
from editorbot.engine.spectrum import ANALYSIS_SR, compute_spectrum
from editorbot.training.data.synth import synth_song

WINDOW_S = 0.07
TEMPO_RANGE_BPM = (70.0, 180.0)


@dataclass
class Result:
    seed: int
    tempo_bpm: float
    family: str
    swing: float
    swing_grid: int
    tracked_bpm: float
    f: float
    downbeat_rate: float
    grid_s: float
    seconds: float

    @property
    def passed(self) -> bool:
        return self.f >= 0.95 and self.downbeat_rate >= 0.9

    @property
    def kind(self) -> str:
        """What went wrong: "ok", "octave x2", "octave x0.5", "off-beat", "drift" (tempo right, beats lost) or "downbeats"."""
        if self.passed:
            return "ok"
        ratio = self.tracked_bpm / self.tempo_bpm
        if abs(ratio - 2.0) < 0.1:
            return "octave x2"
        if abs(ratio - 0.5) < 0.05:
            return "octave x0.5"
        if abs(ratio - 1.0) < 0.03 and self.f < 0.3:
            return "off-beat"
        if self.f < 0.95:
            return "beats"
        return "downbeats"


def _song_audio(seed: int, tempo_bpm: float, seconds: float, cache: Path | None) -> tuple[np.ndarray, dict]:
    """``(mono 22,050 Hz, labels)`` of one song, from ``cache`` when there."""
    path = cache / f"{seed}_{tempo_bpm:.1f}_{seconds:g}.npz" if cache else None
    if path is not None and path.exists():
        z = np.load(path)
        meta = {k: z[k].item() if z[k].ndim == 0 else z[k] for k in z.files if k != "mono"}
        return z["mono"], meta
    song = synth_song(seed, duration_s=seconds, tempo_bpm=tempo_bpm)
    mono = analysis_mono(Audio(song.samples, song.sample_rate))
    meta = {
        "beat_times": song.beat_times,
        "downbeats": song.downbeats,
        "family": song.drum_family,
        "swing": song.swing,
        "swing_grid": song.swing_grid,
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mono=mono, **meta)
    return mono, meta


def survey_song(
    seed: int, tempo_bpm: float, seconds: float, cache: Path | None = None, tracker: str = "learned"
) -> Result:
    """Synthesize (or load) one song, track it, and score the grid."""
    mono, meta = _song_audio(seed, tempo_bpm, seconds, cache)
    spec = compute_spectrum(mono, sr=ANALYSIS_SR)
    t0 = time.perf_counter()
    grid = beat_grid(spec, tracker=tracker)
    grid_s = time.perf_counter() - t0
    ref = np.asarray(meta["beat_times"])
    true_down = ref[np.asarray(meta["downbeats"])]
    found = grid.beat_times[grid.downbeats]
    rate = float(np.mean([np.min(np.abs(found - t)) <= WINDOW_S for t in true_down])) if len(found) else 0.0
    return Result(
        seed=seed,
        tempo_bpm=tempo_bpm,
        family=str(meta["family"]),
        swing=float(meta["swing"]),
        swing_grid=int(meta["swing_grid"]),
        tracked_bpm=float(grid.tempo_bpm),
        f=beat_f_measure(ref, grid.beat_times),
        downbeat_rate=rate,
        grid_s=grid_s,
        seconds=len(mono) / ANALYSIS_SR,
    )


def survey_songs(n_songs: int, first_seed: int) -> list[tuple[int, float]]:
    """``[(seed, tempo_bpm)]``: tempos evenly spread over 70-180 BPM, one seed each."""
    lo, hi = TEMPO_RANGE_BPM
    return [(first_seed + k, round(lo + (hi - lo) * (k + 0.5) / n_songs, 1)) for k in range(n_songs)]


def _line(r: Result) -> str:
    return (
        f"seed {r.seed:>5} {r.tempo_bpm:6.1f} BPM {r.family:<17} swing {r.swing:.2f}/{r.swing_grid:<2} "
        f"-> {r.tracked_bpm:6.1f} BPM  F {r.f:.3f}  downbeats {r.downbeat_rate:.2f}  {r.kind}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--songs", type=int, default=60)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cache", type=Path, default=None, help="folder for synthesized mono mixes")
    parser.add_argument("--verbose", action="store_true", help="print every song, not just failures")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every song passes")
    parser.add_argument("--tracker", choices=("learned", "onset"), default="learned", help="editorbot.engine.grid tracker")
    args = parser.parse_args(argv)

    results = []
    for seed, tempo in survey_songs(args.songs, args.first_seed):
        r = survey_song(seed, tempo, args.seconds, args.cache, tracker=args.tracker)
        results.append(r)
        if args.verbose or not r.passed:
            print(_line(r), flush=True)

    n_pass = sum(r.passed for r in results)
    print(f"\n{n_pass}/{len(results)} songs pass (F >= 0.95 and downbeats >= 0.9)")
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[r.family].append(r)
        groups["swing > 0" if r.swing > 0 else "straight"].append(r)
    for name, rs in sorted(groups.items()):
        print(f"  {name:<18} {sum(r.passed for r in rs):>3}/{len(rs):<3} worst F {min(r.f for r in rs):.3f}")
    kinds: dict[str, int] = defaultdict(int)
    for r in results:
        kinds[r.kind] += 1
    print("  failures by kind:", {k: v for k, v in kinds.items() if k != "ok"} or "none")
    print(f"  mean F {np.mean([r.f for r in results]):.3f}, worst F {min(r.f for r in results):.3f}, "
          f"mean downbeats {np.mean([r.downbeat_rate for r in results]):.3f}")
    per_4min = [r.grid_s * 240.0 / r.seconds for r in results]
    print(f"  beat_grid time: median {1000 * np.median([r.grid_s for r in results]):.1f} ms per "
          f"{args.seconds:g} s song, {1000 * np.median(per_4min):.0f} ms scaled to 4 minutes (shared machine)")
    return 0 if not args.check or n_pass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
