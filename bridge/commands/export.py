"""``editorbot export PLAN --format rpp|midi|audacity|tsv -o F``: a plan as a DAW file."""

from __future__ import annotations

import argparse
import logging
import os

from editorbot.engine.formats import EXPORT_FORMATS

log = logging.getLogger(__name__)

def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot export``."""
    p.add_argument("plan", metavar="PLAN", help="EditPlan JSON file")
    p.add_argument(
        "--format",
        "-f",
        required=True,
        choices=EXPORT_FORMATS,
        help="rpp: REAPER project; midi: tempo, markers and CC automation; "
        "audacity: Audacity label track; tsv: table for the Lua scripts",
    )
    p.add_argument("-o", "--output", required=True, metavar="F", help="file to write (atomically)")


def run(args: argparse.Namespace) -> int:
    """Load the plan and write it in the chosen format; 0 on success."""
    from editorbot.engine.atomic import check_destination
    from editorbot.engine.exporters import export_plan
    from editorbot.engine.plan import load_plan, resolve_source

    check_destination(args.output, [args.plan])  # the plan is an input too
    plan = load_plan(args.plan)
    resolve_source(plan, args.plan)
    if not os.path.isfile(plan.source.path):
        log.warning("the plan's source %s is missing; the export still refers to it", plan.source.path)
    path = export_plan(plan, args.format, args.output)
    log.info("wrote %s (%s)", path, args.format)
    return 0
