"""Truth labels: the action an editor style put on each source beat, and their coverage.

These are the ground truth of a synthetic pair (its label file's
``beat_labels``), known exactly because a style made the plan. They are
distinct from the labels ``training.labels`` infers from audio pairs and
from the label-track export (``engine.exporters.audacity``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.engine.plan import EditPlan


@dataclass
class TruthLabels:
    """The action covering each source beat, as factored indices.

    Attributes
    ----------
    type_idx, size_idx, amount_idx : np.ndarray
        ``(n_beats,)`` int64 indices into ``engine.actions.TYPES`` /
        ``SIZES`` / ``AMOUNTS``. Beats no action covers are KEEP / BEAT /
        NEUTRAL.
    """

    type_idx: np.ndarray
    size_idx: np.ndarray
    amount_idx: np.ndarray

    @property
    def n_beats(self) -> int:
        """Number of source beats labelled."""
        return int(self.type_idx.shape[0])

    def to_dict(self) -> dict[str, list[int]]:
        """JSON-ready: ``{"type": [...], "size": [...], "amount": [...]}``, one index per beat."""
        return {
            "type": [int(v) for v in self.type_idx],
            "size": [int(v) for v in self.size_idx],
            "amount": [int(v) for v in self.amount_idx],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Sequence[int]]) -> TruthLabels:
        """Inverse of ``to_dict``.

        Raises
        ------
        ValueError
            Ragged lists, or an index outside its factor's range.
        """
        arrays = [np.asarray(d[k], dtype=np.int64).reshape(-1) for k in ("type", "size", "amount")]
        if not arrays[0].shape == arrays[1].shape == arrays[2].shape:
            raise ValueError("beat labels: type, size and amount lists differ in length")
        limits = (vocab.N_TYPES, vocab.N_SIZES, vocab.N_AMOUNTS)
        for arr, limit, what in zip(arrays, limits, ("type", "size", "amount"), strict=True):
            if arr.size and (arr.min() < 0 or arr.max() >= limit):
                raise ValueError(f"beat labels: {what} index outside 0..{limit - 1}")
        return cls(*arrays)


def truth_labels(plan: EditPlan) -> TruthLabels:
    """Per-beat factored truth labels of a plan made by ``plan_from_actions``.

    Action ``k`` covers beats from its own beat up to the next action's beat
    (the last one: its size, clipped at the song's last beat).

    Parameters
    ----------
    plan : EditPlan
        Its ``actions`` are the walk; ``grid.beat_times`` gives ``n_beats``.

    Returns
    -------
    TruthLabels
        ``n_beats`` labels.
    """
    n = len(plan.grid.beat_times)
    t = np.zeros(n, dtype=np.int64)
    s = np.zeros(n, dtype=np.int64)
    a = np.full(n, vocab.Amount.NEUTRAL, dtype=np.int64)
    acts = plan.actions
    for k, act in enumerate(acts):
        b0 = int(act.beat)
        b1 = int(acts[k + 1].beat) if k + 1 < len(acts) else b0 + vocab.SIZE_BEATS[vocab.size_index(act.size)]
        b1 = min(b1, n)
        t[b0:b1] = vocab.type_index(act.type)
        s[b0:b1] = vocab.size_index(act.size)
        a[b0:b1] = vocab.amount_index(act.amount)
    return TruthLabels(t, s, a)


def label_coverage(labels: Iterable[TruthLabels]) -> dict[str, dict[str, float]]:
    """Share of labelled beats per type, size and amount over a corpus.

    Parameters
    ----------
    labels : iterable of TruthLabels
        One per pair.

    Returns
    -------
    dict
        ``{"type": {name: share}, "size": {...}, "amount": {...},
        "n_beats": {"total": n}}``; shares are fractions of all beats
        (0..1), every name present.
    """
    counts = {
        "type": np.zeros(vocab.N_TYPES, dtype=np.int64),
        "size": np.zeros(vocab.N_SIZES, dtype=np.int64),
        "amount": np.zeros(vocab.N_AMOUNTS, dtype=np.int64),
    }
    total = 0
    for lab in labels:
        counts["type"] += np.bincount(lab.type_idx, minlength=vocab.N_TYPES)
        counts["size"] += np.bincount(lab.size_idx, minlength=vocab.N_SIZES)
        counts["amount"] += np.bincount(lab.amount_idx, minlength=vocab.N_AMOUNTS)
        total += lab.n_beats
    names = {"type": vocab.TYPES, "size": vocab.SIZES, "amount": vocab.AMOUNTS}
    out: dict[str, dict[str, float]] = {
        k: {name: (float(c) / total if total else 0.0) for name, c in zip(names[k], counts[k], strict=True)}
        for k in counts
    }
    out["n_beats"] = {"total": float(total)}
    return out


def format_coverage(coverage: dict[str, dict[str, float]]) -> str:
    """The coverage table as text: one block per factor, a line per name with its share in %."""
    lines = [f"labelled beats: {int(coverage['n_beats']['total'])}"]
    for factor in ("type", "size", "amount"):
        lines.append(f"{factor:<11} share")
        for name, share in coverage[factor].items():
            lines.append(f"  {name:<11} {100.0 * share:6.2f} %")
    return "\n".join(lines)
