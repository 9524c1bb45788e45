"""The ``editorbot`` command: a thin dispatcher over the Python API.

Each subcommand lives in ``bridge/commands/<name>.py`` with
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import
the heavy libraries inside ``run`` so ``editorbot --help`` stays fast.

``editorbot --version`` prints the version and the bundled model's name and
sha256 (read from the installed files, without torch).

Exit codes (DESIGN section 12): 0 success, 2 bad input or usage (one line on
stderr naming the file or flag), 1 unexpected failure (with a log).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from editorbot.engine.formats import TRACKER_ENV, TRACKERS

# name -> (module under bridge.commands, one-line help). Add a line per command.
COMMANDS: dict[str, tuple[str, str]] = {  # in the order of DESIGN section 12
    "analyze": ("analyze", "beat grid and per-beat features of an audio file"),
    "edit": ("edit", "edit an audio file with a trained policy: plan, audio, exports, plot"),
    "render": ("render", "render a plan's edit of its source audio to an audio file"),
    "export": ("export", "write a plan as a REAPER project, MIDI file, Audacity labels or TSV"),
    "ardour-session": ("ardour_session", "write a plan as a new Ardour 7 session (needs Ardour's ardour7-lua)"),
    "plot": ("plot", "before/after picture of a plan's edit"),
    "data": ("data", "training data: synth, pair, labels, augment"),
    "train": ("train", "train a model (rl: PPO + behavioural cloning; supervised: the sound of an edit)"),
    "export-model": ("export_model", "export a training checkpoint to ONNX with its JSON sidecar"),
    "convert-checkpoint": (
        "convert_checkpoint",
        "rewrite an old (pickled) checkpoint of your own so it loads weights-only",
    ),
    "serve": ("serve", "OSC server for DAWs: analyze/edit/render jobs, markers through a DAW dialect"),
    "send": ("send", "send one OSC message to editorbot serve and print the replies"),
    "reaper": ("reaper", "install the Reaper scripts and JS effects where Reaper finds them, or print where they are"),
    "stems": ("stems", "separate a song into drums, bass, vocals, other; optional per-stem plugin chains"),
}

log = logging.getLogger("editorbot")


def version_text() -> str:
    """``editorbot VERSION`` and the bundled model's name (from its sidecar) and sha256 (of the file).

    Names ``$EDITORBOT_MODEL`` too when it is set (``edit`` and ``serve`` use
    it instead), without loading it.
    """
    from editorbot import __version__
    from editorbot.export.runtime import DEFAULT_MODEL, MODEL_ENV_VAR, sha256_of, sidecar_path

    lines = [f"editorbot {__version__}"]
    if DEFAULT_MODEL.is_file():
        try:
            name = str(json.loads(sidecar_path(DEFAULT_MODEL).read_text(encoding="utf-8"))["name"])
        except (OSError, ValueError, KeyError, TypeError):
            name = "(its sidecar is missing or unreadable)"
        lines.append(f"model {name} sha256 {sha256_of(DEFAULT_MODEL)} ({DEFAULT_MODEL})")
    else:
        lines.append(f"model none: {DEFAULT_MODEL} is missing")
    if os.environ.get(MODEL_ENV_VAR):
        lines.append(f"{MODEL_ENV_VAR}={os.environ[MODEL_ENV_VAR]} (used instead of the bundled model)")
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    """``--version``: print ``version_text()`` and exit 0; the model is hashed only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:  # noqa: A002 (argparse's keyword)
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(version_text())
        parser.exit()


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")
    common.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    common.add_argument(
        "--tracker",
        choices=TRACKERS,
        default=None,
        help="beat tracker of every analysis: learned (the default: BeatNet's networks and an HMM) or onset "
        "(onset envelopes only: about 3x faster, far worse beats on real recordings); default $EDITORBOT_TRACKER",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="editorbot",
        description="Learn how a person edits music and edit new songs the same way.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and the bundled model's name and sha256, then exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"editorbot.bridge.commands.{module_name}")
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    before = os.environ.get(TRACKER_ENV)
    if args.tracker:
        # through the environment, so the worker processes of data commands analyse alike
        os.environ[TRACKER_ENV] = args.tracker

    from editorbot.engine.errors import BadInput

    try:
        return int(args._module.run(args) or 0)
    except BadInput as err:
        print(f"editorbot: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("editorbot: interrupted", file=sys.stderr)
        return 130
    except Exception:  # the one place that turns crashes into exit 1
        log.exception("unexpected failure")
        return 1
    finally:  # main() called in-process (tests, scripts) leaves the caller's environment as it was
        if before is None:
            os.environ.pop(TRACKER_ENV, None)
        else:
            os.environ[TRACKER_ENV] = before


if __name__ == "__main__":
    sys.exit(main())
