"""Beat grid on real music: engine.grid against madmom's reference, with librosa beside it.

The corpus is ``make corpus``'s (``bench/corpus.py``: Debian game
soundtracks, split once into dev and test halves by a hash of the file name);
the reference is madmom's joint DBN beat and downbeat tracker, cached per
track by ``bench/grid_reference.py``. Each track's first ``EXCERPT_S``
seconds are decoded (decoding is not timed), mixed to mono at 22,050 Hz, and
tracked two ways in the same run:

- editorbot: ``compute_spectrum`` -> ``beat_grid`` (what ``analyze`` runs);
- librosa: ``librosa.beat.beat_track`` on the same 22,050 Hz signal
  (hop 512), for beats only.

Scores (beats before 5 s are dropped on both sides first, as
``mir_eval.beat.evaluate`` trims them, and so are reference beats past the
excerpt):

- beat F: mir_eval's F-measure, one-to-one matches within 70 ms;
- downbeat F: the same on bar starts;
- tempo: the tracker's tempo against the reference's (60 / median
  inter-beat interval). ``ok`` within 4 %; ``octave`` within 4 % of x2 or
  x1/2; ``third`` within 4 % of x3, x1/3, x3/2 or x2/3 (a triple/duple
  confusion); else ``other``;
- phase: the median over estimated beats inside the reference span of
  (beat - nearest reference beat) / local reference period, in beats
  (0 on the beat, +-0.5 on the off-beat);
- speed: seconds of audio per second of tracking, for each tracker, and
  their ratio (process CPU time would hide nothing here: both run in this
  process one after the other).

Per track one line; then, for dev and test separately, median beat F,
share of tracks with beat F >= 0.8, tempo agreement and the counts of
octave and third errors, median downbeat F and median phase; then the
synthetic survey of ``bench/grid.py`` (``--synthetic N`` songs, 0 skips it).

    .venv/bin/python bench/grid_real.py [--split dev|test] [--limit N] [--match TEXT]
                                        [--synthetic 20] [--no-librosa] [--check]

``--check`` exits 1 unless the test half meets the targets of DESIGN
section 3 (median beat F >= 0.90, >= 90 % of tracks at F >= 0.8, tempo right
on >= 95 %, median downbeat F >= 0.80) and every synthetic song passes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from corpus import EXCERPT_S, Track, corpus_dir, load_tracks, reference_path

from editorbot.bridge.commands.analyze import LOW_CONFIDENCE
from editorbot.engine.audio import ANALYSIS_SR, analysis_mono, load_audio
from editorbot.engine.grid import beat_grid
from editorbot.engine.grid_scores import beat_f_measure
from editorbot.engine.spectrum import compute_spectrum

TRIM_S = 5.0
TEMPO_TOLERANCE = 0.04
OCTAVE_RATIOS = (2.0, 0.5)
THIRD_RATIOS = (3.0, 1.0 / 3.0, 1.5, 2.0 / 3.0)
TARGETS = {"median_f": 0.90, "share_f08": 0.90, "tempo_ok": 0.95, "median_down_f": 0.80}


@dataclass
class TrackResult:
    track: Track
    ref_bpm: float
    bpm: float
    beat_f: float
    downbeat_f: float
    phase_beats: float
    confidence: float
    grid_s: float
    librosa_bpm: float
    librosa_f: float
    librosa_s: float
    seconds: float

    @property
    def tempo_class(self) -> str:
        return tempo_class(self.bpm, self.ref_bpm)


def tempo_class(bpm: float, ref_bpm: float) -> str:
    """``"ok"``, ``"octave"``, ``"third"`` or ``"other"``: how ``bpm`` relates to ``ref_bpm`` (see module doc)."""
    if not (bpm > 0 and ref_bpm > 0):
        return "other"
    ratio = bpm / ref_bpm
    if abs(ratio - 1.0) <= TEMPO_TOLERANCE:
        return "ok"
    if any(abs(ratio / r - 1.0) <= TEMPO_TOLERANCE for r in OCTAVE_RATIOS):
        return "octave"
    if any(abs(ratio / r - 1.0) <= TEMPO_TOLERANCE for r in THIRD_RATIOS):
        return "third"
    return "other"


def _trim(times: np.ndarray) -> np.ndarray:
    """The times scored: from ``TRIM_S`` to the end of the excerpt (a reference may run longer)."""
    times = np.asarray(times, dtype=np.float64)
    return times[(times >= TRIM_S) & (times < EXCERPT_S)]


def reference_tempo(beat_times: np.ndarray) -> float:
    """60 / median inter-beat interval (BPM); 0 with under 2 beats."""
    if len(beat_times) < 2:
        return 0.0
    return float(60.0 / np.median(np.diff(beat_times)))


def phase_offset(reference: np.ndarray, estimated: np.ndarray) -> float:
    """Median signed offset of ``estimated`` beats from the nearest ``reference`` beat, in local periods.

    Only estimates strictly inside the reference span count; nan if none.
    """
    if len(reference) < 2:
        return float("nan")
    est = estimated[(estimated > reference[0]) & (estimated < reference[-1])]
    if len(est) == 0:
        return float("nan")
    i = np.clip(np.searchsorted(reference, est) - 1, 0, len(reference) - 2)
    period = reference[i + 1] - reference[i]
    frac = (est - reference[i]) / period
    frac = np.where(frac > 0.5, frac - 1.0, frac)
    return float(np.median(frac))


def _mono(track: Track, root: Path) -> np.ndarray:
    """The track's first ``EXCERPT_S`` s as 22,050 Hz mono, cached as .npy in the corpus folder."""
    cache = reference_path(root, track.track_id).parent.parent / "mono" / (
        reference_path(root, track.track_id).stem + f"_{EXCERPT_S:g}.npy"
    )
    if cache.exists():
        return np.load(cache)
    audio = load_audio(track.path)
    n = int(EXCERPT_S * audio.sample_rate)
    audio.samples = audio.samples[:, :n]
    mono = analysis_mono(audio)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, mono)
    tmp.replace(cache)
    return mono


def _librosa_beats(mono: np.ndarray) -> tuple[float, np.ndarray]:
    import librosa

    tempo, beats = librosa.beat.beat_track(y=mono, sr=ANALYSIS_SR, hop_length=512, units="time")
    return float(np.atleast_1d(tempo)[0]), np.asarray(beats, dtype=np.float64)


def score_track(track: Track, root: Path, *, with_librosa: bool = True, tracker: str = "learned") -> TrackResult | None:
    """Track one corpus file both ways and score it against its cached reference (None if not cached)."""
    ref_file = reference_path(root, track.track_id)
    if not ref_file.exists():
        return None
    ref = json.loads(ref_file.read_text())
    ref_beats = np.asarray(ref["beat_times"], dtype=np.float64)
    ref_beats = ref_beats[ref_beats < EXCERPT_S]
    ref_down = np.asarray(ref["downbeat_times"], dtype=np.float64)
    mono = _mono(track, root)

    t0 = time.perf_counter()
    grid = beat_grid(compute_spectrum(mono, sr=ANALYSIS_SR), tracker=tracker)
    grid_s = time.perf_counter() - t0
    beats = grid.beat_times
    downs = beats[grid.downbeats]

    lib_bpm, lib_f, lib_s = float("nan"), float("nan"), float("nan")
    if with_librosa:
        t0 = time.perf_counter()
        lib_bpm, lib_beats = _librosa_beats(mono)
        lib_s = time.perf_counter() - t0
        lib_f = beat_f_measure(_trim(ref_beats), _trim(lib_beats))

    return TrackResult(
        track=track,
        ref_bpm=reference_tempo(ref_beats),
        bpm=float(grid.tempo_bpm),
        beat_f=beat_f_measure(_trim(ref_beats), _trim(beats)),
        downbeat_f=beat_f_measure(_trim(ref_down), _trim(downs)),
        phase_beats=phase_offset(ref_beats, beats),
        confidence=float(getattr(grid, "confidence", float("nan"))),
        grid_s=grid_s,
        librosa_bpm=lib_bpm,
        librosa_f=lib_f,
        librosa_s=lib_s,
        seconds=len(mono) / ANALYSIS_SR,
    )


def _line(r: TrackResult) -> str:
    return (
        f"{r.track.split:<4} {r.track.track_id[:46]:<46} {r.ref_bpm:6.1f} {r.bpm:6.1f} {r.tempo_class:<6} "
        f"{r.beat_f:5.3f} {r.downbeat_f:5.3f} {r.phase_beats:+5.2f} {r.confidence:4.2f}  "
        f"{r.librosa_bpm:6.1f} {r.librosa_f:5.3f}"
    )


HEADER = (
    f"{'half':<4} {'track':<46} {'refBPM':>6} {'BPM':>6} {'tempo':<6} {'beatF':>5} {'downF':>5} "
    f"{'phase':>5} {'conf':>4}  {'lrBPM':>6} {'lrF':>5}"
)


def summarise(results: list[TrackResult], name: str) -> dict[str, float]:
    """Print and return the medians and shares of one half."""
    if not results:
        print(f"{name}: no tracks with a reference yet")
        return {}
    f = np.array([r.beat_f for r in results])
    classes = [r.tempo_class for r in results]
    out = {
        "n": len(results),
        "median_f": float(np.median(f)),
        "share_f08": float(np.mean(f >= 0.8)),
        "tempo_ok": classes.count("ok") / len(results),
        "octave": classes.count("octave"),
        "third": classes.count("third"),
        "other": classes.count("other"),
        "median_down_f": float(np.median([r.downbeat_f for r in results])),
        "median_phase": float(np.nanmedian([abs(r.phase_beats) for r in results])),
        "librosa_median_f": float(np.median([r.librosa_f for r in results])),
    }
    print(
        f"{name:<5} n={out['n']:<3} beat F median {out['median_f']:.3f}, F>=0.8 on {100 * out['share_f08']:.0f}%, "
        f"tempo ok {100 * out['tempo_ok']:.0f}% (octave {out['octave']}, third {out['third']}, other {out['other']}), "
        f"downbeat F median {out['median_down_f']:.3f}, |phase| median {out['median_phase']:.2f} beats; "
        f"librosa beat F median {out['librosa_median_f']:.3f}"
    )
    # What a user is told: analyze warns under LOW_CONFIDENCE, so a wrong grid above it is the costly miss.
    conf = np.array([r.confidence for r in results])
    trusted = conf >= LOW_CONFIDENCE
    tempo_ok = np.array([c == "ok" for c in classes])
    out.update(
        flagged=int((~trusted).sum()),
        flagged_wrong=int(((~trusted) & (f < 0.8)).sum()),
        confident_wrong=int((trusted & (f < 0.8)).sum()),
        trusted_median_f=float(np.median(f[trusted])) if trusted.any() else float("nan"),
        trusted_share_f08=float(np.mean(f[trusted] >= 0.8)) if trusted.any() else float("nan"),
        trusted_tempo_ok=float(np.mean(tempo_ok[trusted])) if trusted.any() else float("nan"),
    )
    print(
        f"{'':<5} flagged (confidence < {LOW_CONFIDENCE:g}): {out['flagged']}, of them beat F < 0.8: "
        f"{out['flagged_wrong']}; confident and beat F < 0.8: {out['confident_wrong']}; the {int(trusted.sum())} "
        f"trusted: beat F median {out['trusted_median_f']:.3f}, F>=0.8 on {100 * out['trusted_share_f08']:.0f}%, "
        f"tempo ok {100 * out['trusted_tempo_ok']:.0f}%"
    )
    return out


def _synthetic(n_songs: int, tracker: str = "learned") -> bool:
    """Run ``bench/grid.py``'s survey on ``n_songs`` songs; True when every song passes."""
    import grid as synthetic_survey  # bench/grid.py

    results = [
        synthetic_survey.survey_song(s, t, 30.0, tracker=tracker)
        for s, t in synthetic_survey.survey_songs(n_songs, 1000)
    ]
    fails = [r for r in results if not r.passed]
    for r in fails:
        print("  " + synthetic_survey._line(r))
    print(
        f"synthetic survey: {len(results) - len(fails)}/{len(results)} songs pass, "
        f"worst beat F {min(r.f for r in results):.3f}, mean downbeats {np.mean([r.downbeat_rate for r in results]):.3f}"
    )
    return not fails


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=None, help="corpus folder (default $EDITORBOT_CORPUS or ~/.cache/editorbot/corpus)")
    parser.add_argument("--split", choices=("dev", "test"), default=None, help="one half only")
    parser.add_argument("--limit", type=int, default=0, help="at most N tracks per half")
    parser.add_argument("--match", default="", help="only tracks whose id contains this text")
    parser.add_argument("--synthetic", type=int, default=20, help="songs of the synthetic survey (0: skip)")
    parser.add_argument("--no-librosa", action="store_true", help="skip the librosa comparison")
    parser.add_argument(
        "--tracker", choices=("onset", "learned"), default="learned", help="editorbot.engine.grid tracker (learned: BeatNet + HMM)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 unless the targets are met")
    args = parser.parse_args(argv)
    root = corpus_dir(args.dir)
    try:
        tracks = load_tracks(root, split=args.split)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    tracks = [t for t in tracks if args.match in t.track_id]

    # Warm-up: imports, librosa's numba compilation and FFT plans are not billed to the first track.
    warm = np.random.default_rng(0).standard_normal(10 * ANALYSIS_SR).astype(np.float32) * 0.1
    beat_grid(compute_spectrum(warm, sr=ANALYSIS_SR), tracker=args.tracker)
    if not args.no_librosa:
        _librosa_beats(warm)

    print(HEADER)
    by_split: dict[str, list[TrackResult]] = {"dev": [], "test": []}
    missing = 0
    for split in ("dev", "test"):
        mine = [t for t in tracks if t.split == split]
        for track in mine[: args.limit or None]:
            r = score_track(track, root, with_librosa=not args.no_librosa, tracker=args.tracker)
            if r is None:
                missing += 1
                continue
            by_split[split].append(r)
            print(_line(r), flush=True)
    if missing:
        print(f"({missing} tracks have no reference yet: run `make corpus`)")
    print()
    summaries = {split: summarise(rs, split) for split, rs in by_split.items()}
    everything = by_split["dev"] + by_split["test"]
    if everything:
        audio_s = sum(r.seconds for r in everything)
        grid_s = sum(r.grid_s for r in everything)
        line = f"speed: editorbot spectrum + grid {audio_s / grid_s:.0f}x real time"
        if not args.no_librosa:
            lib_s = sum(r.librosa_s for r in everything)
            line += f", librosa beat_track {audio_s / lib_s:.0f}x real time, ratio {lib_s / grid_s:.1f}x"
        print(line + f" ({audio_s / 60:.1f} min of audio, shared machine)")
    synthetic_ok = _synthetic(args.synthetic, args.tracker) if args.synthetic > 0 else True
    if not args.check:
        return 0
    test = summaries.get("test") or {}
    met = bool(test) and all(test[k] >= v for k, v in TARGETS.items()) and synthetic_ok
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
