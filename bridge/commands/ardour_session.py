"""``editorbot ardour-session PLAN -o DIR [--name NAME] [--render WAV]``: a plan as a new Ardour 7 session."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot ardour-session``."""
    p.add_argument("plan", metavar="PLAN", help="EditPlan JSON file (its source audio must be where the plan says)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="session folder to create (must not exist)")
    p.add_argument("--name", default="editorbot", help="session name: letters, digits, '-' and '_' (default editorbot)")
    p.add_argument("--render", metavar="WAV", help="also render the session with ardour7-export to WAV (float, session rate)")


def run(args: argparse.Namespace) -> int:
    """Build the session (``bridge.ardour.build_session``), optionally export it; 0 on success."""
    from editorbot.bridge.ardour import EXPORT_BIN, LUA_BIN, ardour_available, build_session, export_session
    from editorbot.engine.atomic import check_destination
    from editorbot.engine.errors import BadInput
    from editorbot.engine.plan import load_plan, resolve_source

    out = Path(args.output)
    if out.exists() or out.is_symlink():
        raise BadInput(out, "already exists (the session folder is created, never written over)")
    if not out.parent.is_dir():
        raise BadInput(out, f"no such folder {out.parent}")
    plan = load_plan(args.plan)
    resolve_source(plan, args.plan)
    if args.render:
        check_destination(args.render, [args.plan, plan.source.path])
    if not ardour_available():
        raise BadInput(LUA_BIN, f"{LUA_BIN} and {EXPORT_BIN} are needed (apt-get install ardour)")
    session = build_session(plan, out, name=args.name)
    log.info("wrote %s: %d regions, %d markers", session.session_file, session.n_regions, len(session.markers))
    if session.rendered_segments:
        log.info("segments %s come from editorbot's render (reverse, speed, pitch or effects)", session.rendered_segments)
    if args.render:
        log.info("rendered %s", export_session(session, args.render))
    return 0
