"""Benchmark the edit policy and ``editorbot edit`` on a 4-minute song.

Builds a policy of the default size (``AgentConfig()``: hidden 512, 8 heads,
3 layers, kernel 33, window 64; random weights: the timing does not depend
on them), exports it to ONNX, and on a synthesized 4-minute song measures
in the same run:

- policy time: the whole-song batched evaluation (every cursor window, the
  call the length-constrained search and the policy walk start from), ONNX
  Runtime against eager torch (``TorchPolicy``, inference mode) with the
  same weights and thread count, at the runtime's batch size and at 512
  windows per call; the ratio is torch / ONNX;
- the greedy policy walk (fixed-point rounds included), ONNX;
- end-to-end ``edit`` (analysis with a cold feature cache, decision,
  plan, render, write, exports, plot), model loading excluded, with and
  without ``--target-duration``.

    .venv/bin/python bench/edit.py [--duration S] [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from engine.analysis import analyze
from export.edit import edit_file
from export.onnx import Checkpoint, TorchPolicy, export_policy
from export.runtime import BATCH_SIZE, OnnxPolicy, SongInputs, policy_walk, song_logprobs
from training.config import AgentConfig
from training.data.synth import synth_song, write_song
from training.models.agent import EditAgent

log = logging.getLogger("bench.edit")


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=240.0, help="song length in seconds (default 240)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for torch and onnxruntime")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-edit-") as tmp:
        folder = Path(tmp)
        os.environ["EDITORBOT_CACHE"] = str(folder / "cache")  # cold feature cache
        song_path = write_song(synth_song(2024, duration_s=args.duration), folder / "song.wav")
        cfg = AgentConfig(backend="torch")
        torch.manual_seed(0)
        agent = EditAgent(cfg).eval()
        torch.nn.init.normal_(agent.policy_head.weight, std=0.05)
        t = time.perf_counter()
        exported = export_policy(agent, folder / "policy.onnx")
        export_s = time.perf_counter() - t
        onnx_policy = OnnxPolicy(exported.onnx_path, device="auto", threads=args.threads)
        torch_policy = TorchPolicy(Checkpoint("policy", agent, exported.onnx_path, {}))

        analysis = analyze(song_path, cache=False)
        song = SongInputs.of(analysis)
        n = song.n_beats
        policy_s: dict[tuple[str, int], float] = {}
        for batch in (BATCH_SIZE, 512):
            for name, policy in (("onnx", onnx_policy), ("torch", torch_policy)):
                song_logprobs(policy, song, batch_size=batch)  # warm-up
                policy_s[name, batch] = _median_s(lambda p=policy, b=batch: song_logprobs(p, song, batch_size=b), args.repeats)
        walk = policy_walk(onnx_policy, song)
        walk_s = _median_s(lambda: policy_walk(onnx_policy, song), args.repeats)

        edit_s = _median_s(lambda: edit_file(song_path, folder / "edit.wav", onnx_policy, exports=("rpp", "midi", "labels", "tsv")), 1)
        target = 0.8 * analysis.audio.duration_s
        report = edit_file(song_path, folder / "edit_t.wav", onnx_policy, target_duration_s=target, keep=[(30.0, 45.0)])

    print(f"song {analysis.audio.duration_s:.1f} s, {n} beats; model hidden {cfg.hidden}, window {cfg.window}; "
          f"{args.threads} threads; {onnx_policy.provider}; export took {export_s:.1f} s")
    for batch in (BATCH_SIZE, 512):
        onnx_s, torch_s = policy_s["onnx", batch], policy_s["torch", batch]
        print(f"policy, whole song ({n} windows, {batch} per call):  onnx {onnx_s * 1e3:8.1f} ms   "
              f"torch eager {torch_s * 1e3:8.1f} ms   ratio torch/onnx {torch_s / onnx_s:5.2f}x   "
              f"(onnx per window {onnx_s / n * 1e3:.2f} ms)")
    best_onnx, best_torch = min(v for (k, _), v in policy_s.items() if k == "onnx"), min(v for (k, _), v in policy_s.items() if k == "torch")
    print(f"policy, best batch each:           onnx {best_onnx * 1e3:8.1f} ms   torch eager {best_torch * 1e3:8.1f} ms   ratio {best_torch / best_onnx:5.2f}x")
    print(f"policy walk, greedy (onnx):        {walk_s * 1e3:8.1f} ms  ({len(walk.walk)} steps, {walk.rounds} rounds, {walk.windows} windows)")
    print(f"edit end to end, no target:        {edit_s:8.2f} s (model load excluded, cold analysis)")
    stages = "  ".join(f"{k} {v:.2f}s" for k, v in report.timings_s.items())
    print(f"edit with --target-duration {target:.1f} s: {report.total_s:8.2f} s ({stages}); "
          f"out {report.duration_out_s:.2f} s; splice cost {report.splice_cost:.3f} vs pure DP {report.baseline_splice_cost:.3f}")


if __name__ == "__main__":
    main()
