"""``editorbot edit AUDIO -o OUT``: analyse, decide, write the plan, render, export, plot.

A thin layer over ``export.edit.edit_file``; prints a short table of what it
did (actions by type, durations in and out, files written).
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot edit``."""
    p.add_argument("audio", metavar="AUDIO", help="wav, flac, ogg, mp3 or aiff file to edit")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="edited audio to write (format from the extension)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", metavar="M", help="exported policy (MODEL.onnx with MODEL.json beside it); default: models/default/policy.onnx")
    model.add_argument("--checkpoint", metavar="C", help="training checkpoint (best.pt) run directly with torch")
    p.add_argument("--plan", metavar="F", help="where to write the EditPlan JSON (default: OUT's name + .plan.json)")
    p.add_argument("--export", metavar="FORMATS", action="append", help="comma-separated: rpp, midi, labels, tsv (written beside OUT)")
    p.add_argument("--target-duration", type=float, metavar="S", help="make the edit last S seconds (within one beat; 50%%-150%% of the source)")
    p.add_argument("--keep", action="append", default=[], metavar="A-B", help="protect A-B seconds of the source from any change (repeatable)")
    p.add_argument("--plot", metavar="PNG", help="write a before/after picture")
    p.add_argument("--seed", type=int, metavar="N", help="sample the policy with this seed (default: greedy)")
    p.add_argument("--min-keep", type=float, default=0.3, metavar="SHARE",
                   help="without --target-duration, keep at least this share of the source's length (0-1, default 0.3)")
    p.add_argument("--subtype", choices=("PCM_16", "PCM_24", "PCM_32", "FLOAT"), metavar="FORMAT",
                   help="sample format of OUT: PCM_16, PCM_24, PCM_32 or FLOAT (default: the input's; 16/24-bit dithered)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="where the policy runs (default auto)")


def run(args: argparse.Namespace) -> int:
    """Edit the file; print the report table; 0 on success."""
    from engine.errors import BadInput
    from export.edit import edit_file, format_report, load_model, parse_exports
    from export.retime import parse_keep

    if not 0.0 <= args.min_keep <= 1.0:
        raise BadInput("--min-keep", f"must be a share of the source between 0 and 1, got {args.min_keep:g}")
    exports = parse_exports(args.export)
    keep = [parse_keep(k) for k in args.keep]
    policy = load_model(args.model, args.checkpoint, device=args.device)
    report = edit_file(
        args.audio,
        args.output,
        policy,
        plan_path=args.plan,
        exports=exports,
        target_duration_s=args.target_duration,
        keep=keep,
        plot_png=args.plot,
        seed=args.seed,
        quiet=bool(getattr(args, "quiet", False)),
        min_keep=args.min_keep,
        subtype=args.subtype,
    )
    print(format_report(report))
    return 0
