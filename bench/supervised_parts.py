"""What the distance between the DSP render of an inferred plan and another editor's edit is made of.

    .venv/bin/python bench/supervised_parts.py DIR [--limit N] [--checkpoint RUN/best.pt]

``DIR`` is a folder of foreign-editor pairs (``bench/foreign_pairs.py``,
e.g. the dev half ``bench/supervised.py --out`` leaves in ``OUT/data``). For
each pair it renders the inferred plan with ``engine.render`` and measures
the multi-scale STFT distance to the edit (``training.losses.multiscale_stft``,
512/1024/2048) after removing one difference at a time with the truth at
hand (oracles: what a perfect model of that part would reach):

- ``level``: the render peak-normalised to -1 dBFS, as the editor does;
- ``mp3``: for pairs the editor sent through an mp3 round trip, the levelled
  render through the same round trip (``foreign_editor._mp3_round_trip``);
- ``xfade``: the render with 26 ms splice cross-fades (the editor's mean
  overlap) in place of 10 ms, levelled;
- ``timing``: the levelled render retimed per output beat by the lags
  measured against the edit (``training.models.timing.measure_lags``,
  blocks with correlation >= ``MIN_CORRELATION``; ``retime``);
- ``timing+band``: that, then the exact per-frame, per-mel-band gain
  (128 bands, +-30 dB) that takes its spectrum to the edit's: the best a
  per-band gain can do once the timing is right; what is left is the
  effects' phase, transients and tails, and the lags the oracle missed;
- ``shift10``: the edit against itself 10 ms late, the metric's sensitivity
  to timing alone;
- with ``--checkpoint``, ``learned``: the checkpoint's learned timing and
  level (``training.models.timing.TimingModel``, no network) on the DSP
  render: how much of the ``timing`` oracle's share the plan lets a model
  take (use pairs the checkpoint was not trained on, e.g. ``OUT/test``).

It prints the distances per pair and their means.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.foreign_editor import _mp3_round_trip
from bench.supervised import distance
from editorbot.engine.audio import load_audio
from editorbot.engine.render import render_plan
from editorbot.training.data.pairs import load_pair_plan, read_label_doc
from editorbot.training.losses import NEPER_PER_DB, magnitude
from editorbot.training.models.supervised import SpectralFrontEnd
from editorbot.training.models.timing import MIN_CORRELATION, TimingModel, measure_lags, retime, timing_blocks
from editorbot.training.supervised_checkpoint import load_model

PARTS = ("dsp", "level", "mp3", "xfade", "timing", "timing+band", "shift10")


def peak_normalised(x: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    return x * (10 ** (peak_db / 20) / max(float(np.abs(x).max()), 1e-9))


def band_oracle(x: np.ndarray, target: np.ndarray, fe: SpectralFrontEnd, max_db: float = 30.0) -> np.ndarray:
    """``x`` with the per-frame, per-mel-band gain (from the channels' means) that gives it the target's log-mel."""
    with torch.no_grad():
        mono = torch.from_numpy(x.mean(axis=0, dtype=np.float64).astype(np.float32))[None]
        tmono = torch.from_numpy(target.mean(axis=0, dtype=np.float64).astype(np.float32))[None]
        gain = ((fe.log_mel(magnitude(fe.stft(tmono))) - fe.log_mel(magnitude(fe.stft(mono)))) / NEPER_PER_DB)
        lin = fe.linear_gain(gain.clamp(-max_db, max_db))
        out = [fe.istft(fe.stft(torch.from_numpy(c.astype(np.float32))[None]) * lin, x.shape[1])[0].numpy() for c in x]
    return np.stack(out)


def parts_of(label_path: str, root: str, timing: TimingModel | None = None) -> dict:
    """The distances of ``PARTS`` (and ``learned`` with ``timing``) for one pair."""
    doc = read_label_doc(label_path)
    plan = load_pair_plan(label_path)
    raw = load_audio(plan.source.path)
    sr = raw.sample_rate
    edit = load_audio(os.path.join(root, doc["edit"])).samples
    dsp = render_plan(plan, raw.samples, sr)
    n = min(dsp.shape[1], edit.shape[1])
    dsp, edit = dsp[:, :n], edit[:, :n]
    level = peak_normalised(dsp)
    row = {"name": os.path.basename(label_path)[: -len(".json")]}
    row["dsp"], row["level"] = distance(dsp, edit), distance(level, edit)
    back = _mp3_round_trip(level.astype(np.float64), sr) if doc["foreign_events"].get("mp3") else None
    row["mp3"] = distance(back[:, :n], edit) if back is not None else row["level"]
    row["xfade"] = distance(peak_normalised(render_plan(plan, raw.samples, sr, crossfade_s=0.026)[:, :n]), edit)
    blocks = timing_blocks(plan, n, sr)
    lags, scores = measure_lags(level.mean(axis=0), edit.mean(axis=0), blocks, sr)
    timed = retime(level, blocks, np.where(scores >= MIN_CORRELATION, lags, 0.0), sr)
    row["timing"] = distance(timed, edit)
    row["timing+band"] = distance(band_oracle(timed, edit, SpectralFrontEnd(sr, 128)), edit)
    k = sr // 100
    row["shift10"] = distance(np.concatenate([np.zeros((edit.shape[0], k), edit.dtype), edit[:, :-k]], axis=1), edit)
    if timing is not None:
        row["learned"] = distance(timing.apply([dsp], blocks, sr)[0], edit)
    row["lag_ms"] = float(1000 * np.mean(np.abs(lags[scores >= MIN_CORRELATION]))) if np.any(scores >= MIN_CORRELATION) else 0.0
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="pair folder (labels/, input/, desired_output/)")
    p.add_argument("--limit", type=int, help="the first N pairs only")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--checkpoint", help="a supervised checkpoint: also its learned timing and level alone")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    files = sorted(glob.glob(os.path.join(args.folder, "labels", "*.json")))[: args.limit]
    if not files:
        print(f"{args.folder}: no label files (labels/*.json)", file=sys.stderr)
        return 2
    timing = load_model(args.checkpoint).timing if args.checkpoint else None
    parts = PARTS + (("learned",) if timing is not None else ())
    rows = []
    print(f"  {'pair':<48} " + " ".join(f"{k:>11}" for k in parts) + "  |lag| ms")
    for f in files:
        r = parts_of(f, args.folder, timing)
        rows.append(r)
        print(f"  {r['name'][:48]:<48} " + " ".join(f"{r[k]:11.3f}" for k in parts) + f"  {r['lag_ms']:7.1f}", flush=True)
    means = {k: float(np.mean([r[k] for r in rows])) for k in parts}
    print(f"  {'mean of ' + str(len(rows)):<48} " + " ".join(f"{means[k]:11.3f}" for k in parts)
          + f"  {np.mean([r['lag_ms'] for r in rows]):7.1f}")
    print("share of the DSP distance removed: " + ", ".join(
        f"{k} {100 * (means['dsp'] - means[k]) / means['dsp']:.0f} %" for k in parts if k not in ("dsp", "shift10")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
