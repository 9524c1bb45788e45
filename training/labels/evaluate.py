"""Inferred labels scored against truth labels (``labels/NAME.json`` of synthetic pairs).

``Evaluator`` accumulates pairs (``infer.PairLabels`` against the truth
label file's plan, read with ``read_label_plan``); ``Evaluation`` holds the
figures ``editorbot data labels --eval`` and ``bench/labels.py`` print:
beat accuracy, accuracy on the structural types, macro-F1 over the types,
amount accuracy where the type is right, action boundaries within one beat,
a per-type table and the calibration of the inferred confidence (beat
accuracy per confidence decile). A truth label file is read only after inference,
never by it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.training.labels.infer import PairLabels

log = logging.getLogger(__name__)

STRUCTURAL_TYPES: tuple[str, ...] = ("KEEP", "CUT", "LOOP", "REVERSE", "STUTTER", "SILENCE")


def truth_on_beats(plan_doc: dict[str, Any], beat_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True (type, amount) indices of each analysed beat from a truth label plan's actions.

    A beat takes the action whose source span holds its middle (KEEP/NEUTRAL
    where none does). Works whatever grid the plan was made on.

    Returns ``type_idx (n,)``, ``amount_idx (n,)`` int64.
    """
    bt = np.asarray(beat_times, dtype=np.float64)
    n = bt.shape[0]
    period = float(np.median(np.diff(bt))) if n > 1 else 0.5
    mids = bt + 0.5 * np.append(np.diff(bt), period) if n else bt
    t = np.zeros(n, dtype=np.int64)
    a = np.full(n, int(vocab.Amount.NEUTRAL), dtype=np.int64)
    for act in plan_doc.get("actions", []):
        sel = (mids >= act["start_s"]) & (mids < act["end_s"])
        t[sel] = vocab.type_index(act["type"])
        a[sel] = vocab.amount_index(act["amount"])
    return t, a


def _boundaries_true(plan_doc: dict[str, Any], beat_times: np.ndarray) -> list[float]:
    """Start and end (in fractional analysed-beat units) of every non-KEEP truth label action."""
    bt = np.asarray(beat_times, dtype=np.float64)
    idx = np.arange(bt.shape[0], dtype=np.float64)
    out = []
    for act in plan_doc.get("actions", []):
        if act["type"] == "KEEP":
            continue
        for x in (act["start_s"], act["end_s"]):
            if bt[0] - 1e-6 <= x <= bt[-1] + 1e-6:
                out.append(float(np.interp(x, bt, idx)))
    return out


def _boundaries_pred(labels: np.ndarray, action_start: np.ndarray) -> np.ndarray:
    """Beat indices where a predicted non-KEEP action starts or ends."""
    n = labels.shape[0]
    keep = vocab.type_index("KEEP")
    out = set()
    for i in range(n):
        if not action_start[i] or labels[i, 0] == keep:
            continue
        out.add(i)
        j = i + 1
        while j < n and not action_start[j]:
            j += 1
        out.add(j)
    return np.asarray(sorted(out), dtype=np.float64)


@dataclass
class Evaluation:
    """Inferred labels against truth labels, over all evaluated beats.

    Attributes
    ----------
    n_pairs, n_beats : int
        how much was compared.
    beat_accuracy : float
        share of beats whose type is right.
    structural_accuracy : float
        the same over beats whose true type is structural.
    macro_f1 : float
        mean F1 over the types present in the truth or the predictions.
    amount_accuracy : float
        share of right amounts where the type is right (amount types only).
    boundary_within_1 : float
        share of true non-KEEP action edges with a predicted edge within 1 beat.
    per_type : dict[str, tuple[float, float, float, int]]
        type -> (precision, recall, f1, support).
    calibration : list[tuple[float, float, int, float]]
        ``(low, high, n_beats, beat_accuracy)`` per confidence decile
        ``[low, high)`` (the last one holds 1.0) that holds beats: a
        well-calibrated confidence has accuracy near the decile.
    unalignable : list[str]
        names of pairs reported unalignable.
    """

    n_pairs: int = 0
    n_beats: int = 0
    beat_accuracy: float = float("nan")
    structural_accuracy: float = float("nan")
    macro_f1: float = float("nan")
    amount_accuracy: float = float("nan")
    boundary_within_1: float = float("nan")
    per_type: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    calibration: list[tuple[float, float, int, float]] = field(default_factory=list)
    unalignable: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        out = [
            f"pairs {self.n_pairs}, beats {self.n_beats}, unalignable {len(self.unalignable)}",
            f"beat accuracy {self.beat_accuracy:.4f}; structural types {self.structural_accuracy:.4f}; "
            f"macro-F1 {self.macro_f1:.4f}; amount accuracy {self.amount_accuracy:.4f}; "
            f"boundaries within 1 beat {self.boundary_within_1:.4f}",
            f"{'type':<11} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
        ]
        for t, (p, r, f, n) in self.per_type.items():
            out.append(f"{t:<11} {p:9.3f} {r:7.3f} {f:6.3f} {n:8d}")
        if self.calibration:
            out.append("calibration: beat accuracy per confidence decile")
            out.append(f"{'confidence':<11} {'beats':>7} {'accuracy':>8}")
            for lo, hi, n, acc in self.calibration:
                out.append(f"{lo:.1f}-{hi:.1f}    {n:7d} {acc:8.3f}")
        return out


class Evaluator:
    """Accumulates inferred labels (``PairLabels``) against truth label plans; ``result()`` gives the ``Evaluation``."""

    def __init__(self) -> None:
        self.true_t: list[np.ndarray] = []
        self.true_a: list[np.ndarray] = []
        self.pred: list[np.ndarray] = []
        self.conf: list[np.ndarray] = []
        self.bound_hits = 0
        self.bound_total = 0
        self.unalignable: list[str] = []
        self.n_pairs = 0

    def add(self, result: PairLabels, plan_doc: dict[str, Any]) -> None:
        """Compare one pair (``plan_doc``: its truth label file's plan as a dict)."""
        self.n_pairs += 1
        if not result.alignable:
            self.unalignable.append(result.name)
            return
        t, a = truth_on_beats(plan_doc, result.beat_times)
        self.true_t.append(t)
        self.true_a.append(a)
        self.pred.append(result.labels)
        self.conf.append(np.asarray(result.confidence, dtype=np.float64))
        pb = _boundaries_pred(result.labels, result.action_start)
        for x in _boundaries_true(plan_doc, result.beat_times):
            self.bound_total += 1
            if pb.size and float(np.min(np.abs(pb - x))) <= 1.0 + 1e-6:
                self.bound_hits += 1

    def result(self) -> Evaluation:
        ev = Evaluation(n_pairs=self.n_pairs, unalignable=list(self.unalignable))
        if not self.pred:
            return ev
        tt = np.concatenate(self.true_t)
        ta = np.concatenate(self.true_a)
        pred = np.concatenate(self.pred)
        pt, pa = pred[:, 0], pred[:, 2]
        ev.n_beats = int(tt.shape[0])
        ev.beat_accuracy = float(np.mean(pt == tt))
        structural = np.isin(tt, [vocab.type_index(x) for x in STRUCTURAL_TYPES])
        ev.structural_accuracy = float(np.mean(pt[structural] == tt[structural])) if structural.any() else float("nan")
        f1s = []
        for i, name in enumerate(vocab.TYPES):
            tp = int(np.sum((pt == i) & (tt == i)))
            n_pred, n_true = int(np.sum(pt == i)), int(np.sum(tt == i))
            if n_pred == 0 and n_true == 0:
                continue
            p = tp / n_pred if n_pred else 0.0
            r = tp / n_true if n_true else 0.0
            f = 2 * p * r / (p + r) if p + r else 0.0
            ev.per_type[name] = (p, r, f, n_true)
            f1s.append(f)
        ev.macro_f1 = float(np.mean(f1s)) if f1s else float("nan")
        amount_types = np.array([t not in vocab.NEUTRAL_ONLY for t in vocab.TYPES])
        right = (pt == tt) & amount_types[tt]
        ev.amount_accuracy = float(np.mean(pa[right] == ta[right])) if right.any() else float("nan")
        ev.boundary_within_1 = self.bound_hits / self.bound_total if self.bound_total else float("nan")
        ev.calibration = calibration(np.concatenate(self.conf), pt == tt)
        return ev


def calibration(confidence: np.ndarray, right: np.ndarray, n_bins: int = 10) -> list[tuple[float, float, int, float]]:
    """``(low, high, n, accuracy)`` of each confidence bin ``[low, high)`` holding beats (1.0 in the last bin).

    Parameters
    ----------
    confidence : np.ndarray
        ``(n_beats,)`` inferred confidence in [0, 1].
    right : np.ndarray
        ``(n_beats,)`` bool, the inferred type is the true one.
    n_bins : int
        equal-width bins over [0, 1] (10: deciles).
    """
    conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    right = np.asarray(right, dtype=bool)
    k = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = k == b
        if sel.any():
            out.append((b / n_bins, (b + 1) / n_bins, int(sel.sum()), float(right[sel].mean())))
    return out


def read_label_plan(label_path: str) -> dict[str, Any] | None:
    """The plan dict of a truth label file (``{"plan": {...}}`` or a bare plan), or None."""
    try:
        with open(label_path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read labels: %s", label_path, err)
        return None
    plan = doc.get("plan", doc) if isinstance(doc, dict) else None
    return plan if isinstance(plan, dict) and isinstance(plan.get("actions"), list) else None
