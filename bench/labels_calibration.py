"""Fit the per-type calibration of inferred label confidence from scored labels.

    .venv/bin/python bench/labels_calibration.py LABELS.json [LABELS.json ...] [--shrink 4.0]

Reads the labels ``bench/labels_real.py --labels-out`` writes (each label
of a pair: its type, its inferred confidence and whether it was right) and
fits ``P(right) = sigmoid(a_type + b * logit(confidence))``: one slope for
every type (there are too few labels of most types to fit their own) and an
intercept per type, pulled towards the common intercept by an L2 penalty of
``--shrink`` (in labels' worth: a type with few labels stays near the common
intercept). Prints the fit and the table to put in
``training/labels/calibration.py`` (``CALIBRATION``), and the label precision
per confidence band before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from editorbot.training.labels.calibration import CONF_CLIP


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, CONF_CLIP, 1.0 - CONF_CLIP)
    return np.log(p / (1.0 - p))


def fit(types: list[str], conf: np.ndarray, right: np.ndarray, shrink: float) -> tuple[float, float, dict[str, float]]:
    """``(common intercept, slope, {type: intercept})`` by penalised Newton steps (see the module docstring)."""
    names = sorted(set(types))
    k = len(names)
    col = np.array([names.index(t) for t in types])
    x = _logit(conf)
    y = right.astype(np.float64)
    # parameters: common a0, slope b, per-type deviations d_t (penalised)
    w = np.zeros(k + 2)
    for _ in range(100):
        z = w[0] + w[1] * x + w[2 + col]
        p = 1.0 / (1.0 + np.exp(-z))
        design = np.zeros((x.size, k + 2))
        design[:, 0] = 1.0
        design[:, 1] = x
        design[np.arange(x.size), 2 + col] = 1.0
        pen = np.zeros(k + 2)
        pen[2:] = shrink
        grad = design.T @ (p - y) + pen * w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + np.diag(pen + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return float(w[0]), float(w[1]), {t: float(w[0] + w[2 + i]) for i, t in enumerate(names)}


def bands(conf: np.ndarray, right: np.ndarray) -> str:
    """Label precision per fifth of confidence, as ``bench/labels_real.py`` prints it."""
    cells = []
    for lo in (0.0, 0.2, 0.4, 0.6, 0.8):
        sel = (conf >= lo) & ((conf < lo + 0.2) | (lo >= 0.8))
        if sel.any():
            cells.append(f"{lo:.1f}-{lo + 0.2:.1f} {right[sel].mean():.2f} of {int(sel.sum())}")
    return ", ".join(cells)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("labels", nargs="+", help="JSON files of bench/labels_real.py --labels-out")
    p.add_argument("--shrink", type=float, default=4.0, help="L2 pull of each type's intercept to the common one")
    args = p.parse_args(argv)
    rows: list[dict] = []
    for path in args.labels:
        try:
            with open(path, encoding="utf-8") as f:
                rows += json.load(f)["labels"]
        except (OSError, ValueError, KeyError) as err:
            print(f"{path}: not a labels file of bench/labels_real.py --labels-out ({err})", file=sys.stderr)
            return 2
    types = [r["type"] for r in rows]
    conf = np.array([r["confidence"] for r in rows], dtype=np.float64)
    right = np.array([r["right"] for r in rows], dtype=bool)
    a0, b, table = fit(types, conf, right, args.shrink)
    print(f"{len(rows)} labels; common intercept {a0:.3f}, slope {b:.3f}")
    print("CALIBRATION_SLOPE = " + f"{b:.3f}")
    print("CALIBRATION = {")
    for t in sorted(table):
        n = sum(1 for x in types if x == t)
        print(f'    "{t}": {table[t]:.3f},  # {n} labels, {np.mean(right[[x == t for x in types]]):.2f} right')
    print("}")
    print(f"CALIBRATION_DEFAULT = {a0:.3f}")
    cal = 1.0 / (1.0 + np.exp(-(np.array([table[t] for t in types]) + b * _logit(conf))))
    print("before: " + bands(conf, right))
    print("after:  " + bands(cal, right))
    return 0


if __name__ == "__main__":
    sys.exit(main())
