"""``editorbot plot PLAN -o PNG``: a before/after picture of an edit."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot plot``."""
    p.add_argument("plan", metavar="PLAN", help="EditPlan JSON file")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="picture to write (atomically)")
    p.add_argument("--width", type=int, default=1600, metavar="PX", help="image width in pixels (default 1600)")
    p.add_argument("--height", type=int, default=900, metavar="PX", help="image height in pixels (default 900)")


def run(args: argparse.Namespace) -> int:
    """Load the plan and its source, render the edit, draw both; 0 on success."""
    from editorbot.engine.atomic import check_destination
    from editorbot.engine.audio import load_audio
    from editorbot.engine.errors import BadInput
    from editorbot.engine.plan import check_source, load_plan, resolve_source
    from editorbot.engine.plot import plot_plan
    from editorbot.engine.render import render_plan

    for flag, value in (("--width", args.width), ("--height", args.height)):
        if not 100 <= value <= 10000:
            raise BadInput(flag, f"must be 100-10000 pixels, got {value}")
    plan = load_plan(args.plan)
    resolve_source(plan, args.plan)
    check_destination(args.output, [plan.source.path])  # before the slow part
    check_source(plan)
    audio = load_audio(plan.source.path)
    edited = render_plan(plan, audio.samples, audio.sample_rate)
    path = plot_plan(plan, audio.samples, audio.sample_rate, edited, args.output, width_px=args.width, height_px=args.height)
    log.info("wrote %s", path)
    return 0
