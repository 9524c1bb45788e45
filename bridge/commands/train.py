"""``editorbot train rl --data-dir DIR --save-dir D ...``: train the edit policy.

A thin layer over ``training.train`` (the same flags as ``python -m
training.train``); the trainer and torch load inside ``run``.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Trainer sub-commands and their flags (``training.train.add_arguments``)."""
    from editorbot.training.train import add_arguments as add_train_arguments

    add_train_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run the chosen trainer; 0 on success."""
    from editorbot.training.train import run as run_train

    return run_train(args)
