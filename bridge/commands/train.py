"""``editorbot train rl --data-dir DIR --save-dir D ...``: train the edit policy.

A thin layer over ``training.train`` (the same flags as ``python -m
editorbot.training.train``); the trainer and torch load inside ``run``.
One addition: ``train rl --init`` also takes an exported policy (a
``.onnx`` file or a model folder such as ``models/default``), rebuilt as a
checkpoint by ``export.onnx.agent_from_onnx`` for the trainer to start from.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Trainer sub-commands and their flags (``training.train.add_arguments``)."""
    from editorbot.training.train import add_arguments as add_train_arguments

    add_train_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run the chosen trainer; 0 on success."""
    from editorbot.training.train import run as run_train

    init = getattr(args, "init", None)
    if not init or not (Path(init).is_dir() or init.endswith(".onnx")):
        return run_train(args)
    from editorbot.export.onnx import agent_from_onnx, write_init_checkpoint

    agent = agent_from_onnx(init)
    with tempfile.TemporaryDirectory(prefix="editorbot-init-") as tmp:
        args.init = str(write_init_checkpoint(agent, Path(tmp) / "init.pt"))
        return run_train(args)
