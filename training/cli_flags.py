"""Command lines of the trainers: one flag per config field, and the ``python -m`` entry shell.

``training.train`` (``rl``) and ``training.supervised_trainer``
(``supervised``) both build their flags from a config dataclass with
``add_config_flags`` and read them back with ``config_from_args``;
``run_trainer_command`` is the ``main`` both modules run as scripts (logging
level from ``--quiet``/``--verbose``, bad input as one line and exit 2).
Nothing heavy is imported here: ``editorbot --help`` builds these parsers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from editorbot.engine.errors import BadInput

#: Fields set by a named flag of their own instead of the generated one.
_RENAMED = {"bc_path": "--bc-mixed"}
_METAVARS = {"bc_path": "NPZ"}
_TYPES = {"int": int, "float": float, "str": str}


def add_config_flags(p: argparse.ArgumentParser, cls: type, title: str) -> None:
    """One flag per dataclass field, default None (= keep the dataclass default)."""
    group = p.add_argument_group(title)
    for f in dataclasses.fields(cls):
        flag = _RENAMED.get(f.name, "--" + f.name.replace("_", "-"))
        type_name = str(f.type).replace(" | None", "")
        default = f.default
        if type_name == "bool":
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=f"(default {default})")
        else:
            group.add_argument(flag, dest=f.name, type=_TYPES[type_name], default=None,
                               metavar=_METAVARS.get(f.name, type_name.upper()), help=f"(default {default})")


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """A ``cls`` instance with the fields given on the command line."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}
    return cls(**given)


def run_trainer_command(prog: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                        argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with the flags ``add_arguments`` adds, run the chosen trainer (``args._train``).

    Returns the exit code: the trainer's, or 2 after one line on stderr for bad input.
    """
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description="Train editorbot's models.")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._train(args))
    except BadInput as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
