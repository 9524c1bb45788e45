"""Per-beat feature matrix (DESIGN section 3).

Two implementations produce the same ``(n_beats, n_features)`` matrix, column
``k`` meaning ``feature_names()[k]``:

- ``beat_features``: the fast path. Every spectral column reads the one shared
  STFT in ``engine.spectrum.Spectrum``; frames are pooled to beats with one
  cumulative sum. No numba-compiled librosa function is called, so a short
  CLI run does not pay seconds of JIT start-up.
- ``reference_features``: separate librosa calls, each recomputing its own
  STFT, then the same pooling. Kept for tests and as the benchmark baseline.

Column layout (109 without stems; 3 more per stem with them, 121 with demucs' four):

====================  ====  =====================================================
block                 cols  content
====================  ====  =====================================================
basic                 4     onset strength, rms, centroid (Hz), zcr
extended              3     rolloff (Hz, 85 %), bandwidth (Hz), flatness
spectral contrast     7     dB, 6 octave bands from 200 Hz + the top band
mfcc                  13    DCT-II of the dB mel spectrogram
mfcc delta            13    Savitzky-Golay frame derivative (width 9)
chroma                12    C .. B, max-normalised per frame, tuning estimated
rhythmic              5     bar phase sin/cos, tempo deviation, beat strength,
                            downbeat flag
deltas                52    first differences across beats of the 52 columns
                            above the rhythmic block (row 0 is zero)
stems                 3/stem  rms, centroid, onset per stem the separator offers
                            (``stem_<separator>_<stem>_<feature>``)
====================  ====  =====================================================

Pooling: a beat ``i`` spans ``[beat_times[i], beat_times[i + 1])``; the last
beat spans one median beat period. A frame belongs to a beat when its centre
time falls in that span; the beat's value is the mean over its frames (a span
shorter than one hop takes the frame at its start).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from editorbot.engine.descriptors import (
    CONTRAST_BANDS,
    CONTRAST_FMIN_HZ,
    CONTRAST_QUANTILE,
    DELTA_WIDTH,
    N_CHROMA,
    ROLLOFF_PERCENT,
    TOP_DB,
    TUNING_FMAX_HZ,
    TUNING_FMIN_HZ,
    TUNING_RESOLUTION,
    chroma_filters,
    dct_matrix,
    delta_width,
    estimate_tuning,
    frame_rms_exact,
    frame_rms_from_spectrum,
    frame_zcr_exact,
    freq_moments_khz,
    mfcc_delta,
    normalise_columns_max,
    rolloff_hz,
    spectral_contrast,
)
from editorbot.engine.spectrum import ANALYSIS_SR, HOP_LENGTH, N_FFT, N_MELS, Spectrum, onset_strength

log = logging.getLogger(__name__)

N_MFCC = 13

STEM_NAMES = ("drums", "bass", "vocals", "other")
STEM_FEATURES = ("rms", "centroid", "onset_strength")

FEATURE_CONFIG: dict[str, Any] = {
    "version": 1,
    "sr": ANALYSIS_SR,
    "n_fft": N_FFT,
    "hop_length": HOP_LENGTH,
    "window": "hann",
    "n_mels": N_MELS,
    "n_mfcc": N_MFCC,
    "n_chroma": N_CHROMA,
    "top_db": TOP_DB,
    "contrast": {"fmin_hz": CONTRAST_FMIN_HZ, "n_bands": CONTRAST_BANDS, "quantile": CONTRAST_QUANTILE},
    "rolloff_percent": ROLLOFF_PERCENT,
    "delta_width": DELTA_WIDTH,
    "tuning": {"fmin_hz": TUNING_FMIN_HZ, "fmax_hz": TUNING_FMAX_HZ, "resolution": TUNING_RESOLUTION},
    "onset": {"lag": 1, "center": False},
    "pooling": "mean over frame centres in [beat_i, beat_i+1), last beat one median period",
    "stems": {"names": list(STEM_NAMES), "features": list(STEM_FEATURES)},
}
"""Everything that changes the numbers; ``config_hash`` keys the feature cache on it."""

_PITCH_CLASSES = ("c", "c_sharp", "d", "d_sharp", "e", "f", "f_sharp", "g", "g_sharp", "a", "a_sharp", "b")

SPECTRAL_NAMES: tuple[str, ...] = (
    ("onset_strength", "rms", "centroid", "zcr")
    + ("rolloff", "bandwidth", "flatness")
    + tuple(f"contrast_{k:02d}" for k in range(CONTRAST_BANDS + 1))
    + tuple(f"mfcc_{k:02d}" for k in range(N_MFCC))
    + tuple(f"mfcc_delta_{k:02d}" for k in range(N_MFCC))
    + tuple(f"chroma_{p}" for p in _PITCH_CLASSES)
)
RHYTHM_NAMES: tuple[str, ...] = ("beat_phase_sin", "beat_phase_cos", "tempo_deviation", "beat_strength", "downbeat")
DELTA_NAMES: tuple[str, ...] = tuple(f"delta_{name}" for name in SPECTRAL_NAMES)


def stem_column_names(separator: str, stems: Sequence[str] = STEM_NAMES) -> tuple[str, ...]:
    """Names of the stem columns: ``stem_<separator>_<stem>_<feature>`` for each stem given.

    The separator's ``kind`` (``"builtin"``, ``"demucs"``) is part of the name,
    so columns from different separators never pass for one another. Stems
    follow ``STEM_NAMES`` order whatever order they are given in.
    """
    unknown = [s for s in stems if s not in STEM_NAMES]
    if unknown or not re.fullmatch(r"[a-z][a-z0-9]*", separator):
        raise ValueError(f"bad stem column source {separator!r} / stems {list(stems)!r}")
    return tuple(f"stem_{separator}_{s}_{f}" for s in STEM_NAMES if s in stems for f in STEM_FEATURES)


# demucs is the one separator that offers all four stems.
STEM_COLUMN_NAMES: tuple[str, ...] = stem_column_names("demucs")

N_SPECTRAL = len(SPECTRAL_NAMES)  # 52
N_FEATURES = N_SPECTRAL + len(RHYTHM_NAMES) + len(DELTA_NAMES)  # 109
N_FEATURES_WITH_STEMS = N_FEATURES + len(STEM_COLUMN_NAMES)  # 121


class GridLike(Protocol):
    """The fields of ``engine.grid.Grid`` this module reads."""

    @property
    def tempo_bpm(self) -> float: ...
    @property
    def beat_times(self) -> np.ndarray: ...
    @property
    def downbeats(self) -> np.ndarray: ...
    @property
    def beats_per_bar(self) -> int: ...


def feature_names(stems: bool | Sequence[str] = False) -> list[str]:
    """Column names of the per-beat matrix, in order.

    Parameters
    ----------
    stems : bool | Sequence[str]
        False: the 109 audio columns. A sequence: those plus the stem
        column names given (``stem_column_names(separator.kind,
        separator.stems)``). True: plus demucs' 12 (``STEM_COLUMN_NAMES``),
        121 in all.
    """
    names = list(SPECTRAL_NAMES + RHYTHM_NAMES + DELTA_NAMES)
    if stems is True:
        names += STEM_COLUMN_NAMES
    elif stems is not False:
        names += list(stems)
    return names


def config_hash() -> str:
    """sha256 hex digest of ``FEATURE_CONFIG`` (canonical JSON), for cache keys and model sidecars."""
    canonical = json.dumps(FEATURE_CONFIG, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- pooling


def beat_frame_spans(
    beat_times: np.ndarray, *, n_frames: int, sr: int, hop_length: int, single_beat_period_s: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Frame range ``[start, stop)`` of each beat.

    Parameters
    ----------
    beat_times : np.ndarray
        ``(n_beats,)`` ascending beat times in seconds.
    n_frames : int
        number of STFT frames of the song.
    sr : int
        sample rate (Hz).
    hop_length : int
        hop (samples).
    single_beat_period_s : float
        length of the last beat's span when there is no
        beat interval to take the median of (a one-beat grid).

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(starts, stops)``, each ``(n_beats,)`` int64, with
        ``0 <= start < stop <= n_frames`` (never empty, so every beat has a value).
    """
    beat_times = np.asarray(beat_times, dtype=np.float64)
    n_beats = len(beat_times)
    if n_beats == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if np.any(np.diff(beat_times) <= 0):
        raise ValueError("beat_times must be strictly increasing")
    period_s = float(np.median(np.diff(beat_times))) if n_beats > 1 else single_beat_period_s
    ends_s = np.append(beat_times[1:], beat_times[-1] + period_s)
    # frame t is centred at t * hop / sr; the first frame whose centre is >= time
    hop_s = hop_length / sr
    starts = np.ceil(beat_times / hop_s - 1e-9).astype(np.int64)
    stops = np.ceil(ends_s / hop_s - 1e-9).astype(np.int64)
    last = max(n_frames - 1, 0)
    starts = np.clip(starts, 0, last)
    stops = np.clip(stops, starts + 1, n_frames)
    return starts, stops


def pool_frames(frames: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Mean of per-frame values over each beat span.

    Parameters
    ----------
    frames : np.ndarray
        ``(n_features, n_frames)`` per-frame values.
    starts, stops : np.ndarray
        ``(n_beats,)`` frame spans from ``beat_frame_spans``.

    Returns
    -------
    np.ndarray
        ``(n_beats, n_features)`` float64 means.
    """
    # One float64 cumulative sum serves every span, overlapping or not, in O(n_frames).
    csum = np.zeros((frames.shape[0], frames.shape[1] + 1), dtype=np.float64)
    np.cumsum(frames, axis=1, dtype=np.float64, out=csum[:, 1:])
    counts = (stops - starts).astype(np.float64)
    return ((csum[:, stops] - csum[:, starts]) / counts).T


def _beat_index_spans(grid: GridLike, n_frames: int, sr: int, hop_length: int) -> tuple[np.ndarray, np.ndarray]:
    period_s = 60.0 / grid.tempo_bpm if grid.tempo_bpm and grid.tempo_bpm > 0 else 0.5
    return beat_frame_spans(
        np.asarray(grid.beat_times), n_frames=n_frames, sr=sr, hop_length=hop_length, single_beat_period_s=period_s
    )


# --------------------------------------------------------------------------- rhythmic block


def rhythmic_columns(grid: GridLike, onset_env: np.ndarray, *, sr: int, hop_length: int) -> np.ndarray:
    """The 5 rhythmic columns, shared by both paths.

    Parameters
    ----------
    grid : GridLike
        beat grid (``beat_times`` s, ``downbeats`` indices, ``beats_per_bar``,
        ``tempo_bpm``).
    onset_env : np.ndarray
        ``(n_frames,)`` onset envelope (frame ``t`` at ``t * hop / sr`` s).

    Returns
    -------
    np.ndarray
        ``(n_beats, 5)`` float64: ``beat_phase_sin``, ``beat_phase_cos`` (position in
        the bar as an angle, downbeat = (0, 1)); ``tempo_deviation`` (local tempo over
        ``tempo_bpm`` minus 1, local tempo from the interval to the next beat);
        ``beat_strength`` (onset envelope peak within one frame of the beat, over the
        song's peak, in [0, 1]); ``downbeat`` (1.0 on downbeats).
    """
    beat_times = np.asarray(grid.beat_times, dtype=np.float64)
    n_beats = len(beat_times)
    out = np.zeros((n_beats, len(RHYTHM_NAMES)), dtype=np.float64)
    if n_beats == 0:
        return out
    beats_per_bar = max(int(grid.beats_per_bar), 1)
    index = np.arange(n_beats)
    downbeats = np.unique(np.asarray(grid.downbeats, dtype=np.int64))
    downbeats = downbeats[(downbeats >= 0) & (downbeats < n_beats)]
    if len(downbeats):
        # the last downbeat at or before each beat; beats before the first count back from it
        which = np.searchsorted(downbeats, index, side="right") - 1
        anchor = downbeats[np.maximum(which, 0)]
        position = np.mod(index - anchor, beats_per_bar)
    else:
        position = np.mod(index, beats_per_bar)
    phase = 2.0 * np.pi * position / beats_per_bar
    out[:, 0] = np.sin(phase)
    out[:, 1] = np.cos(phase)
    # exact zeros on the bar grid, not 1e-16, so downbeats read as (0, 1)
    out[position == 0, 0] = 0.0

    if n_beats > 1:
        interval_s = np.diff(beat_times)
        interval_s = np.append(interval_s, interval_s[-1])
    else:
        interval_s = np.array([60.0 / grid.tempo_bpm if grid.tempo_bpm > 0 else 0.5])
    tempo_bpm = float(grid.tempo_bpm) if grid.tempo_bpm and grid.tempo_bpm > 0 else 60.0 / float(np.median(interval_s))
    out[:, 2] = (60.0 / interval_s) / tempo_bpm - 1.0

    env = np.asarray(onset_env, dtype=np.float64)
    if len(env):
        peak = float(env.max())
        frame = np.clip(np.rint(beat_times * sr / hop_length).astype(np.int64), 0, len(env) - 1)
        lo = np.clip(frame - 1, 0, len(env) - 1)
        hi = np.clip(frame + 1, 0, len(env) - 1)
        local = np.maximum(np.maximum(env[lo], env[frame]), env[hi])
        out[:, 3] = local / peak if peak > 0 else 0.0
    downbeat_flag = np.zeros(n_beats)
    downbeat_flag[downbeats] = 1.0
    out[:, 4] = downbeat_flag
    return out


def _assemble(
    spectral_frames: np.ndarray,
    onset_env: np.ndarray,
    grid: GridLike,
    *,
    sr: int,
    hop_length: int,
    stems: np.ndarray | None,
) -> np.ndarray:
    """Pool the ``(52, n_frames)`` spectral frames and add rhythm, deltas, stems -> ``(n_beats, 109 + 3 * n_stems)`` float32."""
    n_frames = spectral_frames.shape[1]
    starts, stops = _beat_index_spans(grid, n_frames, sr, hop_length)
    spectral = pool_frames(spectral_frames, starts, stops)
    rhythm = rhythmic_columns(grid, onset_env, sr=sr, hop_length=hop_length)
    deltas = np.zeros_like(spectral)
    deltas[1:] = np.diff(spectral, axis=0)
    blocks = [spectral, rhythm, deltas]
    if stems is not None:
        stems = np.asarray(stems, dtype=np.float64)
        n_cols = stems.shape[1] if stems.ndim == 2 else -1
        if (
            stems.ndim != 2
            or len(stems) != len(spectral)
            or n_cols % len(STEM_FEATURES)
            or n_cols > len(STEM_COLUMN_NAMES)
        ):
            raise ValueError(
                f"stems must be (n_beats, 3 per stem) = ({len(spectral)}, 3..{len(STEM_COLUMN_NAMES)}), got {stems.shape}"
            )
        blocks.append(stems)
    out = np.concatenate(blocks, axis=1).astype(np.float32)
    # Silence and empty spans are guarded above, so a non-finite value can only come
    # from non-finite input (engine.audio rejects it); fail loudly rather than hand
    # NaN to a model or quietly replace it.
    if not np.all(np.isfinite(out)):
        names = feature_names() + [f"stem_column_{k}" for k in range(out.shape[1] - N_FEATURES)]
        bad = sorted({names[k] for k in np.flatnonzero(~np.isfinite(out).all(axis=0))})
        raise ValueError(f"non-finite per-beat features in {', '.join(bad[:5])}: is the input signal finite?")
    return out


# --------------------------------------------------------------------------- fast path


def beat_features(
    spec: Spectrum,
    grid: GridLike,
    *,
    y: np.ndarray | None = None,
    stems: np.ndarray | None = None,
) -> np.ndarray:
    """Per-beat features from the shared STFT (fast path).

    Parameters
    ----------
    spec : Spectrum
        the song's ``Spectrum`` (``magnitude (1 + n_fft // 2, n_frames)``).
    grid : GridLike
        beat grid; ``beat_times`` in seconds, ascending.
    y : np.ndarray | None
        ``(n_samples,)`` analysed signal at ``spec.sr``; defaults to ``spec.y``
        (``compute_spectrum`` keeps it). It gives the exact frame RMS and
        zero-crossing rate in O(n_samples). Without any signal both are
        estimated from the spectrum (RMS by Parseval; zcr by Rice's formula,
        2 x RMS frequency / sr), which follows the trend but not the values.
    stems : np.ndarray | None
        optional ``(n_beats, 3 * n_stems)`` stem columns (``stem_column_names``
        order), appended as-is.

    Returns
    -------
    np.ndarray
        ``(n_beats, 109)`` float32, plus 3 per stem with ``stems``; column
        ``k`` is ``feature_names(stems=<the stem column names>)[k]``.
    """
    sr, n_fft, hop = spec.sr, spec.n_fft, spec.hop_length
    if (sr, n_fft, hop, spec.mel_db.shape[0]) != (
        FEATURE_CONFIG["sr"],
        FEATURE_CONFIG["n_fft"],
        FEATURE_CONFIG["hop_length"],
        FEATURE_CONFIG["n_mels"],
    ):
        log.warning(
            "spectrum (sr=%d, n_fft=%d, hop=%d, n_mels=%d) differs from FEATURE_CONFIG; "
            "features will not match cached ones",
            sr,
            n_fft,
            hop,
            spec.mel_db.shape[0],
        )
    magnitude = spec.magnitude
    n_frames = spec.n_frames
    if y is None:
        y = spec.y
    frames = np.empty((N_SPECTRAL, n_frames), dtype=np.float64)

    onset_env = onset_strength(spec)
    frames[0] = onset_env

    # 0th, 1st and 2nd frequency moments in one pass over the spectrum
    # (n_frames, n_bins) @ (n_bins, 3), the long axis outermost, runs about twice
    # as fast in BLAS as the same product written (3, n_bins) @ (n_bins, n_frames)
    moments = (magnitude.T @ freq_moments_khz(sr, n_fft).T).T.astype(np.float64)  # (3, n_frames)
    total = moments[0]
    silent = total < np.finfo(np.float32).tiny
    safe_total = np.where(silent, 1.0, total)
    centroid_khz = np.where(silent, 0.0, moments[1] / safe_total)
    bandwidth_khz = np.sqrt(np.maximum(moments[2] / safe_total - centroid_khz**2, 0.0))
    bandwidth_khz[silent] = 0.0

    if y is not None:
        y = np.asarray(y, dtype=np.float32)
        frames[1] = frame_rms_exact(y, n_frames, n_fft, hop)
        frames[3] = frame_zcr_exact(y, n_frames, n_fft, hop)
    else:
        log.debug("no time signal: rms and zcr estimated from the spectrum")
        power_moments = (freq_moments_khz(sr, n_fft) @ (magnitude * magnitude)).astype(np.float64)
        p_total = np.maximum(power_moments[0], np.finfo(np.float64).tiny)
        frames[1] = frame_rms_from_spectrum(magnitude, n_fft)
        rms_freq_hz = 1000.0 * np.sqrt(power_moments[2] / p_total)
        frames[3] = np.where(power_moments[0] > 0, 2.0 * rms_freq_hz / sr, 0.0)
    frames[2] = 1000.0 * centroid_khz

    frames[4] = rolloff_hz(magnitude, sr, n_fft)
    frames[5] = 1000.0 * bandwidth_khz

    frames[7:14] = spectral_contrast(magnitude, sr, n_fft)

    mfcc = dct_matrix(N_MFCC, spec.mel_db.shape[0]) @ spec.mel_db
    frames[14:27] = mfcc
    frames[27:40] = mfcc_delta(mfcc)

    # the one full-size temporary: chroma and tuning read it, then flatness reuses it in place
    power = magnitude * magnitude
    tuning = estimate_tuning(power, sr=sr, n_fft=n_fft)
    frames[40:52] = normalise_columns_max((power.T @ chroma_filters(sr, n_fft, tuning).T).T)

    # flatness = geometric / arithmetic mean of the power spectrum floored at 1e-10.
    # float32 pairwise means over 1025 bins are good to ~1e-7 relative and a
    # third of the cost of float64 ones.
    np.maximum(power, 1e-10, out=power)
    arithmetic = power.mean(axis=0).astype(np.float64)
    np.log(power, out=power)
    frames[6] = np.exp(power.mean(axis=0).astype(np.float64)) / arithmetic
    del power

    return _assemble(frames, onset_env, grid, sr=sr, hop_length=hop, stems=stems)


# --------------------------------------------------------------------------- reference path


def reference_features(y: np.ndarray, sr: int, grid: GridLike, *, stems: np.ndarray | None = None) -> np.ndarray:
    """Per-beat features from separate librosa calls (each its own STFT), pooled as ``beat_features``.

    Parameters
    ----------
    y : np.ndarray
        ``(n_samples,)`` mono float signal at ``sr`` Hz.
    sr : int
        sample rate (Hz).
    grid : GridLike
        beat grid; ``beat_times`` in seconds, ascending.
    stems : np.ndarray | None
        optional ``(n_beats, 3 * n_stems)`` stem columns, appended as-is.

    Returns
    -------
    np.ndarray
        ``(n_beats, 109)`` float32 (plus the ``stems`` columns), columns as ``feature_names()``.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"reference_features expects a mono (n_samples,) signal, got shape {y.shape}")
    n_fft, hop = N_FFT, HOP_LENGTH
    common: dict[str, Any] = {"n_fft": n_fft, "hop_length": hop}
    # center=False keeps frame t at time t, as engine.spectrum.onset_strength (see there)
    onset_env = librosa.onset.onset_strength(y=y, sr=sr, lag=1, center=False, n_mels=N_MELS, **common)
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop)[0]
    centroid = librosa.feature.spectral_centroid(y=y, sr=sr, **common)[0]
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0]
    rolloff = librosa.feature.spectral_rolloff(y=y, sr=sr, roll_percent=ROLLOFF_PERCENT, **common)[0]
    bandwidth = librosa.feature.spectral_bandwidth(y=y, sr=sr, **common)[0]
    flatness = librosa.feature.spectral_flatness(y=y, **common)[0]
    contrast = librosa.feature.spectral_contrast(
        y=y, sr=sr, fmin=CONTRAST_FMIN_HZ, n_bands=CONTRAST_BANDS, quantile=CONTRAST_QUANTILE, **common
    )
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC, n_mels=N_MELS, **common)
    width = delta_width(mfcc.shape[1])
    mfcc_delta = librosa.feature.delta(mfcc, width=width) if width >= 3 else np.zeros_like(mfcc)
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_chroma=N_CHROMA, **common)

    frames = np.concatenate(
        [
            np.stack([onset_env, rms, centroid, zcr, rolloff, bandwidth, flatness]),
            contrast,
            mfcc,
            mfcc_delta,
            chroma,
        ]
    ).astype(np.float64)
    return _assemble(frames, onset_env, grid, sr=sr, hop_length=hop, stems=stems)
