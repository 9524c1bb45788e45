"""Whole-song measurements the relational styles compare: per-bar loudness and timbre from the audio.

A relational style (``styles/loud_loop``, ``styles/repeat_cut``,
``styles/quiet_filter``) decides each bar by comparing it with every other
bar of the song, so it needs numbers about the whole song before it edits
any section. They come from the audio itself (never from a synthesizer's
metadata), so the same rules run on synthetic and on real songs.

Bars are 4-beat blocks laid from each section's first beat
(``bar_starts``); a section's last beats that do not fill a bar are left
unmeasured (the styles keep them). Measurements are made once per
``SongContext`` (``SongContext.bars``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from editorbot.engine.plan import beat_spans
from editorbot.training.data.editors.walk import Walk

if TYPE_CHECKING:
    from editorbot.training.data.editors.sections import SectionView, SongContext

#: Beats per measured bar.
BAR_BEATS = 4
#: STFT frame and hop for the timbre measurements, samples at the song's rate.
_FRAME = 2048
_HOP = 1024
#: Band edges (Hz) of the log band energies next to the chroma.
_BAND_EDGES_HZ: tuple[float, ...] = (40.0, 120.0, 300.0, 700.0, 1500.0, 3000.0, 6000.0, 12000.0)
#: Pitch range (Hz) folded into the chroma.
_CHROMA_HZ = (55.0, 4000.0)


@dataclass(frozen=True)
class BarMeasures:
    """The song's bars and what each sounds like.

    Attributes
    ----------
    starts : np.ndarray
        ``(n_bars,)`` int64 first beat of each bar, ascending.
    rms_db : np.ndarray
        ``(n_bars,)`` float64 RMS level of each bar (mono mix), dB re full scale.
    timbre : np.ndarray
        ``(n_bars, 19)`` float64: 12 chroma bins (each bar's sum 1) and 7
        log band energies (dB), the bar's mean over its STFT frames.
    """

    starts: np.ndarray
    rms_db: np.ndarray
    timbre: np.ndarray

    @property
    def n_bars(self) -> int:
        """Number of measured bars."""
        return int(self.starts.shape[0])


def bar_starts(song: SongContext) -> np.ndarray:
    """``(n_bars,)`` first beats of the 4-beat bars laid from each section's start (partial bars left out)."""
    out: list[int] = []
    for s in song.sections:
        out.extend(range(s.start_beat, s.end_beat - BAR_BEATS + 1, BAR_BEATS))
    return np.asarray(out, dtype=np.int64)


def _frame_spectra(mono: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_frames, 19)`` per-frame chroma + band dB and ``(n_frames,)`` frame centres in seconds."""
    if mono.shape[0] < _FRAME:
        mono = np.pad(mono, (0, _FRAME - mono.shape[0]))
    n_frames = 1 + (mono.shape[0] - _FRAME) // _HOP
    idx = np.arange(_FRAME)[None, :] + _HOP * np.arange(n_frames)[:, None]
    power = np.abs(np.fft.rfft(mono[idx] * np.hanning(_FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(_FRAME, 1.0 / sr)
    chroma = np.zeros((n_frames, 12))
    sel = (freqs >= _CHROMA_HZ[0]) & (freqs <= _CHROMA_HZ[1])
    pitch_class = np.round(12.0 * np.log2(freqs[sel] / 440.0)).astype(np.int64) % 12
    for k in range(12):
        chroma[:, k] = power[:, sel][:, pitch_class == k].sum(axis=1)
    chroma /= chroma.sum(axis=1, keepdims=True) + 1e-12
    bands = np.stack(
        [
            power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
            for lo, hi in zip(_BAND_EDGES_HZ[:-1], _BAND_EDGES_HZ[1:], strict=True)
        ],
        axis=1,
    )
    centres = (np.arange(n_frames) * _HOP + _FRAME / 2) / sr
    return np.concatenate([chroma, 10.0 * np.log10(bands + 1e-10)], axis=1), centres


def measure_bars(song: SongContext, analysis: object) -> BarMeasures:
    """Measure every bar of ``song`` on the audio of ``analysis``.

    Parameters
    ----------
    song : SongContext
        Gives the sections the bars are laid in.
    analysis : engine.analysis.Analysis or alike
        ``audio`` (``samples`` ``(channels, n)`` or ``(n,)``, ``sample_rate``
        Hz) and ``grid`` (``beat_times`` s, ``tempo_bpm``).

    Returns
    -------
    BarMeasures
    """
    audio = analysis.audio  # type: ignore[attr-defined]
    grid = analysis.grid  # type: ignore[attr-defined]
    x = np.asarray(audio.samples, dtype=np.float64)
    mono = x.mean(axis=0) if x.ndim == 2 else x
    sr = int(audio.sample_rate)
    duration_s = mono.shape[0] / sr
    b0, b1 = beat_spans(grid.beat_times, duration_s, tempo_bpm=float(grid.tempo_bpm))
    starts = bar_starts(song)
    frames, centres = _frame_spectra(mono, sr)
    rms_db = np.empty(starts.shape[0])
    timbre = np.empty((starts.shape[0], frames.shape[1]))
    for k, b in enumerate(starts.tolist()):
        t0, t1 = float(b0[b]), float(b1[min(b + BAR_BEATS - 1, b1.shape[0] - 1)])
        seg = mono[int(t0 * sr) : max(int(t1 * sr), int(t0 * sr) + 1)]
        rms_db[k] = 10.0 * np.log10(float(np.mean(seg**2)) + 1e-12)
        inside = (centres >= t0) & (centres < t1)
        if not inside.any():
            inside = np.zeros(centres.shape[0], dtype=bool)
            inside[int(np.argmin(np.abs(centres - 0.5 * (t0 + t1))))] = True
        timbre[k] = frames[inside].mean(axis=0)
    return BarMeasures(starts=starts, rms_db=rms_db, timbre=timbre)


def repeat_similarity(timbre: np.ndarray, min_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """How closely each bar repeats an earlier bar at least ``min_gap`` bars before it.

    Each of the 19 dimensions is standardised over the song's bars (so the
    comparison is relative to this song), then bars are compared by cosine
    similarity.

    Parameters
    ----------
    timbre : np.ndarray
        ``(n_bars, d)`` per-bar features (``BarMeasures.timbre``).
    min_gap : int
        Smallest distance in bars to the earlier bar.

    Returns
    -------
    similarity : np.ndarray
        ``(n_bars,)`` best cosine similarity in -1..1 (-inf where no bar is
        far enough back).
    match : np.ndarray
        ``(n_bars,)`` int64 index of that earlier bar (-1 where none).
    """
    n = timbre.shape[0]
    sim = np.full(n, -np.inf)
    match = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return sim, match
    z = (timbre - timbre.mean(axis=0)) / (timbre.std(axis=0) + 1e-9)
    z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
    cos = z @ z.T
    for j in range(min_gap, n):
        i = int(np.argmax(cos[j, : j - min_gap + 1]))
        sim[j], match[j] = float(cos[j, i]), i
    return sim, match


def walk_bars(w: Walk, sec: SectionView, decisions: dict[int, tuple[str, str]]) -> None:
    """Cover ``sec`` bar by bar: each bar's ``(type, amount)`` from ``decisions`` (by first beat), else KEEP.

    Bars are those of ``bar_starts``; the section's last beats that do not
    fill a bar are kept.
    """
    start, end = sec.span.start_beat, sec.span.end_beat
    kept = 0
    for b in range(start, end - BAR_BEATS + 1, BAR_BEATS):
        if b in decisions:
            w.keep(kept)
            kept = 0
            w.add(decisions[b][0], BAR_BEATS, decisions[b][1])
        else:
            kept += BAR_BEATS
    w.keep(kept + (end - start) % BAR_BEATS)
