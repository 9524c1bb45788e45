"""Learned models: the RL edit policy (``agent``) and its encoder (``encoder``)."""

from editorbot.training.models.agent import ActionMasks, AuxBatch, EditAgent, Observation
from editorbot.training.models.encoder import HybridNATTENEncoder

__all__ = [
    "ActionMasks",
    "AuxBatch",
    "EditAgent",
    "HybridNATTENEncoder",
    "Observation",
]
