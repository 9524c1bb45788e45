"""Reading the supervised trainer's checkpoints: the format, the file, the model in it.

``training.supervised.train`` writes ``last.pt`` and ``best.pt`` of format
``CHECKPOINT_FORMAT`` (what they hold: that module's docstring);
``load_supervised_checkpoint`` reads one (weights only,
``training.run_state.read_checkpoint``), ``model_from_checkpoint`` and
``load_model`` give its ``EditSoundModel`` with the learned timing, ready
for ``training.learned_render`` and the ONNX export (``export.onnx``).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from editorbot.engine.errors import BadInput
from editorbot.training.config import SupervisedConfig
from editorbot.training.models.supervised import EditSoundModel
from editorbot.training.models.timing import TimingModel
from editorbot.training.run_state import read_checkpoint

CHECKPOINT_FORMAT = "editorbot.supervised/1"


def load_supervised_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by ``training.supervised.train`` (``run_state.read_checkpoint``)."""
    return read_checkpoint(Path(path), CHECKPOINT_FORMAT)


def load_model(path: str | os.PathLike) -> EditSoundModel:
    """The trained model of a checkpoint (eval mode, CPU); BadInput naming the file if it is not one."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise BadInput(p, "no such checkpoint")
    try:
        return model_from_checkpoint(load_supervised_checkpoint(p))
    except (OSError, ValueError, RuntimeError, EOFError, KeyError, TypeError, pickle.UnpicklingError) as err:
        raise BadInput(p, f"not a supervised checkpoint ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None


def model_from_checkpoint(ckpt: dict[str, Any]) -> EditSoundModel:
    """The model (eval mode, CPU) of a loaded checkpoint dict (KeyError / TypeError / RuntimeError if it does not fit)."""
    model = EditSoundModel(SupervisedConfig(**ckpt["config"]), int(ckpt["sample_rate"]))
    model.load_state_dict(ckpt["model"])
    model.timing = TimingModel.from_dict(ckpt.get("timing"))
    return model.eval()
