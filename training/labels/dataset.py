"""The BC-label dataset: inferred labels for every pair of a data directory, as one npz.

``build_dataset`` runs ``infer.infer_pair`` over each pair of a pair
directory (``input/NAME_raw.*`` with ``desired_output/NAME_edit.*``;
truth labels in ``labels/NAME.json`` are read only to score, with
``evaluate``) and writes the behavioural-cloning file.

The behavioural-cloning file (``bc_rich.npz``)
----------------------------------------------
One compressed ``.npz`` (no pickles), written atomically, readable by
``training.bc.BCData.load`` (so ``editorbot train rl --bc-mixed`` takes it
as it is): the ``training.bc`` arrays (``format``, ``features``, ``done``,
``position``, ``padding_mask``, ``mask_*``, ``actions`` ``(N, 3)``,
``pair_ids``, ``pair_names``, ``confidence``, ``tempo_bpm``, ``energy``,
``phrase``), made by walking ``EditEnv`` over each alignable pair with the
inferred labels (``training.bc.bc_examples``); each example's
``confidence`` is the inferred confidence of its cursor beat. Beside them,
with ``B`` analysed beats over the ``P`` alignable pairs (in
``pair_names`` order) and ``F`` = 109 feature columns:

- ``labels_schema`` str: ``BC_SCHEMA``.
- ``beat_features`` ``(B, F)`` float32: ``engine.analysis`` per-beat
  features of each raw song (feature cache), the environment's rows;
  ``feature_names`` ``(F,)`` str.
- ``beat_labels`` ``(B, 3)`` int64: per beat, the inferred action covering
  it (type, size, amount indices into ``engine.actions``).
- ``beat_confidence`` ``(B,)`` float32 in [0, 1].
- ``beat_action_start`` ``(B,)`` bool: an action of the inferred walk
  starts at this beat.
- ``beat_pair``, ``beat_index`` ``(B,)`` int64: pair and beat of each row;
  ``beat_times`` ``(B,)`` float64 seconds.
- ``pair_offsets`` ``(P + 1,)`` int64: beat rows of pair ``p`` are
  ``pair_offsets[p]:pair_offsets[p + 1]``.
- ``raw_paths``, ``edit_paths`` ``(P,)`` str: absolute audio paths
  (``training.augment`` renders onto the raw songs).
- ``plans`` ``(P,)`` str: each pair's inferred EditPlan as JSON
  (``engine.plan.plan_to_dict``; its grid is the extended grid below), also
  saved as ``<out stem>_plans/NAME.plan.json``.
- ``match`` ``(P,)`` float32: mean similarity along each alignment path.
- ``unalignable_names``, ``unalignable_reasons`` str: pairs left out.

The extended grid: the analysis grid (jitter smoothed, phase refined)
with pseudo-beats over the lead-in and the tail; analysed beat ``i`` is
extended beat ``i + first_real``. Inferred labels in the npz are on the
analysis grid.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.engine.atomic import atomic_path
from editorbot.engine.errors import BadInput
from editorbot.engine.grid import Grid
from editorbot.engine.plan import plan_to_dict, save_plan
from editorbot.engine.progress import progress
from editorbot.training.bc import BC_FORMAT, bc_examples
from editorbot.training.config import AgentConfig
from editorbot.training.dataset import Episode
from editorbot.training.labels.evaluate import Evaluation, Evaluator, read_label_plan
from editorbot.training.labels.infer import PairLabels, infer_pair
from editorbot.training.reward import output_beats

log = logging.getLogger(__name__)

BC_SCHEMA = "editorbot.bclabels/1"

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aif", ".aiff")


def find_pairs(data_dir: str | os.PathLike) -> list[tuple[str, str, str, str | None]]:
    """``(name, raw_path, edit_path, label_path or None)`` for every pair in a data directory.

    A pair is ``input/NAME_raw.*`` with ``desired_output/NAME_edit.*``;
    ``labels/NAME.json`` (truth labels) when present.
    """
    root = os.fspath(data_dir)
    if not os.path.isdir(root):
        raise BadInput(root, "data directory not found")
    inp, out, lab = (os.path.join(root, d) for d in ("input", "desired_output", "labels"))
    if not os.path.isdir(inp):
        raise BadInput(root, "no input/ folder (NAME_raw.wav files)")
    edits = {}
    if os.path.isdir(out):
        for f in os.listdir(out):
            stem, ext = os.path.splitext(f)
            if ext.lower() in AUDIO_SUFFIXES and stem.endswith("_edit"):
                edits[stem[: -len("_edit")]] = os.path.join(out, f)
    pairs = []
    for f in sorted(os.listdir(inp)):
        stem, ext = os.path.splitext(f)
        if ext.lower() not in AUDIO_SUFFIXES or not stem.endswith("_raw"):
            continue
        name = stem[: -len("_raw")]
        if name not in edits:
            log.warning("%s: no desired_output/%s_edit.* : skipped", os.path.join(inp, f), name)
            continue
        label = os.path.join(lab, f"{name}.json")
        pairs.append((name, os.path.join(inp, f), edits[name], label if os.path.isfile(label) else None))
    if not pairs:
        raise BadInput(root, "no (input/NAME_raw.*, desired_output/NAME_edit.*) pairs")
    return pairs


def episode_of(result: PairLabels, analysis_grid: Grid) -> Episode:
    """A ``training.dataset.Episode`` of an alignable pair with its inferred BC labels."""
    target = 0.0
    lab = result.labels
    b = 0
    n = lab.shape[0]
    while b < n:
        e = b + 1
        while e < n and not result.action_start[e]:
            e += 1
        target += output_beats(int(lab[b, 0]), int(lab[b, 2]), e - b)
        b = e
    return Episode(
        name=result.name,
        features=np.asarray(result.features, dtype=np.float32),
        downbeats=np.asarray(analysis_grid.downbeats, dtype=np.int64),
        phrase_starts=np.asarray(analysis_grid.phrase_starts, dtype=np.int64),
        beats_per_bar=int(analysis_grid.beats_per_bar),
        tempo_bpm=float(analysis_grid.tempo_bpm),
        labels=lab.copy(),
        confidence=float(np.mean(result.confidence)) if result.confidence.size else 1.0,
        target_beats=target,
    )


def example_cursors(actions: np.ndarray, pair_ids: np.ndarray, n_beats: dict[int, int]) -> np.ndarray:
    """Cursor beat of each BC example: the walk of each pair's applied actions from beat 0."""
    cursors = np.zeros(actions.shape[0], dtype=np.int64)
    pos: dict[int, int] = {}
    for i in range(actions.shape[0]):
        p = int(pair_ids[i])
        c = pos.get(p, 0)
        cursors[i] = min(c, n_beats.get(p, c + 1) - 1)
        pos[p] = c + vocab.SIZE_BEATS[int(actions[i, 1])]
    return cursors


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> str:
    """Write ``arrays`` as a compressed npz atomically (temp file + rename); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle's bool
    return path


@dataclass
class DatasetReport:
    """What ``build_dataset`` did."""

    out_path: str
    n_pairs: int
    n_alignable: int
    n_examples: int
    unalignable: list[tuple[str, str]]
    evaluation: Evaluation | None
    seconds_per_pair: float
    audio_seconds: float


def build_dataset(
    data_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    evaluate: bool = False,
    cache: Any = True,
    quiet: bool = False,
    agent_config: AgentConfig | None = None,
    jobs: int = 1,
    keep_size: int | None = None,
) -> DatasetReport:
    """Infer BC labels for every pair of ``data_dir`` and write the BC file (module docstring).

    The npz is in ``training.bc.BC_FORMAT`` (``BCData.load`` reads it; the
    examples come from walking ``EditEnv`` on the inferred labels, each
    weighted by the inferred confidence of its cursor beat) plus the
    ``beat_*``/``pair_*`` arrays of the module docstring. Plans go to
    ``<out stem>_plans/NAME.plan.json``. With ``evaluate``, pairs that have
    truth labels (``labels/NAME.json``) are scored (``Evaluation``); truth
    label files are never read during inference. With ``agent_config.context``
    the examples' windows carry the whole-song context columns
    (``engine.context``) after the audio ones, as a model trained with
    ``train rl --context`` reads them (``beat_features`` stays the audio
    columns). With ``jobs`` > 1 the
    pairs are inferred in that many worker processes (the file does not
    depend on it). ``keep_size`` is ``training.bc.bc_examples``'s (None: the
    labelled KEEP runs' sizes; 0: one-beat KEEP steps). A pair that cannot be read or inferred is reported (one
    line) and left out; the run goes on.

    Raises
    ------
    BadInput
        an output that is not a ``.npz``, no pairs in ``data_dir``, or
        ``jobs`` < 1.
    """
    if jobs < 1:
        raise BadInput("--jobs", f"must be >= 1, got {jobs}")
    out_path = os.fspath(out_path)
    if not out_path.endswith(".npz"):
        raise BadInput(out_path, "the output must be a .npz file")
    pairs = find_pairs(data_dir)
    plan_dir = os.path.splitext(out_path)[0] + "_plans"
    os.makedirs(plan_dir, exist_ok=True)
    evaluator = Evaluator() if evaluate else None
    t_start = time.perf_counter()
    results, unalignable, audio_s = _label_pairs(pairs, plan_dir, evaluator, cache=cache, quiet=quiet, jobs=jobs)
    episodes = [episode_of(r, r.aligned()[1]) for r in results]
    if agent_config is not None and agent_config.context:
        # a model that reads the whole-song context columns needs them in its windows: measured per song here,
        # since a window alone does not hold the song's other bars
        from editorbot.training.dataset import with_context_columns

        episodes = with_context_columns(episodes)
    elapsed = time.perf_counter() - t_start
    arrays, n_examples = _bc_arrays(results, episodes, agent_config or AgentConfig(), quiet=quiet, keep_size=keep_size)
    arrays["format"] = np.array(BC_FORMAT)
    arrays["labels_schema"] = np.array(BC_SCHEMA)
    arrays.update(_beat_arrays(results, unalignable))
    if "pair_names" not in arrays:
        arrays["pair_names"] = np.asarray([r.name for r in results], dtype=str)
    write_npz(out_path, arrays)
    log.info("wrote %s: %d examples from %d of %d pairs", out_path, n_examples, len(results), len(pairs))
    return DatasetReport(
        out_path=out_path,
        n_pairs=len(pairs),
        n_alignable=len(results),
        n_examples=n_examples,
        unalignable=unalignable,
        evaluation=evaluator.result() if evaluator is not None else None,
        seconds_per_pair=elapsed / max(len(pairs), 1),
        audio_seconds=audio_s,
    )


def _label_pairs(
    pairs: list[tuple[str, str, str, str | None]],
    plan_dir: str,
    evaluator: Evaluator | None,
    *,
    cache: Any,
    quiet: bool,
    jobs: int = 1,
) -> tuple[list[PairLabels], list[tuple[str, str]], float]:
    """Infer every pair; save each alignable pair's plan in ``plan_dir`` and score it where it has truth labels.

    Returns the alignable pairs' ``PairLabels`` (in ``pairs`` order), the
    ``(name, reason)`` of the pairs left out, and the seconds of raw audio
    inferred (unalignable pairs included).
    """
    results: list[PairLabels] = []
    unalignable: list[tuple[str, str]] = []
    audio_s = 0.0
    for (name, _, _, label), res in zip(pairs, _inferred(pairs, cache=cache, quiet=quiet, jobs=jobs)):
        if isinstance(res, str):
            unalignable.append((name, res))
            log.warning("%s: skipped: %s", name, res)
            continue
        audio_s += res.duration_s
        if evaluator is not None and label is not None:
            plan_doc = read_label_plan(label)
            if plan_doc is not None:
                evaluator.add(res, plan_doc)
        if not res.alignable:
            unalignable.append((name, res.reason))
            continue
        results.append(res)
        save_plan(res.aligned()[0], os.path.join(plan_dir, f"{name}.plan.json"))
    return results, unalignable, audio_s


def _infer_one(name: str, raw: str, edit: str, cache: Any) -> PairLabels | str:
    """One pair's ``PairLabels``, or why it could not be inferred (one line).

    Anything a pair raises is its own problem, not the run's: a corpus run
    never stops on one bad pair.
    """
    try:
        return infer_pair(raw, edit, name=name, cache=cache)
    except BadInput as err:
        return str(err)
    except Exception as err:  # one bad pair must not stop the others; the traceback goes to the log
        log.debug("%s: inference failed", name, exc_info=True)
        return f"{edit}: inference failed: {type(err).__name__}: {err}"


def _inferred(
    pairs: list[tuple[str, str, str, str | None]], *, cache: Any, quiet: bool, jobs: int
) -> Iterator[PairLabels | str]:
    """``_infer_one`` of every pair, in ``pairs`` order; in ``jobs`` worker processes when more than one.

    Workers are spawned (no fork of this process's threads and numba
    state), each with one BLAS thread: the pairs are the parallel work.
    """
    if jobs == 1 or len(pairs) <= 1:
        for name, raw, edit, _ in progress(pairs, desc="labels", quiet=quiet):
            yield _infer_one(name, raw, edit, cache)
        return
    done: dict[int, PairLabels | str] = {}
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(pairs)), mp_context=ctx, initializer=_one_thread) as pool:
        futures = {pool.submit(_infer_one, name, raw, edit, cache): i for i, (name, raw, edit, _) in enumerate(pairs)}
        for fut in progress(as_completed(futures), desc="labels", total=len(pairs), quiet=quiet):
            i = futures[fut]
            try:
                done[i] = fut.result()
            except Exception as err:  # noqa: BLE001 - a worker that died (killed, out of memory) loses its pair only
                done[i] = f"{pairs[i][2]}: inference failed: {type(err).__name__}: {err}"
    for i in range(len(pairs)):
        yield done[i]


def _one_thread() -> None:
    """Worker start: one thread for BLAS and OpenMP, one stripe of ``S`` made ahead (each worker infers one pair at a time)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    from editorbot.training.labels import stripes

    stripes.AHEAD = 1  # the other workers use the other cores
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a librosa dependency
        return
    threadpool_limits(limits=1)


def _bc_arrays(
    results: list[PairLabels],
    episodes: list[Episode],
    agent_config: AgentConfig,
    *,
    quiet: bool,
    keep_size: int | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """The ``training.bc`` arrays of walking ``EditEnv`` over the episodes, and the number of examples.

    Each example's ``confidence`` is the inferred confidence of its cursor beat.
    """
    if not episodes:
        log.warning("no alignable pairs: the npz holds no examples")
        return {}, 0
    bc = bc_examples(episodes, agent_config, quiet=quiet, keep_size=keep_size)
    cursors = example_cursors(bc.actions, bc.pair_ids, {i: e.n_beats for i, e in enumerate(episodes)})
    bc.confidence = np.array([results[int(p)].confidence[c] for p, c in zip(bc.pair_ids, cursors)], dtype=np.float32)
    return {f.name: getattr(bc, f.name) for f in fields(bc)}, len(bc)


def _beat_arrays(results: list[PairLabels], unalignable: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """The ``beat_*``, ``pair_*`` and per-pair arrays of the module docstring."""
    offsets = np.cumsum([0] + [r.labels.shape[0] for r in results]).astype(np.int64)
    n_feat = results[0].features.shape[1] if results else 0
    return dict(
        beat_features=np.concatenate([r.features for r in results]) if results else np.zeros((0, n_feat), np.float32),
        beat_labels=np.concatenate([r.labels for r in results]) if results else np.zeros((0, 3), np.int64),
        beat_confidence=np.concatenate([r.confidence for r in results]) if results else np.zeros(0, np.float32),
        beat_action_start=np.concatenate([r.action_start for r in results]) if results else np.zeros(0, bool),
        beat_times=np.concatenate([r.beat_times for r in results]) if results else np.zeros(0),
        beat_pair=np.repeat(np.arange(len(results)), np.diff(offsets)).astype(np.int64),
        beat_index=np.concatenate([np.arange(r.labels.shape[0]) for r in results]).astype(np.int64)
        if results
        else np.zeros(0, np.int64),
        feature_names=np.asarray(results[0].feature_names if results else [], dtype=str),
        pair_offsets=offsets,
        raw_paths=np.asarray([os.path.abspath(r.raw_path) for r in results], dtype=str),
        edit_paths=np.asarray([os.path.abspath(r.edit_path) for r in results], dtype=str),
        plans=np.asarray([json.dumps(plan_to_dict(r.aligned()[0])) for r in results], dtype=str),
        match=np.asarray([r.match for r in results], dtype=np.float32),
        unalignable_names=np.asarray([u[0] for u in unalignable], dtype=str),
        unalignable_reasons=np.asarray([u[1] for u in unalignable], dtype=str),
    )
