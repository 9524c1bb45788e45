"""Benchmark: does the learned render beat the DSP render on edits made by someone else's tools.

Two kinds of pairs (``--data``):

- ``foreign`` (the default, ``make bench-supervised``): real corpus songs
  (``bench/corpus.py``; training on the dev half, testing on the test half,
  never the same track on both sides) edited by ``bench/foreign_editor.py``
  (its own splicer, pedalboard effects at off-grid settings, chorus and
  phaser outside the vocabulary, peak normalisation, some mp3 round trips),
  with the plan of every pair, training and test alike, found by label
  inference (``bench/foreign_pairs.py``), not the editor's truth: what a user
  with a folder of (raw, edited) songs has.
- ``studio``: synthetic pairs of the ``studio`` style (the ``mixed`` walk,
  then a fixed ladder-filter + chorus + saturation chain over the whole edit).

It trains the supervised model on CPU within a time budget, and on the
held-out pairs compares three renders of the same plan against the true edit
by multi-scale STFT distance (``training.losses.multiscale_stft``,
512/1024/2048; the common length of render and edit):

- learned: ``training.learned_render.render_learned`` with the best checkpoint
  (the learned timing and level, then the network's per-band gain);
- timing: the learned timing and level alone on the DSP render (the
  checkpoint's ``TimingModel``, no network), to show what each part brings;
- dsp: ``engine.render.render_plan`` (the baseline run in the same process);
- raw: the plan's structural re-sequencing of the raw audio.

It prints the three distances over whole edits and over the plan's KEEP
spans (segments of at least ``KEEP_MIN_S``: the learned render must not be
worse there), per song and on average, the ratio learned/dsp (goal <= 0.5)
and the model size and training time. Pairs already in ``--out`` are reused.

    .venv/bin/python bench/supervised.py [--data foreign|studio] [--songs 12] [--seeds 2] [--test-songs 6]
        [--excerpt 30] [--minutes 8] [--dim 64] [--layers 2] [--raw-mix] [--no-timing] [--out DIR]
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.foreign_pairs import make_foreign_pairs
from editorbot.engine.audio import load_audio
from editorbot.engine.render import render_plan
from editorbot.training.config import SupervisedConfig
from editorbot.training.data.pairs import load_pair_plan, read_label_doc
from editorbot.training.learned_render import render_learned
from editorbot.training.losses import multiscale_stft
from editorbot.training.models.timing import BLOCK_FEATURES, timing_blocks
from editorbot.training.song_pairs import load_song_pairs, make_studio_pairs, split_by_song, structural_plan
from editorbot.training.supervised import train
from editorbot.training.supervised_checkpoint import load_model

log = logging.getLogger("bench.supervised")

#: KEEP segments shorter than this are left out of the KEEP-span distance (a splice's
#: cross-fade and an STFT window at each end would be most of them).
KEEP_MIN_S = 0.5


def distance(pred: np.ndarray, target: np.ndarray) -> float:
    """Multi-scale STFT distance of ``(n_channels, n)`` renders (channels as a batch)."""
    n = min(pred.shape[1], target.shape[1])
    return float(multiscale_stft(torch.from_numpy(np.ascontiguousarray(pred[:, :n], dtype=np.float32)),
                                 torch.from_numpy(np.ascontiguousarray(target[:, :n], dtype=np.float32))))


def keep_spans(plan, n: int, sr: int) -> list[tuple[int, int]]:
    """Sample spans ``[a, b)`` (below ``n``) of the plan's KEEP segments of at least ``KEEP_MIN_S``."""
    spans = []
    for seg in plan.segments:
        a, b = round(seg.dst_start_s * sr), min(n, round((seg.dst_start_s + seg.length_s) * sr))
        if seg.action == "KEEP" and b - a >= KEEP_MIN_S * sr:
            spans.append((a, b))
    return spans


def evaluate(test_dir: str, checkpoint: str) -> list[dict]:
    """Per held-out pair: learned / dsp / raw distances to the true edit, whole and over KEEP spans."""
    model = load_model(checkpoint)
    rows = []
    for name in sorted(f for f in os.listdir(os.path.join(test_dir, "labels")) if f.endswith(".json")):
        label_path = os.path.join(test_dir, "labels", name)
        plan = load_pair_plan(label_path)
        raw = load_audio(plan.source.path)
        desired = load_audio(os.path.join(test_dir, read_label_doc(label_path)["edit"])).samples
        sr = raw.sample_rate
        dsp = render_plan(plan, raw.samples, sr)
        timed = model.timing.apply([dsp], timing_blocks(plan, dsp.shape[1], sr), sr)[0]
        renders = {
            "learned": render_learned(plan, raw.samples, sr, model),
            "timing": timed,
            "dsp": dsp,
            "raw": render_plan(structural_plan(plan), raw.samples, sr),
        }
        n = min(desired.shape[1], *(r.shape[1] for r in renders.values()))
        spans = keep_spans(plan, n, sr)
        row: dict = {"name": name[: -len(".json")], "keep_s": sum(b - a for a, b in spans) / sr}
        for key, render in renders.items():
            row[key] = distance(render[:, :n], desired[:, :n])
            if spans:
                row[f"{key}_keep"] = distance(
                    np.concatenate([render[:, a:b] for a, b in spans], axis=1),
                    np.concatenate([desired[:, a:b] for a, b in spans], axis=1),
                )
        rows.append(row)
    return rows


def mean_of(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return float(np.mean(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=("foreign", "studio"), default="foreign", help="kind of pairs (default foreign)")
    p.add_argument("--songs", type=int, default=12, help="training + validation songs (default 12)")
    p.add_argument("--seeds", type=int, default=2, help="foreign: edits per training song (default 2)")
    p.add_argument("--test-songs", type=int, default=6, help="held-out songs for the comparison (default 6)")
    p.add_argument("--excerpt", type=float, default=30.0, help="foreign: excerpt of each track, seconds (default 30)")
    p.add_argument("--start", type=float, default=10.0, help="foreign: excerpt start, seconds (default 10)")
    p.add_argument("--duration", type=float, default=20.0, help="studio: song length in seconds (default 20)")
    p.add_argument("--minutes", type=float, default=8.0, help="training time budget (default 8)")
    p.add_argument("--dim", type=int, default=64, help="encoder and decoder width (default 64)")
    p.add_argument("--layers", type=int, default=2, help="blocks in each of encoder and decoder (default 2)")
    p.add_argument("--crop-s", type=float, default=1.5, help="training crop length in seconds (default 1.5)")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (default 2e-3)")
    p.add_argument("--raw-mix", action="store_true",
                   help="the decoder also mixes in the raw re-sequencing per band (SupervisedConfig.raw_mix)")
    p.add_argument("--no-timing", action="store_true",
                   help="no learned timing and level before the network (SupervisedConfig.learn_timing off)")
    p.add_argument("--batch-size", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", help="work folder; pairs already there are reused (default: a temporary one)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    root = args.out or tempfile.mkdtemp(prefix="bench_supervised_")
    data_dir, test_dir, save_dir = (os.path.join(root, d) for d in ("data", "test", "run"))
    t = time.perf_counter()
    if args.data == "foreign":
        make_foreign_pairs("dev", args.songs, args.seeds, data_dir, start_s=args.start, excerpt_s=args.excerpt)
        make_foreign_pairs("test", args.test_songs, 1, test_dir, start_s=args.start, excerpt_s=args.excerpt,
                           first_seed=1000)
        what = (f"{args.songs} corpus dev songs x {args.seeds} foreign edits of {args.excerpt:g} s, "
                f"{args.test_songs} test songs; plans from label inference")
    else:
        make_studio_pairs(args.songs, data_dir, seed=0, duration_s=args.duration)
        make_studio_pairs(args.test_songs, test_dir, seed=10_000, duration_s=args.duration)
        what = f"{args.songs} studio songs of {args.duration:g} s, {args.test_songs} held-out songs"
    data_s = time.perf_counter() - t

    cfg = SupervisedConfig(encoder_dim=args.dim, decoder_dim=args.dim, n_layers=args.layers, n_heads=4,
                           lr=args.lr, dropout=0.0, patience=4, epochs=200, checkpoint_every=100, val_fraction=0.2,
                           crop_s=args.crop_s, raw_mix=args.raw_mix, batch_size=args.batch_size,
                           learn_timing=not args.no_timing)
    songs = load_song_pairs(data_dir, quiet=True)
    train_songs, val_songs = split_by_song(songs, cfg.val_fraction, cfg.seed)
    t = time.perf_counter()
    result = train(train_songs, val_songs, save_dir, config=cfg, quiet=True, max_seconds=60.0 * args.minutes)
    train_s = time.perf_counter() - t
    best = load_model(os.path.join(save_dir, "best.pt"))
    n_params = sum(q.numel() for q in best.parameters())
    timing = best.timing

    rows = evaluate(test_dir, os.path.join(save_dir, "best.pt"))
    print(f"pairs: {what}; {len(train_songs)} train / {len(val_songs)} val pairs (split by song), "
          f"{len(rows)} test pairs; made or found in {data_s:.0f} s")
    output = ("learned timing and level, " if not timing.is_identity else "") + (
        "per-band gain and raw mix" if args.raw_mix else "per-band gain")
    print(f"model: {output}, dim {args.dim}, {args.layers}+{args.layers} layers, {n_params / 1e3:.0f} k parameters; "
          f"trained {result['step']} steps, {result['epoch']} epochs in {train_s / 60:.1f} min on {args.threads} "
          f"threads{' (early stop)' if result['stopped_early'] else ''}; best val/total_loss "
          f"{result['best_val']:.4f} at epoch {result['best_epoch']}; TensorBoard: {save_dir}/tb")
    if not timing.is_identity:
        fit = timing.fit
        print(f"timing: lag = {[round(w, 5) for w in timing.weights]} s x ({', '.join(BLOCK_FEATURES)}); on the "
              f"training pairs mean |lag| {fit.get('lag_abs_ms_before', 0.0):.1f} -> "
              f"{fit.get('lag_abs_ms_after', 0.0):.1f} ms over {fit.get('blocks', 0)} beats; level rule "
              f"{timing.level_rule} {timing.level_db:.2f} dB")
    print("multi-scale STFT distance to the true edit, per held-out pair (whole edit | KEEP spans):")
    print(f"  {'pair':<48} {'learned':>8} {'timing':>8} {'dsp':>8} {'raw':>8} | {'learned':>8} {'timing':>8} "
          f"{'dsp':>8}  keep s")
    nan = float("nan")
    for r in rows:
        print(f"  {r['name'][:48]:<48} {r['learned']:8.4f} {r['timing']:8.4f} {r['dsp']:8.4f} {r['raw']:8.4f} | "
              f"{r.get('learned_keep', nan):8.4f} {r.get('timing_keep', nan):8.4f} {r.get('dsp_keep', nan):8.4f}  "
              f"{r['keep_s']:5.1f}")
    d = {k: mean_of(rows, k) for k in ("learned", "timing", "dsp", "raw", "learned_keep", "timing_keep", "dsp_keep")}
    print(f"  {'mean':<48} {d['learned']:8.4f} {d['timing']:8.4f} {d['dsp']:8.4f} {d['raw']:8.4f} | "
          f"{d['learned_keep']:8.4f} {d['timing_keep']:8.4f} {d['dsp_keep']:8.4f}")
    worse_keep = [r["name"] for r in rows if r.get("learned_keep", 0.0) > r.get("dsp_keep", 0.0)]
    print(f"ratio learned/dsp {d['learned'] / d['dsp']:.3f} (goal <= 0.5), timing alone/dsp "
          f"{d['timing'] / d['dsp']:.3f}, learned/raw {d['learned'] / d['raw']:.3f}; "
          f"KEEP spans learned/dsp {d['learned_keep'] / d['dsp_keep']:.3f} (goal <= 1), "
          f"worse on KEEP spans in {len(worse_keep)} of {len(rows)} pairs")
    return 0 if d["learned"] <= 0.5 * d["dsp"] and not worse_keep else 1


if __name__ == "__main__":
    sys.exit(main())
