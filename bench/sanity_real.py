"""Does ``editorbot edit`` leave real songs sane? The bundled model on the real-music corpus.

Every corpus track (``$EDITORBOT_CORPUS``, default
``~/.cache/editorbot/corpus``: its ``tracks.tsv``, else every ``.ogg`` under
it; ``make corpus`` fetches it), plus 30-s PCM_16 excerpts of the first
``--variants`` tracks at 8 kHz, at 192 kHz, in mono and in 8 channels, is
edited with the bundled model twice: without a target and with
``--target-duration`` at 75% of the file. Each output is checked against
the rules of ``engine.sanity`` (plus ``format``: a lossless input whose
output has another sample format) and the table gives the violations of
each rule (target: 0 on every line), the kept share (edit length over
source length) and the wall time per song.

The baseline is the code of ``--baseline-rev`` (default 49e97fd, before
these rules), taken from git into a temporary folder and run the same way
in the same process, each version with a feature cache of its own (cold
for the run without a target, which fills it); both versions' outputs
are checked by this code's rules.

    .venv/bin/python bench/sanity_real.py [--n N] [--variants K] [--baseline-rev REV] [--no-baseline]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from editorbot.engine.audio import load_audio, source_subtype
from editorbot.engine.plan import load_plan
from editorbot.engine.sanity import RULES, check_edit

ROOT = Path(__file__).resolve().parents[1]

CHECKS = (*RULES, "format")
#: The --target-duration asked for, as a share of each file's length.
TARGET_SHARE = 0.75
EXCERPT_S = 30.0


def corpus_tracks(root: Path) -> list[Path]:
    """The corpus's audio files, in ``tracks.tsv`` order (else sorted)."""
    tsv = root / "tracks.tsv"
    if tsv.is_file():
        with open(tsv, newline="") as f:
            return [Path(row["path"]) for row in csv.DictReader(f, delimiter="\t") if Path(row["path"]).is_file()]
    return sorted(root.rglob("*.ogg"))


def make_variants(track: Path, folder: Path) -> list[Path]:
    """30-s PCM_16 copies of ``track`` at 8 kHz, 192 kHz, in mono and in 8 channels."""
    import soxr

    audio = load_audio(track)
    sr = audio.sample_rate
    mid = max(0, audio.n_samples // 2 - int(EXCERPT_S * sr) // 2)
    x = audio.samples[:, mid : mid + int(EXCERPT_S * sr)]
    stereo = x if x.shape[0] >= 2 else np.vstack([x, x])
    stem = track.stem
    out = []
    for name, data, rate in (
        ("8k", soxr.resample(x.T, sr, 8000).T, 8000),
        ("192k", soxr.resample(x.T, sr, 192000).T, 192000),
        ("mono", x.mean(axis=0, keepdims=True), sr),
        ("8ch", np.vstack([stereo[c % 2] * (1.0 - 0.05 * c) for c in range(8)]), sr),
    ):
        path = folder / f"{stem}.{name}.wav"
        sf.write(path, np.clip(data, -1.0, 1.0).T, rate, subtype="PCM_16")
        out.append(path)
    return out


@dataclass
class Tally:
    """One version, one mode (with or without a target), over all files."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    songs_with: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    kept: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def edit_once(code: Path, cache: Path, src: Path, out: Path, target_s: float | None) -> tuple[int, float, str]:
    """Run ``editorbot edit`` of the code in ``code`` on ``src``; ``(exit code, wall seconds, stderr tail)``."""
    cmd = [sys.executable, "-m", "editorbot.bridge", "edit", str(src), "-o", str(out), "-q"]
    if target_s is not None:
        cmd += ["--target-duration", f"{target_s:.3f}"]
    env = dict(os.environ, PYTHONPATH=str(code), EDITORBOT_CACHE=str(cache))
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True, check=False)
    lines = proc.stderr.strip().splitlines()
    return proc.returncode, time.perf_counter() - t, lines[-1] if lines else ""


def check_file(src: Path, out: Path, tally: Tally, *, with_target: bool) -> list[str]:
    """Check one output; add to ``tally``; return its violation lines."""
    source = load_audio(src)
    plan = load_plan(out.with_name(out.stem + ".plan.json"))
    rendered, sr = sf.read(out, always_2d=True, dtype="float32")
    check = check_edit(plan, source.samples, rendered.T, sr, min_keep=None if with_target else 0.3)
    counts = dict(check.counts, format=0)
    want, got = source_subtype(src), sf.info(out).subtype
    if want is not None and got != want:
        counts["format"] = 1
        check.details.append(f"format: {want} in, {got} out")
    for rule, n in counts.items():
        tally.counts[rule] += n
        tally.songs_with[rule] += int(n > 0)
    tally.kept.append(check.kept_share)
    return check.details


def run_version(name: str, code: Path, files: list[Path], work: Path) -> dict[bool, Tally]:
    """Edit and check every file with the code in ``code``, without and with a target."""
    cache = work / f"cache-{name}"
    outdir = work / f"out-{name}"
    outdir.mkdir()
    tallies = {False: Tally(), True: Tally()}
    for i, src in enumerate(files):
        info = sf.info(src)
        for with_target in (False, True):
            tally = tallies[with_target]
            out = outdir / f"{i:03d}.{'t' if with_target else 'n'}.wav"
            rc, wall, err = edit_once(code, cache, src, out, TARGET_SHARE * info.duration if with_target else None)
            if rc != 0:
                tally.failed.append(f"{src.name}: exit {rc}: {err}")
                print(f"  {name:8s} {src.name:40s} {'target' if with_target else 'free':6s} exit {rc}: {err}", flush=True)
                continue
            tally.seconds.append(wall)
            details = check_file(src, out, tally, with_target=with_target)
            print(
                f"  {name:8s} {src.name:40s} {'target' if with_target else 'free':6s} {wall:6.1f} s  "
                f"kept {tally.kept[-1]:6.1%}  {len(details)} violations",
                flush=True,
            )
            firsts = {d.split(":")[0]: d for d in reversed(details)}  # the first line of each rule
            for d in firsts.values():
                print(f"      {d}", flush=True)
    return tallies


def baseline_code(rev: str, work: Path) -> Path:
    """The repository at ``rev``, unpacked into ``work/baseline`` (git archive)."""
    dest = work / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _share(xs: list[float]) -> str:
    if not xs:
        return "-"
    q = np.percentile(xs, [0, 10, 50, 90, 100])
    return " / ".join(f"{v:.0%}" for v in q)


def report(results: dict[str, dict[bool, Tally]], n_files: int) -> None:
    """The table: per rule, violations (songs with any) per version and mode."""
    names = list(results)
    cols = [(n, t) for t in (False, True) for n in names]
    head = "".join(f"{(n + (' +target' if t else ' free')):>22s}" for n, t in cols)
    print(f"\n{n_files} files; violations (songs with any); target 0 on every line")
    print(f"{'rule':14s}{head}")
    for rule in CHECKS:
        cells = "".join(f"{f'{results[n][t].counts[rule]} ({results[n][t].songs_with[rule]})':>22s}" for n, t in cols)
        print(f"{rule:14s}{cells}")
    print(f"{'failed runs':14s}" + "".join(f"{len(results[n][t].failed):>22d}" for n, t in cols))
    print(f"\n{'kept share':14s}min / p10 / median / p90 / max")
    for n, t in cols:
        print(f"  {n + (' +target' if t else ' free'):24s}{_share(results[n][t].kept)}")
    print(f"\n{'s per song':14s}median (max) wall time of one `editorbot edit`, model load included; the run without a target"
          " analyses the file (cold feature cache), the run with one reads its features from the cache")
    for n, t in cols:
        s = results[n][t].seconds
        print(f"  {n + (' +target' if t else ' free'):24s}{statistics.median(s):.1f} ({max(s):.1f})" if s else "  -")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=os.environ.get("EDITORBOT_CORPUS", str(Path.home() / ".cache/editorbot/corpus")))
    parser.add_argument("--n", type=int, default=0, help="first N corpus tracks (0: all)")
    parser.add_argument("--only", help="comma-separated parts of track names: those tracks only")
    parser.add_argument("--variants", type=int, default=4, help="tracks to make 8 kHz / 192 kHz / mono / 8-channel excerpts of")
    parser.add_argument("--baseline-rev", default="49e97fd", help="git revision of the baseline")
    parser.add_argument("--baseline-dir", help="a checked-out tree to run as the baseline instead of --baseline-rev")
    parser.add_argument("--no-baseline", action="store_true", help="check this code only")
    args = parser.parse_args()

    tracks = corpus_tracks(Path(args.corpus))
    if not tracks:
        sys.exit(f"{args.corpus}: no corpus tracks (make corpus fetches them)")
    if args.only:
        tracks = [t for t in tracks if any(part in t.name for part in args.only.split(","))]
    tracks = tracks[: args.n] if args.n else tracks
    with tempfile.TemporaryDirectory(prefix="sanity-real-") as tmp:
        work = Path(tmp)
        (work / "variants").mkdir()
        files = list(tracks)
        for track in tracks[: args.variants]:
            files += make_variants(track, work / "variants")
        print(f"{len(tracks)} corpus tracks + {len(files) - len(tracks)} excerpts (8 kHz, 192 kHz, mono, 8 channels)")
        versions = {}
        if args.baseline_dir:
            versions[f"base {Path(args.baseline_dir).name[:7]}"] = Path(args.baseline_dir).resolve()
        elif not args.no_baseline:
            versions[f"base {args.baseline_rev[:7]}"] = baseline_code(args.baseline_rev, work)
        versions["this"] = ROOT
        results = {name: run_version(name.split()[0], code, files, work) for name, code in versions.items()}
        report(results, len(files))


if __name__ == "__main__":
    main()
