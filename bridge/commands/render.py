"""``editorbot render PLAN -o OUT``: render a plan's edit of its source audio.

The source is the plan's ``source.path`` (a relative path is looked up from
the current directory, then beside the plan file); it must be unchanged since
the plan was made. The output format follows OUT's extension; OUT is written
atomically and never over the source or the plan.

``--renderer learned --checkpoint C`` renders with a supervised checkpoint
(``editorbot train supervised``), ``--renderer learned --model M.onnx`` with
its ONNX export (``editorbot export-model C -o M.onnx``): the DSP render
with the sound the model learned on top
(``training.learned_render.render_learned``).
"""

from __future__ import annotations

import argparse
import logging

from editorbot.engine.formats import SAMPLE_FORMATS

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot render``."""
    p.add_argument("plan", metavar="PLAN", help="EditPlan JSON file")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="audio file to write (wav, flac, aiff, ogg, mp3)")
    p.add_argument("--renderer", choices=("dsp", "learned"), default="dsp",
                   help="dsp: the plan's segments and effects (default); learned: plus a supervised model's sound")
    p.add_argument("--subtype", choices=SAMPLE_FORMATS, metavar="FORMAT",
                   help="sample format of OUT: PCM_16, PCM_24, PCM_32 or FLOAT (default: the source's)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", metavar="C", help="supervised checkpoint (.pt) for --renderer learned")
    model.add_argument("--model", metavar="M", help="its ONNX export (.onnx, export-model) for --renderer learned")


def run(args: argparse.Namespace) -> int:
    """Load, render and write; print the output path, duration and segment count."""
    from editorbot.engine.atomic import check_destination
    from editorbot.engine.errors import BadInput
    from editorbot.engine.plan import load_plan, resolve_source
    from editorbot.engine.render import render_to_file

    if args.renderer == "learned" and not (args.checkpoint or args.model):
        raise BadInput("--checkpoint", "--checkpoint C or --model M.onnx is required with --renderer learned")
    check_destination(args.output, [args.plan])
    plan = load_plan(args.plan)
    resolve_source(plan, args.plan)
    try:
        if args.renderer == "learned":
            from editorbot.training.learned_render import render_learned_to_file

            model = None
            if args.model:
                from editorbot.export.learned import OnnxEditSound

                model = OnnxEditSound(args.model)
            result = render_learned_to_file(plan, args.output, args.model or args.checkpoint, model=model, subtype=args.subtype)
        else:
            result = render_to_file(plan, args.output, subtype=args.subtype)
    except BadInput as err:
        if err.path is None:  # a problem in the plan's segments
            raise BadInput(args.plan, err.problem) from None
        raise
    print(
        f"{result.path}: {result.duration_s:.2f} s, {result.n_segments} segments, "
        f"{result.sample_rate} Hz, {result.n_channels} ch"
    )
    return 0
