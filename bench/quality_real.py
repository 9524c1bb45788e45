"""Relational personas on real corpus songs: event F1 of every walker on the test half.

For each relational persona (``loud_loop@1``, ``repeat_cut@1``,
``quiet_filter@1``; ``training.data.editors.RELATIONAL_STYLES``):

1. excerpts (``--excerpt`` seconds from the start) of ``--n`` test-half and
   ``--n-dev`` dev-half corpus tracks (``bench.corpus``, split by sha1);
2. persona pairs of them (``training.data.pairs.make_pair_from_audio``,
   what ``editorbot data pair --style P`` runs);
3. the dev pairs' label-inferred behavioural-cloning file
   (``training.labels.build_dataset``, what ``editorbot data labels``
   writes): training data for a policy, scored against the truth as well;
4. on the test pairs, per beat of the pair's grid, the event F1 against the
   persona's truth labels of: always-KEEP, the bundled model
   (``export.walk.plan_analysis`` without a target), the hand-written
   audio-only baseline of the persona's rule (``bench.relational_baselines``),
   label inference on the pair (``training.labels.infer_pair``) and, with
   ``--checkpoint``, a trained policy (``training.ppo.load_agent``, walked
   greedily without a target; repeat the flag to score several on the same
   songs, each named by its checkpoint's folder);
5. with ``--synth N``, the same walkers on ``N`` held-out synthetic songs
   (``editorbot data synth --seed 900000``, true grid), so a policy's
   figures on real and synthetic songs sit side by side.

Event F1: beat-level F1 of the edit events, the beats that are not KEEP.
A predicted beat is a hit when its type equals the true type and the true
type is not KEEP; precision is hits over predicted non-KEEP beats, recall
hits over true non-KEEP beats. Always-KEEP scores 0 by construction, so
beat accuracy (share of beats whose type is right, KEEP included) is
printed beside it. Every row prints the always-KEEP and hand-written
baseline figures of the same songs in the same run.

    python -m bench.quality_real [--personas A,B] [--n 4] [--n-dev 4] [--excerpt 60]
                                 [--synth N] [--checkpoint CKPT ...] [--work DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import corpus
from bench.relational_baselines import baseline_labels

logger = logging.getLogger("bench.quality_real")

PERSONAS = ("loud_loop@1", "repeat_cut@1", "quiet_filter@1")
#: First seed of the held-out synthetic songs (``--synth``), far from ``data synth``'s usual training seeds.
SYNTH_SEED = 900000


def check_personas(text: str) -> list[str]:
    """The comma-separated style names of ``--personas``; ValueError names the first unknown one."""
    from editorbot.training.data.editors import get_style

    personas = [p for p in text.split(",") if p]
    for p in personas:
        get_style(p)
    return personas


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float as None (strict JSON: an undefined precision is null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def event_f1(true: list[np.ndarray], pred: list[np.ndarray]) -> dict[str, float]:
    """Event F1 (module docstring) and beat accuracy over songs of ``(n,)`` type indices.

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall`` (nan where undefined), ``accuracy``,
        ``n_beats``, ``n_true_events``, ``n_pred_events`` (beats).
    """
    from editorbot.engine import actions as vocab

    keep = vocab.type_index("KEEP")
    t = np.concatenate(true) if true else np.zeros(0, np.int64)
    p = np.concatenate(pred) if pred else np.zeros(0, np.int64)
    hits = int(np.sum((t == p) & (t != keep)))
    n_true, n_pred = int(np.sum(t != keep)), int(np.sum(p != keep))
    precision = hits / n_pred if n_pred else float("nan")
    recall = hits / n_true if n_true else float("nan")
    f1 = 2 * hits / (n_true + n_pred) if n_true + n_pred else float("nan")
    accuracy = float(np.mean(t == p)) if t.size else float("nan")
    return {"f1": f1, "precision": precision, "recall": recall, "accuracy": accuracy,
            "n_beats": int(t.size), "n_true_events": n_true, "n_pred_events": n_pred}


def on_grid(types: np.ndarray, src_beats: np.ndarray, dst_beats: np.ndarray) -> np.ndarray:
    """``(n_dst,)`` per-beat types moved from one grid to another: each target beat takes the source beat holding its middle."""
    src = np.asarray(src_beats, dtype=np.float64)
    dst = np.asarray(dst_beats, dtype=np.float64)
    period = float(np.median(np.diff(dst))) if dst.size > 1 else 0.5
    mids = dst + 0.5 * np.append(np.diff(dst), period)
    idx = np.clip(np.searchsorted(src, mids, side="right") - 1, 0, max(src.size - 1, 0))
    return np.asarray(types, dtype=np.int64)[idx] if src.size else np.zeros(dst.size, np.int64)


def excerpts(split: str, n: int, seconds: float, root: Path, out: Path, windows: int = 1) -> list[Path]:
    """The first ``seconds`` of ``n`` tracks of one corpus half, as WAV files in ``out``.

    Tracks are taken one package at a time in turn (in list order within a
    package), so a small ``n`` spans several sources of music. With
    ``windows`` > 1, each track also gives its next whole ``seconds``-long
    windows, up to ``windows`` in all (``NAME@K.wav`` for the ``K``-th),
    listed right after its first.
    """
    from editorbot.engine.audio import load_audio, write_audio

    by_package: dict[str, list[corpus.Track]] = {}
    for track in corpus.load_tracks(root, split=split):
        by_package.setdefault(track.package, []).append(track)
    queues = list(by_package.values())
    chosen: list[corpus.Track] = []
    while len(chosen) < n and any(queues):
        for q in queues:
            if q and len(chosen) < n:
                chosen.append(q.pop(0))
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for track in chosen:
        stem = track.track_id.replace("/", "__").rsplit(".", 1)[0]
        first = out / f"{stem}.wav"
        audio = None
        if not first.exists() or windows > 1:
            audio = load_audio(track.path)
        for k in range(windows):
            dest = first if k == 0 else out / f"{stem}@{k}.wav"
            if audio is not None:
                start, stop = int(k * seconds * audio.sample_rate), int((k + 1) * seconds * audio.sample_rate)
                if k and stop > audio.samples.shape[1]:
                    break
                if not dest.exists():
                    write_audio(dest, audio.samples[:, start:stop], audio.sample_rate)
            made.append(dest)
    return made


def make_pairs(style: str, songs: list[Path], folder: Path) -> list[Any]:
    """Persona pairs of ``songs`` in ``folder`` (``editorbot data pair``'s library call); songs it refuses are logged."""
    from editorbot.engine.errors import BadInput
    from editorbot.training.data.pairs import make_pair_from_audio

    made = []
    for song in songs:
        try:
            made.append(make_pair_from_audio(song, style, folder, 0))
        except BadInput as e:
            logger.warning("%s: %s", song, e)
    return made


def checkpoint_walker(checkpoint: str, checkpoints: list[str]) -> str:
    """The walker name of a trained policy: "trained policy", or its folder's name when several are scored."""
    return "trained policy" if len(checkpoints) == 1 else f"policy {Path(checkpoint).parent.name}"


def score_test(style: str, records: list[Any], policy: Any, checkpoints: list[str], folder: Path) -> dict[str, Any]:
    """Every walker's event F1 on one persona's test pairs (module docstring)."""
    from editorbot.engine.analysis import analyze
    from editorbot.engine.plan import plan_to_dict
    from editorbot.export.walk import plan_analysis
    from editorbot.training.labels.evaluate import truth_on_beats
    from editorbot.training.labels.infer import infer_pair

    walkers: dict[str, list[np.ndarray]] = {"always-KEEP": [], "bundled model": [], "hand-written rule": [],
                                            "label inference": []}
    truth: list[np.ndarray] = []
    names: list[str] = []
    grids: list[np.ndarray] = []  # each pair's analysed beats, which the policies walk
    truth_grids: list[np.ndarray] = []  # the beats of its truth (the synthesizer's for a synthetic pair)
    seconds: dict[str, float] = {k: 0.0 for k in walkers}
    for rec in records:
        with open(rec.label_path, encoding="utf-8") as f:
            doc = json.load(f)
        beats = np.asarray(doc["grid"]["beat_times"], dtype=np.float64)[: rec.n_beats]
        true_t = np.asarray(doc["beat_labels"]["type"], dtype=np.int64)
        truth.append(true_t)
        truth_grids.append(beats)
        names.append(rec.name)
        walkers["always-KEEP"].append(np.zeros_like(true_t))
        analysis = analyze(rec.raw_path)
        grids.append(np.asarray(analysis.grid.beat_times, dtype=np.float64))
        t = time.perf_counter()
        plan = plan_analysis(analysis, policy).plan
        walkers["bundled model"].append(truth_on_beats(plan_to_dict(plan), beats)[0])
        seconds["bundled model"] += time.perf_counter() - t
        t = time.perf_counter()
        rule = baseline_labels(style, analysis)[:, 0]
        walkers["hand-written rule"].append(on_grid(rule, analysis.grid.beat_times, beats))
        seconds["hand-written rule"] += time.perf_counter() - t
        t = time.perf_counter()
        inferred = infer_pair(rec.raw_path, rec.edit_path)
        if inferred.alignable:
            walkers["label inference"].append(on_grid(inferred.labels[:, 0], inferred.beat_times, beats))
        else:
            logger.warning("%s: label inference found the pair unalignable (%s)", rec.name, inferred.reason)
            walkers["label inference"].append(np.zeros_like(true_t))
        seconds["label inference"] += time.perf_counter() - t
    for checkpoint in checkpoints:
        from editorbot.training.dataset import load_episodes, with_context_columns
        from editorbot.training.evaluate import policy_walks
        from editorbot.training.ppo import load_agent

        t = time.perf_counter()
        agent = load_agent(checkpoint)
        loaded = load_episodes(folder, require_labels=True, quiet=True)
        eps = {ep.name: ep for ep in (with_context_columns(loaded) if agent.config.context else loaded)}
        walks = policy_walks(agent, [eps[n] for n in names])
        walker = checkpoint_walker(checkpoint, checkpoints)
        walkers[walker] = []
        for name, w, grid, beats in zip(names, walks, grids, truth_grids, strict=True):
            # The walk is on the analysed grid; a synthetic pair's truth is on the synthesizer's,
            # which can hold a beat more or less at either end: moved by time, not by index.
            if w.shape[0] != grid.size:
                logger.warning("%s: policy walked %d beats, the analysis has %d", name, w.shape[0], grid.size)
            walkers[walker].append(on_grid(w[: grid.size, 0], grid[: w.shape[0]], beats))
        seconds[walker] = time.perf_counter() - t
    scores = {k: event_f1(truth, v) for k, v in walkers.items()}
    for k in scores:
        scores[k]["seconds"] = round(seconds.get(k, 0.0), 1)
    return scores


def table(style: str, scores: dict[str, Any]) -> str:
    """One persona's rows: each walker with the same-run always-KEEP and hand-written figures beside it."""
    keep, rule = scores["always-KEEP"], scores["hand-written rule"]
    lines = [f"{'persona':<20} {'walker':<22} {'event F1':>8} {'P':>6} {'R':>6} {'acc':>6} "
             f"{'| KEEP F1':>9} {'KEEP acc':>8} {'rule F1':>8} {'events':>7} {'beats':>6}"]
    for name, s in scores.items():
        lines.append(f"{style:<20} {name:<22} {s['f1']:8.3f} {s['precision']:6.3f} {s['recall']:6.3f} "
                     f"{s['accuracy']:6.3f} {keep['f1']:9.3f} {keep['accuracy']:8.3f} {rule['f1']:8.3f} "
                     f"{s['n_true_events']:7d} {s['n_beats']:6d}")
    return "\n".join(lines)


def run_persona(style: str, args: argparse.Namespace, work: Path, dev: list[Path], test: list[Path],
                policy: Any) -> dict[str, Any]:
    """Pairs, the dev BC file and the test scores of one persona."""
    from editorbot.training.labels.dataset import build_dataset

    root = work / style.replace("@", "_")
    t = time.perf_counter()
    dev_pairs = make_pairs(style, dev, root / "dev")
    test_pairs = make_pairs(style, test, root / "test")
    t_pairs = time.perf_counter() - t
    dev_eval: dict[str, Any] = {}
    t = time.perf_counter()
    if dev_pairs:
        report = build_dataset(root / "dev", root / "dev_bc.npz", evaluate=True, quiet=True)
        ev = report.evaluation
        if ev is not None:
            dev_eval = {"beat_accuracy": ev.beat_accuracy, "macro_f1": ev.macro_f1, "n_pairs": ev.n_pairs,
                        "unalignable": len(ev.unalignable)}
    t_dev = time.perf_counter() - t
    t = time.perf_counter()
    scores = score_test(style, test_pairs, policy, args.checkpoint, root / "test")
    t_test = time.perf_counter() - t
    print(table(style, scores))
    if dev_eval:
        print(f"{style}: dev label inference vs truth ({dev_eval['n_pairs']} pairs): beat accuracy "
              f"{dev_eval['beat_accuracy']:.3f}, macro-F1 {dev_eval['macro_f1']:.3f}; BC file {root / 'dev_bc.npz'}")
    print(f"{style}: pairs {t_pairs:.1f} s, dev labels {t_dev:.1f} s, test scoring {t_test:.1f} s\n", flush=True)
    out = {"persona": style, "n_dev_pairs": len(dev_pairs), "n_test_pairs": len(test_pairs),
           "test_pairs": [r.name for r in test_pairs], "scores": scores, "dev_label_inference": dev_eval,
           "seconds": {"pairs": round(t_pairs, 1), "dev_labels": round(t_dev, 1), "test": round(t_test, 1)}}
    if args.synth:
        from editorbot.training.data.pairs import make_synth_pair

        t = time.perf_counter()
        synth = [make_synth_pair(SYNTH_SEED + k, style, root / "synth", args.excerpt) for k in range(args.synth)]
        synth_scores = score_test(style, synth, policy, args.checkpoint, root / "synth")
        t_synth = time.perf_counter() - t
        print(table(f"{style} synth", synth_scores))
        print(f"{style}: {len(synth)} held-out synthetic songs (seeds {SYNTH_SEED}-{SYNTH_SEED + args.synth - 1}), "
              f"{t_synth:.1f} s\n", flush=True)
        out["synth"] = {"seeds": [SYNTH_SEED, SYNTH_SEED + args.synth - 1], "scores": synth_scores,
                        "seconds": round(t_synth, 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--personas", default=",".join(PERSONAS), metavar="A,B", help="relational personas")
    ap.add_argument("--n", type=int, default=4, help="test-half songs (default 4)")
    ap.add_argument("--n-dev", type=int, default=None, help="dev-half songs for the BC file (default --n)")
    ap.add_argument("--excerpt", type=float, default=60.0, metavar="S", help="seconds from each song's start")
    ap.add_argument("--synth", type=int, default=0, metavar="N",
                    help="also score N held-out synthetic songs of --excerpt seconds (seeds from 900000)")
    ap.add_argument("--checkpoint", action="append", default=[],
                    help="a trained policy (training checkpoint .pt) to score; repeat to score several on the same songs")
    ap.add_argument("--model", default=None, help="the ONNX model to score as the bundled one (default: bundled)")
    ap.add_argument("--corpus", default=None, help="corpus folder (default $EDITORBOT_CORPUS or ~/.cache/editorbot/corpus)")
    ap.add_argument("--work", default=None, help="work folder (default: a new temporary one)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from editorbot.export.runtime import load_policy

    try:
        personas = check_personas(args.personas)
    except ValueError as e:
        print(f"--personas: {e}", file=sys.stderr)
        return 2
    root = corpus.corpus_dir(args.corpus)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="quality_real_"))
    t0 = time.perf_counter()
    try:
        test = excerpts("test", args.n, args.excerpt, root, work / "excerpts" / "test")
        dev = excerpts("dev", args.n if args.n_dev is None else args.n_dev, args.excerpt, root, work / "excerpts" / "dev")
    except FileNotFoundError as e:
        print(str(e), file=sys.stderr)
        return 2
    print(f"{len(test)} test and {len(dev)} dev excerpts of {args.excerpt:g} s in {work}\n")
    policy = load_policy(args.model)
    results = [run_persona(p, args, work, dev, test, policy) for p in personas]
    total = time.perf_counter() - t0
    print(f"total {total:.1f} s on {os.cpu_count()} cores")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "results": results, "seconds": round(total, 1)}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
