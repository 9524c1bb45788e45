"""How much of a relational persona the policy's whole-song context columns can tell, beat by beat.

A policy that learns a relational persona (``bench/relational_training.py``)
reads, per beat, the audio features and the context columns of
``engine.context``. This bench asks the columns alone: a gradient-boosted
tree classifier (scikit-learn's ``HistGradientBoostingClassifier``, a
dependency of librosa) is fitted per beat on the persona's true labels of
the real training pairs and scored by event F1 (``bench.quality_real.event_f1``)
on the validation and test pairs. It walks nothing, so it is not an edit;
it shows whether a shortfall comes from the inputs (the classifier fails
too) or from learning a walk (it does not). Three input sets:

- ``context``: the ``CONTEXT_NAMES`` columns;
- ``context + position``: and the beat's position in its bar;
- ``context + repeat rank``: and each bar's rank, among the song's bars, of
  its best similarity to an earlier bar measured on the chroma and MFCC
  columns (the measure ``ctx_bar_repeat`` does not rank).

It reads the pair folders a ``bench/relational_training.py --work WORK``
run left (``WORK/PERSONA/real_train``, ``real_val``, ``real_test``).

    python -m bench.relational_ceiling --work WORK [--personas loud_loop@1,repeat_cut@1,quiet_filter@1]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from bench.quality_real import PERSONAS, event_f1

#: Feature column prefixes of the chroma + MFCC repeat measure.
REPEAT_PREFIXES = ("chroma_", "mfcc_")


def _episodes(folder: Path) -> list:
    from editorbot.training.dataset import load_episodes, with_context_columns

    return with_context_columns(load_episodes(folder, require_labels=True, quiet=True))


def _inputs(ep, kind: str) -> np.ndarray:
    """``(n_beats, k)`` classifier inputs of one episode (module docstring)."""
    from editorbot.engine.context import CONTEXT_NAMES, bar_index, rank01, repeat_similarity
    from editorbot.engine.features import feature_names

    ctx = np.asarray(ep.features[:, -len(CONTEXT_NAMES):], dtype=np.float64)
    bar = bar_index(ep.n_beats, ep.downbeats)
    if kind == "context":
        return ctx
    if kind == "context + position":
        starts = np.unique(np.concatenate([[0], ep.downbeats[(ep.downbeats > 0) & (ep.downbeats < ep.n_beats)]]))
        return np.column_stack([ctx, np.arange(ep.n_beats) - starts[bar]])
    names = feature_names()
    cols = [i for i, n in enumerate(names) if n.startswith(REPEAT_PREFIXES) and "delta" not in n]
    n_bars = int(bar[-1]) + 1
    counts = np.bincount(bar, minlength=n_bars)[:, None]
    timbre = np.stack([np.bincount(bar, ep.features[:, c], minlength=n_bars) for c in cols], axis=1) / counts
    sim = np.nan_to_num(repeat_similarity(timbre), nan=-1.0)
    return np.column_stack([ctx, sim[bar], rank01(sim)[bar]])


def ceiling(root: Path, kinds: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{input set: {"validation": F1, "test": F1}}`` of one persona's work folder ``root``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    train, val, test = (_episodes(root / sub) for sub in ("real_train", "real_val", "real_test"))
    out: dict[str, dict[str, float]] = {}
    for kind in kinds:
        clf = HistGradientBoostingClassifier(max_iter=150, random_state=0)
        clf.fit(np.concatenate([_inputs(e, kind) for e in train]), np.concatenate([e.labels[:, 0] for e in train]))
        out[kind] = {}
        for half, eps in (("validation", val), ("test", test)):
            pred = [clf.predict(_inputs(e, kind)).astype(np.int64) for e in eps]
            out[kind][half] = event_f1([e.labels[:, 0] for e in eps], pred)["f1"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="a bench/relational_training.py --work folder")
    ap.add_argument("--personas", default=",".join(PERSONAS), metavar="A,B", help="relational personas")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    kinds = ("context", "context + position", "context + repeat rank")
    print("| persona | " + " | ".join(kinds) + " |  (event F1, validation / test)")
    print("|---" * (len(kinds) + 1) + "|")
    for style in args.personas.split(","):
        root = args.work / style.replace("@", "_")
        if not (root / "real_test").is_dir():
            raise SystemExit(f"{root}: no real_train / real_val / real_test pairs (run bench/relational_training.py)")
        scores = ceiling(root, kinds)
        print(f"| {style} | " + " | ".join(f"{scores[k]['validation']:.3f} / {scores[k]['test']:.3f}" for k in kinds)
              + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
