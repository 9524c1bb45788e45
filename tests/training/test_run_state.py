"""Checkpoint files load weights-only: a hostile pickle runs nothing, an old
(numpy rng) file is refused with the convert command named, and
``editorbot convert-checkpoint`` turns a trusted old file into one that loads."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from editorbot.bridge.cli import main
from editorbot.engine.errors import BadInput
from editorbot.export.onnx import load_checkpoint as load_policy_checkpoint
from editorbot.training.ppo import CHECKPOINT_FORMAT
from editorbot.training.ppo import load_checkpoint as load_ppo_checkpoint
from editorbot.training.run_state import read_checkpoint, rng_state, save_checkpoint, set_rng_state
from editorbot.training.supervised_checkpoint import load_model as load_supervised_model


class _Touch:
    """Unpickling this creates ``path``: proof that a load ran code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def hostile_checkpoint(folder: Path, name: str = "evil.pt") -> tuple[Path, Path]:
    """``(checkpoint, marker)``: a checkpoint whose ``format`` touches ``marker`` when unpickled."""
    ckpt, marker = folder / name, folder / f"{name}.ran"
    torch.save({"format": _Touch(marker), "agent": {}}, ckpt)
    return ckpt, marker


def old_checkpoint(path: Path) -> Path:
    """A checkpoint as trainers wrote it before the weights-only rule: numpy rng state inside."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save({"format": CHECKPOINT_FORMAT, "rng": [state], "update": np.int64(3), "agent": {"w": torch.ones(2)}}, path)
    return path


@pytest.mark.parametrize(
    "load",
    [
        lambda p: read_checkpoint(p, CHECKPOINT_FORMAT),  # training.run_state: every trainer's resume
        load_ppo_checkpoint,
        load_policy_checkpoint,  # export.onnx: export-model, edit --checkpoint, the server's checkpoint option
        load_supervised_model,
    ],
    ids=["run_state", "ppo", "editorbot.export.onnx", "supervised"],
)
def test_a_hostile_pickle_runs_nothing(tmp_path: Path, load) -> None:
    ckpt, marker = hostile_checkpoint(tmp_path)
    with pytest.raises((BadInput, ValueError), match="evil.pt"):
        load(ckpt)
    assert not marker.exists()


def test_rng_state_is_plain_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "rng": [rng_state()]})
    state = read_checkpoint(path, CHECKPOINT_FORMAT)["rng"][0]  # weights-only load
    drawn = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == drawn


def test_old_checkpoint_is_refused_then_converted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = old_checkpoint(tmp_path / "old.pt")
    with pytest.raises(BadInput, match="old.pt: .*editorbot convert-checkpoint"):
        read_checkpoint(old, CHECKPOINT_FORMAT)
    new = tmp_path / "new.pt"
    assert main(["convert-checkpoint", str(old), str(new)]) == 0
    ckpt = read_checkpoint(new, CHECKPOINT_FORMAT)
    assert ckpt["update"] == 3 and torch.equal(ckpt["agent"]["w"], torch.ones(2))
    set_rng_state(ckpt["rng"][0])
    # never over an existing file
    before = new.read_bytes()
    assert main(["convert-checkpoint", str(old), str(new)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "new.pt" in err[0] and "exists" in err[0]
    assert new.read_bytes() == before


def test_cli_refuses_an_old_checkpoint_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = old_checkpoint(tmp_path / "old.pt")
    assert main(["export-model", str(old), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"editorbot: {old}:") and "convert-checkpoint" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["old.pt"]
