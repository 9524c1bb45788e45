"""What every training run saves, restores and reacts to.

Checkpoints carry the python/numpy/torch rng states so a resumed run
continues the same random streams; they are written atomically so a kill
never leaves half a file. A checkpoint holds only tensors and plain
containers (dict, list, tuple, str, int, float, bool, None), so it is read
with ``torch.load(weights_only=True)`` and no file, trusted or not, runs code
when loaded. A file from before that rule (numpy rng state) is refused with a
line naming ``editorbot convert-checkpoint``, the one place that unpickles a
file, on the user's word that they trust it. ``StopFlag`` turns SIGINT/SIGTERM into a clean
save at the next update boundary. ``hyperparameter_table`` is the config
table both trainers log to TensorBoard at start. ``load_resume_checkpoint``,
``restore_training_state`` and ``gather_rng_states`` are the resume code
both trainers share.
"""

from __future__ import annotations

import logging
import os
import random
import re
import signal
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from editorbot.engine.atomic import atomic_path
from editorbot.engine.errors import BadInput
from editorbot.training.distributed import Distributed

logger = logging.getLogger(__name__)


CONVERT_HINT = "if you trust the file, convert it once with: editorbot convert-checkpoint OLD NEW"


class UnsafeCheckpoint(BadInput, ValueError):
    """A checkpoint holding objects a weights-only load refuses (an old format, or a hostile file)."""


def rng_state() -> dict[str, Any]:
    """python, numpy and torch rng states, as plain types (the numpy key table as an int64 tensor)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (str(name), torch.from_numpy(np.asarray(keys).astype(np.int64)), int(pos), int(has_gauss), float(cached))
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``rng_state``."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename over it (engine.atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_weights_only(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain containers, no code run.

    Raises
    ------
    UnsafeCheckpoint
        the file pickles other objects; the message names the
        file, the first refused object and ``editorbot convert-checkpoint``.
    Exception
        other exceptions of ``torch.load`` for a missing, corrupt or foreign file.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for refused objects
        refused = re.search(r"GLOBAL (\S+)", str(err))
        if refused is None:
            raise
        what = refused.group(1).rstrip(".,")
        problem = f"holds pickled objects ({what}) a weights-only load refuses; {CONVERT_HINT}"
        raise UnsafeCheckpoint(path, problem) from None


def read_checkpoint(path: str | Path, fmt: str) -> dict[str, Any]:
    """A checkpoint ``save_checkpoint`` wrote in format ``fmt``; ValueError naming the file otherwise."""
    ckpt = load_weights_only(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != fmt:
        raise ValueError(f"{path}: not a {fmt} checkpoint")
    return ckpt


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as numbers; TypeError for anything else."""
    if isinstance(obj, (torch.Tensor, str, int, float, bool, type(None))):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        items = [(k, _plain(v, f"{where}.{k}")) for k, v in obj.items()]
        return OrderedDict(items) if isinstance(obj, OrderedDict) else dict(items)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    raise TypeError(f"{where}: a {type(obj).__module__}.{type(obj).__qualname__}, not a tensor or plain value")


def convert_checkpoint(old: str | os.PathLike, new: str | os.PathLike) -> Path:
    """Rewrite an old checkpoint so ``load_weights_only`` reads it; returns ``new``.

    This unpickles ``old`` in full (it may run code): the caller must trust
    the file. Only the CLI calls it, on the user's explicit command. Numpy
    arrays become tensors and numpy scalars numbers; any other object is
    refused. ``new`` must not exist (nothing is overwritten).

    Raises
    ------
    ValueError
        ``new`` exists or is ``old``, or ``old`` holds an object
        that has no plain form; the message names the file.
    """
    new_path = Path(new)
    if new_path.exists() or os.path.lexists(new_path):
        raise ValueError(f"{new_path}: exists; converting never overwrites a file")
    doc = torch.load(old, map_location="cpu", weights_only=False)
    try:
        plain = _plain(doc, "checkpoint")
    except TypeError as err:
        raise ValueError(f"{os.fspath(old)}: {err}") from None
    save_checkpoint(new_path, plain)
    load_weights_only(new_path)  # proof that the converted file reads safely
    return new_path


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
