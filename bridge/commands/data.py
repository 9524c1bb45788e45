"""``editorbot data``: make training pairs.

Subcommands (each a sub-parser, so later ones such as ``labels`` and
``augment`` slot in beside them):

``editorbot data synth --n N --out DIR [--styles A,B] [--seed S] [--duration S] [--jobs J] [--stats]``
    Synthesize N songs and edit each with an editor style (round robin over
    ``--styles``); pair ``i`` uses seed ``S + i``. The studio styles
    (``studio``, ``studio_edits``) run a studio chain over the plan's render,
    so their edited side is not our DSP render (pairs for ``train
    supervised``); the default (all styles) leaves them out. ``--stats`` prints the
    share of each action type, size and amount over the labelled beats;
    without ``--n`` it reads an existing DIR's ``labels/*.json``.

``editorbot data pair AUDIO... --style S --out DIR [--seed S]``
    Pairs from the user's own songs. A file that cannot be used (unreadable,
    not audio, too short, silent, ...) is reported on stderr in one line
    naming it and skipped; the rest of the batch is made. Exit code 2 if any
    file was skipped, 0 if all were made.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)

MIN_DURATION_S = 5.0
MAX_DURATION_S = 600.0


def _common(p: argparse.ArgumentParser) -> None:
    """--quiet / --verbose after the subcommand too (SUPPRESS keeps the value given before it)."""
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only")
    p.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="debug logging")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-parsers of ``editorbot data``."""
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    synth = sub.add_parser(
        "synth",
        help="synthesize songs and edit them with editor styles",
        description="Synthesize songs with known structure and edit each with an editor style "
        "(round robin over --styles; pair i uses seed SEED + i). Writes DIR/input, "
        "DIR/desired_output, DIR/labels and DIR/reference.",
    )
    synth.add_argument("--n", type=int, default=None, metavar="N", help="number of pairs to make")
    synth.add_argument("--out", required=True, metavar="DIR", help="pair directory (created if missing)")
    synth.add_argument(
        "--styles", default=None, metavar="A,B",
        help="editor styles, comma-separated (default: all but the studio styles studio, studio_edits)",
    )
    synth.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the first pair (default 0)")
    synth.add_argument(
        "--duration", type=float, default=None, metavar="S",
        help=f"song length in seconds, {MIN_DURATION_S:g}-{MAX_DURATION_S:g} (default: 60-240 drawn per song)",
    )
    synth.add_argument("--jobs", type=int, default=1, metavar="J", help="worker processes (default 1; output does not depend on it)")
    synth.add_argument("--stats", action="store_true", help="print the share of each action type, size and amount over labelled beats")
    _common(synth)
    synth.set_defaults(_data_run=_run_synth)

    pair = sub.add_parser(
        "pair",
        help="make pairs from your own songs",
        description="Analyse your songs and edit each with an editor style. Files that cannot be "
        "used are reported and skipped; exit code 2 if any was skipped.",
    )
    pair.add_argument("audio", nargs="+", metavar="AUDIO", help="songs (wav, flac, ogg, mp3, aiff)")
    pair.add_argument("--style", required=True, metavar="S", help="editor style (studio, studio_edits: a studio chain over the edit)")
    pair.add_argument("--out", required=True, metavar="DIR", help="pair directory (created if missing)")
    pair.add_argument("--seed", type=int, default=0, metavar="S", help="editor seed (default 0)")
    _common(pair)
    pair.set_defaults(_data_run=_run_pair)

    from editorbot.training.infer_labels import add_data_subcommands

    add_data_subcommands(sub, _common)  # `data labels` and `data augment`


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen subcommand; its exit code."""
    return int(args._data_run(args))


def _styles(value: str | None, flag: str) -> list[str]:
    """Style names of ``--styles`` (default: every style of ``STYLES``); studio styles and personas ``BASE@N`` too."""
    from editorbot.engine.errors import BadInput
    from editorbot.training.data.editors import STYLES, get_style

    if value is None:
        return list(STYLES)
    names = [s.strip() for s in value.split(",") if s.strip()]
    if not names:
        raise BadInput(flag, "no style given")
    for name in names:
        try:
            get_style(name)
        except ValueError as err:
            raise BadInput(flag, str(err)) from None
    return names


def _make_dir(path: str) -> None:
    import os

    from editorbot.engine.errors import BadInput

    if os.path.exists(path) and not os.path.isdir(path):
        raise BadInput(path, "exists and is not a directory")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise BadInput(path, f"cannot create the directory: {err.strerror or err}") from None


def _run_synth(args: argparse.Namespace) -> int:
    import time

    from editorbot.engine.errors import BadInput
    from editorbot.training.data.editors import format_coverage
    from editorbot.training.data.pairs import corpus_coverage, make_synth_pairs

    styles = _styles(args.styles, "--styles")
    if args.n is None:
        if not args.stats:
            raise BadInput("--n", "required (or use --stats alone to read an existing --out DIR)")
        print(format_coverage(corpus_coverage(args.out)))
        return 0
    if args.n < 1:
        raise BadInput("--n", f"must be at least 1, got {args.n}")
    if args.seed < 0:
        raise BadInput("--seed", f"must be >= 0, got {args.seed}")
    if args.jobs < 1:
        raise BadInput("--jobs", f"must be at least 1, got {args.jobs}")
    if args.duration is not None and not MIN_DURATION_S <= args.duration <= MAX_DURATION_S:
        raise BadInput("--duration", f"must be {MIN_DURATION_S:g}-{MAX_DURATION_S:g} seconds, got {args.duration:g}")
    _make_dir(args.out)

    t0 = time.perf_counter()
    records = make_synth_pairs(
        args.n, args.out, styles, seed=args.seed, duration_s=args.duration, jobs=args.jobs, quiet=args.quiet
    )
    elapsed = time.perf_counter() - t0
    raw_min = sum(r.raw_duration_s for r in records) / 60.0
    edit_min = sum(r.edit_duration_s for r in records) / 60.0
    per_style: dict[str, int] = {}
    for r in records:
        per_style[r.style] = per_style.get(r.style, 0) + 1
    print(
        f"made {len(records)} pairs in {args.out}: {raw_min:.1f} min raw, {edit_min:.1f} min edited, "
        f"seeds {args.seed}-{args.seed + args.n - 1}, {elapsed:.1f} s ({60.0 * len(records) / max(elapsed, 1e-9):.1f} pairs/min)"
    )
    print("  " + ", ".join(f"{k} {v}" for k, v in per_style.items()))
    if args.stats:
        print(format_coverage(corpus_coverage(args.out)))
    return 0


def _run_pair(args: argparse.Namespace) -> int:
    from editorbot.engine.errors import BadInput
    from editorbot.engine.progress import progress
    from editorbot.training.data.pairs import make_pair_from_audio

    style = _styles(args.style, "--style")
    if len(style) != 1:
        raise BadInput("--style", "give one style")
    if args.seed < 0:
        raise BadInput("--seed", f"must be >= 0, got {args.seed}")
    _make_dir(args.out)

    made, skipped = [], []
    for path in progress(args.audio, desc="pairs", total=len(args.audio), quiet=args.quiet):
        try:
            made.append(make_pair_from_audio(path, style[0], args.out, args.seed))
        except BadInput as err:
            print(f"editorbot: {err} (skipped)", file=sys.stderr)
            skipped.append(path)
    for r in made:
        print(f"{r.label_path}: {r.n_beats} beats, {r.raw_duration_s:.1f} s -> {r.edit_duration_s:.1f} s")
    print(f"made {len(made)} pairs in {args.out}, skipped {len(skipped)}")
    return 2 if skipped else 0
