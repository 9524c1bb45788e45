"""``editorbot stems AUDIO -o DIR``: separate a song into stems, optionally through a chain.

Writes one file per stem the separator offers (``DIR/drums.wav``,
``bass.wav``, ``vocals.wav``, ``other.wav`` from demucs; ``drums.wav`` and
``other.wav`` from the built-in separator), each after its chain and gain when
``--chain`` is given, and ``DIR/mix.wav``, their sum, at the song's rate and channel count (atomically; never over the input).
Separated stems are cached per file and separator, so a second run on the same
song (with another chain, say) skips the separation. A thin layer over
``engine.stems.split_file``. ``--list`` prints the stems the separator
offers and separates nothing.
"""

from __future__ import annotations

import argparse
import os

from editorbot.engine.formats import AUDIO_OUTPUT_FORMATS, SEPARATOR_NAMES


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot stems``."""
    p.add_argument("audio", metavar="AUDIO", nargs="?", help="wav, flac, ogg, mp3 or aiff file")
    p.add_argument("-o", "--output", metavar="DIR", help="folder for the stems and the mix (created; required unless --list)")
    p.add_argument("--list", action="store_true", help="print the separator and the stems it offers, then stop")
    p.add_argument("--chain", metavar="F", help="chain file (JSON, or YAML with pyyaml): per-stem plugins and gains")
    p.add_argument(
        "--separator",
        choices=SEPARATOR_NAMES,
        default="auto",
        help="demucs (HTDemucs, local weights; 4 stems), builtin (drums and other), or auto: demucs when its weights are present",
    )
    p.add_argument("--model-dir", metavar="D", help="demucs weights folder or file (default $EDITORBOT_DEMUCS_DIR)")
    p.add_argument("--format", choices=AUDIO_OUTPUT_FORMATS, default="wav", help="file type of the written stems (default wav)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the stem cache")
    p.add_argument("--cache-dir", metavar="D", help="stem cache folder (default stems/ in the feature cache)")
    p.add_argument(
        "--plugin-dir", action="append", metavar="DIR",
        help="folder external plugins in a chain may load from (repeatable; default: the platform's standard VST3/AU folders)",
    )


def run(args: argparse.Namespace) -> int:
    """Check the chain, pick the separator, separate (or read the cache), process, write."""
    from editorbot.engine.chains import StemChain, load_chain
    from editorbot.engine.errors import BadInput
    from editorbot.engine.stems import StemCache, separator_for, split_file

    if args.list:
        separator = separator_for(args.separator, args.model_dir, quiet=args.quiet)
        print(f"separator {separator.name}" + (f" ({separator.note})" if separator.note else ""))
        print(f"offers    {' '.join(separator.stems)}")
        return 0
    if not args.audio or not args.output:
        raise BadInput(None, "stems needs AUDIO and -o DIR (or --list)")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise BadInput(args.output, "-o must be a folder; a file of that name exists")
    chain = load_chain(args.chain, plugin_dirs=args.plugin_dir) if args.chain else StemChain()
    separator = separator_for(args.separator, args.model_dir, quiet=args.quiet)
    print(f"separator {separator.name}" + (f" ({separator.note})" if separator.note else ""))
    print(f"offers    {' '.join(separator.stems)}")
    for line in chain.describe():
        print(f"chain     {line}")
    result = split_file(
        args.audio,
        args.output,
        chain=chain,
        separator=separator,
        cache=False if args.no_cache else StemCache(args.cache_dir),
        fmt=args.format,
        protect=(args.chain,) if args.chain else (),
        quiet=args.quiet,
    )
    how = "from cache" if result.from_cache else "separated"
    print(f"stems     {how} in {result.separate_s:.2f} s ({result.duration_s:.1f} s of audio)")
    for path in result.paths.values():
        print(f"wrote     {path}")
    return 0
