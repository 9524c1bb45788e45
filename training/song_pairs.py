"""The supervised model's training pairs in memory: ``SongPair`` and where they come from.

A pair on disk (``training.data.pairs``: a label file, the raw audio and the
desired edit) becomes a ``SongPair`` on the edited timeline, mono:
``base`` (the DSP render of the plan), ``raw`` (the render of the plan's
structural re-sequencing, ``structural_plan``), ``target`` (the desired
edit) and the frame labels. ``load_song_pairs`` reads a data folder,
``split_by_song`` holds whole songs out for validation, ``fit_song_timing``
and ``retimed_songs`` fit and apply the learned timing
(``training.models.timing``) on pairs in memory, and ``make_studio_pairs``
writes synthetic pairs of a studio style.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from editorbot.engine.audio import load_audio
from editorbot.engine.errors import BadInput
from editorbot.engine.plan import EditPlan
from editorbot.engine.progress import progress
from editorbot.engine.render import render_plan
from editorbot.training.data.editors import STUDIO_SCOPE_OF
from editorbot.training.data.pairs import load_pair_plan, make_synth_pair, read_label_doc
from editorbot.training.models.supervised import FrameLabels, frame_labels, frame_params
from editorbot.training.models.timing import (
    TimingBlocks,
    TimingExample,
    TimingModel,
    fit_timing,
    peak_dbfs,
    timing_blocks,
)

#: Largest length difference (share of the plan's render) accepted between the desired edit and the
#: render of a plan label inference found (label files with ``"plan_source": "inferred"``).
INFERRED_LENGTH_TOLERANCE = 0.05


def structural_plan(plan: EditPlan) -> EditPlan:
    """The plan's re-sequencing alone: every segment's source span, place, direction, mute and rate
    kept; gain, fades, pitch and effects dropped. Its render is the raw audio the edit placed on each
    output frame, on the same timeline as the plan's own render."""
    segments = [
        replace(s, gain_db=0.0, fade_in_s=0.0, fade_out_s=0.0, pitch_semitones=0.0, effects=[]) for s in plan.segments
    ]
    return replace(plan, segments=segments)


@dataclass
class SongPair:
    """One pair in memory, on the edited timeline, mono float32.

    Attributes
    ----------
    name : str
        The pair's name.
    song : str
        Key of the underlying song (pairs of one song share it; the split is by song).
    sample_rate : int
        Hz.
    base : np.ndarray
        ``(n,)`` DSP render of the plan.
    raw : np.ndarray
        ``(n,)`` render of ``structural_plan(plan)``.
    target : np.ndarray
        ``(n,)`` the desired edit.
    labels : FrameLabels
        Per-frame labels over the whole timeline.
    consistency : bool
        Whether KEEP frames are held to the base (False when the editor's
        sound covers every frame).
    blocks : TimingBlocks or None
        The plan's output beats and their features (``training.models.timing``).
    base_peak_db, target_peak_db : float or None
        Peaks of the DSP render and the edit over all their channels, dBFS
        (None: the mono signals'), for the level rule.
    """

    name: str
    song: str
    sample_rate: int
    base: np.ndarray
    raw: np.ndarray
    target: np.ndarray
    labels: FrameLabels
    consistency: bool = True
    blocks: TimingBlocks | None = None
    base_peak_db: float | None = None
    target_peak_db: float | None = None

    @property
    def n_samples(self) -> int:
        return int(self.base.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate


def channel_mean(x: np.ndarray) -> np.ndarray:
    """The mean of the channels: ``(n_channels, n)`` -> ``(n,)`` float32 (the model hears one mix)."""
    return np.asarray(x, dtype=np.float32).mean(axis=0)


def load_song_pair(label_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> SongPair:
    """Read one pair (label file, raw and desired audio), render its base and re-sequenced raw.

    Raises BadInput (naming the file) for a missing or unreadable file or a
    desired edit whose length is not the plan's (within 10 ms; within
    ``INFERRED_LENGTH_TOLERANCE`` for a plan label inference found, whose
    label file says ``"plan_source": "inferred"``).
    """
    path = os.fspath(label_path)
    root = os.fspath(data_dir) if data_dir is not None else os.path.dirname(os.path.dirname(os.path.abspath(path)))
    doc = read_label_doc(path)
    plan = load_pair_plan(path)
    raw_audio = load_audio(plan.source.path)
    edit_rel = doc.get("edit") or f"desired_output/{doc.get('name', Path(path).stem)}_edit.wav"
    desired = load_audio(os.path.join(root, edit_rel))
    if desired.sample_rate != raw_audio.sample_rate:
        raise BadInput(desired.path, f"{desired.sample_rate} Hz, its raw file is {raw_audio.sample_rate} Hz")
    sr = raw_audio.sample_rate
    base_st = render_plan(plan, raw_audio.samples, sr)
    base = channel_mean(base_st)
    raw = channel_mean(render_plan(structural_plan(plan), raw_audio.samples, sr))
    target = channel_mean(desired.samples)
    # A plan label inference found for another editor's work does not reproduce its splices to the
    # sample (overlapping joins shorten the edit); the common length is used.
    inferred = doc.get("plan_source") == "inferred"
    tolerance = max(sr // 100, int(INFERRED_LENGTH_TOLERANCE * base.shape[0])) if inferred else sr // 100
    if abs(target.shape[0] - base.shape[0]) > tolerance:
        raise BadInput(desired.path, f"{target.shape[0]} samples, the plan renders {base.shape[0]}")
    n = min(base.shape[0], target.shape[0])
    _, hop = frame_params(sr)
    song = (doc.get("original") or {}).get("sha256") or f"synth:{doc.get('seed')}"
    return SongPair(
        name=str(doc.get("name", Path(path).stem)),
        song=str(song),
        sample_rate=sr,
        base=base[:n],
        raw=raw[:n],
        target=target[:n],
        labels=frame_labels(plan, 1 + n // hop, hop / sr),
        consistency=STUDIO_SCOPE_OF.get(str(doc.get("style")), "") != "all",
        blocks=timing_blocks(plan, n, sr),
        base_peak_db=peak_dbfs(base_st[:, :n]),
        target_peak_db=peak_dbfs(desired.samples[:, :n]),
    )


def fit_song_timing(songs: Sequence[SongPair]) -> TimingModel:
    """``training.models.timing.fit_timing`` on pairs in memory (DSP render against the desired edit)."""
    examples = [TimingExample(s.base, s.target, s.blocks if s.blocks is not None else _whole(s), s.song,
                              s.base_peak_db, s.target_peak_db) for s in songs]
    return fit_timing(examples, songs[0].sample_rate)


def _whole(song: SongPair) -> TimingBlocks:
    """One block over the whole timeline (pairs made without a plan's beats)."""
    return TimingBlocks(np.zeros(1, dtype=np.int64), np.array([[song.duration_s / 2, 0.0, 0.0, 1.0]]))


def retimed_songs(songs: Sequence[SongPair], timing: TimingModel) -> list[SongPair]:
    """The pairs with base and raw retimed and levelled by ``timing`` (the same list when it is the identity)."""
    if timing.is_identity:
        return list(songs)
    out = []
    for s in songs:
        blocks = s.blocks if s.blocks is not None else _whole(s)
        base, raw = timing.apply([s.base, s.raw], blocks, s.sample_rate, peak_db=s.base_peak_db)
        out.append(replace(s, base=base, raw=raw))
    return out


def load_song_pairs(data_dir: str | os.PathLike, *, quiet: bool = False) -> list[SongPair]:
    """Every pair under ``data_dir`` (``labels/*.json``), sorted by name; BadInput when there are none
    or their sample rates differ."""
    folder = os.path.join(os.fspath(data_dir), "labels")
    files = sorted(glob.glob(os.path.join(folder, "*.json")))
    if not files:
        raise BadInput(folder, "no label files (labels/*.json); make pairs with `editorbot data synth`")
    songs = [load_song_pair(f, data_dir) for f in progress(files, desc="pairs", quiet=quiet)]
    rates = {s.sample_rate for s in songs}
    if len(rates) > 1:
        raise BadInput(folder, f"pairs at several sample rates {sorted(rates)}; use one rate per data folder")
    return songs


def split_by_song(songs: Sequence[SongPair], val_fraction: float, seed: int) -> tuple[list[SongPair], list[SongPair]]:
    """``(train, val)``: whole songs held out (never one song on both sides); at least one on each."""
    keys = sorted({s.song for s in songs})
    if len(keys) < 2:
        raise BadInput(None, f"need pairs of at least 2 different songs for a train/val split, got {len(keys)}")
    order = np.random.default_rng(seed).permutation(len(keys))
    n_val = min(len(keys) - 1, max(1, round(val_fraction * len(keys))))
    val_keys = {keys[int(i)] for i in order[:n_val]}
    return [s for s in songs if s.song not in val_keys], [s for s in songs if s.song in val_keys]


def make_studio_pairs(
    n: int, out_dir: str | os.PathLike, *, style: str = "studio", seed: int = 0, duration_s: float | None = None
) -> list[str]:
    """Write ``n`` synthetic pairs of a studio style (``training.data.editors.STUDIO_STYLES``).

    Each is ``training.data.pairs.make_synth_pair`` (song, plan, labels, the
    DSP render run through the style's studio chain), as ``editorbot data
    synth --styles studio`` makes them. Seeds ``seed .. seed+n-1``. Returns
    the label file paths.
    """
    if style not in STUDIO_SCOPE_OF:
        raise ValueError(f"unknown studio style {style!r} (one of {', '.join(STUDIO_SCOPE_OF)})")
    return [make_synth_pair(seed + i, style, out_dir, duration_s).label_path for i in range(n)]

