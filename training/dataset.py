"""Training episodes: one song's per-beat features, grid and labels.

A data directory holds (DESIGN section 1)::

    DIR/input/NAME_raw.wav            the raw recording
    DIR/desired_output/NAME_edit.wav  the edited version
    DIR/labels/NAME.json              its EditPlan and per-beat factored labels
    DIR/reference/*.wav               finished tracks (optional)

``load_episodes`` analyses every raw file (``engine.analysis.analyze``, which
keeps grid and features in the feature cache keyed by the file's sha256) and
reads its labels when present. Labels are given on the true grid; they are
moved onto the analysed grid (the one the policy sees at inference time)
by taking, for every analysed beat, the label of the true beat that
contains its time.

``synthetic_episodes`` builds songs without audio (random features whose
labels follow a learnable rule) for tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from editorbot.engine.actions import (
    AMOUNT_MASK,
    N_TYPES,
    SIZE_BEATS,
    Amount,
    Size,
    amount_index,
    output_beats,
    size_index,
    type_index,
)
from editorbot.engine.analysis import analyze
from editorbot.engine.context import context_columns
from editorbot.engine.errors import BadInput
from editorbot.engine.features import feature_names
from editorbot.engine.progress import progress

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: Feature column of the per-beat RMS (engine.features.SPECTRAL_NAMES order).
RMS_COLUMN = 1


@dataclass
class Episode:
    """One song as the environment walks it.

    Attributes
    ----------
    name:
        Pair name (``NAME`` in the data directory).
    features:
        ``(n_beats, F)`` float32 per-beat features.
    downbeats, phrase_starts:
        int64 beat indices of bar and phrase starts.
    beats_per_bar:
        Beats in a bar.
    tempo_bpm:
        Global tempo.
    labels:
        ``(n_beats, 3)`` int64 (type, size, amount) of the action covering
        each beat, -1 where unknown; None for an unlabelled song.
    confidence:
        Trust in the labels, 0..1 (weights behavioural cloning).
    target_beats:
        Target output length in beats (the labelled edit's), or None.
    """

    name: str
    features: np.ndarray
    downbeats: np.ndarray
    phrase_starts: np.ndarray
    beats_per_bar: int = 4
    tempo_bpm: float = 120.0
    labels: np.ndarray | None = None
    confidence: float = 1.0
    target_beats: float | None = None

    @property
    def n_beats(self) -> int:
        """Beats in the song."""
        return int(self.features.shape[0])

    def label_walk(self) -> list[tuple[int, tuple[int, int, int]]]:
        """The labelled walk: ``[(cursor, (type, size, amount)), ...]`` in order.

        Starts at beat 0, reads the label at the cursor and moves past its
        size. Beats with unknown labels are stepped over one at a time and
        left out.
        """
        if self.labels is None:
            return []
        n = self.n_beats
        walk: list[tuple[int, tuple[int, int, int]]] = []
        c = 0
        while c < n:
            t, s, a = (int(v) for v in self.labels[c])
            if t < 0:
                c += 1
                continue
            walk.append((c, (t, s, a)))
            c += SIZE_BEATS[s]
        return walk


def with_context_columns(episodes: list[Episode]) -> list[Episode]:
    """The episodes with the whole-song context columns (``engine.context``) after their features.

    Each song's ``(N, F)`` features become ``(N, F + len(CONTEXT_NAMES))``,
    measured from its own audio columns and downbeats, as ``export.runtime``
    builds them for a model that reads them.
    """
    base = feature_names()
    out = []
    for e in episodes:
        ctx = context_columns(e.features[:, : len(base)], base, e.downbeats)
        out.append(dataclasses.replace(e, features=np.concatenate([e.features, ctx], axis=1)))
    return out


def energy_classes(features: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """``(n_beats,)`` int64 energy class of each beat: RMS quantile bins within the song."""
    rms = features[:, RMS_COLUMN].astype(np.float64)
    if len(rms) < n_classes:
        return np.zeros(len(rms), dtype=np.int64)
    edges = np.quantile(rms, np.linspace(0, 1, n_classes + 1)[1:-1])
    return np.searchsorted(edges, rms, side="right").astype(np.int64)


def feature_stats(episodes: list[Episode]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std ``(F,)`` float32 over every beat of ``episodes``."""
    allf = np.concatenate([e.features for e in episodes]).astype(np.float64)
    return allf.mean(0).astype(np.float32), np.maximum(allf.std(0), 1e-6).astype(np.float32)


# ------------------------------------------------------------------ synthetic


def synthetic_episodes(
    n_songs: int,
    *,
    n_beats: int = 128,
    in_dim: int = 109,
    seed: int = 0,
    labelled: bool = True,
) -> list[Episode]:
    """Songs made of random features with labels that follow a learnable rule.

    Bars are 4 beats, phrases 16. The rule: at each bar start one of feature
    columns 0..3, drawn at random, is raised by 3; the label is a BAR-long
    action whose type is the argmax of columns 0..3 of that beat (KEEP, CUT, LOOP or GAIN; amounts NEUTRAL for KEEP/CUT, POS_SMALL
    otherwise), so a policy can reach full agreement from the cursor beat's
    features alone. The target length is that of the labelled walk.
    """
    rng = np.random.default_rng(seed)
    rule_types = (0, 1, 2, 8)  # KEEP, CUT, LOOP, GAIN
    out: list[Episode] = []
    for k in range(n_songs):
        feats = rng.normal(size=(n_beats, in_dim)).astype(np.float32)
        down = np.arange(0, n_beats, 4, dtype=np.int64)
        phrases = np.arange(0, n_beats, 16, dtype=np.int64)
        labels = None
        target = None
        if labelled:
            labels = np.zeros((n_beats, 3), dtype=np.int64)
            target = 0.0
            for c in range(0, n_beats, 4):
                feats[c, int(rng.integers(4))] += 3.0  # a clear cue at each bar start
                t = rule_types[int(np.argmax(feats[c, :4]))]
                s = int(Size.BAR) if c + 4 <= n_beats else int(Size.BEAT)
                a = int(Amount.NEUTRAL) if AMOUNT_MASK[t, Amount.NEUTRAL] else int(Amount.POS_SMALL)
                stop = min(c + SIZE_BEATS[s], n_beats)
                labels[c:stop] = (t, s, a)
                target += output_beats(t, a, stop - c)
                if s == Size.BEAT:  # a last partial bar: BEAT steps
                    for b in range(c + 1, n_beats):
                        labels[b] = (t, s, a)
                        target += output_beats(t, a, 1)
                    break
        out.append(
            Episode(
                name=f"synth{k:03d}",
                features=feats,
                downbeats=down,
                phrase_starts=phrases,
                tempo_bpm=float(rng.uniform(90, 150)),
                labels=labels,
                target_beats=target,
            )
        )
    return out


# ---------------------------------------------------------------- data folder


def _label_arrays(doc: dict[str, Any]) -> np.ndarray | None:
    """``(n, 3)`` int64 per-beat labels from a labels JSON document, or None."""
    for key in ("beat_labels", "labels"):
        lab = doc.get(key)
        if isinstance(lab, dict):
            cols = []
            for names in (("type", "type_idx"), ("size", "size_idx"), ("amount", "amount_idx")):
                col = next((lab[n] for n in names if n in lab), None)
                if col is None:
                    break
                cols.append(np.asarray(col, dtype=np.int64).reshape(-1))
            if len(cols) == 3 and cols[0].shape == cols[1].shape == cols[2].shape:
                return np.stack(cols, axis=1)
        elif isinstance(lab, list) and lab and isinstance(lab[0], (list, tuple)):
            arr = np.asarray(lab, dtype=np.int64)
            if arr.ndim == 2 and arr.shape[1] == 3:
                return arr
    return None


def _label_beat_times(doc: dict[str, Any]) -> np.ndarray | None:
    """Beat times (s) of the grid the labels are given on, or None."""
    for key in ("true_grid", "grid"):
        g = doc.get(key)
        if isinstance(g, dict) and "beat_times" in g:
            return np.asarray(g["beat_times"], dtype=np.float64)
    plan = doc.get("plan")
    if isinstance(plan, dict) and isinstance(plan.get("grid"), dict):
        return np.asarray(plan["grid"].get("beat_times", []), dtype=np.float64)
    return None


def _plan_walk(doc: dict[str, Any]) -> list[tuple[int, tuple[int, int, int]]] | None:
    """The plan's action walk ``[(beat, (t, s, a))]`` on the label grid, or None."""
    plan = doc.get("plan", doc)
    acts = plan.get("actions") if isinstance(plan, dict) else None
    if not isinstance(acts, list) or not acts:
        return None
    try:
        return [
            (int(a["beat"]), (type_index(a["type"]), size_index(a["size"]), amount_index(a["amount"])))
            for a in acts
        ]
    except (KeyError, TypeError, ValueError):
        return None


def labels_on_grid(
    labels: np.ndarray, label_times: np.ndarray | None, beat_times: np.ndarray
) -> np.ndarray:
    """Move per-beat labels from the grid they were made on to ``beat_times``.

    Each analysed beat takes the label of the label-grid beat whose span
    contains its time plus a quarter of the label grid's median beat period
    (-1 before the first labelled beat). With no label grid, or identical
    grids, the labels are used as they are (cut or padded with -1 to
    ``len(beat_times)``).

    Parameters
    ----------
    labels : np.ndarray
        ``(n_label_beats, 3)`` int64 per-beat labels on the label grid.
    label_times : np.ndarray | None
        beat times (s) of the label grid, increasing; None when unknown.
    beat_times : np.ndarray
        analysed beat times (s) the labels are wanted on.

    Returns
    -------
    np.ndarray
        ``(len(beat_times), 3)`` int64 labels, -1 where none applies.
    """
    n = len(beat_times)
    if label_times is None or (len(label_times) == n and np.allclose(label_times, beat_times, atol=1e-3)):
        out = np.full((n, 3), -1, dtype=np.int64)
        m = min(n, len(labels))
        out[:m] = labels[:m]
        return out
    # A tracker's beat lands a few ms either side of the true one (the learned tracker's median offset
    # on synthetic songs is within +-7 ms): looked up at its own time, a beat a hair early takes the
    # previous beat's label and every edit boundary slides a beat. A quarter period absorbs that jitter
    # and still maps a double-tempo grid's off-beats onto the beat before them.
    period = float(np.median(np.diff(label_times))) if len(label_times) > 1 else 0.0
    idx = np.searchsorted(label_times, beat_times + max(0.25 * period, 1e-3), side="right") - 1
    out = np.full((n, 3), -1, dtype=np.int64)
    ok = (idx >= 0) & (idx < len(labels))
    out[ok] = labels[idx[ok]]
    return out


def read_labels(path: str | os.PathLike, beat_times: np.ndarray) -> dict[str, Any]:
    """Labels of one pair, moved onto the analysed grid ``beat_times``.

    Returns
    -------
    ``{"labels": (n_beats, 3) int64, "confidence": float, "target_beats":
    float or None}``.

    Raises
    ------
    BadInput
        The file is not JSON or holds neither per-beat labels nor a plan.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, json.JSONDecodeError) as err:
        raise BadInput(str(path), f"cannot read labels: {err}") from None
    if not isinstance(doc, dict):
        raise BadInput(str(path), "labels file is not a JSON object")
    times = _label_beat_times(doc)
    lab = _label_arrays(doc)
    walk = _plan_walk(doc)
    if lab is None and walk is not None and times is not None:
        lab = np.full((len(times), 3), -1, dtype=np.int64)
        for k, (b, act) in enumerate(walk):
            end = walk[k + 1][0] if k + 1 < len(walk) else b + SIZE_BEATS[act[1]]
            lab[b : min(end, len(times))] = act
    if lab is None:
        raise BadInput(str(path), "no per-beat labels (beat_labels) and no plan actions")
    if lab.size and (lab[:, 0].max() >= N_TYPES or lab.min() < -1):
        raise BadInput(str(path), "label index out of range")
    target = None
    if walk is not None:
        n_lab = len(times) if times is not None else len(lab)
        target = 0.0
        for k, (b, (t, s, a)) in enumerate(walk):
            end = min(b + SIZE_BEATS[s], n_lab)
            if k + 1 < len(walk):
                end = min(end, walk[k + 1][0])
            target += output_beats(t, a, max(end - b, 0))
    conf = doc.get("confidence", 1.0)
    return {
        "labels": labels_on_grid(lab, times, beat_times),
        "confidence": float(conf) if isinstance(conf, (int, float)) else 1.0,
        "target_beats": target,
    }


def _raw_files(data_dir: Path) -> list[tuple[str, Path]]:
    """``(NAME, path)`` of every ``input/NAME_raw.*`` audio file, sorted."""
    folder = data_dir / "input"
    out = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.suffix.lower() in AUDIO_SUFFIXES and p.stem.endswith("_raw"):
            out.append((p.stem[: -len("_raw")], p))
    return out


def load_episodes(
    data_dir: str | os.PathLike,
    *,
    require_labels: bool = False,
    quiet: bool = False,
) -> list[Episode]:
    """Every pair of a data directory as an ``Episode``.

    Parameters
    ----------
    data_dir:
        Folder with ``input/NAME_raw.wav`` files and, optionally,
        ``labels/NAME.json``.
    require_labels:
        Skip (with a warning) songs that have no labels file.
    quiet:
        No progress bar.

    Raises
    ------
    BadInput
        The folder does not exist or holds no ``input/*_raw.*`` audio.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise BadInput(str(root), "data directory not found")
    files = _raw_files(root)
    if not files:
        raise BadInput(str(root), "no input/NAME_raw.wav files")
    episodes = []
    for name, path in progress(files, desc="analysing songs", quiet=quiet):
        analysis = analyze(path)
        grid = analysis.grid
        beat_times = np.asarray(grid.beat_times, dtype=np.float64)
        label_path = root / "labels" / f"{name}.json"
        extra: dict[str, Any] = {"labels": None, "confidence": 1.0, "target_beats": None}
        if label_path.is_file():
            extra = read_labels(label_path, beat_times)
        elif require_labels:
            logger.warning("%s: no labels file %s, skipped", path, label_path)
            continue
        episodes.append(
            Episode(
                name=name,
                features=np.asarray(analysis.features, dtype=np.float32),
                downbeats=np.asarray(grid.downbeats, dtype=np.int64),
                phrase_starts=np.asarray(grid.phrase_starts, dtype=np.int64),
                beats_per_bar=int(grid.beats_per_bar),
                tempo_bpm=float(grid.tempo_bpm),
                **extra,
            )
        )
    logger.info("%s: %d songs, %d labelled", root, len(episodes), sum(e.labels is not None for e in episodes))
    return episodes


def load_reference_features(folder: str | os.PathLike, *, quiet: bool = False) -> list[np.ndarray]:
    """``(n_beats, F)`` features of every audio file in ``folder`` (empty if none)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    files = [p for p in sorted(root.iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES]
    return [analyze(p).features for p in progress(files, desc="analysing references", quiet=quiet)]
