"""The default model's persona on real and synthetic songs: old and new models side by side.

The bundled model (``models/default``) edits like the ``radio_edit@1``
persona. This benchmark makes persona pairs of held-out songs and edits
each song's audio with every ``--model`` the way ``editorbot edit`` does
without a target (``export.edit.edit_file``: analysis, greedy walk with the
30% keep floor, render, gain staging, write), then scores each edit:

- **event F1** of the plan against the persona's truth labels, per beat of
  the pair's grid (``bench.quality_real.event_f1``: the beats that are not
  KEEP; always-KEEP scores 0), with precision, recall and beat accuracy (the
  share of beats whose type is right, KEEP included; the type F1 micro of
  ``training.evaluate``);
- **kept share**: edit length over source length (min, median, max), and
  the persona's own share beside it;
- **sanity**: the violations of each rule of ``engine.sanity`` (never
  below 30% kept, no fragment, no unexplained digital silence, fades, no
  duplicate marker, peak <= -0.3 dBFS, no splice click), counted over the
  songs; a clean model counts 0 on every rule;
- seconds per song (analysis is cached after the first model, so the
  first model's time includes it on songs not analysed before).

Songs:

- ``--real N``: whole tracks of the corpus's test half (``bench.corpus``,
  ``tracks.tsv`` order; 0 for none, default all; ``--split dev`` takes the
  dev half instead and ``--stride K`` every K-th track), paired by
  ``editorbot data pair --style radio_edit@1``'s library call; the
  original file is what gets edited (its analysis is the pair's grid);
- ``--synth NxS`` (repeatable): ``N`` synthetic songs of ``S`` seconds
  (``editorbot data synth --styles radio_edit@1 --duration S``), the k-th
  spec with seeds from ``900000 + 10000 k`` (``--synth-seed`` moves the
  900000; the model card's held-out
  songs are ``50x40``: seeds 900000-900049); the raw file is edited.

Synthetic pairs already in ``--work`` are reused (a pair depends only on
its seed, style and length).

    python -m bench.default_real --model models/default/policy.onnx --model NEW.onnx \
        [--real N] [--split test|dev] [--stride K] [--synth 50x40 ...] [--work DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import corpus
from bench.quality_real import event_f1, finite

logger = logging.getLogger("bench.default_real")

STYLE = "radio_edit@1"
SYNTH_SEED = 900000
#: Seeds of the k-th ``--synth`` spec start at ``SYNTH_SEED + SEED_STRIDE * k``.
SEED_STRIDE = 10000
MIN_KEEP = 0.3


@dataclass
class Song:
    """One held-out song: the file edited and the pair's truth."""

    name: str
    audio: Path
    beat_times: np.ndarray
    truth: np.ndarray
    truth_kept: float


@dataclass
class Tally:
    """One model's results on one set of songs."""

    pred: list[np.ndarray] = field(default_factory=list)
    kept: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    songs_with: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def song_of(label_path: str | Path, audio: Path) -> Song:
    """The truth of a pair (its label file) and the file to edit."""
    import soundfile as sf

    with open(label_path, encoding="utf-8") as f:
        doc = json.load(f)
    folder = Path(label_path).parent.parent
    kept = sf.info(str(folder / doc["edit"])).duration / sf.info(str(folder / doc["raw"])).duration
    truth = np.asarray(doc["beat_labels"]["type"], np.int64)
    return Song(doc["name"], audio, np.asarray(doc["grid"]["beat_times"], np.float64)[: truth.size], truth, kept)


def real_songs(n: int | None, root: Path, folder: Path, *, split: str = "test", stride: int = 1) -> list[Song]:
    """Persona pairs of the first ``n`` (all when None) of every ``stride``-th track of one corpus half."""
    from editorbot.engine.errors import BadInput
    from editorbot.training.data.pairs import make_pair_from_audio

    tracks = corpus.load_tracks(root, split=split)[::stride]
    songs = []
    for track in tracks if n is None else tracks[:n]:
        try:
            record = make_pair_from_audio(track.path, STYLE, folder, 0)
        except BadInput as e:
            logger.warning("%s: %s", track.track_id, e)
            continue
        songs.append(song_of(record.label_path, track.path))
    return songs


def synth_songs(count: int, duration_s: float, first_seed: int, folder: Path) -> list[Song]:
    """``count`` held-out synthetic persona pairs of ``duration_s`` seconds, seeds from ``first_seed``."""
    from editorbot.training.data.pairs import make_synth_pair, pair_paths, synth_pair_name

    songs = []
    for seed in range(first_seed, first_seed + count):
        raw, _, label = pair_paths(folder, synth_pair_name(seed, STYLE))
        if not os.path.isfile(label):  # a pair depends only on seed, style and length: one made before is reused
            record = make_synth_pair(seed, STYLE, folder, duration_s)
            raw, label = record.raw_path, record.label_path
        songs.append(song_of(label, Path(raw)))
    return songs


def edit_and_check(song: Song, policy: Any, out: Path, tally: Tally) -> None:
    """Edit one song as ``editorbot edit`` does, score the plan and check the written audio."""
    import soundfile as sf

    from editorbot.engine.audio import load_audio
    from editorbot.engine.plan import plan_to_dict
    from editorbot.engine.sanity import check_edit
    from editorbot.export.edit import edit_file
    from editorbot.export.request import EditRequest
    from editorbot.training.labels.evaluate import truth_on_beats

    t = time.perf_counter()
    report = edit_file(EditRequest(str(song.audio), min_keep=MIN_KEEP), out, policy, quiet=True)
    tally.seconds.append(time.perf_counter() - t)
    tally.pred.append(truth_on_beats(plan_to_dict(report.plan), song.beat_times)[0])
    source = load_audio(song.audio)
    rendered, sr = sf.read(out, always_2d=True, dtype="float32")
    check = check_edit(report.plan, source.samples, rendered.T, sr, min_keep=MIN_KEEP)
    tally.kept.append(check.kept_share)
    for rule, k in check.counts.items():
        tally.counts[rule] = tally.counts.get(rule, 0) + k
        tally.songs_with[rule] = tally.songs_with.get(rule, 0) + int(k > 0)
    tally.details += [f"{song.name}: {d}" for d in check.details]
    out.unlink()
    out.with_name(out.stem + ".plan.json").unlink()


def score_set(label: str, songs: list[Song], models: list[tuple[str, Any]], work: Path) -> dict[str, Any]:
    """Every model on one set of songs; prints its table and returns the figures."""
    from editorbot.engine.sanity import RULES

    truth = [s.truth for s in songs]
    rows: dict[str, Any] = {}
    for name, policy in models:
        tally = Tally()
        out_dir = work / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        for song in songs:
            edit_and_check(song, policy, out_dir / f"{song.name}.wav", tally)
        scores = event_f1(truth, [p[: t.size] for p, t in zip(tally.pred, truth, strict=True)])
        rows[name] = {**scores, "kept": _quantiles(tally.kept), "violations": {r: tally.counts.get(r, 0) for r in RULES},
                      "songs_with": {r: tally.songs_with.get(r, 0) for r in RULES},
                      "seconds_per_song": round(statistics.mean(tally.seconds), 2) if tally.seconds else 0.0,
                      "details": tally.details[:20]}
    persona = _quantiles([s.truth_kept for s in songs])
    beats = sum(t.size for t in truth)
    print(f"{label}: {len(songs)} songs, {beats} beats, {sum(int(np.sum(t != 0)) for t in truth)} true event beats; "
          f"persona keeps {persona['min']:.2f} / {persona['median']:.2f} / {persona['max']:.2f} (min / median / max)")
    head = f"  {'model':<28} {'event F1':>8} {'P':>6} {'R':>6} {'acc':>6}  {'kept min/med/max':>17}  " + \
        " ".join(f"{r:>8}" for r in RULES) + f"  {'s/song':>6}"
    print(head)
    for name, r in rows.items():
        k = r["kept"]
        print(f"  {name:<28} {r['f1']:8.3f} {r['precision']:6.3f} {r['recall']:6.3f} {r['accuracy']:6.3f}  "
              f"{k['min']:5.2f}/{k['median']:4.2f}/{k['max']:4.2f}     " +
              " ".join(f"{r['violations'][v]:>8d}" for v in RULES) + f"  {r['seconds_per_song']:6.2f}")
    print(flush=True)
    return {"songs": [s.name for s in songs], "n_beats": beats, "persona_kept": persona, "models": rows}


def _quantiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"min": float("nan"), "median": float("nan"), "max": float("nan")}
    return {"min": float(min(xs)), "median": float(statistics.median(xs)), "max": float(max(xs))}


def _synth_spec(text: str) -> tuple[int, float]:
    count, _, seconds = text.partition("x")
    try:
        n, s = int(count), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NxS, e.g. 50x40") from None
    if n < 1 or not 5 <= s <= 600:
        raise argparse.ArgumentTypeError(f"{text!r}: N >= 1 songs of 5-600 s")
    return n, s



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[],
                    help="an exported model (.onnx or a model folder) to score; repeat to compare (default: bundled)")
    ap.add_argument("--real", type=int, default=None, metavar="N", help="corpus tracks (default all; 0 for none)")
    ap.add_argument("--split", choices=("test", "dev"), default="test",
                    help="the corpus half of --real (default test; dev to choose between models on training-half songs)")
    ap.add_argument("--stride", type=int, default=1, metavar="K", help="every K-th track of the half (default 1)")
    ap.add_argument("--synth", type=_synth_spec, action="append", default=[], metavar="NxS",
                    help="N held-out synthetic songs of S seconds (repeatable)")
    ap.add_argument("--synth-seed", type=int, default=SYNTH_SEED, metavar="S",
                    help=f"first seed of the first --synth spec (default {SYNTH_SEED}; another to choose between models)")
    ap.add_argument("--corpus", default=None, help="corpus folder (default $EDITORBOT_CORPUS or ~/.cache/editorbot/corpus)")
    ap.add_argument("--work", default=None, help="work folder for the pairs (default: a new temporary one)")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from editorbot.engine.errors import BadInput
    from editorbot.export.runtime import load_policy

    models = []
    for m in args.model or [None]:
        try:
            models.append((str(m) if m else "bundled", load_policy(m)))
        except (BadInput, FileNotFoundError, ValueError) as e:
            print(f"--model {m}: {e}", file=sys.stderr)
            return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="default_real_"))
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    if args.real != 0:
        try:
            songs = real_songs(args.real, corpus.corpus_dir(args.corpus), work / f"real_{args.split}",
                               split=args.split, stride=args.stride)
        except FileNotFoundError as e:
            print(str(e), file=sys.stderr)
            return 2
        label = f"real {args.split} half" + (f", every {args.stride}th track" if args.stride > 1 else "")
        results[label] = score_set(f"{label} (whole tracks)", songs, models, work)
    for k, (n, seconds) in enumerate(args.synth):
        seed = args.synth_seed + SEED_STRIDE * k
        songs = synth_songs(n, seconds, seed, work / f"synth_{seconds:g}s")
        label = f"synthetic {n} x {seconds:g} s (seeds {seed}-{seed + n - 1})"
        results[label] = score_set(label, songs, models, work)
    total = time.perf_counter() - t0
    print(f"total {total:.1f} s on {os.cpu_count()} cores")
    if args.json:
        from editorbot.engine.atomic import write_json_atomic

        write_json_atomic(args.json, finite({"args": vars(args), "results": results, "seconds": round(total, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
