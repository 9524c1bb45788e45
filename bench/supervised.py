"""Benchmark: does the learned render beat the DSP render on an editor with a studio chain.

Makes synthetic pairs of the ``studio`` style (``training.data.editors``: the
``mixed`` walk, then a fixed ladder-filter + chorus + saturation chain over
the whole edit, which no EditPlan effect can express), trains the
supervised model on CPU within a time budget, and on songs never seen in
training (neither train nor validation) compares three renders of the
same plan against the desired edit by multi-scale STFT distance
(``training.losses.multiscale_stft``, 512/1024/2048):

- learned: ``training.supervised.render_learned`` with the best checkpoint;
- dsp: ``engine.render.render_plan`` (the baseline run in the same process);
- raw: the plan's structural re-sequencing of the raw audio.

Prints the three distances, the ratios learned/dsp and learned/raw (the
goal: both <= 0.5) and the training time. The defaults train in well under
30 minutes on 2 cores.

    .venv/bin/python bench/supervised.py [--songs 24] [--test-songs 4] [--duration 20] [--minutes 15]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np
import torch

from editorbot.engine.audio import load_audio
from editorbot.engine.render import render_plan
from editorbot.training.config import SupervisedConfig
from editorbot.training.data.pairs import load_pair_plan, read_label_doc
from editorbot.training.losses import multiscale_stft
from editorbot.training.supervised import (
    load_model,
    load_song_pairs,
    make_studio_pairs,
    render_learned,
    split_by_song,
    structural_plan,
    train,
)

log = logging.getLogger("bench.supervised")


def distance(pred: np.ndarray, target: np.ndarray) -> float:
    """Multi-scale STFT distance of ``(n_channels, n)`` renders (channels as a batch)."""
    n = min(pred.shape[1], target.shape[1])
    return float(multiscale_stft(torch.from_numpy(pred[:, :n].copy()), torch.from_numpy(target[:, :n].copy())))


def evaluate(test_dir: str, checkpoint: str) -> dict[str, float]:
    """Mean learned / dsp / raw distances to the desired edit over the pairs in ``test_dir``."""
    model = load_model(checkpoint)
    sums = {"learned": 0.0, "dsp": 0.0, "raw": 0.0}
    labels = sorted(os.listdir(os.path.join(test_dir, "labels")))
    for name in labels:
        label_path = os.path.join(test_dir, "labels", name)
        plan = load_pair_plan(label_path)
        raw = load_audio(plan.source.path)
        desired = load_audio(os.path.join(test_dir, read_label_doc(label_path)["edit"])).samples
        sr = raw.sample_rate
        sums["learned"] += distance(render_learned(plan, raw.samples, sr, model), desired)
        sums["dsp"] += distance(render_plan(plan, raw.samples, sr), desired)
        sums["raw"] += distance(render_plan(structural_plan(plan), raw.samples, sr), desired)
    return {k: v / len(labels) for k, v in sums.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=int, default=24, help="songs for training + validation (default 24)")
    p.add_argument("--test-songs", type=int, default=4, help="held-out songs for the comparison (default 4)")
    p.add_argument("--duration", type=float, default=20.0, help="song length in seconds (default 20)")
    p.add_argument("--minutes", type=float, default=15.0, help="training time budget (default 15)")
    p.add_argument("--dim", type=int, default=128, help="encoder and decoder width (default 128)")
    p.add_argument("--layers", type=int, default=2, help="blocks in each of encoder and decoder (default 2)")
    p.add_argument("--crop-s", type=float, default=1.5, help="training crop length in seconds (default 1.5)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    root = args.out or tempfile.mkdtemp(prefix="bench_supervised_")
    data_dir, test_dir, save_dir = (os.path.join(root, d) for d in ("data", "test", "run"))
    t = time.perf_counter()
    make_studio_pairs(args.songs, data_dir, seed=0, duration_s=args.duration)
    make_studio_pairs(args.test_songs, test_dir, seed=10_000, duration_s=args.duration)
    data_s = time.perf_counter() - t

    cfg = SupervisedConfig(encoder_dim=args.dim, decoder_dim=args.dim, n_layers=args.layers, n_heads=4,
                           lr=2e-3, dropout=0.0, patience=4, epochs=200, checkpoint_every=100, val_fraction=0.2,
                           crop_s=args.crop_s)
    songs = load_song_pairs(data_dir, quiet=True)
    train_songs, val_songs = split_by_song(songs, cfg.val_fraction, cfg.seed)
    t = time.perf_counter()
    result = train(train_songs, val_songs, save_dir, config=cfg, quiet=True, max_seconds=60.0 * args.minutes)
    train_s = time.perf_counter() - t

    d = evaluate(test_dir, os.path.join(save_dir, "best.pt"))
    print(f"pairs: {args.songs} songs of {args.duration:g} s ({len(train_songs)} train, {len(val_songs)} val), "
          f"{args.test_songs} held-out test songs; made in {data_s:.0f} s")
    print(f"model: dim {args.dim}, {args.layers}+{args.layers} layers; trained {result['step']} steps, "
          f"{result['epoch']} epochs in {train_s / 60:.1f} min on {args.threads} threads"
          f"{' (early stop)' if result['stopped_early'] else ''}; best val/total_loss {result['best_val']:.4f} "
          f"at epoch {result['best_epoch']}")
    print("multi-scale STFT distance to the desired edit (mean over held-out songs):")
    print(f"  learned render        {d['learned']:.4f}")
    print(f"  DSP render (baseline) {d['dsp']:.4f}")
    print(f"  re-sequenced raw      {d['raw']:.4f}")
    print(f"ratio learned/dsp {d['learned'] / d['dsp']:.3f}   learned/raw {d['learned'] / d['raw']:.3f}   (goal <= 0.5)")
    return 0 if d["learned"] <= 0.5 * d["dsp"] and d["learned"] <= 0.5 * d["raw"] else 1


if __name__ == "__main__":
    sys.exit(main())
