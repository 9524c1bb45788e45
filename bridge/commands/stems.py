"""``editorbot stems AUDIO -o DIR``: separate a song into stems, optionally through a chain.

Writes ``DIR/drums.wav``, ``bass.wav``, ``vocals.wav``, ``other.wav`` (each
after its chain and gain when ``--chain`` is given) and ``DIR/mix.wav``, their
sum, at the song's rate and channel count (atomically; never over the input).
Separated stems are cached per file and separator, so a second run on the same
song (with another chain, say) skips the separation.
"""

from __future__ import annotations

import argparse
import os
import time

EXTENSIONS = ("wav", "flac", "aiff")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot stems``."""
    p.add_argument("audio", metavar="AUDIO", help="wav, flac, ogg, mp3 or aiff file")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the stems and the mix (created)")
    p.add_argument("--chain", metavar="F", help="chain file (JSON, or YAML with pyyaml): per-stem plugins and gains")
    p.add_argument(
        "--separator",
        choices=("auto", "demucs", "builtin"),
        default="auto",
        help="demucs (HTDemucs, local weights), builtin (HPSS + bands), or auto: demucs when its weights are present",
    )
    p.add_argument("--model-dir", metavar="D", help="demucs weights folder or file (default $EDITORBOT_DEMUCS_DIR)")
    p.add_argument("--format", choices=EXTENSIONS, default="wav", help="file type of the written stems (default wav)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the stem cache")
    p.add_argument("--cache-dir", metavar="D", help="stem cache folder (default stems/ in the feature cache)")


def _output_dir(path: str) -> str:
    from engine.errors import BadInput

    if os.path.exists(path) and not os.path.isdir(path):
        raise BadInput(path, "-o must be a folder; a file of that name exists")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise BadInput(path, f"parent folder {parent} does not exist")
    return path


def run(args: argparse.Namespace) -> int:
    """Check the outputs and the chain, separate (or read the cache), process, write."""
    from engine.audio import load_audio, sha256_file, write_audio
    from engine.chains import StemChain, load_chain
    from engine.features import STEM_NAMES
    from engine.stems import StemCache, separate_cached, separator_for

    out_dir = _output_dir(args.output)
    chain = load_chain(args.chain) if args.chain else StemChain()
    audio = load_audio(args.audio)
    separator = separator_for(args.separator, args.model_dir, quiet=args.quiet)
    print(f"separator {separator.name}" + (f" ({separator.note})" if separator.note else ""))
    cache = None if args.no_cache else StemCache(args.cache_dir)

    t0 = time.perf_counter()
    stems, cached = separate_cached(
        audio.samples, audio.sample_rate, separator, audio_sha256=sha256_file(args.audio), cache=cache
    )
    took = time.perf_counter() - t0
    print(f"stems     {'from cache' if cached else 'separated'} in {took:.2f} s ({audio.duration_s:.1f} s of audio)")
    for line in chain.describe():
        print(f"chain     {line}")
    processed, mix = chain(stems, audio.sample_rate)

    os.makedirs(out_dir, exist_ok=True)
    protect = [args.audio] + ([args.chain] if args.chain else [])
    for name in (*STEM_NAMES, "mix"):
        path = os.path.join(out_dir, f"{name}.{args.format}")
        write_audio(path, mix if name == "mix" else processed[name], audio.sample_rate, protect=protect)
        print(f"wrote     {path}")
    return 0
