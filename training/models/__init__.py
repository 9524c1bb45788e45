"""Learned models: the RL edit policy (``agent``) and its encoder (``encoder``)."""

from training.models.agent import ActionMasks, AuxBatch, EditAgent, Observation
from training.models.encoder import HybridNATTENEncoder

__all__ = [
    "ActionMasks",
    "AuxBatch",
    "EditAgent",
    "HybridNATTENEncoder",
    "Observation",
]
