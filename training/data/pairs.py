"""Training pairs: (raw song, edited song, exact labels) on disk.

Layout of a pair directory (``training_data/`` by default, see its README):

- ``input/NAME_raw.wav``: the raw song (24-bit PCM WAV).
- ``desired_output/NAME_edit.wav``: the edit, rendered from the label plan
  by ``engine.render.render_plan`` and written by
  ``engine.audio.write_audio``: the same bytes ``editorbot render`` writes
  for that plan. The studio styles (``training.data.editors.STUDIO_STYLES``)
  then run their studio chain over it (``apply_studio``): their edit is not
  our DSP render, which is what the supervised model learns.
- ``labels/NAME.json``: ``LABEL_SCHEMA``; the EditPlan
  (``engine.plan.plan_to_dict``, its source path relative to the label
  file), per-beat factored labels, the grid (the synthesizer's true grid
  and sections, or the analysis of a user's song), the style and the
  params it drew.
- ``reference/``: finished tracks a user adds by hand (created empty).

Synthetic pairs (``make_synth_pair``) edit the synthesizer's song on its
true grid and sections, so the labels are exact. ``make_pair_from_audio``
edits a user's song on the grid ``engine.analysis.analyze`` finds.

Determinism: a pair depends only on its seed, style and duration; the song
comes from ``synth_song(seed)`` and the editor's choices from
``editor_rng(seed, style)``. The same arguments give the same bytes in all
raw, edit and label files, whichever worker process makes them.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editorbot.engine.atomic import write_json_atomic
from editorbot.engine.audio import Audio, load_audio, sha256_file, write_audio
from editorbot.engine.errors import BadInput
from editorbot.engine.grid import Grid
from editorbot.engine.plan import EditPlan, plan_from_dict, plan_to_dict
from editorbot.training.data.editors import (
    STUDIO_SCOPE_OF,
    StyledEdit,
    TruthLabels,
    apply_studio,
    edit_song,
    get_style,
    label_coverage,
    truth_labels,
)

log = logging.getLogger(__name__)

LABEL_SCHEMA = "editorbot.pairlabels/1"
LAYOUT_DIRS: tuple[str, ...] = ("input", "desired_output", "labels", "reference")
BEATS_PER_BAR = 4
BEATS_PER_PHRASE = 16
#: First entry of the editor's seed sequence: keeps its stream apart from the synthesizer's.
EDITOR_STREAM = 1
#: Bits per sample of the raw files.
RAW_BIT_DEPTH = 24


@dataclass
class PairAnalysis:
    """What ``plan_from_actions`` and the editors read, for a pair's raw file.

    Attributes
    ----------
    audio : Audio
        the raw song, ``samples (n_channels, n_samples)`` float32.
    sha256 : str
        hex digest of the raw file's bytes.
    grid : Grid
        beat grid (true for synthetic songs).
    features : np.ndarray | None
        ``(n_beats, n_features)`` per-beat features, or None.
    feature_names : list[str] | None
        their names, or None.
    """

    audio: Audio
    sha256: str
    grid: Grid
    features: np.ndarray | None = None
    feature_names: list[str] | None = None


@dataclass
class PairRecord:
    """One pair written to disk.

    Attributes
    ----------
    name : str
        the pair's name (``NAME`` in the layout).
    style : str
        editor style.
    seed : int
        seed of the song (synthetic) and of the editor.
    raw_path, edit_path, label_path : str
        the three files.
    n_beats : int
        beats in the song's grid.
    raw_duration_s, edit_duration_s : float
        lengths in seconds.
    timings_s : dict[str, float]
        seconds spent per part: ``synth`` (or ``analyze``),
        ``edit``, ``render``, ``write``.
    """

    name: str
    style: str
    seed: int
    raw_path: str
    edit_path: str
    label_path: str
    n_beats: int
    raw_duration_s: float
    edit_duration_s: float
    timings_s: dict[str, float] = field(default_factory=dict)


def ensure_layout(out_dir: str | os.PathLike) -> dict[str, str]:
    """Create ``out_dir`` and its ``LAYOUT_DIRS``; returns ``{name: path}``."""
    root = os.fspath(out_dir)
    paths = {d: os.path.join(root, d) for d in LAYOUT_DIRS}
    for p in paths.values():
        os.makedirs(p, exist_ok=True)
    return paths


def pair_paths(out_dir: str | os.PathLike, name: str) -> tuple[str, str, str]:
    """``(raw, edit, label)`` paths of pair ``name`` under ``out_dir``."""
    root = os.fspath(out_dir)
    return (
        os.path.join(root, "input", f"{name}_raw.wav"),
        os.path.join(root, "desired_output", f"{name}_edit.wav"),
        os.path.join(root, "labels", f"{name}.json"),
    )


def editor_rng(seed: int, style: str) -> np.random.Generator:
    """The editor's generator for a pair: a stream of its own from ``(seed, style)``."""
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng([EDITOR_STREAM, int(seed), zlib.crc32(style.encode("utf-8"))])


def synth_pair_name(seed: int, style: str) -> str:
    """Name of the synthetic pair of ``seed`` and ``style``, e.g. ``synth000042_dj_edit``."""
    return f"synth{int(seed):06d}_{style}"


def _safe_stem(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "song"


def true_grid(tempo_bpm: float, beat_times: np.ndarray) -> Grid:
    """The synthesizer's exact grid: bars of 4 beats and phrases of 16 from beat 0."""
    bt = np.asarray(beat_times, dtype=np.float64)
    n = bt.shape[0]
    return Grid(
        tempo_bpm=float(tempo_bpm),
        beat_times=bt,
        downbeats=np.arange(0, n, BEATS_PER_BAR, dtype=np.int64),
        beats_per_bar=BEATS_PER_BAR,
        phrase_starts=np.arange(0, n, BEATS_PER_PHRASE, dtype=np.int64),
    )


# --------------------------------------------------------------------------
# Structure without audio (for plan-only corpora)


@dataclass
class SynthStructure:
    """A synthetic song's exact structure, drawn without rendering its audio.

    Attributes
    ----------
    seed : int
        the song's seed.
    tempo_bpm : float
        beats per minute.
    beat_times : np.ndarray
        ``(n_beats,)`` seconds.
    sections : list[Any]
        ``training.data.synth.Section`` list.
    duration_s : float
        length the rendered song would have, in seconds.
    sample_rate : int
        Hz.
    """

    seed: int
    tempo_bpm: float
    beat_times: np.ndarray
    sections: list[Any]
    duration_s: float
    sample_rate: int

    def analysis(self) -> PairAnalysis:
        """A ``PairAnalysis`` on the true grid whose audio is a silent, memory-free stand-in.

        Good for making plans and labels (``plan_from_actions`` reads only the
        audio's shape and rate); not for rendering.
        """
        n_samples = int(round(self.duration_s * self.sample_rate))
        silent = np.broadcast_to(np.zeros((1, 1), dtype=np.float32), (2, n_samples))
        return PairAnalysis(
            audio=Audio(silent, self.sample_rate, None),
            sha256="0" * 64,
            grid=true_grid(self.tempo_bpm, self.beat_times),
        )


def synth_structure(
    seed: int, *, duration_s: float | None = None, tempo_bpm: float | None = None, sample_rate: int = 44100
) -> SynthStructure:
    """The structure ``synth_song(seed, ...)`` would have, without rendering audio
    (``training.data.synth.plan_song``); a test checks the two agree."""
    from editorbot.training.data.synth import plan_song

    plan = plan_song(int(seed), duration_s=duration_s, tempo_bpm=tempo_bpm)
    beat_s = 60.0 / plan.tempo_bpm
    n_beats = sum(s.n_beats for s in plan.sections)
    n_samples = int(round((plan.offset_s + n_beats * beat_s + plan.tail_s) * sample_rate))
    return SynthStructure(
        seed=int(seed),
        tempo_bpm=float(plan.tempo_bpm),
        beat_times=plan.offset_s + np.arange(n_beats) * beat_s,
        sections=list(plan.sections),
        duration_s=n_samples / sample_rate,
        sample_rate=sample_rate,
    )


# --------------------------------------------------------------------------
# Writing pairs


def _label_doc(
    name: str,
    styled: StyledEdit,
    seed: int,
    labels: TruthLabels,
    grid: Grid,
    grid_source: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The label file's JSON document."""
    return {
        "schema": LABEL_SCHEMA,
        "name": name,
        "style": styled.style,
        "seed": int(seed),
        "style_params": styled.params,
        "raw": f"input/{name}_raw.wav",
        "edit": f"desired_output/{name}_edit.wav",
        "grid": {
            "source": grid_source,
            "tempo_bpm": float(grid.tempo_bpm),
            "beat_times": [float(t) for t in grid.beat_times],
            "downbeats": [int(i) for i in grid.downbeats],
            "phrase_starts": [int(i) for i in grid.phrase_starts],
        },
        "sections": [s.to_dict() for s in styled.song.sections],
        "beat_labels": labels.to_dict(),
        **extra,
        "plan": plan_to_dict(styled.plan),
    }


def _write_raw(path: str, samples: np.ndarray, sample_rate: int, *, protect: Sequence[str] = ()) -> Audio:
    """Write the raw song (``RAW_BIT_DEPTH`` PCM, atomically) and load it back as the renderer will."""
    write_audio(path, samples, sample_rate, protect=protect, bit_depth=RAW_BIT_DEPTH)
    return load_audio(path)




def _finish_pair(
    name: str,
    style: str,
    seed: int,
    analysis: PairAnalysis,
    sections: Iterable[Any] | None,
    out_dir: str,
    grid_source: str,
    extra: dict[str, Any],
    timings: dict[str, float],
) -> PairRecord:
    """Edit the raw song (already written), render and write the edit and the labels."""
    from editorbot.engine.render import render_plan

    raw_path, edit_path, label_path = pair_paths(out_dir, name)
    t = time.perf_counter()
    styled = edit_song(style, analysis, sections, editor_rng(seed, style))
    # Relative to the label file, so the folder can move.
    styled.plan.source.path = os.path.relpath(raw_path, os.path.dirname(label_path))
    labels = truth_labels(styled.plan)
    timings["edit"] = time.perf_counter() - t

    t = time.perf_counter()
    audio = analysis.audio
    rendered = render_plan(styled.plan, audio.samples, audio.sample_rate)
    if style in STUDIO_SCOPE_OF:  # the editor's own sound over the plan's render
        rendered = apply_studio(rendered, audio.sample_rate, styled.plan, STUDIO_SCOPE_OF[style])
    timings["render"] = time.perf_counter() - t

    t = time.perf_counter()
    write_audio(edit_path, rendered, audio.sample_rate, protect=(raw_path,))
    doc = _label_doc(name, styled, seed, labels, analysis.grid, grid_source, extra)
    write_json_atomic(label_path, doc)
    timings["write"] = timings.get("write", 0.0) + time.perf_counter() - t
    log.debug("pair %s: %s", name, {k: round(v, 3) for k, v in timings.items()})
    return PairRecord(
        name=name,
        style=styled.style,
        seed=int(seed),
        raw_path=raw_path,
        edit_path=edit_path,
        label_path=label_path,
        n_beats=labels.n_beats,
        raw_duration_s=audio.duration_s,
        edit_duration_s=rendered.shape[1] / audio.sample_rate,
        timings_s=timings,
    )


def make_synth_pair(
    seed: int,
    style: str,
    out_dir: str | os.PathLike,
    duration_s: float | None = None,
    *,
    tempo_bpm: float | None = None,
) -> PairRecord:
    """Synthesize song ``seed``, edit it with ``style`` on its true grid and write the pair.

    Parameters
    ----------
    seed : int
        song and editor seed (>= 0).
    style : str
        a name in ``training.data.editors.STYLES``.
    out_dir : str | os.PathLike
        pair directory (the layout is created).
    duration_s : float | None
        song length in seconds (rounded to whole phrases by the
        synthesizer); None draws 60-240 s from the seed.
    tempo_bpm : float | None
        forced tempo; None draws it from the seed.

    Returns
    -------
    PairRecord
        The ``PairRecord``; files ``input/NAME_raw.wav``,
        ``desired_output/NAME_edit.wav`` and ``labels/NAME.json`` with
        ``NAME = synth_pair_name(seed, style)``.

    Examples
    --------
    >>> rec = make_synth_pair(3, "radio_edit", "pairs", duration_s=30.0)  # doctest: +SKIP
    >>> rec.raw_path, rec.n_beats  # doctest: +SKIP
    ('pairs/input/synth000003_radio_edit_raw.wav', 64)
    """
    from editorbot.training.data.synth import synth_song

    get_style(style)
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out = os.fspath(out_dir)
    ensure_layout(out)
    name = synth_pair_name(seed, style)
    raw_path, _, _ = pair_paths(out, name)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    song = synth_song(int(seed), duration_s=duration_s, tempo_bpm=tempo_bpm)
    timings["synth"] = time.perf_counter() - t

    t = time.perf_counter()
    raw = _write_raw(raw_path, song.samples, song.sample_rate)
    sha256 = sha256_file(raw_path)
    timings["write"] = time.perf_counter() - t

    analysis = PairAnalysis(
        audio=raw,
        sha256=sha256,
        grid=true_grid(song.tempo_bpm, song.beat_times),
    )
    truth = song.labels()
    song_info = {k: truth[k] for k in ("seed", "key", "swing", "swing_grid", "drum_family", "offset_s")}
    return _finish_pair(name, style, seed, analysis, song.sections, out, "synth", {"song": song_info}, timings)


def make_pair_from_audio(
    path: str | os.PathLike,
    style: str,
    out_dir: str | os.PathLike,
    seed: int = 0,
    *,
    cache: bool = True,
) -> PairRecord:
    """Analyse a user's song, edit it with ``style`` and write the pair.

    The raw file is the decoded song written as a 24-bit WAV (so the plan's
    source is in the pair directory); sections are inferred from the
    analysed phrases and loudness.

    Raises
    ------
    BadInput
        the file is unreadable, too short, silent, ... (one line
        naming it, from ``engine.analysis.analyze``).
    """
    from editorbot.engine.analysis import analyze

    get_style(style)
    src = os.fspath(path)
    t = time.perf_counter()
    result = analyze(src, cache=cache)
    timings = {"analyze": time.perf_counter() - t}
    if result.n_beats < 1:
        raise BadInput(src, "no beats found; cannot edit on a beat grid")

    out = os.fspath(out_dir)
    ensure_layout(out)
    name = f"{_safe_stem(src)}_{style}_s{int(seed)}"
    raw_path, _, _ = pair_paths(out, name)
    t = time.perf_counter()
    raw = _write_raw(raw_path, result.audio.samples, result.audio.sample_rate, protect=(src,))
    sha256 = sha256_file(raw_path)
    timings["write"] = time.perf_counter() - t
    analysis = PairAnalysis(
        audio=raw,
        sha256=sha256,
        grid=result.grid,
        features=result.features,
        feature_names=result.feature_names,
    )
    extra = {"original": {"file": os.path.basename(src), "sha256": result.sha256}}
    return _finish_pair(name, style, seed, analysis, None, out, "analysis", extra, timings)


def _synth_job(job: tuple[int, str, str, float | None]) -> PairRecord:
    seed, style, out_dir, duration_s = job
    return make_synth_pair(seed, style, out_dir, duration_s)


def synth_jobs(
    n: int, styles: Sequence[str], seed: int = 0
) -> list[tuple[int, str]]:
    """``(seed, style)`` of the ``n`` pairs of a corpus: pair ``i`` has seed ``seed + i``
    and style ``styles[i % len(styles)]`` (round robin, so styles stay balanced)."""
    if not styles:
        raise ValueError("no styles given")
    for s in styles:
        get_style(s)
    return [(seed + i, styles[i % len(styles)]) for i in range(n)]


def make_synth_pairs(
    n: int,
    out_dir: str | os.PathLike,
    styles: Sequence[str],
    *,
    seed: int = 0,
    duration_s: float | None = None,
    jobs: int = 1,
    quiet: bool = False,
) -> list[PairRecord]:
    """Make ``n`` synthetic pairs (see ``synth_jobs``), in ``jobs`` worker processes.

    The files do not depend on ``jobs``: every pair is made from its own seed.
    Returns the records in pair order.
    """
    from editorbot.engine.progress import progress

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    out = os.fspath(out_dir)
    ensure_layout(out)
    work = [(s, style, out, duration_s) for s, style in synth_jobs(n, styles, seed)]
    if jobs == 1 or n <= 1:
        return [_synth_job(job) for job in progress(work, desc="pairs", total=n, quiet=quiet)]

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    records: list[PairRecord | None] = [None] * n
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_synth_job, job): i for i, job in enumerate(work)}
        for fut in progress(as_completed(futures), desc="pairs", total=n, quiet=quiet):
            records[futures[fut]] = fut.result()
    return [r for r in records if r is not None]


# --------------------------------------------------------------------------
# Reading pairs


def read_label_doc(path: str | os.PathLike) -> dict[str, Any]:
    """A label file's JSON document; BadInput (one line naming it) if it is not one."""
    p = os.fspath(path)
    try:
        with open(p, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as err:
        raise BadInput(p, f"cannot read: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(p, f"not a label file (not JSON: {err})") from None
    if not isinstance(doc, dict) or doc.get("schema") != LABEL_SCHEMA:
        raise BadInput(p, f"not a label file (schema is not {LABEL_SCHEMA})")
    return doc


def load_pair_plan(label_path: str | os.PathLike) -> EditPlan:
    """The EditPlan stored in a label file, its source path made absolute."""
    p = os.fspath(label_path)
    doc = read_label_doc(p)
    plan = plan_from_dict(doc.get("plan"), path=p)
    if plan.source.path and not os.path.isabs(plan.source.path):
        plan.source.path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(p)), plan.source.path))
    return plan


def read_truth_labels(out_dir: str | os.PathLike) -> list[tuple[str, TruthLabels]]:
    """``(label file, truth labels)`` of every ``labels/*.json`` under ``out_dir``, sorted by name.

    Raises
    ------
    BadInput
        No label files, or one that is not a label file.
    """
    folder = os.path.join(os.fspath(out_dir), "labels")
    files = sorted(glob.glob(os.path.join(folder, "*.json")))
    if not files:
        raise BadInput(folder, "no label files (labels/*.json); make pairs with `editorbot data synth`")
    out = []
    for f in files:
        doc = read_label_doc(f)
        try:
            out.append((f, TruthLabels.from_dict(doc["beat_labels"])))
        except (KeyError, TypeError, ValueError) as err:
            raise BadInput(f, f"bad beat_labels: {err}") from None
    return out


def corpus_coverage(out_dir: str | os.PathLike) -> dict[str, dict[str, float]]:
    """``label_coverage`` of the pairs under ``out_dir``."""
    return label_coverage(lab for _, lab in read_truth_labels(out_dir))
