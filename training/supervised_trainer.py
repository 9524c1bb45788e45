"""Entry point of the supervised trainer: ``python -m editorbot.training.supervised_trainer`` and
``editorbot train supervised``.

Every ``SupervisedConfig`` field is a flag (``--epochs``, ``--batch-size``,
``--encoder-dim``, ``--patience``, ...) whose default is the dataclass
default. Pairs come from ``--data-dir`` (``labels/*.json`` with their raw
and desired audio); songs are split into train and validation by song.
Heavy imports (torch, the trainer) happen inside ``run``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from editorbot.engine.errors import BadInput
from editorbot.training.cli_flags import add_config_flags, config_from_args, run_trainer_command
from editorbot.training.config import SupervisedConfig

logger = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``train supervised``."""
    p.add_argument("--data-dir", required=True, metavar="DIR", help="folder with input/, desired_output/, labels/")
    p.add_argument("--save-dir", required=True, metavar="D", help="checkpoints, TensorBoard events, progress log")
    p.add_argument("--resume", action="store_true", help="continue from SAVE_DIR/last.pt")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="(default cpu)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimiser steps in all")
    p.add_argument("--max-minutes", type=float, metavar="M", help="stop after M minutes of this run")
    add_config_flags(p, SupervisedConfig, "model and trainer (SupervisedConfig)")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``supervised`` to a trainer sub-parser set (``training.train.add_arguments``)."""
    p = sub.add_parser("supervised", help="the sound of the edit on top of the DSP render (Option A)",
                       description="Train the supervised edit-sound model on (raw, edited) pairs.")
    # also accepted after the trainer's name; SUPPRESS keeps a value given before it
    p.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only")
    p.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    add_arguments(p)
    p.set_defaults(_train=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load the pairs, split by song, train; 0 on success."""
    # torch and the trainer load here, not at import: `editorbot --help` builds this parser
    from editorbot.training.song_pairs import load_song_pairs, split_by_song
    from editorbot.training.supervised import train

    try:
        config = config_from_args(SupervisedConfig, args)
    except ValueError as err:
        raise BadInput("flags", str(err)) from None
    quiet = bool(getattr(args, "quiet", False))
    songs = load_song_pairs(args.data_dir, quiet=quiet)
    train_songs, val_songs = split_by_song(songs, config.val_fraction, config.seed)
    logger.info("%d pairs: %d for training, %d held out (by song)", len(songs), len(train_songs), len(val_songs))
    result = train(
        train_songs, val_songs, args.save_dir, config=config, resume=args.resume, device=args.device, quiet=quiet,
        max_steps=args.max_steps, max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
    )
    logger.info("trained %d steps over %d epochs; best val/total_loss %.4f at epoch %d%s; checkpoints in %s",
                result["step"], result["epoch"], result["best_val"], result["best_epoch"],
                " (stopped early)" if result["stopped_early"] else "", args.save_dir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m editorbot.training.supervised_trainer``: the flags of ``python -m editorbot.training.train supervised``."""

    def add_supervised(p: argparse.ArgumentParser) -> None:
        add_arguments(p)
        p.set_defaults(_train=run)

    return run_trainer_command("editorbot.training.supervised_trainer", add_supervised, argv)


if __name__ == "__main__":
    sys.exit(main())
