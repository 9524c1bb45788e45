"""The supervised edit-sound model's ONNX export, run by onnxruntime.

``editorbot export-model`` turns a supervised checkpoint
(``editorbot train supervised``) into ``MODEL.onnx`` and its sidecar
``MODEL.json`` (kind ``"supervised"``). The graph is the network alone:

- inputs, for ``B`` timelines of ``T`` STFT frames (both axes dynamic):
  ``base_log_mel``, ``raw_log_mel`` ``(B, T, n_mels)`` float32 (natural-log
  mel magnitudes of the plan's DSP render and of its structural
  re-sequencing of the raw audio), ``types``, ``sizes``, ``amounts``
  ``(B, T)`` int64 (the edit label of each frame), ``position`` ``(B, T)``
  float32 (0 at the segment's start, 1 at its end);
- output: ``gain_db`` ``(B, T, n_mels)`` float32 (``(B, T, 2 n_mels)``, gain then
  raw-mix weight, for a model trained with ``raw_mix``).

The STFT, the log-mels and the spreading of the gains onto the STFT stay
outside, in ``training.models.supervised.SpectralFrontEnd``; the sidecar
records its ``spec_hash`` and ``OnnxEditSound`` refuses a model whose front
end this editorbot would not reproduce. The sidecar's ``timing`` (version 2)
is the learned timing and level (``training.models.timing.TimingModel``)
applied to the DSP render before the network, as with the checkpoint.
``OnnxEditSound`` stands wherever
``training.learned_render.render_learned`` takes a model
(``editorbot render --renderer learned --model MODEL.onnx``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from editorbot.engine.errors import BadInput
from editorbot.export.runtime import check_file_digest, open_session, read_sidecar
from editorbot.training.config import SupervisedConfig
from editorbot.training.models.supervised import SpectralFrontEnd
from editorbot.training.models.timing import TimingModel

log = logging.getLogger(__name__)

#: Format versions of the supervised export this editorbot reads (2 adds ``timing``; a version-1
#: sidecar has none and renders with the identity timing, as its checkpoint did).
SUPERVISED_VERSIONS: tuple[int, ...] = (1, 2)
#: Graph inputs and outputs, in order.
SUPERVISED_INPUTS: tuple[str, ...] = ("base_log_mel", "raw_log_mel", "types", "sizes", "amounts", "position")
SUPERVISED_OUTPUTS: tuple[str, ...] = ("gain_db",)


class OnnxEditSound:
    """An exported supervised model run by onnxruntime (a ``training.models.supervised.GainModel``).

    Parameters
    ----------
    model_path:
        ``MODEL.onnx`` with ``MODEL.json`` beside it.
    device, threads:
        As ``export.runtime.open_session`` (CUDA when asked for or, with
        ``"auto"``, available; else the CPU).

    BadInput naming the file for a missing or unreadable sidecar, another
    kind of model, an unknown format version, a changed model file or a
    front end this editorbot does not reproduce.
    """

    def __init__(self, model_path: str | os.PathLike, *, device: str = "auto", threads: int | None = None) -> None:
        self.path = str(model_path)
        doc = read_sidecar(self.path, "supervised", SUPERVISED_VERSIONS)
        try:
            self.cfg = SupervisedConfig(**doc["config"])
            self.frontend = SpectralFrontEnd(int(doc["sample_rate"]), self.cfg.n_mels)
            names = ([i["name"] for i in doc["inputs"]], [o["name"] for o in doc["outputs"]])
            spec_hash, digest = str(doc["features"]["spec_hash"]), str(doc["sha256"])
            self.timing = TimingModel.from_dict(doc["timing"] if doc["version"] >= 2 else None)
        except (KeyError, TypeError, ValueError) as err:
            raise BadInput(self.path, f"sidecar field {err} missing or malformed") from None
        if names != (list(SUPERVISED_INPUTS), list(SUPERVISED_OUTPUTS)):
            raise BadInput(self.path, f"graph inputs / outputs {names} are not {list(SUPERVISED_INPUTS)} / {list(SUPERVISED_OUTPUTS)}")
        check_file_digest(self.path, digest)
        if spec_hash != self.frontend.spec_hash():
            raise BadInput(
                self.path,
                f"front-end spec hash {spec_hash[:12]} does not match this editorbot's "
                f"{self.frontend.spec_hash()[:12]} (STFT, mel bands or log-mel changed): re-export the checkpoint",
            )
        self.session, self.provider = open_session(self.path, device=device, threads=threads)
        log.info("supervised model %s (%d Hz, %d mels) runs on %s", Path(self.path).name,
                 self.sample_rate, self.cfg.n_mels, self.provider)

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    def __call__(
        self, base_log_mel: Tensor, raw_log_mel: Tensor, types: Tensor, sizes: Tensor, amounts: Tensor, position: Tensor
    ) -> Tensor:
        """Gain in dB ``(B, T, n_mels)`` (arguments as ``EditSoundModel.forward``)."""
        args = (base_log_mel, raw_log_mel, types, sizes, amounts, position)
        dtypes = (np.float32, np.float32, np.int64, np.int64, np.int64, np.float32)
        feeds = {n: np.ascontiguousarray(a.detach().cpu().numpy(), dtype=d) for n, a, d in zip(SUPERVISED_INPUTS, args, dtypes)}
        return torch.from_numpy(self.session.run(list(SUPERVISED_OUTPUTS), feeds)[0])
