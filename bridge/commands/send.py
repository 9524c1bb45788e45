"""``editorbot send ADDRESS [ARGS...]``: send one OSC message to ``editorbot serve``
and print the replies, one per line, until ``done``/``error``/``pong`` or a timeout.

Arguments that read as integers or floats are sent as such (``--strings``
sends them all as strings). ``/editorbot/`` may be left off the address.
Exit status: 0 after ``done``/``pong``/``status``/``cancelling``, 2 after an
``error`` reply, 1 when nothing (more) arrives within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot send``."""
    from editorbot.bridge.osc_client import DEFAULT_PORT

    p.add_argument("address", metavar="ADDRESS", help="e.g. /editorbot/ping, /editorbot/edit (or just ping, edit)")
    p.add_argument("args", nargs="*", metavar="ARGS", help="message arguments (edit: PATH 'OPTIONS_JSON')")
    p.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="give up after S seconds without a reply (default 10)")
    p.add_argument("--strings", action="store_true", help="send every argument as a string")


def format_reply(address: str, args: list) -> str:
    """``/editorbot/progress 0.5 edit 3``: the address and arguments on one line."""
    return " ".join([address] + [a if isinstance(a, str) else repr(a) for a in args])


def run(args: argparse.Namespace) -> int:
    """Send, print replies; see the module docstring for the exit status."""
    from editorbot.bridge.osc_client import OscClient, parse_cli_arg
    from editorbot.engine.errors import BadInput

    if not 1 <= args.port <= 65535:
        raise BadInput("--port", f"port must be 1-65535, got {args.port}")
    if not args.timeout > 0:
        raise BadInput("--timeout", f"must be a positive number of seconds, got {args.timeout:g}")
    address = args.address if args.address.startswith("/") else "/editorbot/" + args.address
    values = list(args.args) if args.strings else [parse_cli_arg(a) for a in args.args]
    with OscClient(args.host, args.port) as client:
        last = None
        for reply_address, reply_args in client.request(address, *values, timeout=args.timeout):
            print(format_reply(reply_address, reply_args), flush=True)
            last = reply_address
    if last is None or last in ("/editorbot/progress", "/editorbot/marker", "/editorbot/queued"):
        print(f"editorbot: no reply from {args.host}:{args.port} within {args.timeout:g} s", file=sys.stderr)
        return 1
    return 2 if last == "/editorbot/error" else 0
