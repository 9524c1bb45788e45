"""Augmentation: exactly-labelled examples of rare actions on existing raw songs.

Inferred labels follow what editors do, so some action types are rare
(DISTORTION, STUTTER, PITCH, ...). ``augment_file`` reads a labels npz
(``training.labels``: it records each pair's raw audio path), and for every
action type whose share of the behavioural-cloning examples is below
``min_share`` writes new walks over those raw songs: at bar starts, the
rare action (random valid size and amount) or a KEEP bar. The walk is the
label, so it is exact; ``engine.plan.plan_from_actions`` makes its plan and
``engine.render.render_plan`` renders it onto the raw audio (with
``pairs_out``, as a pair directory: ``input/``, ``desired_output/``,
``labels/`` in the layout of ``training.data.pairs``). The new examples are
the rows of those walks whose action is the rare type (observations from
walking ``EditEnv``, as ``training.bc.bc_examples``), with confidence 1.

The output npz holds every array of the input, the ``training.bc`` arrays
extended with the new rows (``pair_names`` extended with
``NAME+aug-TYPE-K``), plus ``augmented`` ``(N,)`` bool marking new rows.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from editorbot.engine import actions as vocab

if TYPE_CHECKING:
    from editorbot.engine.analysis import Analysis
    from editorbot.engine.plan import EditPlan

log = logging.getLogger(__name__)

#: Sizes an augmented rare action may take (beats: 1, 4, 8).
AUG_SIZES: tuple[str, ...] = ("BEAT", "BAR", "TWO_BARS")
#: Chance that a bar start gets the rare action instead of a KEEP bar.
RARE_RATE = 0.5
MAX_PASSES = 4  # passes over the types in ``augment_file``


def class_shares(type_idx: np.ndarray) -> dict[str, float]:
    """Share of each action type in ``type_idx (N,)`` (all 20 types, in vocabulary order)."""
    t = np.asarray(type_idx, dtype=np.int64).reshape(-1)
    n = max(t.shape[0], 1)
    counts = np.bincount(t, minlength=vocab.N_TYPES) if t.size else np.zeros(vocab.N_TYPES, dtype=np.int64)
    return {name: float(counts[i]) / n for i, name in enumerate(vocab.TYPES)}


def format_shares(shares: dict[str, float]) -> str:
    """Shares as aligned ``TYPE  12.34%`` lines."""
    return "\n".join(f"  {name:<11} {100.0 * v:6.2f}%" for name, v in shares.items())


@dataclass
class AugmentReport:
    """What ``augment_file`` did: example counts and type shares before and after."""

    n_before: int
    n_after: int
    n_added: int
    before: dict[str, float]
    after: dict[str, float]


def rare_walk(n_beats: int, rare: str, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """A walk over ``n_beats`` beats: at each bar start the ``rare`` type or a KEEP bar.

    At least one ``rare`` action is placed when the song has a beat.
    """
    amounts = [vocab.AMOUNTS[a] for a in range(vocab.N_AMOUNTS) if vocab.is_valid(rare, a)]
    walk: list[tuple[str, str, str]] = []
    cursor = 0
    placed = False
    while cursor < n_beats:
        left = n_beats - cursor
        if rng.random() < RARE_RATE or (not placed and left <= 8):
            sizes = [s for s in AUG_SIZES if vocab.SIZE_BEATS[vocab.size_index(s)] <= left] or ["BEAT"]
            size = str(rng.choice(sizes))
            walk.append((rare, size, str(rng.choice(amounts))))
            placed = True
            cursor += vocab.SIZE_BEATS[vocab.size_index(size)]
            # back onto the bar grid
            pad = (-cursor) % 4
            if pad and cursor < n_beats:
                walk.extend([("KEEP", "BEAT", "NEUTRAL")] * min(pad, n_beats - cursor))
                cursor += min(pad, n_beats - cursor)
        else:
            size = "BAR" if left >= 4 else "BEAT"
            walk.append(("KEEP", size, "NEUTRAL"))
            cursor += vocab.SIZE_BEATS[vocab.size_index(size)]
    return walk


def walk_labels(walk: list[tuple[str, str, str]], n_beats: int) -> np.ndarray:
    """``(n_beats, 3)`` int64 per-beat (type, size, amount) of a walk from beat 0."""
    out = np.zeros((n_beats, 3), dtype=np.int64)
    out[:, 2] = int(vocab.Amount.NEUTRAL)
    cursor = 0
    for t, s, a in walk:
        k = vocab.SIZE_BEATS[vocab.size_index(s)]
        out[cursor : cursor + k] = (vocab.type_index(t), vocab.size_index(s), vocab.amount_index(a))
        cursor += k
    return out


def _write_pair(out_dir: str, name: str, analysis: Analysis, plan: EditPlan, rendered: np.ndarray) -> None:
    """Write one augmented pair in the pair-directory layout."""
    from editorbot.engine.audio import write_audio
    from editorbot.engine.plan import plan_to_dict

    for d in ("input", "desired_output", "labels"):
        os.makedirs(os.path.join(out_dir, d), exist_ok=True)
    raw_path = os.path.join(out_dir, "input", f"{name}_raw.wav")
    edit_path = os.path.join(out_dir, "desired_output", f"{name}_edit.wav")
    write_audio(raw_path, analysis.audio.samples, analysis.audio.sample_rate)
    write_audio(edit_path, rendered, analysis.audio.sample_rate, protect=(raw_path,))
    doc = plan_to_dict(plan)
    doc["source"]["path"] = os.path.relpath(raw_path, os.path.join(out_dir, "labels"))
    from editorbot.engine.atomic import atomic_path

    with atomic_path(os.path.join(out_dir, "labels", f"{name}.json")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"name": name, "augmented": True, "plan": doc}, f, indent=1)


def augment_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    min_share: float = 0.02,
    seed: int = 0,
    pairs_out: str | os.PathLike | None = None,
    max_songs_per_type: int = 64,
    cache: Any = True,
) -> AugmentReport:
    """Lift every action type to at least ``min_share`` of the examples (module docstring).

    Parameters
    ----------
    in_path : str | os.PathLike
        npz written by ``training.labels.dataset.build_dataset``.
    out_path : str | os.PathLike
        augmented npz to write (atomically; never over ``in_path``).
    min_share : float
        wanted share per type, in [0, 1 / 20].
    seed : int
        seed of the walks.
    pairs_out : str | os.PathLike | None
        also write the rendered pairs there.
    max_songs_per_type : int
        cap on augmented walks per type.
    cache : engine.cache.FeatureCache | bool | None
        the feature cache for ``engine.analysis.analyze`` (True: the default one).

    Raises
    ------
    BadInput
        unreadable input, no raw paths in it, a bad ``min_share``
        or an output that is the input.
    """
    from editorbot.engine.analysis import analyze
    from editorbot.engine.errors import BadInput
    from editorbot.engine.plan import plan_from_actions
    from editorbot.training.bc import BCData, bc_examples
    from editorbot.training.config import AgentConfig
    from editorbot.training.dataset import Episode
    from editorbot.training.labels.dataset import write_npz

    in_path, out_path = os.fspath(in_path), os.fspath(out_path)
    if not 0.0 <= min_share <= 1.0 / vocab.N_TYPES:
        raise BadInput(None, f"--min-share must be in [0, {1.0 / vocab.N_TYPES:g}], got {min_share}")
    if os.path.abspath(in_path) == os.path.abspath(out_path):
        raise BadInput(out_path, "is the input file; choose another output")
    try:
        with np.load(in_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise BadInput(in_path, f"cannot read: {err}") from None
    if "raw_paths" not in arrays or "actions" not in arrays:
        raise BadInput(in_path, "not a labels npz (no raw_paths/actions): make it with `editorbot data labels`")
    raw_paths = [str(p) for p in arrays["raw_paths"]]
    if not raw_paths:
        raise BadInput(in_path, "holds no alignable pairs to render onto")
    bc = BCData.from_arrays(arrays, in_path)
    n_before = len(bc)
    before = class_shares(bc.actions[:, 0])
    config = bc.observation_config() if n_before else AgentConfig()

    rng = np.random.default_rng(seed)
    counts = np.bincount(bc.actions[:, 0], minlength=vocab.N_TYPES).astype(np.int64)
    names = [str(n) for n in bc.pair_names]
    new_rows: list[BCData] = []
    analyses: dict[str, Any] = {}
    made = np.zeros(vocab.N_TYPES, dtype=np.int64)  # augmented walks per type
    for _ in range(MAX_PASSES):  # adding one type dilutes the others: repeat until all hold
        changed = False
        for t_idx in np.argsort(counts, kind="stable"):
            rare = vocab.TYPES[int(t_idx)]
            while made[t_idx] < max_songs_per_type:
                total = int(counts.sum())
                need = math.ceil((min_share * total - counts[t_idx]) / max(1.0 - min_share, 1e-9))
                if need <= 0:
                    break
                k = int(made[t_idx])
                made[t_idx] += 1
                raw = raw_paths[(k + int(t_idx)) % len(raw_paths)]
                if raw not in analyses:
                    analyses[raw] = analyze(raw, cache=cache)
                an = analyses[raw]
                walk = rare_walk(an.n_beats, rare, rng)
                base = os.path.splitext(os.path.basename(raw))[0]
                name = f"{base}+aug-{rare}-{k}"
                if pairs_out is not None:
                    from editorbot.engine.render import render_plan

                    plan = plan_from_actions(an, walk)
                    rendered = render_plan(plan, an.audio.samples, an.audio.sample_rate)
                    _write_pair(os.fspath(pairs_out), name, an, plan, rendered)
                episode = Episode(
                    name=name,
                    features=np.asarray(an.features, dtype=np.float32),
                    downbeats=np.asarray(an.grid.downbeats, dtype=np.int64),
                    phrase_starts=np.asarray(an.grid.phrase_starts, dtype=np.int64),
                    beats_per_bar=int(an.grid.beats_per_bar),
                    tempo_bpm=float(an.grid.tempo_bpm),
                    labels=walk_labels(walk, an.n_beats),
                    confidence=1.0,
                )
                ex = bc_examples([episode], config, quiet=True)
                keep = np.nonzero(ex.actions[:, 0] == t_idx)[0][:need]
                if keep.size == 0:
                    continue
                ex = ex.subset(keep)
                ex.pair_ids = np.full(keep.size, len(names), dtype=np.int64)
                names.append(name)
                new_rows.append(ex)
                counts[t_idx] += keep.size
                changed = True
        if not changed:
            break
    out = dict(arrays)
    if new_rows:
        for f in fields(BCData):
            if f.name == "pair_names":
                continue
            out[f.name] = np.concatenate([getattr(bc, f.name)] + [getattr(r, f.name) for r in new_rows])
    out["pair_names"] = np.asarray(names, dtype=str)
    n_after = int(out["actions"].shape[0])
    out["augmented"] = np.arange(n_after) >= n_before
    write_npz(out_path, out)
    after = class_shares(out["actions"][:, 0])
    log.info("augment: %d -> %d examples", n_before, n_after)
    return AugmentReport(n_before=n_before, n_after=n_after, n_added=n_after - n_before, before=before, after=after)
