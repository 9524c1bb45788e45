"""What every training run saves, restores and reacts to.

Checkpoints carry the python/numpy/torch rng states so a resumed run
continues the same random streams; they are written atomically so a kill
never leaves half a file. ``StopFlag`` turns SIGINT/SIGTERM into a clean
save at the next update boundary. ``hyperparameter_table`` is the config
table both trainers log to TensorBoard at start.
"""

from __future__ import annotations

import logging
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.atomic import atomic_path

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


