"""Benchmark label inference on a held-out synthetic corpus and print the figures.

    .venv/bin/python bench/labels.py [--n 100] [--seed 9001] [--min-s 30] [--max-s 60]
                                     [--damage 10] [--swaps 10] [--dir DIR] [--per-pair]

Makes ``--n`` pairs with ``training.data.pairs.make_synth_pair`` (styles
round robin, song ``i`` from seed ``SEED + i``, length drawn in
``[min-s, max-s]``), infers their labels from the audio alone
(``training.labels.infer.infer_pair``; truth label files are only read
afterwards, to score) and prints:

- beat accuracy, accuracy on the structural types, macro-F1 over the types,
  amount accuracy where the type is right, boundaries within 1 beat, and
  the per-type table (``training.labels.evaluate.Evaluation``);
- render check: multi-scale STFT distance (512/1024/2048) of the inferred
  plan's render to the edit, divided by the raw-to-edit distance: the
  share of pairs at or under 0.2, the corpus ratio (sum over pairs of the
  render distance / sum of the raw distances), median, mean and p90
  (``--per-pair`` lists each pair's ratio, accuracy and type counts);
- robustness: structural beat accuracy with the edit re-encoded as 128
  kbit/s mp3, resampled to 48 kHz, and 3 dB louder (first ``--damage``
  pairs);
- unalignable: ``--swaps`` pairs of one song's raw with another's edit,
  and how many are flagged (and how many true pairs were flagged);
- speed: seconds of raw audio per second of inference (real-time factor)
  by the wall clock and by the process's CPU time (on a shared machine the
  wall clock also counts other processes' turns), feature cache cold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from editorbot.engine import actions as vocab
from editorbot.training.labels.evaluate import STRUCTURAL_TYPES, Evaluator, read_label_plan, truth_on_beats
from editorbot.training.labels.infer import PairLabels, infer_pair
from editorbot.training.labels.render_check import render_check

log = logging.getLogger("bench.labels")


def _structural_accuracy(result: PairLabels, plan_doc: dict) -> float:
    """Share of beats with a true structural type whose type is right (effects count as KEEP both sides)."""
    tt, _ = truth_on_beats(plan_doc, result.beat_times)
    pt = result.labels[:, 0]
    keep = vocab.type_index("KEEP")
    structural_idx = [vocab.type_index(t) for t in STRUCTURAL_TYPES]
    tt = np.where(np.isin(tt, structural_idx), tt, keep)
    pt = np.where(np.isin(pt, structural_idx), pt, keep)
    return float(np.mean(pt == tt))


def _type_counts(types: np.ndarray) -> str:
    """``"LOOP:8 CUT:4"``: non-KEEP beats per type of ``(n_beats,)`` type indices, most first."""
    names, counts = np.unique(types, return_counts=True)
    order = np.argsort(-counts)
    return " ".join(f"{vocab.TYPES[names[i]]}:{counts[i]}" for i in order if vocab.TYPES[names[i]] != "KEEP")


def _pair_row(name: str, result: PairLabels, plan_doc: dict, ratio: float) -> str:
    """One ``--per-pair`` line: render ratio, structural and beat accuracy, true and inferred type counts."""
    if not result.alignable:
        return f"{name:<28} unalignable: {result.reason}"
    tt, _ = truth_on_beats(plan_doc, result.beat_times)
    pt = result.labels[:, 0]
    return (f"{name:<28} {ratio:6.3f} {_structural_accuracy(result, plan_doc):6.3f} {float(np.mean(pt == tt)):6.3f}  "
            f"{_type_counts(tt)} / {_type_counts(pt)}")


def _damaged(edit_path: str, kind: str, folder: str) -> str:
    import pedalboard
    import soxr

    from editorbot.engine.audio import load_audio, write_audio

    audio = load_audio(edit_path)
    y, sr = audio.samples, audio.sample_rate
    stem = os.path.splitext(os.path.basename(edit_path))[0]
    if kind == "mp3":
        out = os.path.join(folder, f"{stem}_128k.mp3")
        with pedalboard.io.AudioFile(out, "w", sr, y.shape[0], quality="128k") as f:
            f.write(y)
    elif kind == "48k":
        out = os.path.join(folder, f"{stem}_48k.wav")
        write_audio(out, np.ascontiguousarray(soxr.resample(y.T, sr, 48000).T), 48000)
    else:
        out = os.path.join(folder, f"{stem}_plus3db.wav")
        write_audio(out, y * np.float32(10 ** (3 / 20)), sr)
    return out


def _duration(path: str) -> float:
    import soundfile

    return float(soundfile.info(path).duration)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=9001)
    p.add_argument("--min-s", type=float, default=30.0)
    p.add_argument("--max-s", type=float, default=60.0)
    p.add_argument("--damage", type=int, default=10, help="pairs checked with damaged edits")
    p.add_argument("--swaps", type=int, default=10, help="mismatched (raw, edit) pairs checked")
    p.add_argument("--dir", default=None, help="pair directory (default: a temporary one)")
    p.add_argument("--per-pair", action="store_true", help="also list each pair's render ratio and accuracy")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from editorbot.training.data.editors import STYLES
    from editorbot.training.data.pairs import make_synth_pair, pair_paths, synth_pair_name

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_labels_")
        folder = tmp.name
    else:
        folder = args.dir
    os.environ.setdefault("EDITORBOT_CACHE", os.path.join(folder, "cache"))
    styles = list(STYLES)
    rng = np.random.default_rng(args.seed)
    durations = rng.uniform(args.min_s, args.max_s, size=args.n)
    records = []
    t = time.perf_counter()
    for i in range(args.n):
        seed, style = args.seed + i, styles[i % len(styles)]
        name = synth_pair_name(seed, style)
        raw, edit, label = pair_paths(folder, name)
        if args.dir is not None and all(os.path.isfile(f) for f in (raw, edit, label)):
            # reuse a pair made by an earlier run with the same arguments
            records.append(SimpleNamespace(name=name, raw_path=raw, edit_path=edit, label_path=label,
                                           raw_duration_s=_duration(raw)))
            continue
        records.append(make_synth_pair(seed, style, folder, float(durations[i])))
    print(f"corpus: {args.n} pairs, seeds {args.seed}..{args.seed + args.n - 1}, "
          f"{args.min_s:g}-{args.max_s:g} s songs, styles {', '.join(styles)} ({time.perf_counter() - t:.0f} s to make)")

    # warm the compiled alignment code on a short pair so its one-off compile time is not counted
    infer_pair(records[0].raw_path, records[0].edit_path, cache=False)

    evaluator = Evaluator()
    rtf, rtf_cpu, ratios, results, docs = [], [], [], [], []
    d_plans, d_raws, rows = [], [], []
    for rec in records:
        t, c = time.perf_counter(), time.process_time()
        res = infer_pair(rec.raw_path, rec.edit_path, name=rec.name)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        rtf_cpu.append(rec.raw_duration_s / dc)
        doc = read_label_plan(rec.label_path)
        evaluator.add(res, doc)
        rtf.append(rec.raw_duration_s / dt)
        results.append(res)
        docs.append(doc)
        if res.alignable:
            d_plan, d_raw = render_check(res)
            ratios.append(d_plan / max(d_raw, 1e-9))
            d_plans.append(d_plan)
            d_raws.append(d_raw)
        if args.per_pair:
            rows.append(_pair_row(rec.name, res, doc, d_plan / max(d_raw, 1e-9) if res.alignable else float("nan")))
    ev = evaluator.result()
    print()
    for line in ev.lines():
        print(line)
    ratios_a = np.asarray(ratios)
    print()
    print(f"render check (d(plan render, edit) / d(raw, edit), msstft 512/1024/2048): share <= 0.2: "
          f"{np.mean(ratios_a <= 0.2):.3f} of {ratios_a.size} pairs, corpus ratio {sum(d_plans) / max(sum(d_raws), 1e-9):.3f}, "
          f"median {np.median(ratios_a):.3f}, mean {ratios_a.mean():.3f}, p90 {np.percentile(ratios_a, 90):.3f}")
    if args.per_pair:
        print()
        print(f"{'pair':<28} {'ratio':>6} {'struct':>6} {'beat':>6}  true non-KEEP beats / inferred non-KEEP beats")
        for row in rows:
            print(row)
    rtf_a = np.asarray(rtf)
    print(f"speed: median {np.median(rtf_a):.1f}x real time by the wall clock, min {rtf_a.min():.1f}x; "
          f"median {np.median(rtf_cpu):.1f}x by process CPU time (all threads), min {np.min(rtf_cpu):.1f}x "
          f"(cold feature cache, {os.cpu_count()} cpus visible, load average {os.getloadavg()[0]:.1f})")

    if args.damage:
        print()
        damage_dir = os.path.join(folder, "damaged")
        os.makedirs(damage_dir, exist_ok=True)
        for kind in ("mp3", "48k", "gain"):
            accs = []
            for rec, doc in zip(records[: args.damage], docs):
                path = _damaged(rec.edit_path, kind, damage_dir)
                res = infer_pair(rec.raw_path, path, name=rec.name, effects=False)
                accs.append(_structural_accuracy(res, doc) if res.alignable else 0.0)
            clean = [_structural_accuracy(r, d) if r.alignable else 0.0 for r, d in zip(results[: args.damage], docs)]
            print(f"damage {kind:>4}: structural beat accuracy {np.mean(accs):.4f} (clean {np.mean(clean):.4f}, {len(accs)} pairs)")

    if args.swaps:
        flagged = 0
        for k in range(args.swaps):
            a, b = records[k], records[(k + 1 + len(records) // 2) % len(records)]
            res = infer_pair(a.raw_path, b.edit_path, name=f"{a.name}x{b.name}")
            flagged += not res.alignable
        false_flags = sum(not r.alignable for r in results)
        print(f"\nunalignable: {flagged} of {args.swaps} mismatched pairs flagged; "
              f"{false_flags} of {len(results)} true pairs flagged")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
