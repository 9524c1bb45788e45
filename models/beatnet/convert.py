"""Write BeatNet's network weights as the .npz files beside this script.

The learned beat tracker (engine.beat_activation) reads these files; they are
BeatNet 1.1.3's ``BeatNet/models/model_{1,2,3}_weights.pt`` (CC BY 4.0, see
NOTICE.md) with every tensor stored as a float32 array under its
``state_dict`` name, so that reading them needs neither torch nor pickle.

    pip install --no-deps BeatNet==1.1.3
    python models/beatnet/convert.py
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    spec = importlib.util.find_spec("BeatNet")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("BeatNet is not installed (pip install --no-deps BeatNet==1.1.3)")
    source = Path(list(spec.submodule_search_locations)[0]) / "models"
    for model in (1, 2, 3):
        state = torch.load(source / f"model_{model}_weights.pt", map_location="cpu", weights_only=True)
        arrays = {name: tensor.numpy().astype(np.float32) for name, tensor in state.items()}
        out = Path(__file__).parent / f"model_{model}.npz"
        np.savez_compressed(out, **arrays)
        print(out, len(arrays), "tensors")


if __name__ == "__main__":
    main()
