"""``editorbot serve``: the OSC server for DAWs (DESIGN section 8).

Listens on 127.0.0.1; another ``--host`` is refused unless ``--allow-remote``
is given too (then it warns: OSC has no authentication). Runs one
job at a time from a queue, writes results into ``--out-dir`` and tells the
DAW through the ``--daw`` dialect. SIGTERM or Ctrl-C stops it cleanly: the
running job is cancelled at its next progress point and queued jobs get an
error reply. ``--capabilities`` prints what the chosen DAW can and cannot do
over OSC and exits.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: LogRecord attributes that are not ``extra=`` fields.
_RECORD_KEYS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "t": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_KEYS and not key.startswith("_"):
                doc[key] = value if isinstance(value, (int, float, str, bool, type(None))) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot serve``."""
    from editorbot.bridge.dialects import DIALECTS
    from editorbot.bridge.osc_client import DEFAULT_PORT

    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need --allow-remote)")
    p.add_argument(
        "--allow-remote", action="store_true",
        help="allow a --host other than loopback: anyone who can reach it can start jobs (OSC has no authentication)",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"UDP port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--daw", choices=sorted(DIALECTS), default="generic", help="how results are told to the DAW (default generic)")
    p.add_argument("--daw-host", default="127.0.0.1", help="the DAW's OSC address (default 127.0.0.1)")
    p.add_argument("--daw-port", type=int, metavar="P", help="the DAW's OSC port (default: reaper 8000, ardour 3819, ableton 11000)")
    p.add_argument("--daw-sample-rate", type=int, metavar="HZ", help="session rate for Ardour sample positions (default: the song's)")
    p.add_argument("--reaper-command-id", metavar="ID", help="opt-in: named command id Reaper gave your installed apply script (_RS..., from the action list); without it only /time is sent")
    p.add_argument("--out-dir", default="editorbot-out", metavar="D", help="folder for every file jobs write (default ./editorbot-out)")
    p.add_argument("--allow", action="append", metavar="DIR", help="folder input paths may come from (repeatable; default: home and the working directory)")
    p.add_argument("--reply-port", type=int, metavar="P", help="send replies to the sender's host on this port instead of its source port")
    p.add_argument(
        "--plugin-dir", action="append", metavar="DIR",
        help="folder external plugins in a stems chain may load from (repeatable; default: the platform's standard VST3/AU folders)",
    )
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines as text or one JSON object each")
    p.add_argument("--capabilities", action="store_true", help="print what the --daw dialect can and cannot do, then exit")
    p.add_argument("--spool", metavar="DIR", help="also serve this spool folder for the Reaper scripts (bridge.spool), through the same job queue")


def _validate_port(flag: str, port: int | None, *, zero_ok: bool = False) -> None:
    from editorbot.engine.errors import BadInput

    if port is not None and not ((0 if zero_ok else 1) <= port <= 65535):
        raise BadInput(flag, f"port must be 1-65535, got {port}")


def _log_to_a_copy_of_fd2() -> None:
    """Point the log handlers that write to fd 2 at a duplicate of it.

    While a decoder runs, ``engine.audio`` sends fd 2 to the debug log (the
    native libraries' chatter); the server's other threads log meanwhile, and
    their lines must reach the real stderr, not that capture.
    """
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        try:
            if isinstance(handler, logging.StreamHandler) and stream is not None and stream.fileno() == 2:
                handler.setStream(os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace"))
        except (OSError, ValueError, io.UnsupportedOperation):  # no fd behind the stream (a test's capture)
            continue


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C; 0 after a clean stop."""
    from editorbot.bridge.dialects import DIALECTS
    from editorbot.bridge.server import Server, ServerConfig, default_roots, is_loopback
    from editorbot.engine.errors import BadInput

    if args.capabilities:
        print(DIALECTS[args.daw].capability_table())
        return 0
    if args.log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLogFormatter())
    _log_to_a_copy_of_fd2()
    _validate_port("--port", args.port, zero_ok=True)
    _validate_port("--daw-port", args.daw_port)
    _validate_port("--reply-port", args.reply_port)
    if not is_loopback(args.host) and not args.allow_remote:
        raise BadInput("--host", f"{args.host} is not loopback; anyone who can reach it could start jobs (add --allow-remote to mean it)")
    roots = [Path(a) for a in args.allow] if args.allow else default_roots()
    for root in roots:
        if not root.is_dir():
            raise BadInput(root, "--allow: not a folder")
    plugin_dirs = [Path(d) for d in args.plugin_dir] if args.plugin_dir else None
    config = ServerConfig(
        host=args.host, port=args.port, out_dir=Path(args.out_dir), daw=args.daw, daw_host=args.daw_host,
        daw_port=args.daw_port, daw_sample_rate=args.daw_sample_rate, reaper_command_id=args.reaper_command_id,
        allowed_roots=roots, reply_port=args.reply_port, plugin_dirs=plugin_dirs, allow_remote=args.allow_remote,
    )
    if args.spool:
        from editorbot.bridge.spool import Spool

        try:
            Spool(args.spool, allowed_roots=roots)
        except OSError as err:
            raise BadInput(args.spool, f"--spool: cannot use as a spool folder: {err.strerror or err}") from None
    try:
        server = Server(config)
    except OSError as err:
        raise BadInput(f"{args.host}:{args.port}", f"cannot listen: {err.strerror or err}") from None
    except ValueError as err:
        raise BadInput("--reaper-command-id", str(err)) from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum, extra={"event": "signal", "signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    spool_thread = None
    if args.spool:
        from editorbot.bridge.spool import start_spool_thread
        from editorbot.bridge.spool_edit import edit_handler

        spool_thread = start_spool_thread(
            args.spool, edit_handler, stop=stop, submit=server.run_on_worker, allowed_roots=roots
        )
    server.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        stop.set()
        if spool_thread is not None:
            spool_thread.join(10)
        server.close()
    return 0
