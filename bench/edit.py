"""Benchmark the edit policy and ``editorbot edit`` on a 4-minute song.

On a synthesized 4-minute song, in the same run:

- policy time, for two architectures with random weights (the timing does
  not depend on them): the DESIGN size (``AgentConfig()``: hidden 512, 8
  heads, 3 layers, kernel 33) and the bundled default model's size. The
  whole-song evaluation (encoders once, heads at every beat: what the
  length-constrained search and the policy walk start from) through ONNX
  Runtime against eager torch (``TorchPolicy``, inference mode) with the same
  weights and thread count; torch runs both attention paths (blocked and
  banded mask) and its faster one is the baseline. The three are timed in
  alternating blocks (``--rounds`` x ``--repeats``) so that a drifting
  machine slows them alike. The ratio is torch /
  ONNX; ``song_logprobs`` (graph call plus masks and log-softmax) is shown
  too;
- with the bundled default model (``models/default``): the greedy policy
  walk (fixed-point rounds included) and end-to-end ``edit`` (analysis with
  a cold feature cache, decision, plan, render, write, exports, plot),
  model loading excluded, with and without ``--target-duration``.

    .venv/bin/python bench/edit.py [--duration S] [--rounds R] [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from editorbot.engine.analysis import analyze
from editorbot.engine.formats import EXPORT_FORMATS
from editorbot.export.edit import edit_file
from editorbot.export.onnx import Checkpoint, TorchPolicy, export_policy
from editorbot.export.request import EditRequest
from editorbot.export.runtime import OnnxPolicy, SongInputs, WalkHistory, load_policy, policy_inputs, song_logprobs
from editorbot.export.walk import policy_walk
from editorbot.training.config import AgentConfig
from editorbot.training.data.synth import synth_song, write_song
from editorbot.training.models.agent import EditAgent

log = logging.getLogger("bench.edit")
#: Pause before each timed block, far longer than onnxruntime or OpenMP spin.
_SETTLE_S = 0.2


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _alternating_s(fns: dict[str, Callable[[], object]], rounds: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each of ``fns``, measured in alternating blocks.

    Each round gives every function a pause (the other library's worker
    threads stop spinning and sleep: spinning threads of onnxruntime and
    OpenMP would slow whoever runs next), one untimed call (its threads wake,
    its caches fill) and then ``repeats`` timed ones; the median is over all
    rounds. Alternating keeps the backends under the same conditions on a
    shared machine whose speed drifts.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(_SETTLE_S)
            fn()
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=240.0, help="song length in seconds (default 240)")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per block (policy) or measurement (median)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of onnx / torch policy blocks")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for torch and onnxruntime")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bench-edit-") as tmp:
        folder = Path(tmp)
        os.environ["EDITORBOT_CACHE"] = str(folder / "cache")  # cold feature cache
        song_path = write_song(synth_song(2024, duration_s=args.duration), folder / "song.wav")
        analysis = analyze(song_path, cache=False)
        default = load_policy(None, device="auto")
        sizes = {"DESIGN": AgentConfig(backend="torch"), "default model": AgentConfig(**{**default.spec.config, "backend": "torch"})}
        rows = []
        for label, cfg in sizes.items():
            torch.manual_seed(0)
            agent = EditAgent(cfg).eval()
            torch.nn.init.normal_(agent.policy_head.weight, std=0.05)
            exported = export_policy(agent, folder / f"{label.split()[0]}.onnx")
            onnx_policy = OnnxPolicy(exported.onnx_path, device="auto", threads=args.threads)
            torch_policy = TorchPolicy(Checkpoint("policy", agent, exported.onnx_path, {}))
            song = SongInputs.of(analysis, onnx_policy.spec)  # with the context columns when the model reads them
            n = song.n_beats
            inputs = policy_inputs(song, np.arange(n), WalkHistory.keep_all(n), onnx_policy.spec)
            encoders = (agent.policy_encoder, agent.value_encoder)

            def torch_run(blocked: bool, encoders=encoders, policy=torch_policy, inputs=inputs) -> None:
                for encoder in encoders:
                    encoder.set_blocked(blocked)
                policy.run(inputs)

            times = _alternating_s(
                {
                    "onnx": lambda p=onnx_policy, i=inputs: p.run(i),
                    "blocked": lambda: torch_run(True),
                    "banded": lambda: torch_run(False),
                },
                args.rounds,
                args.repeats,
            )
            onnx_s, torch_s = times.pop("onnx"), times
            lp_s = _median_s(lambda p=onnx_policy, s=song: song_logprobs(p, s), args.repeats)
            rows.append((label, cfg, onnx_policy.provider, onnx_s, torch_s, lp_s))

        walk = policy_walk(default, song)
        walk_s = _median_s(lambda: policy_walk(default, song), args.repeats)
        edit_s = _median_s(lambda: edit_file(EditRequest(str(song_path), exports=EXPORT_FORMATS), folder / "edit.wav", default), 1)
        target = 0.8 * analysis.audio.duration_s
        report = edit_file(EditRequest(str(song_path), target_duration_s=target, keep=((30.0, 45.0),)), folder / "edit_t.wav", default)

    print(f"song {analysis.audio.duration_s:.1f} s, {n} beats; {args.threads} threads")
    for label, cfg, provider, onnx_s, torch_s, lp_s in rows:
        best = min(torch_s.values())
        print(f"policy, whole song, {label} size (hidden {cfg.hidden}, {cfg.layers} layers, kernel {cfg.kernel}), "
              f"{provider}: onnx {onnx_s * 1e3:7.1f} ms   torch eager {best * 1e3:7.1f} ms "
              f"(blocked {torch_s['blocked'] * 1e3:.1f}, banded {torch_s['banded'] * 1e3:.1f})   "
              f"ratio torch/onnx {best / onnx_s:5.2f}x   song_logprobs {lp_s * 1e3:.1f} ms")
    print(f"policy walk, greedy, default model:  {walk_s * 1e3:8.1f} ms  ({len(walk.walk)} steps, {walk.rounds} rounds, "
          f"{walk.evaluated} cursors evaluated)")
    print(f"edit end to end, default model, no target: {edit_s:8.2f} s (model load excluded, cold analysis)")
    stages = "  ".join(f"{k} {v:.2f}s" for k, v in report.timings_s.items())
    print(f"edit with --target-duration {target:.1f} s: {report.total_s:8.2f} s ({stages}); "
          f"out {report.duration_out_s:.2f} s; splice cost {report.splice_cost:.3f} vs pure DP {report.baseline_splice_cost:.3f}")


if __name__ == "__main__":
    main()
