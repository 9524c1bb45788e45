"""``editorbot analyze AUDIO``: beat grid and per-beat features of one file.

Prints tempo, beat/bar/phrase counts, duration and a short feature table;
``--json`` / ``--npz`` write the full result (atomically, never over the input).
"""

from __future__ import annotations

import argparse
import os

from editorbot.engine.formats import SEPARATOR_NAMES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("audio", metavar="AUDIO", help="wav, flac, ogg, mp3 or aiff file")
    p.add_argument("--json", metavar="F", help="write grid, features and summary as JSON")
    p.add_argument("--npz", metavar="F", help="write grid and features as .npz")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    p.add_argument(
        "--cache-dir", metavar="D", help="feature cache directory (default $EDITORBOT_CACHE or ~/.cache/editorbot/features)"
    )
    p.add_argument("--stems", action="store_true", help="add 3 columns per stem the separator offers (115 features per beat with builtin, 121 with demucs)")
    p.add_argument(
        "--separator",
        choices=SEPARATOR_NAMES,
        default="auto",
        help="stem separator for --stems (default auto: demucs when its weights are present)",
    )
    p.add_argument("--model-dir", metavar="D", help="demucs weights for --stems (default $EDITORBOT_DEMUCS_DIR)")


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse bad output paths before the analysis, not after it."""
    from editorbot.engine.atomic import check_destination
    from editorbot.engine.errors import BadInput

    outputs = [p for p in (args.json, args.npz) if p]
    if len(outputs) == 2 and os.path.realpath(outputs[0]) == os.path.realpath(outputs[1]):
        raise BadInput(outputs[0], "--json and --npz name the same file")
    for out in outputs:
        check_destination(out, [args.audio])


def format_report(analysis) -> str:
    """Human-readable summary of an ``engine.analysis.Analysis``."""
    from editorbot.engine.grid import UNSURE_GRID

    s = analysis.summary()
    lines = [
        f"file      {s['path']}",
        f"audio     {s['duration_s']:.2f} s, {s['sample_rate']} Hz, {s['n_channels']} ch, sha256 {s['sha256'][:12]}",
        f"tempo     {s['tempo_bpm']:.1f} BPM ({s['tracker']} tracker), grid confidence {s['grid_confidence']:.2f}"
        + (f" ({UNSURE_GRID})" if analysis.grid.unsure else ""),
        f"beats     {s['n_beats']}",
        f"bars      {s['n_bars']} ({s['beats_per_bar']} beats per bar)",
        f"phrases   {s['n_phrases']}",
        f"duration  {s['duration_s']:.2f} s",
        "",
        f"{'feature':<16} {'mean':>12} {'std':>12}",
    ]
    for name, stats in s["features"].items():
        lines.append(f"{name:<16} {stats['mean']:>12.4g} {stats['std']:>12.4g}")
    lines.append(f"({len(analysis.feature_names)} features per beat)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from editorbot.engine.analysis import analyze
    from editorbot.engine.cache import FeatureCache

    _check_outputs(args)
    cache = False if args.no_cache else FeatureCache(args.cache_dir)
    separator = None
    if args.stems:
        from editorbot.engine.stems import separator_for

        separator = separator_for(args.separator, args.model_dir, quiet=args.quiet)
        print(f"stems     {separator.name}" + (f" ({separator.note})" if separator.note else ""))
    analysis = analyze(args.audio, cache=cache, stems=args.stems, separator=separator)
    print(format_report(analysis))
    if args.json:
        analysis.save_json(args.json)
        print(f"wrote {args.json}")
    if args.npz:
        analysis.save_npz(args.npz)
        print(f"wrote {args.npz}")
    return 0
