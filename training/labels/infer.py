"""Inferred labels of one (raw, edit) pair: ``infer_pair``, one call per step of the package docstring.

``infer_pair`` reads the two files, then runs the steps in order:

1-2. ``_frame_features`` (beside the raw song's analysis, on a second
     thread) and ``_frame_pair``: frame features of both files and the
     extended beat grid (``frames``, ``align.extended_grid``).
3.   ``_structure``: the alignment DP and the walk's checks on the samples
     (``align``); ``_check_alignable`` stops a pair whose best path matches
     poorly (mean similarity below ``UNALIGNABLE_SIM``): it is reported as
     unalignable and gets no labels.
4.   ``_place_splices``: the grid's phase and every splice measured on the
     samples, an overall gain of the edit file taken off (``splices``).
5.   ``_judge_beats``: the inferred label of every extended beat: the effect
     on each forward beat (``effects``), the structural moves' types and
     amounts, a confidence per beat.
6.   ``_walk_and_plan``: walk and plan. Runs of beats with one label become
     actions whose sizes tile the run (largest sizes first; a fade run is
     one ramp); the plan comes from ``engine.plan.plan_from_actions`` on the
     extended grid; the labels are read back on the analysis grid.

Steps 3-6 share two objects: ``_Pair`` (the two songs and the extended grid,
which step 4 moves onto the edit's splices) and ``ExtendedLabels`` (the
per-beat state: type, amount slot, confidence, action group, size and
action starts of every extended beat, filled in by steps 5 and 6).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from editorbot.engine import actions as vocab
from editorbot.engine.analysis import Analysis, analyze
from editorbot.engine.audio import Audio, analysis_mono, load_audio
from editorbot.engine.grid import Grid
from editorbot.engine.plan import EditPlan, beat_spans, plan_from_actions
from editorbot.training.labels.align import (
    AMOUNT_SLOTS,
    CUT,
    FWD,
    LOOP,
    LOOP_REPEATS,
    REV,
    SIL,
    SPEED,
    SPEED_RATES,
    STUT,
    AlignConfig,
    Move,
    align,
    extended_grid,
    grid_period,
    smooth_beats,
)
from editorbot.training.labels.calibration import calibrate
from editorbot.training.labels.effect_runs import label_run
from editorbot.training.labels.effect_tails import OpenTail
from editorbot.training.labels.effects import (
    QUIET_BEAT_DB,
    BeatEffect,
    beat_effect,
    delay_beat_lengths,
    stutter_slot,
)
from editorbot.training.labels.frames import FRAME_HOP, FRAME_SR, Frames, frame_features
from editorbot.training.labels.move_checks import (
    drop_false_speeds,
    forward_rearrangements,
    loop_phase,
    merge_speed_runs,
)
from editorbot.training.labels.pitch_checks import pitch_in_speed, resampled_pitch
from editorbot.training.labels.speed_checks import overlap_speeds, speed_lead_ins, splice_speeds_unsure
from editorbot.training.labels.splices import edit_file_gain, forward_offsets, grid_shift, onset_shift, splice_starts
from editorbot.training.labels.stripes import Stripes
from editorbot.training.labels.width import side_scale

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - a librosa dependency
    threadpool_limits = None

log = logging.getLogger(__name__)

#: Mean similarity along the best path below which a pair is unalignable.
UNALIGNABLE_SIM = 0.55
#: Mean similarity of a SPEED move's frames below which it is read as KEEP with that confidence.
UNSURE_SPEED_MATCH = 0.3
#: A run of forward beats with one effect label under this mean confidence that leaves over this
#: many dB of the beats' change unexplained is read as KEEP (tuned on bench/labels_real.py --split
#: dev; the synthetic styles' subtle effects fit within 0.4 dB).
EFFECT_MIN_CONFIDENCE = 0.2
EFFECT_MAX_RESIDUAL_DB = 1.0


#: Action type of each structural move kind of the DP.
STRUCTURAL_NAMES = {CUT: "CUT", SIL: "SILENCE", REV: "REVERSE", LOOP: "LOOP", STUT: "STUTTER", SPEED: "SPEED"}


@dataclass
class PairLabels:
    """The inferred (BC) labels of one (raw, edit) pair.

    Attributes
    ----------
    name : str
        pair name.
    raw_path, edit_path : str
        the two files.
    alignable : bool
        False when the edit does not come from the raw song.
    match : float
        mean frame similarity along the alignment path (0..1).
    reason : str
        why a pair is unalignable ("" otherwise).
    beat_times : np.ndarray
        ``(n_beats,)`` analysis beat times, seconds.
    labels : np.ndarray
        ``(n_beats, 3)`` int64 (type, size, amount) per analysis beat.
    confidence : np.ndarray
        ``(n_beats,)`` float32 in [0, 1].
    action_start : np.ndarray
        ``(n_beats,)`` bool, an action of the walk starts here.
    walk : list[tuple[str, str, str]]
        ``(type, size, amount)`` names from the extended grid's beat 0.
    plan : EditPlan | None
        the inferred EditPlan (extended grid), or None.
    features : np.ndarray
        ``(n_beats, n_features)`` float32 analysis features.
    feature_names : list[str]
        their names.
    grid : Grid | None
        the raw song's ``engine.grid.Grid``.
    duration_s : float
        the raw song's length, seconds.
    file_gain_db : float
        the edit file's overall gain (a louder export, a peak
        normalisation), dB: not an edit, so in no label or action; 0 when none.
    seconds : dict[str, float]
        wall time spent, by stage.
    """

    name: str
    raw_path: str
    edit_path: str
    alignable: bool
    match: float
    reason: str = ""
    beat_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    action_start: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    walk: list[tuple[str, str, str]] = field(default_factory=list)
    plan: EditPlan | None = None
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    feature_names: list[str] = field(default_factory=list)
    grid: Grid | None = None
    duration_s: float = 0.0
    file_gain_db: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)

    def aligned(self) -> tuple[EditPlan, Grid]:
        """The inferred plan and the raw song's grid of an alignable pair (ValueError otherwise)."""
        if self.plan is None or self.grid is None:
            raise ValueError(f"{self.edit_path}: an unalignable pair has no inferred plan ({self.reason})")
        return self.plan, self.grid


@dataclass
class ExtendedLabels:
    """The inferred label of every beat of the extended grid, as steps 5 and 6 fill it in.

    Attributes
    ----------
    types : list[str]
        ``n`` action type names (KEEP until a step says otherwise).
    slots : list[int]
        ``n`` amount slots 0..3 (``align.AMOUNT_SLOTS``; 0 for NEUTRAL-only types).
    confidence : np.ndarray
        ``(n,)`` float32 in [0, 1].
    group : np.ndarray
        ``(n,)`` int64: ``g > 0`` on the beats of one structural
        action (one DP move, or one SPEED over several), -1 on forward
        beats (they group by label in the walk), 0 on beats no move reached.
    size : np.ndarray
        ``(n,)`` int64 size index of the walk's action over each beat.
    action_start : np.ndarray
        ``(n,)`` bool, an action of the walk starts here.
    residual_db : np.ndarray
        ``(n,)`` float32, dB: how far a forward beat is from its best effect
        candidate, what that candidate leaves unexplained
        (``effects.BeatEffect.distance``; 0 elsewhere).
    """

    types: list[str]
    slots: list[int]
    confidence: np.ndarray
    group: np.ndarray
    size: np.ndarray
    action_start: np.ndarray
    residual_db: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    @classmethod
    def keep(cls, n: int) -> ExtendedLabels:
        """``n`` beats, each KEEP with confidence 1, no group, no action yet."""
        return cls(
            types=["KEEP"] * n,
            slots=[0] * n,
            confidence=np.ones(n, dtype=np.float32),
            group=np.zeros(n, dtype=np.int64),
            size=np.zeros(n, dtype=np.int64),
            action_start=np.zeros(n, dtype=bool),
            residual_db=np.zeros(n, dtype=np.float32),
        )

    def label_run(self, run: list[tuple[int, BeatEffect]]) -> None:
        """Label a run of consecutive forward beats together (``effect_runs.label_run``) and empty it."""
        for (b, _), (tname, slot) in zip(run, label_run([e for _, e in run])):
            self.types[b], self.slots[b] = tname, slot
        run.clear()


@dataclass
class _Pair:
    """The two songs as steps 3-6 see them.

    Attributes
    ----------
    name : str
        pair name (for log lines).
    analysis : Analysis
        the raw song's analysis (``y`` at ``FRAME_SR``).
    edit_audio : Audio
        the edit file; ``edit_y`` its mono copy at ``FRAME_SR``
        (both without the file's overall gain after step 4).
    raw_frames, edit_frames : Frames
        step 1's frame features.
    starts, ends : np.ndarray
        ``(n,)`` extended beat grid of the raw song, seconds
        (moved onto the edit's splices by step 4).
    first_real : int
        index in it of the analysis grid's first beat.
    beat_s : float
        beat period, seconds (``align.grid_period``).
    file_gain_db : float
        the edit file's overall gain, dB (step 4; 0 when none).
    """

    name: str
    analysis: Analysis
    edit_audio: Audio
    edit_y: np.ndarray
    raw_frames: Frames
    edit_frames: Frames
    starts: np.ndarray
    ends: np.ndarray
    first_real: int
    beat_s: float
    file_gain_db: float = 0.0


class _ExtendedAnalysis:
    """What ``plan_from_actions`` reads: the raw audio with the extended grid."""

    def __init__(self, audio: Audio, sha256: str, tempo_bpm: float, starts_s: np.ndarray, first_real: int, downbeats: np.ndarray) -> None:
        self.audio = audio
        self.sha256 = sha256
        n = starts_s.shape[0]
        db = np.asarray(downbeats, dtype=np.int64) + first_real
        self.grid = Grid(
            tempo_bpm=float(tempo_bpm),
            beat_times=np.asarray(starts_s, dtype=np.float64),
            downbeats=db[(db >= 0) & (db < n)],
            beats_per_bar=4,
            phrase_starts=np.zeros(0, dtype=np.int64),
        )


def infer_pair(
    raw_path: str | os.PathLike,
    edit_path: str | os.PathLike,
    *,
    name: str | None = None,
    cache: Any = True,
    config: AlignConfig | None = None,
    effects: bool = True,
    calibrated: bool = True,
) -> PairLabels:
    """Infer the edit that turned ``raw_path`` into ``edit_path`` (see the module docstring).

    Parameters
    ----------
    raw_path, edit_path : str | os.PathLike
        the two audio files (any format ``engine.audio`` reads).
    name : str | None
        pair name (default: the raw file's stem).
    cache : engine.cache.FeatureCache | bool | None
        the feature cache for ``engine.analysis.analyze`` (True: the default one).
    config : AlignConfig | None
        DP scores (``AlignConfig``).
    effects : bool
        also find effects on forward-played beats (else they are KEEP).
    calibrated : bool
        the labels' confidence made the probability that they are right
        (``calibration``); False: the raw confidence (to fit the calibration).

    Returns
    -------
    PairLabels
        ``PairLabels``; ``alignable`` False (and no labels) when the edit
        does not match the raw song.

    Examples
    --------
    >>> res = infer_pair("input/song_raw.wav", "desired_output/song_edit.wav")  # doctest: +SKIP
    >>> res.labels.shape  # (type, size, amount) per analysis beat  # doctest: +SKIP
    (96, 3)
    """
    raw_path, edit_path = os.fspath(raw_path), os.fspath(edit_path)
    name = name or os.path.splitext(os.path.basename(raw_path))[0]
    seconds: dict[str, float] = {}
    # the frame features need the raw song's samples, not its analysis: they are
    # made on a second thread while the analysis runs (the raw file is decoded
    # twice, ~0.1 s of a 4-minute wav, for ~1 s of wall time on two cores)
    with _timed(seconds, "load"), ThreadPoolExecutor(max_workers=1) as pool:
        frames_job = pool.submit(_frame_features, raw_path, edit_path)
        analysis = analyze(raw_path, cache=cache)
        edit_audio, edit_y, raw_f, edit_f = frames_job.result()
    pair = _frame_pair(name, analysis, edit_audio, edit_y, raw_f, edit_f)
    # the alignment's products are one stripe of raw frames each (labels.stripes):
    # one BLAS thread makes them in the same wall time on a busy machine with
    # ~40% less CPU (4-minute pair: 1.5 s against 2.6 s), and leaves the
    # other cores to ``data labels --jobs``
    with _timed(seconds, "align"), _one_blas_thread():
        moves, s = _structure(pair, config)
    result = _empty_result(pair, raw_path, edit_path, seconds)
    if not _check_alignable(result, moves, s, pair):
        return result
    # many tiny BLAS products from here on: one thread (idle BLAS threads
    # spinning against other processes cost ~10x here)
    with _one_blas_thread():
        with _timed(seconds, "splices"):
            moves, fwd_offset, lead_ins = _place_splices(pair, moves)
        with _timed(seconds, "effects"):
            beats = _judge_beats(pair, moves, fwd_offset, lead_ins, effects=effects)
    _walk_and_plan(result, pair, beats, calibrated=calibrated)
    return result


@contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the block's wall time to ``seconds[stage]``."""
    t = time.perf_counter()
    yield
    seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - t


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread inside the block (no limit without threadpoolctl)."""
    if threadpool_limits is None:  # pragma: no cover - a librosa dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --------------------------------------------------------------------------- steps 1-3


def _frame_features(raw_path: str, edit_path: str) -> tuple[Audio, np.ndarray, Frames, Frames]:
    """Step 1: the edit file, its mono copy at ``FRAME_SR`` and both files' frame features (the raw one with its variants)."""
    raw_f = frame_features(analysis_mono(load_audio(raw_path)), variants=True)
    edit_audio = load_audio(edit_path)
    edit_y = analysis_mono(edit_audio)
    return edit_audio, edit_y, raw_f, frame_features(edit_y)


def _frame_pair(name: str, analysis: Analysis, edit_audio: Audio, edit_y: np.ndarray, raw_f: Frames, edit_f: Frames) -> _Pair:
    """Step 2: the two songs with the extended grid and its period."""
    grid = analysis.grid
    starts, ends, first_real = extended_grid(grid.beat_times, analysis.audio.duration_s, tempo_bpm=grid.tempo_bpm)
    beat_s = grid_period(smooth_beats(grid.beat_times)) if analysis.n_beats >= 4 else float(np.median(ends - starts))
    return _Pair(name, analysis, edit_audio, edit_y, raw_f, edit_f, starts, ends, first_real, beat_s)


def _structure(pair: _Pair, config: AlignConfig | None) -> tuple[list[Move], Stripes]:
    """Step 3: the DP's walk, checked on the samples (``loop_phase``, ``merge_speed_runs``), and the frame similarity."""
    # a stutter slices the tracker's own beat (the grid the edit was made on), not the smoothed one
    slice_beats = pair.ends - pair.starts
    grid = pair.analysis.grid
    if grid.beat_times.size:
        g0, g1 = beat_spans(grid.beat_times, pair.analysis.audio.duration_s, tempo_bpm=grid.tempo_bpm)
        n = min(g0.shape[0], slice_beats.shape[0] - pair.first_real)
        slice_beats[pair.first_real : pair.first_real + n] = (g1 - g0)[:n]
    _, moves, s = align(
        pair.raw_frames,
        pair.edit_frames,
        pair.starts,
        pair.ends,
        pair.edit_audio.duration_s,
        config=config,
        beat_s=pair.beat_s,
        slice_beats_s=slice_beats,
    )
    raw_y = pair.analysis.y
    bar_starts = np.asarray(grid.downbeats, dtype=np.int64) + pair.first_real
    moves = loop_phase(raw_y, pair.edit_y, moves, pair.starts, pair.ends, bar_starts)
    moves = merge_speed_runs(moves, pair.starts, pair.ends)
    moves = forward_rearrangements(raw_y, pair.edit_y, moves, pair.starts, pair.ends)
    for m in moves:
        if m.kind == STUT:  # a 1/4-beat stutter repeats at 1/2 beat too: the shortest slice that repeats
            m.slot = stutter_slot(pair.edit_y, m, float(slice_beats[m.beat]), m.slot)
    return moves, s


def _empty_result(pair: _Pair, raw_path: str, edit_path: str, seconds: dict[str, float]) -> PairLabels:
    """An unalignable ``PairLabels`` with the raw song's grid and features: what every pair starts as."""
    an = pair.analysis
    return PairLabels(
        name=pair.name,
        raw_path=raw_path,
        edit_path=edit_path,
        alignable=False,
        match=0.0,
        beat_times=np.asarray(an.grid.beat_times, dtype=np.float64),
        features=an.features,
        feature_names=list(an.feature_names),
        grid=an.grid,
        duration_s=float(an.audio.duration_s),
        seconds=seconds,
    )


def _check_alignable(result: PairLabels, moves: list[Move], s: Stripes, pair: _Pair) -> bool:
    """Set ``result.match`` (and each move's) and whether the pair is alignable; False with a reason when not."""
    if not moves:
        result.reason = "no alignment path reaches the end of the edit"
        return False
    to_f = FRAME_SR / FRAME_HOP
    result.match = _path_match(moves, s, pair.edit_frames, pair.starts * to_f, pair.ends * to_f)
    if result.match < UNALIGNABLE_SIM:
        result.reason = f"the edit does not match the raw song (mean similarity {result.match:.2f} < {UNALIGNABLE_SIM})"
        log.info("%s: unalignable: %s", pair.name, result.reason)
        return False
    result.alignable = True
    return True


def _path_match(moves: list[Move], s: Stripes, edit: Frames, starts_f: np.ndarray, ends_f: np.ndarray) -> float:
    """Mean similarity of the non-silent edit frames along the walk; sets each move's ``match``."""
    to_f = FRAME_SR / FRAME_HOP
    frame_scores = [_move_frame_scores(m, s, edit, starts_f, ends_f) for m in moves]
    for m, fs in zip(moves, frame_scores):
        m.match = float(fs.mean()) if fs.size else 1.0
    loud = ~edit.silent
    path = np.zeros(edit.n_frames)
    for m, fs in zip(moves, frame_scores):
        t0 = int(round(m.dst_start_s * to_f))
        path[t0 : t0 + fs.size] = fs[: max(0, edit.n_frames - t0)]
    return float(path[loud].mean()) if loud.any() else 0.0


def _move_frame_scores(mv: Move, s: Stripes, edit: Frames, starts_f: np.ndarray, ends_f: np.ndarray) -> np.ndarray:
    """Per-frame similarity of the edit frames a move explains (empty for a CUT)."""
    to_f = FRAME_SR / FRAME_HOP
    t0, t1 = int(round(mv.dst_start_s * to_f)), int(round(mv.dst_end_s * to_f))
    t1 = min(t1, s.shape[0])
    if t1 <= t0 or mv.kind == CUT:
        return np.zeros(0)
    u = np.arange(t1 - t0)
    r0 = starts_f[mv.beat]
    if mv.kind == SIL:
        return np.where(edit.silent[t0:t1], 1.0, 0.0)
    if mv.kind == REV:
        r = int(round(ends_f[mv.beat + mv.n_beats - 1] + mv.shift_s * to_f)) - 1 - u
    elif mv.kind == LOOP:  # each play as long as the DP found (the tracker's beats, not the grid's)
        span = (t1 - t0) / (LOOP_REPEATS[mv.slot] + 1)
        r = np.round(r0 + np.mod(u, max(span, 1.0))).astype(np.int64)
    elif mv.kind == SPEED:
        r = np.round(r0 + SPEED_RATES[mv.slot] * u).astype(np.int64)
    elif mv.kind == STUT:
        return np.full(t1 - t0, 1.0)  # scored by periodicity in the DP
    else:
        r = np.round(r0 + u).astype(np.int64)
    ok = (r >= 0) & (r < s.shape[1])
    out = np.zeros(t1 - t0)
    out[ok] = s.values(t0 + u[ok], r[ok])
    return out


# --------------------------------------------------------------------------- step 4


def _place_splices(pair: _Pair, moves: list[Move]) -> tuple[list[Move], dict[int, int], dict[int, float]]:
    """Step 4: the walk without false SPEEDs, its forward offsets, and the grid and edit made to fit the edit's splices.

    Moves ``pair.starts``/``pair.ends`` by the grid's phase, then each
    measured splice; takes the edit file's overall gain off ``pair.edit_y``
    and ``pair.edit_audio``. Returns the moves, ``{beat: edit - raw
    samples}`` of every forward beat, and ``{beat: share}`` of the forward
    beats taken off the ends of SPEED runs (``speed_lead_ins``: the share
    of each that plays unstretched).
    """
    raw_y = pair.analysis.y
    fwd_offset = forward_offsets(raw_y, pair.edit_y, moves, pair.starts, pair.beat_s)
    kept = drop_false_speeds(moves, fwd_offset, pair.starts, pair.ends)
    kept = overlap_speeds(raw_y, pair.edit_y, kept, fwd_offset, pair.starts, pair.ends)
    kept, lead_ins = speed_lead_ins(raw_y, pair.edit_y, kept, fwd_offset, pair.starts, pair.ends)
    if [(m.kind, m.beat, m.n_beats) for m in kept] != [(m.kind, m.beat, m.n_beats) for m in moves]:
        moves = kept
        fwd_offset = forward_offsets(raw_y, pair.edit_y, moves, pair.starts, pair.beat_s)
    _shift_grid(pair, moves, fwd_offset)
    _grid_to_splices(pair, moves, fwd_offset)
    _without_file_gain(pair, moves, fwd_offset)
    return moves, fwd_offset, lead_ins


def _shift_grid(pair: _Pair, moves: list[Move], fwd_offset: dict[int, int]) -> None:
    """Move the grid by its phase: where the edit's splices really are, else where the raw beats' attacks are."""
    raw_y, n_beats = pair.analysis.y, pair.analysis.n_beats
    shift_s = grid_shift(raw_y, pair.edit_y, moves, pair.starts, fwd_offset)
    if shift_s is None:
        shift_s = onset_shift(raw_y, pair.starts[pair.first_real : pair.first_real + n_beats])
    if shift_s:
        log.debug("%s: beat grid moved by %+.1f ms to the edit's splices", pair.name, 1e3 * shift_s)
        last_s = float(pair.starts[-1])
        pair.starts = pair.starts.copy()
        pair.ends = pair.ends.copy()
        pair.starts[1:] += shift_s
        pair.ends[:-1] += shift_s
        # a grid that ends a few ms before the song ends in a sliver of a beat: moved
        # later by more than its length, it would start past the song's end, the plan's
        # grid (``plan_from_actions``) would drop it and the walk would run past its last
        # beat. It keeps at least a frame (or the length it had, if less).
        min_s = FRAME_HOP / FRAME_SR
        pair.starts[-1] = min(pair.starts[-1], max(last_s, pair.ends[-1] - min_s))
        if pair.starts.shape[0] > 1:
            pair.ends[-2] = pair.starts[-1]


def _grid_to_splices(pair: _Pair, moves: list[Move], fwd_offset: dict[int, int]) -> None:
    """Move each beat start the edit has a splice at onto it (unless that would squeeze a beat)."""
    measured = splice_starts(pair.analysis.y, pair.edit_y, moves, pair.starts, fwd_offset, ends=pair.ends)
    if not measured:
        return
    fixed = pair.starts.copy()
    for beat, t_s in measured.items():
        fixed[beat] = t_s
    if np.all(np.diff(fixed) > 0.25 * pair.beat_s) and fixed[-1] < pair.ends[-1]:
        log.debug("%s: %d beat starts moved to the edit's splices", pair.name, len(measured))
        pair.starts = fixed
        pair.ends = pair.ends.copy()
        pair.ends[:-1] = pair.starts[1:]


def _without_file_gain(pair: _Pair, moves: list[Move], fwd_offset: dict[int, int]) -> None:
    """Take an overall gain of the edit file off the edit, so that effects are judged without it."""
    file_gain_db = edit_file_gain(pair.analysis.y, pair.edit_y, moves, pair.starts, pair.ends, fwd_offset)
    if not file_gain_db:
        return
    log.info("%s: the edit file is %+.1f dB overall: judging effects without it", pair.name, file_gain_db)
    pair.file_gain_db = float(file_gain_db)
    scale = np.float32(10.0 ** (-file_gain_db / 20.0))
    pair.edit_y = pair.edit_y * scale
    audio = pair.edit_audio
    pair.edit_audio = type(audio)(audio.samples * scale, audio.sample_rate, audio.path)


# --------------------------------------------------------------------------- step 5


def _judge_beats(
    pair: _Pair, moves: list[Move], fwd_offset: dict[int, int], lead_ins: dict[int, float] | None = None, *, effects: bool
) -> ExtendedLabels:
    """Step 5: the label, amount slot, confidence and action group of every extended beat.

    A forward beat's confidence is its move's match, times (with
    ``effects``) how clearly its effect won; a structural move's beats take
    its match. A forward beat in ``lead_ins`` (``{beat: share}`` of beats
    taken off a SPEED run's ends, ``speed_checks.speed_lead_ins``) is KEEP and
    not judged for effects: it sits at a join or holds the SPEED's start
    ("I don't know"), as sure as the share of it that plays unstretched.
    """
    beats = ExtendedLabels.keep(pair.starts.shape[0])
    judge = _ForwardJudge(pair, fwd_offset) if effects else None
    lead_ins = lead_ins or {}
    for gi, m in enumerate(moves):
        conf = float(np.clip(m.match if m.kind != CUT else _cut_match(moves, gi), 0.0, 1.0))
        if m.kind == FWD and m.beat in lead_ins:
            if judge is not None:
                judge.flush(beats)
            beats.group[m.beat] = -1
            beats.confidence[m.beat] = min(conf, lead_ins[m.beat])
        elif m.kind == FWD:
            if judge is not None:
                conf *= judge.judge(beats, m, moves[gi - 1] if gi > 0 else None)
            beats.group[m.beat] = -1  # grouped later by label
            beats.confidence[m.beat] = conf
        elif m.kind == SPEED and m.match < UNSURE_SPEED_MATCH:
            # the edit's frames barely match the raw beats at any rate: a patch of the
            # alignment over audio it cannot read, not a SPEED ("I don't know": KEEP)
            if judge is not None:
                judge.flush(beats)
            span = list(range(m.beat, m.beat + m.n_beats))
            beats.group[span] = -1
            beats.confidence[span] = conf
        else:
            if judge is not None:
                judge.flush(beats)
            _label_structural(beats, pair, moves, gi, conf)
    if judge is not None:
        judge.flush(beats)
    pitch_in_speed(beats)
    resampled_pitch(beats, moves, pair.starts, pair.ends)
    splice_speeds_unsure(beats, moves)
    _unsure_effects(beats)
    return beats


def _unsure_effects(
    beats: ExtendedLabels, min_confidence: float = EFFECT_MIN_CONFIDENCE, max_residual_db: float = EFFECT_MAX_RESIDUAL_DB
) -> None:
    """Runs of forward beats with one effect label that is unsure and leaves much unexplained become KEEP, in place.

    "I don't know": an effect that barely won (mean confidence under
    ``min_confidence``) and leaves over ``max_residual_db`` of its beats'
    change unexplained (an effect outside the vocabulary, a delay at
    another time, a compressor read as a gain) is not a label to learn
    from. A subtle effect this vocabulary renders (a small shelf) is unsure
    too, but fits to a few tenths of a dB. The beats keep their low
    confidence. Fades of two beats or more are left alone (a ramp is sure
    where it is one; ``effect_runs.false_fades`` has judged it); a
    one-beat fade is a guess like any effect (a reverb's tail over a
    muted beat, a compressor's release read as a ramp).
    """
    types, slots, group = beats.types, beats.slots, beats.group
    n = len(types)
    b = 0
    while b < n:
        e = b + 1
        if group[b] >= 0 or types[b] == "KEEP":
            b = e
            continue
        while e < n and group[e] < 0 and types[e] == types[b] and slots[e] == slots[b]:
            e += 1
        if types[b] in ("FADE_IN", "FADE_OUT") and e - b > 1:
            b = e
            continue
        conf, residual = float(np.mean(beats.confidence[b:e])), float(np.mean(beats.residual_db[b:e]))
        if conf < min_confidence and residual > max_residual_db:
            log.debug("beats %d-%d: %s at %.2f confidence, %.1f dB unexplained, read as KEEP", b, e - 1, types[b], conf, residual)
            for k in range(b, e):
                types[k], slots[k] = "KEEP", 0
        b = e


def _cut_match(moves: list[Move], gi: int) -> float:
    """How sure a CUT ``moves[gi]`` is: the lower match of the moves that play on either side of it.

    A CUT has no edit frames of its own; it is as sure as the audio that
    jumps over it is placed (1 where nothing plays on either side).
    """
    sides = []
    for step in (-1, 1):
        k = gi + step
        while 0 <= k < len(moves) and moves[k].kind == CUT:
            k += step
        if 0 <= k < len(moves):
            sides.append(moves[k].match)
    return min(sides) if sides else 1.0


def _label_structural(beats: ExtendedLabels, pair: _Pair, moves: list[Move], gi: int, conf: float) -> None:
    """Label the beats of structural move ``moves[gi]``: its type, amount slot, confidence and action group."""
    m = moves[gi]
    slot = m.slot
    group = gi + 1
    if m.kind == SPEED and gi > 0:
        # one SPEED played over several DP moves at one rate is one action
        # (one stretched segment, as an editor makes it)
        pm = moves[gi - 1]
        if pm.kind == SPEED and pm.slot == m.slot and pm.beat + pm.n_beats == m.beat:
            group = int(beats.group[pm.beat])
    span = range(m.beat, m.beat + m.n_beats)
    for b in span:
        beats.types[b] = STRUCTURAL_NAMES[m.kind]
        beats.slots[b] = slot
        beats.group[b] = group
    beats.confidence[list(span)] = conf


class _ForwardJudge:
    """Step 5 on the beats played forwards: each judged by ``beat_effect``; runs of them labelled together.

    Holds what one pair's forward beats share: the current run of
    consecutive beats judged from candidates (labelled together when it
    ends, ``ExtendedLabels.label_run``), where the current forward run began
    in the raw song, and the reverb/delay candidate renders.
    """

    def __init__(self, pair: _Pair, fwd_offset: dict[int, int]) -> None:
        self.pair = pair
        self.fwd_offset = fwd_offset
        raw_y = pair.analysis.y
        loud_db = 10.0 * math.log10(float(np.percentile(np.square(raw_y, dtype=np.float64), 99.5)) + 1e-20)
        self.quiet_db = loud_db - QUIET_BEAT_DB
        self.run: list[tuple[int, BeatEffect]] = []
        self.run_start = 0  # raw sample (FRAME_SR) where the current forward run began
        self.tail_cache: dict = {}
        grid = pair.analysis.grid
        lengths = np.zeros(0)
        if grid.beat_times.size:
            g0, g1 = beat_spans(grid.beat_times, pair.analysis.audio.duration_s, tempo_bpm=grid.tempo_bpm)
            lengths = g1 - g0
        self.delay_beats_s = delay_beat_lengths(lengths, pair.beat_s)
        self.tail = OpenTail(pair.analysis.audio.samples, int(pair.analysis.audio.sample_rate))

    def judge(self, beats: ExtendedLabels, m: Move, prev: Move | None) -> float:
        """Label forward beat ``m.beat`` (``prev``: the move before it); returns its confidence factor (0..1)."""
        p = self.pair
        src0 = int(round(p.starts[m.beat] * FRAME_SR))
        n = int(round((p.ends[m.beat] - p.starts[m.beat]) * FRAME_SR))
        d0 = src0 + self.fwd_offset[m.beat]
        raw_st, edit_st = self._stereo(m.beat, d0)
        if prev is None or prev.kind != FWD or prev.beat != m.beat - 1:
            self.run_start = src0
        tail = self.tail.over(d0, n, raw_st.shape[1] if raw_st is not None else 0)
        same_rate = p.edit_audio.sample_rate == p.analysis.audio.sample_rate
        if (
            tail is not None and raw_st is not None and edit_st is not None and same_rate
            and tail.stereo.shape == edit_st.shape and side_scale(raw_st, edit_st) is not None
        ):
            # a reverb's tail spreads the beat's stereo image: a width change must outlast taking
            # it off. Only where the side changes: another editor's reverb is not ours, and the side
            # our tail takes off a beat it does not sound over reads as a width change of its own
            # (the side's scale only: the tail's mid also sounds over the beat)
            edit_st = edit_st - tail.stereo
        eff = beat_effect(
            p.analysis.y, p.edit_y, src0, d0, n,
            beat_s=p.beat_s, raw_st=raw_st, edit_st=edit_st, pitch_votes=self._pitch_votes(src0, d0, n),
            quiet_db=self.quiet_db, run_start=self.run_start, effect_sr=int(p.analysis.audio.sample_rate),
            tail_cache=self.tail_cache, delay_beats_s=self.delay_beats_s,
            prev_effect=(beats.types[m.beat - 1], beats.slots[m.beat - 1]) if self.run_start < src0 and m.beat > 0 else None,
            tail=tail.mono if tail is not None else None,
        )
        delay_beat_s = self.tail_cache.get(("delay_beat_s", self.run_start), p.beat_s)
        self.tail.follow(eff.type, eff.slot, src0, d0, n, delay_beat_s)
        beats.types[m.beat] = eff.type
        beats.slots[m.beat] = eff.slot
        beats.residual_db[m.beat] = eff.distance
        if eff.candidates is None or (self.run and self.run[-1][0] != m.beat - 1):
            self.flush(beats)
        if eff.candidates is not None:
            self.run.append((m.beat, eff))
        return eff.confidence

    def flush(self, beats: ExtendedLabels) -> None:
        """Label the current run together and start a new one."""
        beats.label_run(self.run)

    def _stereo(self, beat: int, d0: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Raw beat ``beat`` and the edit from ``d0`` (``FRAME_SR`` samples), stereo at their own rates; Nones if their lengths differ."""
        p = self.pair
        raw_sr, edit_sr = p.analysis.audio.sample_rate, p.edit_audio.sample_rate
        rs = int(round(p.starts[beat] * raw_sr))
        rn = int(round((p.ends[beat] - p.starts[beat]) * raw_sr))
        es = int(round(d0 / FRAME_SR * edit_sr))
        en = int(round(rn / raw_sr * edit_sr))
        raw_st = p.analysis.audio.samples[:, rs : rs + rn]
        edit_st = p.edit_audio.samples[:, max(es, 0) : es + en]
        if edit_st.shape[1] != raw_st.shape[1]:
            return None, None
        return raw_st, edit_st

    def _pitch_votes(self, src0: int, d0: int, n: int) -> np.ndarray | None:
        """Mean frame similarity of the beat's edit frames with the raw frames and each raw variant (``beat_effect``)."""
        raw_f, edit_f = self.pair.raw_frames, self.pair.edit_frames
        t0 = int(round(d0 / FRAME_HOP))
        r0 = int(round(src0 / FRAME_HOP))
        k = max(1, min(int(n / FRAME_HOP), edit_f.n_frames - t0, raw_f.n_frames - r0))
        if k <= 0 or t0 < 0:
            return None
        e = edit_f.shape[t0 : t0 + k]
        return np.array([float(np.mean(np.sum(e * v[r0 : r0 + k], axis=1))) for v in [raw_f.shape, *raw_f.variants]])


# --------------------------------------------------------------------------- step 6


def _walk_and_plan(result: PairLabels, pair: _Pair, beats: ExtendedLabels, *, calibrated: bool = True) -> None:
    """Step 6: the walk of actions over the extended grid, its plan, and the labels on the analysis grid (``calibrated``: see ``infer_pair``)."""
    _extend_fades(beats.types, beats.slots, beats.group)
    walk = _walk(beats)
    if calibrated:
        beats.confidence = calibrate(beats.types, beats.confidence)
    an = pair.analysis
    result.plan = plan_from_actions(
        _ExtendedAnalysis(an.audio, an.sha256, an.grid.tempo_bpm, pair.starts, pair.first_real, an.grid.downbeats), walk
    )
    _plan_confidence(result.plan, beats.confidence)
    result.file_gain_db = pair.file_gain_db
    result.walk = walk
    n_ext = len(beats.types)
    real = np.clip(np.arange(pair.first_real, pair.first_real + an.n_beats), 0, n_ext - 1)
    labels = np.zeros((an.n_beats, 3), dtype=np.int64)
    for i, b in enumerate(real):
        tname = beats.types[b]
        labels[i, 0] = vocab.type_index(tname)
        labels[i, 1] = beats.size[b]
        labels[i, 2] = int(vocab.Amount.NEUTRAL) if tname in vocab.NEUTRAL_ONLY else AMOUNT_SLOTS[beats.slots[b]]
    result.labels = labels
    result.confidence = beats.confidence[real].astype(np.float32)
    result.action_start = beats.action_start[real]


def _plan_confidence(plan: EditPlan, confidence: np.ndarray) -> None:
    """Set each action's ``confidence``: the mean inferred confidence of the extended beats it covers.

    ``confidence`` ``(n,)`` float32 in [0, 1] per extended beat (the plan's grid).
    """
    for act in plan.actions:
        span = confidence[act.beat : act.beat + vocab.SIZE_BEATS[vocab.size_index(act.size)]]
        if span.size:
            act.confidence = round(float(np.clip(span.mean(), 0.0, 1.0)), 3)


def _walk(beats: ExtendedLabels) -> list[tuple[str, str, str]]:
    """The walk's ``(type, size, amount)`` names from extended beat 0; sets ``beats.size`` and ``beats.action_start``.

    Each structural action group is one run; forward beats with one label
    are another. A run's sizes tile it, largest first; a fade run longer
    than one size is one ramp of the largest size that fits (after a
    fade-in, before a fade-out) and KEEP for the rest (the ramp's near-unity end).
    """
    types, slots, group = beats.types, beats.slots, beats.group
    n_ext = len(types)
    walk: list[tuple[str, str, str]] = []
    b = 0
    while b < n_ext:
        e = b + 1
        if group[b] > 0:
            while e < n_ext and group[e] == group[b]:
                e += 1
            size_list = _sizes_for(e - b)
        else:
            while e < n_ext and group[e] < 0 and types[e] == types[b] and slots[e] == slots[b]:
                e += 1
            size_list = _sizes_for(e - b)
            if types[b] in ("FADE_IN", "FADE_OUT") and len(size_list) > 1:
                ramp = vocab.SIZE_BEATS[size_list[0]]
                if types[b] == "FADE_IN":
                    for i in range(b + ramp, e):
                        types[i] = "KEEP"
                    e = b + ramp
                else:
                    for i in range(b, e - ramp):
                        types[i] = "KEEP"
                    continue  # re-read from b: the KEEP beats, then the ramp
                size_list = [size_list[0]]
        tname = types[b]
        amount = "NEUTRAL" if tname in vocab.NEUTRAL_ONLY else vocab.AMOUNTS[AMOUNT_SLOTS[slots[b]]]
        c = b
        for si in size_list:
            walk.append((tname, vocab.SIZES[si], amount))
            beats.action_start[c] = True
            beats.size[c : c + vocab.SIZE_BEATS[si]] = si
            c += vocab.SIZE_BEATS[si]
        b = e
    return walk


def _sizes_for(n: int) -> list[int]:
    """Size indices tiling ``n`` beats, largest first."""
    out = []
    left = n
    while left > 0:
        for si in range(len(vocab.SIZE_BEATS) - 1, -1, -1):
            if vocab.SIZE_BEATS[si] <= left:
                out.append(si)
                left -= vocab.SIZE_BEATS[si]
                break
    return out


def _extend_fades(types: list[str], slots: list[int], group: np.ndarray) -> None:
    """Grow fade runs over the near-unity end of their ramp to a whole action size, in place.

    A FADE_IN's last beats (and a FADE_OUT's first) are barely changed and
    read as KEEP; a run short of an action size by at most half of it
    takes those KEEP beats so that the walk has one fade with one ramp, as
    the edit has (a curved fade, as another editor's equal-power or squared
    ramp, leaves half its beats near unity: a 3-beat squared fade-out reads
    as two FADE_OUT beats, which alone would make a one-beat ramp).
    """
    n = len(types)
    b = 0
    while b < n:
        t = types[b]
        if t not in ("FADE_IN", "FADE_OUT") or group[b] >= 0:
            b += 1
            continue
        e = b
        while e < n and types[e] == t and group[e] < 0:
            e += 1
        length = e - b
        target = next((k for k in vocab.SIZE_BEATS if k >= length), length)
        extra = target - length
        if 0 < extra <= target // 2:
            lo, hi = (e, e + extra) if t == "FADE_IN" else (b - extra, b)
            if lo >= 0 and hi <= n and all(types[i] == "KEEP" and group[i] < 0 for i in range(lo, hi)):
                for i in range(lo, hi):
                    types[i], slots[i] = t, 0
                e = max(e, hi)
        b = e
