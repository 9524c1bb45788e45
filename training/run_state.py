"""What every training run saves, restores and reacts to.

Checkpoints carry the python/numpy/torch rng states so a resumed run
continues the same random streams; they are written atomically so a kill
never leaves half a file. ``StopFlag`` turns SIGINT/SIGTERM into a clean
save at the next update boundary. ``hyperparameter_table`` is the config
table both trainers log to TensorBoard at start. ``load_resume_checkpoint``,
``restore_training_state`` and ``gather_rng_states`` are the resume code
both trainers share.
"""

from __future__ import annotations

import logging
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from engine.atomic import atomic_path
from training.distributed import Distributed

logger = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """python, numpy and torch rng states."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``rng_state``."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename over it (engine.atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | Path, fmt: str) -> dict[str, Any]:
    """A checkpoint ``save_checkpoint`` wrote in format ``fmt``; ValueError naming the file otherwise.

    It holds rng states, so it is not weights-only: read only trusted files.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ValueError(f"{path}: not a {fmt} checkpoint")
    return ckpt


def hyperparameter_table(sections: dict[str, dict[str, Any]]) -> str:
    """Markdown table ``|section|param|value|`` for TensorBoard's text tab."""
    lines = ["|section|param|value|", "|-|-|-|"]
    for section, values in sections.items():
        lines += [f"|{section}|{k}|{v}|" for k, v in values.items()]
    return "\n".join(lines)


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop saves and exits at the next update boundary."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        logger.warning("signal %d: saving and stopping after this update", signum)
        self.stop = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)




# --------------------------------------------------------------------- resume


def load_resume_checkpoint(path: Path, fmt: str, counters: tuple[str, ...]) -> dict[str, Any] | None:
    """The ``fmt`` checkpoint at ``path`` to resume from, or None (with a warning) when there is none.

    ``counters`` name the checkpoint's progress fields the log line reports
    (``("update",)``, ``("step", "epoch")``).
    """
    if not path.is_file():
        logger.warning("--resume: %s not found, starting from scratch", path)
        return None
    ckpt = read_checkpoint(path, fmt)
    logger.info("resuming from %s at %s", path, ", ".join(f"{k} {ckpt[k]}" for k in counters))
    return ckpt


def restore_training_state(ckpt: dict[str, Any], model_key: str, model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, rank: int) -> None:
    """Load a checkpoint's weights (``ckpt[model_key]``), optimiser and grad scaler, and this rank's rng state.

    A run resumed on more ranks than it was saved from gives the extra ranks
    the last saved rank's state.
    """
    model.load_state_dict(ckpt[model_key])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])


def gather_rng_states(ddp: Distributed) -> list[dict[str, Any]]:
    """Every rank's ``rng_state()``, in rank order (a collective: every rank calls it)."""
    if not ddp.enabled:
        return [rng_state()]
    states: list[Any] = [None] * ddp.world
    dist.all_gather_object(states, rng_state())
    return states
