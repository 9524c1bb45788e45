"""Shared fixtures of the export tests: a tiny policy of the real architecture
(random weights), exported once per test session through ``editorbot
export-model``, and synthetic songs analysed once."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_ROOT = Path(tempfile.mkdtemp(prefix="editorbot-export-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


def tiny_config(n_pos_feats: int = 4):
    """A small ``AgentConfig`` with the real observation layout (109 features, 26 done columns);
    window 16 (receptive field 6 each side), history 8."""
    from editorbot.training.config import AgentConfig

    return AgentConfig(
        window=16,
        hidden=32,
        heads=4,
        layers=2,
        kernel=7,
        value_hidden=16,
        value_heads=2,
        value_layers=1,
        history=8,
        n_pos_feats=n_pos_feats,
        backend="torch",
    )


def tiny_agent(seed: int = 0, n_pos_feats: int = 4):
    """Random weights; a non-zero policy head so that the policy is far from uniform."""
    import torch

    from editorbot.training.models.agent import EditAgent

    torch.manual_seed(seed)
    agent = EditAgent(tiny_config(n_pos_feats))
    torch.nn.init.normal_(agent.policy_head.weight, std=0.3)
    torch.nn.init.normal_(agent.policy_head.bias, std=0.5)
    torch.nn.init.normal_(agent.policy_mlp[0].weight, std=0.5)  # the walk context matters
    return agent.eval()


def save_tiny_checkpoint(path: Path, agent) -> Path:
    """Write ``agent`` in the trainer's checkpoint format (``training.ppo``)."""
    from editorbot.training.ppo import CHECKPOINT_FORMAT, save_checkpoint

    save_checkpoint(
        path,
        {"format": CHECKPOINT_FORMAT, "agent": agent.state_dict(), "agent_config": agent.config.to_dict(), "update": 3},
    )
    return path


@functools.cache
def tiny_model() -> tuple[Path, Path]:
    """``(model.onnx, checkpoint.pt)`` of ``tiny_agent()``, exported once with ``editorbot export-model``."""
    from editorbot.bridge.cli import main

    folder = _ROOT / "model"
    folder.mkdir()
    ckpt = save_tiny_checkpoint(folder / "best.pt", tiny_agent())
    out = folder / "tiny.onnx"
    rc = main(["export-model", str(ckpt), "-o", str(out), "--quiet"])
    if rc != 0:
        raise RuntimeError(f"export-model exited {rc}")
    return out, ckpt


@functools.cache
def song_file(seed: int, duration_s: float) -> Path:
    """A synthesized song (``training.data.synth``) written as WAV."""
    from editorbot.training.data.synth import synth_song, write_song

    return write_song(synth_song(seed, duration_s=duration_s), _ROOT / f"song{seed}_{duration_s:g}.wav")


@functools.cache
def song_analysis(seed: int, duration_s: float):
    """``engine.analysis.analyze`` of ``song_file`` (no feature cache)."""
    from editorbot.engine.analysis import analyze

    return analyze(song_file(seed, duration_s), cache=False)


def median_beat_s(analysis) -> float:
    """Median beat interval in seconds."""
    return float(np.median(np.diff(analysis.grid.beat_times)))


def scratch(name: str) -> Path:
    """A fresh folder under the session's temp root."""
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_ROOT))
    os.chmod(path, 0o755)
    return path
