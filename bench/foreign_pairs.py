"""Training pairs whose edited side is another editor's work: real corpus songs edited by ``bench/foreign_editor.py``.

    .venv/bin/python bench/foreign_pairs.py --split dev --songs 12 --seeds 2 --out DIR [--excerpt 30]

For each of the first ``--songs`` tracks of a corpus half (``bench/corpus.py``:
``dev`` for training, ``test`` for held-out evaluation), an excerpt of
``--excerpt`` seconds (from ``--start`` seconds in) is written as the raw
song (at 44.1 kHz, resampled where the track is not), the foreign editor edits it (its own splicer, pedalboard effects at
off-grid settings, chorus and phaser outside the vocabulary, peak
normalisation, some mp3 round trips) once per seed, and label inference
(``training.labels.infer.infer_pair``) reads the plan back from the
(raw, edit) pair. The pair directory has the layout of
``training.data.pairs`` (``input/``, ``desired_output/``, ``labels/``), so
``editorbot train supervised --data-dir DIR`` reads it; each label file holds

- ``plan``: the *inferred* plan (not the truth), ``plan_source``:
  ``"inferred"``, so the learned renderer is trained on what a user would
  have: a pair and the plan inference finds;
- ``foreign_events``: the editor's own truth (for reference only);
- ``original``: the corpus track id and the sha256 of its file (pairs of one
  song stay on one side of a train/validation split).

Pairs inference finds unalignable are reported and left out. A pair whose
three files exist already is kept as it is, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import foreign_editor
from bench.corpus import Track, load_tracks
from editorbot.engine.atomic import write_json_atomic
from editorbot.engine.audio import load_audio, sha256_file, write_audio
from editorbot.engine.plan import plan_to_dict
from editorbot.training.data.pairs import LABEL_SCHEMA, RAW_BIT_DEPTH, ensure_layout, pair_paths

log = logging.getLogger("bench.foreign_pairs")

STYLE = "foreign"
#: Every raw excerpt is written at this rate (the corpus has 44.1 and 48 kHz tracks).
SAMPLE_RATE = 44100


def pair_name(track: Track, seed: int) -> str:
    """``package_file_sSEED``: a file-name-safe name per (track, seed)."""
    stem = os.path.splitext(track.track_id.replace("/", "_"))[0]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)
    return f"{safe}_{STYLE}_s{seed}"


def make_pair(track: Track, seed: int, out_dir: str, *, start_s: float, excerpt_s: float) -> str | None:
    """Write one foreign pair (raw excerpt, foreign edit, inferred plan); its label path, or None if unalignable."""
    from editorbot.training.labels.infer import infer_pair

    name = pair_name(track, seed)
    raw_path, edit_path, label_path = pair_paths(out_dir, name)
    if all(os.path.exists(p) for p in (raw_path, edit_path, label_path)):
        return label_path
    audio = load_audio(track.path)
    sr = audio.sample_rate
    y = audio.samples[:, int(start_s * sr) : int((start_s + excerpt_s) * sr)]
    if y.shape[0] == 1:
        y = np.repeat(y, 2, axis=0)
    if sr != SAMPLE_RATE:  # one rate per pair folder: a model trains and renders at one rate
        import soxr

        y = soxr.resample(np.ascontiguousarray(y.T), sr, SAMPLE_RATE, quality="HQ").T
        sr = SAMPLE_RATE
    if not os.path.exists(raw_path):
        write_audio(raw_path, y[:2], sr, bit_depth=RAW_BIT_DEPTH)
    raw = load_audio(raw_path)  # what the renderer will read: 24-bit
    if not os.path.exists(edit_path):
        edited, events, info = foreign_editor.edit(raw.samples, sr, seed)
        write_audio(edit_path, edited, sr, bit_depth=RAW_BIT_DEPTH, protect=(raw_path,))
        events_doc = json.loads(foreign_editor.events_to_json(events, info, sr))
        write_json_atomic(label_path + ".events", events_doc)
    events_doc = json.loads(open(label_path + ".events", encoding="utf-8").read())
    result = infer_pair(raw_path, edit_path, name=name)
    if not result.alignable or result.plan is None:
        log.warning("%s: label inference found it unalignable (%s); left out", name, result.reason)
        return None
    plan = result.plan
    plan.source.path = os.path.relpath(raw_path, os.path.dirname(label_path))
    doc = {
        "schema": LABEL_SCHEMA,
        "name": name,
        "style": STYLE,
        "seed": int(seed),
        "raw": f"input/{name}_raw.wav",
        "edit": f"desired_output/{name}_edit.wav",
        "plan_source": "inferred",
        "match": float(result.match),
        "original": {"file": track.track_id, "sha256": sha256_file(track.path), "start_s": start_s},
        "foreign_events": events_doc,
        "plan": plan_to_dict(plan),
    }
    write_json_atomic(label_path, doc)
    os.unlink(label_path + ".events")
    return label_path


def make_foreign_pairs(
    split: str, n_songs: int, seeds: int, out_dir: str, *, start_s: float = 0.0, excerpt_s: float = 30.0,
    first_seed: int = 0,
) -> list[str]:
    """Pairs of the first ``n_songs`` tracks of ``split``, ``seeds`` edits each; their label paths."""
    ensure_layout(out_dir)
    tracks = [t for t in load_tracks(split=split) if t.duration_s >= start_s + excerpt_s][:n_songs]
    paths = []
    for k, track in enumerate(tracks):
        for s in range(seeds):
            t0 = time.perf_counter()
            path = make_pair(track, first_seed + k * seeds + s, out_dir, start_s=start_s, excerpt_s=excerpt_s)
            log.info("%s seed %d: %.1f s", track.track_id, s, time.perf_counter() - t0)
            if path is not None:
                paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("dev", "test"), required=True, help="corpus half")
    p.add_argument("--songs", type=int, default=12, help="tracks of that half (default 12)")
    p.add_argument("--seeds", type=int, default=1, help="foreign edits per track (default 1)")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first edit (default 0)")
    p.add_argument("--start", type=float, default=0.0, help="excerpt start, seconds (default 0)")
    p.add_argument("--excerpt", type=float, default=30.0, help="excerpt length, seconds (default 30)")
    p.add_argument("--out", required=True, help="pair directory (created)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    paths = make_foreign_pairs(
        args.split, args.songs, args.seeds, args.out, start_s=args.start, excerpt_s=args.excerpt,
        first_seed=args.first_seed,
    )
    print(f"{len(paths)} pairs in {args.out} ({args.split} half) in {time.perf_counter() - t0:.0f} s")
    return 0 if paths else 1


if __name__ == "__main__":
    sys.exit(main())
