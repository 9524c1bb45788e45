"""torchrun plumbing shared by the trainers: process group, rank-averaged scalars, replica check.

Every trainer runs the same way under ``torchrun`` (DDP; gloo on CPU, nccl on
CUDA): each rank joins with ``setup_training``, averages the scalars it
logs with ``all_mean``, and ends with ``finish_distributed``, which records
each rank's parameter hash so a diverged replica is visible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass
class Distributed:
    """Where this process sits in a torchrun job (world 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this trainer joined the group, so it leaves it at the end

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns_group)


def setup_training(device: str) -> tuple[torch.device, Distributed]:
    """The torch device for ``device`` ("auto": CUDA when available) and this rank's place.

    Under torchrun on CUDA each rank takes its local GPU.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    ddp = setup_distributed(dev)
    if ddp.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ddp.local_rank)
    return dev, ddp


def all_mean(x: float, ddp: Distributed) -> float:
    """Mean of a scalar over ranks."""
    if not ddp.enabled:
        return x
    t = torch.tensor([x], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / ddp.world


def state_hash(module: nn.Module) -> str:
    """sha256 of a module's state dict (parameters and buffers, in order)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


def finish_distributed(module: nn.Module, ddp: Distributed, save_dir: Path) -> None:
    """End of a torchrun job: rank 0 writes every rank's ``state_hash`` to ``save_dir/replicas.json``.

    Replicas must agree after DDP; a mismatch is logged as an error. The
    process group is then left (if this trainer joined it): exiting with
    gloo still set up was seen to abort a rank at interpreter shutdown.
    """
    if not ddp.enabled:
        return
    hashes: list[str | None] = [None] * ddp.world
    dist.all_gather_object(hashes, state_hash(module))
    if ddp.main:
        (save_dir / "replicas.json").write_text(json.dumps({"hashes": hashes}, indent=1))
        if len(set(hashes)) != 1:
            logger.error("replicas diverged: %s", hashes)
    dist.barrier()
    if ddp.owns_group:
        dist.destroy_process_group()
