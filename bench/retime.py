"""Target duration on held-out songs: length accuracy and splice continuity, policy vs pure DP.

For ``--n`` synthesized songs (seeds ``--seed`` on, never used in training)
and each target ratio (50% .. 150% of the song), in the same run:

- the policy-guided retime (``export.walk.plan_analysis`` with the bundled
  default model, or ``--model``), whose splice budget is the pure DP's cost;
- the pure DP retimer (``export.retime.retime`` without a policy);
- the policy search without a budget (one search at splice weight 1), to
  show what the budget changes.

Printed per ratio: songs whose plan lands within one beat of the target,
the mean splice cost of each, how many songs the policy splices no worse
than the DP, the splice weights the budget ended at, and the share of the
policy walk's steps that differ from the DP walk's (the policy's say).

    .venv/bin/python bench/retime.py [--n 30] [--seed 900000] [--duration 60] [--model M]
"""

from __future__ import annotations

import argparse
import collections
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from editorbot.engine.analysis import analyze
from editorbot.export import retime as rt
from editorbot.export.runtime import SongInputs, load_policy, song_logprobs
from editorbot.export.walk import plan_analysis
from editorbot.training.data.synth import synth_song, write_song

RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=30, help="held-out songs (default 30)")
    p.add_argument("--seed", type=int, default=900_000, help="first song seed (default 900000)")
    p.add_argument("--duration", type=float, default=60.0, help="song length in seconds (default 60)")
    p.add_argument("--model", help="ONNX policy (default: the bundled model)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    policy = load_policy(args.model, device="cpu")
    rows: dict[float, dict[str, list]] = {r: collections.defaultdict(list) for r in RATIOS}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-retime-") as tmp:
        for k in range(args.n):
            path = write_song(synth_song(args.seed + k, duration_s=args.duration), Path(tmp) / f"song{k}.wav")
            analysis = analyze(path, cache=False)
            beat_s = float(np.median(np.diff(analysis.grid.beat_times)))
            src = float(analysis.audio.duration_s)
            lp = song_logprobs(policy, SongInputs.of(analysis, policy.spec))
            for ratio in RATIOS:
                target = ratio * src
                decision = plan_analysis(analysis, policy, target_duration_s=target)
                dp = rt.retime(analysis, target)
                free = rt.retime(analysis, target, logprobs=lp)
                row = rows[ratio]
                row["within"].append(abs(decision.plan.duration_s - target) <= beat_s)
                row["policy"].append(decision.splice_cost)
                row["dp"].append(dp.splice_cost)
                row["free"].append(free.splice_cost)
                row["weight"].append(decision.splice_weight)
                row["differs"].append(_differs(decision.walk, dp.walk))
                row["seconds"].append(decision.policy_s + decision.search_s)
    wall = time.perf_counter() - start

    print(f"{args.n} held-out songs of {args.duration:g} s (seeds {args.seed}..{args.seed + args.n - 1}), "
          f"model {policy.spec.name}; {wall:.0f} s wall")
    print("target | within 1 beat | splice cost: policy  pure DP  policy w/o budget | policy <= DP | "
          "weights used | steps unlike DP | s per edit")
    for ratio, row in rows.items():
        weights = collections.Counter(f"{w:g}" for w in row["weight"])
        print(f"{ratio:5.0%}  | {sum(row['within']):3d}/{len(row['within'])}         | "
              f"{np.mean(row['policy']):13.3f} {np.mean(row['dp']):8.3f} {np.mean(row['free']):18.3f} | "
              f"{sum(p <= d + rt.SPLICE_COST_TOLERANCE for p, d in zip(row['policy'], row['dp'])):3d}/{len(row['dp'])}"
              f"       | {dict(weights)} | {np.mean(row['differs']):15.1%} | {np.mean(row['seconds']):.2f}")
    all_within = all(all(r["within"]) for r in rows.values())
    all_le = all(p <= d + rt.SPLICE_COST_TOLERANCE for r in rows.values() for p, d in zip(r["policy"], r["dp"]))
    total_p = sum(sum(r["policy"]) for r in rows.values())
    total_d = sum(sum(r["dp"]) for r in rows.values())
    print(f"every target within one beat: {all_within}; policy splice cost <= DP on every song: {all_le}; "
          f"total splice cost policy / DP = {total_p:.3f} / {total_d:.3f} = {total_p / max(total_d, 1e-12):.3f}")


def _differs(walk_a, walk_b) -> float:
    """Share of beats whose covering action (type, amount) differs between two walks."""
    def per_beat(walk):
        out = []
        for a in walk:
            out.extend([(a.type_idx, a.amount_idx)] * a.beats)
        return out

    a, b = per_beat(walk_a), per_beat(walk_b)
    n = min(len(a), len(b))
    return float(np.mean([x != y for x, y in zip(a[:n], b[:n])])) if n else 0.0


if __name__ == "__main__":
    main()
