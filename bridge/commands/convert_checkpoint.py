"""``editorbot convert-checkpoint OLD NEW``: rewrite an old checkpoint so it loads weights-only.

Checkpoints are read with ``torch.load(weights_only=True)``, which runs no
code from the file. Files written before that rule hold a numpy rng state and
are refused with a line pointing here. This command unpickles OLD in full,
which can run any code the file carries: run it only on a file you trust
(your own training run). NEW must not exist. A thin layer over
``training.run_state.convert_checkpoint``; the server never calls it.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``editorbot convert-checkpoint``."""
    p.add_argument("old", metavar="OLD", help="checkpoint in the old format (unpickled in full: trusted files only)")
    p.add_argument("new", metavar="NEW", help="file to write (must not exist)")


def run(args: argparse.Namespace) -> int:
    """Convert; print the file written; 0 on success."""
    import os

    from editorbot.engine.errors import BadInput
    from editorbot.training.run_state import convert_checkpoint

    if not os.path.isfile(args.old):
        raise BadInput(args.old, "no such checkpoint file")
    try:
        new = convert_checkpoint(args.old, args.new)
    except ValueError as err:
        raise BadInput(None, str(err)) from None
    print(f"wrote {new} (loads weights-only)")
    return 0
