"""The ``editorbot`` command: a thin dispatcher over the Python API.

Each subcommand lives in ``bridge/commands/<name>.py`` with
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import
the heavy libraries inside ``run`` so ``editorbot --help`` stays fast.

Exit codes (DESIGN section 12): 0 success, 2 bad input or usage (one line on
stderr naming the file or flag), 1 unexpected failure (with a log).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

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
    "convert-checkpoint": ("convert_checkpoint", "rewrite an old (pickled) checkpoint of your own so it loads weights-only"),
    "serve": ("serve", "OSC server for DAWs: analyze/edit/render jobs, markers through a DAW dialect"),
    "send": ("send", "send one OSC message to editorbot serve and print the replies"),
    "stems": ("stems", "separate a song into drums, bass, vocals, other; optional per-stem plugin chains"),
}

log = logging.getLogger("editorbot")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")
    common.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="editorbot",
        description="Learn how a person edits music and edit new songs the same way.",
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


if __name__ == "__main__":
    sys.exit(main())
