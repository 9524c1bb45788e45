"""Training-pair throughput: one-minute synthetic pairs per minute, in one process run.

Full run:  ``training.data.pairs.make_synth_pairs`` (synthesize, write the raw
           file, edit with a style, render, write the edit and the labels) for
           ``--n`` one-minute songs in ``--jobs`` worker processes.
Baseline:  the same songs synthesized and written only (no edit, no render),
           in the same number of worker processes.

Both runs start fresh worker processes, so process start and imports are
billed to both. Prints pairs per minute of wall time and, because the cores
may be shared with other work, also the rate the workers' own CPU time
gives on ``--jobs`` cores (CPU seconds of the worker processes, from
``getrusage``); the seconds of each part of a pair (synth, edit, render,
write; wall time inside the workers, summed) and the ratio of the full
run's time to the baseline's, in wall and in CPU time.

    .venv/bin/python bench/pairs.py [--n 10] [--jobs 2] [--duration 60] [--check]

Target: >= 20 pairs per minute on 2 cores; ``--check`` turns a miss into exit
status 1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from editorbot.training.data.editors import STYLES
from editorbot.training.data.pairs import PairRecord, make_synth_pairs

TARGET_PAIRS_PER_MIN = 20.0
PARTS = ("synth", "edit", "render", "write")


def synth_and_write(job: tuple[int, str, float]) -> float:
    """Baseline work for one song: synthesize and write the raw file; returns its seconds."""
    from editorbot.engine.audio import write_audio
    from editorbot.training.data.synth import synth_song

    seed, out_dir, duration_s = job
    t = time.perf_counter()
    song = synth_song(seed, duration_s=duration_s)
    write_audio(os.path.join(out_dir, f"base{seed:06d}.wav"), song.samples, song.sample_rate, bit_depth=24)
    return time.perf_counter() - t


def children_cpu_s() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_baseline(n: int, out_dir: str, seed: int, duration_s: float, jobs: int) -> tuple[float, float]:
    """Wall and worker CPU seconds to synthesize and write ``n`` songs in ``jobs`` fresh worker processes."""
    work = [(seed + i, out_dir, duration_s) for i in range(n)]
    t, c = time.perf_counter(), children_cpu_s()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(synth_and_write, work))
    return time.perf_counter() - t, children_cpu_s() - c


def run_full(n: int, out_dir: str, seed: int, duration_s: float, jobs: int) -> tuple[float, float, list[PairRecord]]:
    """Wall and worker CPU seconds, and the records, of ``n`` pairs made by ``make_synth_pairs``."""
    if jobs < 2:
        raise ValueError("the full run needs worker processes (jobs >= 2) for its CPU accounting")
    t, c = time.perf_counter(), children_cpu_s()
    records = make_synth_pairs(n, out_dir, list(STYLES), seed=seed, duration_s=duration_s, jobs=jobs, quiet=True)
    return time.perf_counter() - t, children_cpu_s() - c, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10, help="pairs per run (default 10)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--duration", type=float, default=60.0, help="song length in seconds (default 60)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first song (default 1000)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET_PAIRS_PER_MIN:g} pairs/min")
    args = parser.parse_args(argv)
    if args.n < 1 or args.jobs < 2:
        parser.error("--n must be at least 1 and --jobs at least 2")

    with tempfile.TemporaryDirectory(prefix="bench_pairs_") as tmp:
        base_s, base_cpu = run_baseline(args.n, tmp, args.seed, args.duration, args.jobs)
        full_s, full_cpu, records = run_full(args.n, os.path.join(tmp, "pairs"), args.seed, args.duration, args.jobs)

    n = len(records)
    raw_min = sum(r.raw_duration_s for r in records) / 60.0
    per_min = 60.0 * n / full_s
    per_min_cpu = 60.0 * n * args.jobs / full_cpu
    load = os.getloadavg()[0]
    print(f"pairs: {n} x {args.duration:g} s songs ({raw_min:.1f} min raw), {args.jobs} jobs, "
          f"{os.cpu_count()} cpus, load average {load:.1f}")
    print(f"full run (synth, edit, render, write): {full_s:6.2f} s wall, {full_cpu:6.2f} s cpu"
          f"  -> {per_min:.1f} pairs/min wall, {per_min_cpu:.1f} pairs/min from cpu on {args.jobs} cores")
    print(f"baseline (synth + write raw only):     {base_s:6.2f} s wall, {base_cpu:6.2f} s cpu"
          f"  -> {60.0 * n / base_s:.1f} songs/min wall, {60.0 * n * args.jobs / base_cpu:.1f} from cpu")
    print(f"ratio full / baseline: {full_s / base_s:.2f}x wall, {full_cpu / base_cpu:.2f}x cpu")
    total = {p: sum(r.timings_s.get(p, 0.0) for r in records) for p in PARTS}
    busy = sum(total.values())
    print("seconds per part (wall time inside the workers, all pairs summed):")
    for p in PARTS:
        print(f"  {p:<7} {total[p]:7.2f} s  {100.0 * total[p] / busy:5.1f} %  ({total[p] / len(records):.3f} s per pair)")
    ok = per_min >= TARGET_PAIRS_PER_MIN
    print(f"target >= {TARGET_PAIRS_PER_MIN:g} pairs/min (wall): {'met' if ok else 'MISSED'}"
          + ("" if ok or per_min_cpu < TARGET_PAIRS_PER_MIN else " (met on cpu time: the cores were shared)"))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
