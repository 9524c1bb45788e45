"""Policy quality: BC-only and PPO+BC against always-KEEP, per editor style, on held-out songs.

For each style: make ``--n-train`` training pairs (seeds ``--train-seed``
on) and ``--n-test`` held-out pairs (seeds ``--test-seed`` on) with
``editorbot data synth``; write the behavioural-cloning demonstrations of
the training pairs (``training.bc``, npz); train BC-only
(``editorbot train rl --bc-only --bc-mixed NPZ``); fine-tune that
checkpoint with PPO mixed with BC (``--resume --bc-mixed NPZ --bc-weight
0.3 --max-updates M``); walk the held-out songs greedily with each policy
and with the always-KEEP baseline, and score the walks against the style's
labels (``training.evaluate``: beat-level type F1, micro and macro). The
structure-majority row (told the true sections; see
``training.evaluate.evaluate_structure_majority``) shows how much of the
style structure and position alone predict.

Policies walk without a target length (``--no-target``), as ``editorbot
edit`` does without ``--target-duration``: the labelled edit's length is
never shown to them.

``--reference-only`` makes the pairs and scores only always-KEEP and the
structure-majority walker on the true-grid labels (no analysis, no
training): the ceiling a style leaves a policy, in a few minutes per style.

Persona styles (``radio_edit@1``, ...; ``training.data.editors.get_style``)
are accepted: one editor with fixed taste, whose choices the songs decide.

Every command is printed before it runs and recorded in the JSON, with its
wall time. The default sizes are a smoke run (a minute or two, what ``make
bench`` runs); docs/policy_quality.md gives the full command. The ratio
printed is each policy's micro F1 over always-KEEP's, on the same songs in
the same run.

    python -m bench.quality [--styles A,B] [--n-train N] [--n-test N] [--duration S]
                            [--bc-epochs N] [--ppo-updates M] [--hidden H] ... [--work DIR]
                            [--reference-only] [--json F] [--markdown F]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench.quality")


def _editorbot() -> list[str]:
    """The ``editorbot`` command of this interpreter's environment (the python -m form as fallback)."""
    exe = Path(sys.executable).with_name("editorbot")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "editorbot.bridge"]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str], log: list[dict[str, Any]], env: dict[str, str]) -> float:
    """Run ``cmd`` (output passed through), record it, its wall and CPU time; raise on failure.

    On a shared machine the wall time depends on the load; the CPU time
    (user + system of the command and its children) does not.
    """
    text = shlex.join(cmd)
    print(f"$ {text}", flush=True)
    t0, c0 = time.perf_counter(), _children_cpu_s()
    subprocess.run(cmd, check=True, env=env)
    seconds, cpu = time.perf_counter() - t0, _children_cpu_s() - c0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    log.append({"command": text, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "load_1min": round(load, 1)})
    print(f"  ({seconds:.1f} s wall, {cpu:.1f} s CPU, load {load:.1f})", flush=True)
    return seconds


def _n_labels(folder: Path) -> int:
    labels = folder / "labels"
    return len(list(labels.glob("*.json"))) if labels.is_dir() else 0


def _make_pairs(style: str, folder: Path, n: int, seed: int, args: argparse.Namespace, log: list, env: dict) -> float:
    """``editorbot data synth`` unless ``folder`` already holds exactly these ``n`` pairs."""
    from editorbot.training.data.pairs import synth_pair_name

    names = {synth_pair_name(seed + i, style) for i in range(n)}
    have = {p.stem for p in (folder / "labels").glob("*.json")} if (folder / "labels").is_dir() else set()
    if have == names:
        print(f"reusing {n} pairs in {folder}")
        return 0.0
    if have:
        raise SystemExit(f"bench.quality: {folder} holds other pairs; give an empty --work folder")
    return _run(
        [*_editorbot(), "data", "synth", "--n", str(n), "--out", str(folder), "--styles", style,
         "--seed", str(seed), "--duration", f"{args.duration:g}", "--jobs", str(args.jobs), "--quiet"],
        log, env,
    )


def _fmt(x: float) -> str:
    """Three decimals, or "-" for a figure the walker does not have (NaN)."""
    return "-" if x != x else f"{x:.3f}"


def _agent_flags(args: argparse.Namespace) -> list[str]:
    return [
        *(["--window", str(args.window)] if args.window else []),
        "--hidden", str(args.hidden), "--heads", str(args.heads),
        "--layers", str(args.layers), "--kernel", str(args.kernel), "--n-pos-feats", str(args.n_pos_feats),
        "--history", str(args.history), "--value-hidden", str(args.value_hidden), "--value-heads", str(args.value_heads),
        *(["--context"] if args.context else []),
    ]


def run_style(style: str, args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """The whole experiment for one style; its results as a dict."""
    import torch

    from editorbot.training.bc import bc_examples
    from editorbot.training.config import AgentConfig
    from editorbot.training.dataset import load_episodes, with_context_columns
    from editorbot.training.evaluate import (
        evaluate_baseline,
        evaluate_policy,
        evaluate_structure_majority,
        format_per_type,
        format_table,
    )
    from editorbot.training.models.agent import count_parameters
    from editorbot.training.ppo import load_agent

    log: list[dict[str, Any]] = []
    root = work / style
    train_dir, test_dir = root / "train", root / "test"
    t_data = _make_pairs(style, train_dir, args.n_train, args.train_seed, args, log, env)
    t_data += _make_pairs(style, test_dir, args.n_test, args.test_seed, args, log, env)

    # demonstrations (analysis of the training songs is cached for the trainer)
    t0 = time.perf_counter()
    cfg = AgentConfig(window=args.window, hidden=args.hidden, heads=args.heads, layers=args.layers,
                      kernel=args.kernel, n_pos_feats=args.n_pos_feats, history=args.history,
                      value_hidden=args.value_hidden,
                      value_heads=args.value_heads)
    train_eps = load_episodes(train_dir, require_labels=True, quiet=True)
    if args.context:  # the policy reads the whole-song context columns (engine.context) after the audio ones
        train_eps = with_context_columns(train_eps)
        cfg = dataclasses.replace(cfg, context=True, in_dim=int(train_eps[0].features.shape[1]))
    npz = root / "bc.npz"
    bc = bc_examples(train_eps, cfg, quiet=True, use_target=False)
    bc.save(npz)
    t_demo = time.perf_counter() - t0
    print(f"{style}: {len(bc)} demonstrations from {len(train_eps)} songs ({t_demo:.1f} s)")

    bc_dir, ppo_dir = root / "bc_only", root / "ppo_bc"
    for d in (bc_dir, ppo_dir):
        if d.exists():
            shutil.rmtree(d)
    common = ["--data-dir", str(train_dir), "--bc-mixed", str(npz), "--no-target", "--seed", str(args.seed),
              "--quiet", *_agent_flags(args)]
    t_bc = _run(
        [*_editorbot(), "train", "rl", "--save-dir", str(bc_dir), "--bc-only", "--bc-epochs", str(args.bc_epochs),
         "--bc-lr", f"{args.bc_lr:g}", "--bc-batch-size", str(args.bc_batch_size), *common],
        log, env,
    )
    # PPO+BC: continue from the BC-only checkpoint (its BC passes are done), PPO with BC mixed in
    ppo_dir.mkdir(parents=True)
    shutil.copy2(bc_dir / "last.pt", ppo_dir / "last.pt")
    t_ppo = _run(
        [*_editorbot(), "train", "rl", "--save-dir", str(ppo_dir), "--resume", "--bc-epochs", str(args.bc_epochs),
         "--bc-weight", "0.3", "--max-updates", str(args.ppo_updates), "--batch-size", str(args.batch_size),
         "--num-envs", str(args.num_envs), "--num-minibatches", str(args.num_minibatches),
         "--grad-accum", str(args.grad_accum), "--update-epochs", str(args.update_epochs),
         "--lr", f"{args.ppo_lr:g}", "--checkpoint-every", str(args.ppo_updates), *common],
        log, env,
    )

    test_eps = load_episodes(test_dir, require_labels=True, quiet=True)
    if args.context:
        test_eps = with_context_columns(test_eps)
    torch.set_num_threads(max(1, args.eval_threads))
    bc_agent = load_agent(bc_dir / "last.pt")
    ppo_agent = load_agent(ppo_dir / "last.pt")
    evals = [
        evaluate_baseline(test_eps, "keep"),
        evaluate_policy(bc_agent, test_eps, name="BC-only"),
        evaluate_policy(ppo_agent, test_eps, name="PPO+BC"),
        evaluate_structure_majority(train_dir, test_dir),
    ]
    print(f"\n{style} (held-out seeds {args.test_seed}-{args.test_seed + args.n_test - 1}):")
    print(format_table(evals))
    keep = evals[0].report.micro_f1
    for ev in evals[1:3]:
        if keep > 0:
            print(f"ratio {ev.walker} / always-KEEP micro F1: {ev.report.micro_f1 / keep:.2f}")
        else:  # this style edits every beat: no ratio to a walker that scores 0
            print(f"{ev.walker} micro F1 {ev.report.micro_f1:.3f}; always-KEEP scores 0 (every beat is edited)")
    for ev in evals:
        print()
        print(format_per_type(ev))
    return {
        "style": style,
        "train_seeds": [args.train_seed, args.train_seed + args.n_train - 1],
        "test_seeds": [args.test_seed, args.test_seed + args.n_test - 1],
        "n_train_songs": len(train_eps),
        "n_test_songs": len(test_eps),
        "n_demonstrations": len(bc),
        "policy_parameters": count_parameters(bc_agent),
        "seconds": {"data": round(t_data, 1), "demonstrations": round(t_demo, 1), "bc_only": round(t_bc, 1),
                    "ppo": round(t_ppo, 1), "bc_only_total": round(t_demo + t_bc, 1),
                    "ppo_bc_total": round(t_demo + t_bc + t_ppo, 1),
                    "bc_only_cpu": log[-2]["cpu_seconds"], "ppo_cpu": log[-1]["cpu_seconds"]},
        "commands": log,
        "evaluations": [ev.to_dict() for ev in evals],
    }


def run_reference(style: str, args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """``--reference-only``: the pairs, then always-KEEP and structure-majority on the true-grid labels."""
    from editorbot.training.evaluate import (
        format_per_type,
        format_table,
        keep_on_true_grid,
        read_label_docs,
        structure_majority,
    )

    log: list[dict[str, Any]] = []
    root = work / style
    train_dir, test_dir = root / "train", root / "test"
    t_data = _make_pairs(style, train_dir, args.n_train, args.train_seed, args, log, env)
    t_data += _make_pairs(style, test_dir, args.n_test, args.test_seed, args, log, env)
    train_docs, test_docs = read_label_docs(train_dir), read_label_docs(test_dir)
    evals = [keep_on_true_grid(test_docs), structure_majority(train_docs, test_docs)]
    print(f"\n{style} (held-out seeds {args.test_seed}-{args.test_seed + args.n_test - 1}, true grid):")
    print(format_table(evals))
    print()
    print(format_per_type(evals[1]))
    return {
        "style": style,
        "train_seeds": [args.train_seed, args.train_seed + args.n_train - 1],
        "test_seeds": [args.test_seed, args.test_seed + args.n_test - 1],
        "n_train_songs": len(train_docs),
        "n_test_songs": len(test_docs),
        "seconds": {"data": round(t_data, 1)},
        "commands": log,
        "evaluations": [ev.to_dict() for ev in evals],
    }


def markdown(results: list[dict[str, Any]]) -> str:
    """The summary table: one row per style and walker."""
    lines = [
        "| style | walker | type F1 micro | type F1 macro | type+amount acc. | train wall (s) | train CPU (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        sec = r["seconds"]
        wall, cpu = {}, {}
        if "bc_only_total" in sec:  # not in --reference-only results
            wall = {"BC-only": f"{sec['bc_only_total']:.0f}", "PPO+BC": f"{sec['ppo_bc_total']:.0f}"}
            cpu = {"BC-only": f"{sec['bc_only_cpu']:.0f}", "PPO+BC": f"{sec['bc_only_cpu'] + sec['ppo_cpu']:.0f}"}
        for ev in r["evaluations"]:
            lines.append(
                f"| {r['style']} | {ev['walker']} | {ev['micro_f1']:.3f} | {ev['macro_f1']:.3f} | "
                f"{_fmt(ev['type_amount_accuracy'])} | {wall.get(ev['walker'], '-')} | {cpu.get(ev['walker'], '-')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--styles", default="radio_edit@1", help="comma-separated editor styles (default radio_edit@1)")
    p.add_argument("--n-train", type=int, default=16, help="training pairs per style (default 16; full run 200)")
    p.add_argument("--n-test", type=int, default=8, help="held-out pairs per style (default 8; full run 50)")
    p.add_argument("--train-seed", type=int, default=1000, help="seed of the first training pair (default 1000)")
    p.add_argument("--test-seed", type=int, default=900000, help="seed of the first held-out pair (default 900000)")
    p.add_argument("--duration", type=float, default=40.0, help="song length in seconds (default 40)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes for data synth (default 2)")
    p.add_argument("--bc-epochs", type=int, default=2, help="BC passes (default 2; full run 25)")
    p.add_argument("--bc-lr", type=float, default=1e-3, help="BC learning rate (default 1e-3)")
    p.add_argument("--bc-batch-size", type=int, default=128, help="BC batch (default 128)")
    p.add_argument("--ppo-updates", type=int, default=1, help="PPO updates after BC (default 1; full run 6)")
    p.add_argument("--ppo-lr", type=float, default=1e-4, help="PPO learning rate (default 1e-4)")
    p.add_argument("--batch-size", type=int, default=512, help="PPO rollout transitions per update (default 512)")
    p.add_argument("--num-envs", type=int, default=8, help="songs walked in parallel (default 8)")
    p.add_argument("--num-minibatches", type=int, default=4, help="(default 4)")
    p.add_argument("--grad-accum", type=int, default=1, help="(default 1)")
    p.add_argument("--update-epochs", type=int, default=4, help="(default 4)")
    p.add_argument("--window", type=int, default=None,
                   help="beats per training observation (default: the encoders' receptive field)")
    p.add_argument("--history", type=int, default=16, help="beats of walk history the heads read (default 16)")
    p.add_argument("--hidden", type=int, default=128, help="policy width (default 128)")
    p.add_argument("--heads", type=int, default=4, help="(default 4)")
    p.add_argument("--layers", type=int, default=2, help="(default 2)")
    p.add_argument("--kernel", type=int, default=17, help="neighbourhood size in beats (default 17)")
    p.add_argument("--n-pos-feats", type=int, default=4, help="position columns the policy reads (default 4, all)")
    p.add_argument("--value-hidden", type=int, default=64, help="(default 64)")
    p.add_argument("--value-heads", type=int, default=4, help="(default 4)")
    p.add_argument("--context", action="store_true",
                   help="policies read the whole-song context columns (train rl --context; engine.context)")
    p.add_argument("--seed", type=int, default=1, help="training seed (default 1)")
    p.add_argument("--eval-threads", type=int, default=2, help="torch threads for the evaluation walks (default 2)")
    p.add_argument("--work", help="folder for data, demonstrations and checkpoints (default: a temp folder, removed)")
    p.add_argument("--cache", help="feature cache folder (default WORK/cache)")
    p.add_argument("--reference-only", action="store_true",
                   help="no training: make the pairs and score always-KEEP and structure-majority on the true grid")
    p.add_argument("--json", help="write the results as JSON")
    p.add_argument("--markdown", help="write the summary table as Markdown")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from editorbot.training.data.editors import STUDIO_STYLES, get_style

    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    for s in styles:
        try:
            get_style(s)
        except ValueError as err:
            p.error(f"--styles: {err}")
        if s in STUDIO_STYLES:  # their pairs need the studio chain: training.song_pairs.make_studio_pairs
            p.error(f"--styles: {s!r} is a studio style; data synth does not make its pairs")
    temp = None if args.work else tempfile.mkdtemp(prefix="editorbot-quality-")
    work = Path(args.work or temp).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache).resolve() if args.cache else work / "cache"
    os.environ["EDITORBOT_CACHE"] = str(cache)  # this process's analyses and the trainers' share it
    env = dict(os.environ)
    try:
        t0 = time.perf_counter()
        run = run_reference if args.reference_only else run_style
        results = [run(s, args, work, env) for s in styles]
        table = markdown(results)
        print()
        print(table)
        doc = {
            "settings": vars(args),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "seconds_total": round(time.perf_counter() - t0, 1),
            "results": results,
        }
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        if args.markdown:
            Path(args.markdown).write_text(table + "\n", encoding="utf-8")
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
