"""``editorbot edit AUDIO -o OUT``: analyse, decide, write the plan, render, export, plot.

A thin layer over ``export.edit.edit_file``; prints a short table of what it
did (actions by type, durations in and out, files written).
"""

from __future__ import annotations

import argparse
import logging

from editorbot.engine.errors import BadInput, BadRequest
from editorbot.engine.formats import EXPORT_FORMATS, SAMPLE_FORMATS
from editorbot.export.request import MIN_KEEP, EditRequest

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot edit``."""
    p.add_argument("audio", metavar="AUDIO", help="wav, flac, ogg, mp3 or aiff file to edit")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="edited audio to write (format from the extension)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", metavar="M", help="exported policy (MODEL.onnx with MODEL.json beside it); default: $EDITORBOT_MODEL, else the bundled model")
    model.add_argument("--checkpoint", metavar="C", help="training checkpoint (best.pt) run directly with torch")
    p.add_argument("--plan", metavar="F", help="where to write the EditPlan JSON (default: OUT's name + .plan.json)")
    p.add_argument("--export", metavar="FORMATS", action="append", help=f"comma-separated: {', '.join(EXPORT_FORMATS)} (written beside OUT)")
    p.add_argument("--target-duration", type=float, metavar="S", help="make the edit last S seconds (within one beat; 50%%-150%% of the source)")
    p.add_argument("--keep", action="append", default=[], metavar="A-B", help="protect A-B seconds of the source from any change (repeatable)")
    p.add_argument("--plot", metavar="PNG", help="write a before/after picture")
    p.add_argument("--seed", type=int, metavar="N", help="sample the policy with this seed (default: greedy)")
    p.add_argument("--min-keep", type=float, default=MIN_KEEP, metavar="SHARE",
                   help=f"without --target-duration, keep at least this share of the source's length (0-1, default {MIN_KEEP})")
    p.add_argument("--subtype", choices=SAMPLE_FORMATS, metavar="FORMAT",
                   help="sample format of OUT: PCM_16, PCM_24, PCM_32 or FLOAT (default: the input's; 16/24-bit dithered)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="where the policy runs (default auto)")


#: Edit request field -> the flag that sets it, to name the flag in an error.
FLAGS: dict[str, str] = {
    "audio": "AUDIO", "model": "--model", "checkpoint": "--checkpoint", "target_duration_s": "--target-duration",
    "keep": "--keep", "seed": "--seed", "exports": "--export", "min_keep": "--min-keep", "subtype": "--subtype",
}


def request_of(args: argparse.Namespace) -> EditRequest:
    """The flags as an ``EditRequest`` (BadRequest naming the field for a bad value)."""
    return EditRequest.from_fields({
        "audio": args.audio, "model": args.model, "checkpoint": args.checkpoint,
        "target_duration_s": args.target_duration, "keep": args.keep, "seed": args.seed, "exports": args.export,
        "min_keep": args.min_keep, "subtype": args.subtype,
    })


def run(args: argparse.Namespace) -> int:
    """Edit the file; print the report table; 0 on success.

    The flags are checked before the model loads, so a bad value costs no
    wait and no log line. A bad request field, found here or later (a target
    the song cannot reach), is reported as its flag.
    """
    from editorbot.export.edit import edit_file, format_report, load_model

    try:
        request = request_of(args)
        policy = load_model(request.model, request.checkpoint, device=args.device)
        report = edit_file(
            request, args.output, policy, plan_path=args.plan, plot_png=args.plot, quiet=bool(getattr(args, "quiet", False))
        )
    except BadRequest as err:
        raise BadInput(FLAGS.get(err.field, err.field), err.problem) from None
    print(format_report(report))
    return 0
