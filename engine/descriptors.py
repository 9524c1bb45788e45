"""Frame-level spectral descriptors from one shared STFT (``engine.features``' fast path).

Each function reads the magnitude or power spectrum that
``engine.spectrum.Spectrum`` holds (or the signal, for the exact frame RMS
and zero-crossing rate) and returns what the librosa function named in its
docstring returns, without recomputing an STFT or calling numba-compiled
librosa code. ``engine.features`` pools them to beats; tests compare each
with librosa.

Shapes: ``n_bins = 1 + n_fft // 2`` frequency bins, ``n_frames`` STFT frames.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.fft

log = logging.getLogger(__name__)

N_CHROMA = 12
CONTRAST_FMIN_HZ = 200.0
CONTRAST_BANDS = 6
CONTRAST_QUANTILE = 0.02
ROLLOFF_PERCENT = 0.85
DELTA_WIDTH = 9
TOP_DB = 80.0
# Tuning search range and resolution, librosa.estimate_tuning's defaults.
TUNING_FMIN_HZ = 150.0
TUNING_FMAX_HZ = 4000.0
TUNING_RESOLUTION = 0.01


@lru_cache(maxsize=8)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """``(n_mfcc, n_mels)`` orthonormal DCT-II rows, so ``mfcc = D @ mel_db`` (librosa.feature.mfcc)."""
    return scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc].astype(np.float32)


@lru_cache(maxsize=8)
def freq_moments_khz(sr: int, n_fft: int) -> np.ndarray:
    """``(3, n_bins)`` float32 rows 1, f, f^2 with f in kHz, for one matmul over a spectrogram.

    kHz keeps f^2 near 1..100 so the float32 product keeps its precision in
    ``E[f^2] - E[f]^2`` (the bandwidth), and the spectrogram is never upcast.
    """
    freqs_khz = np.fft.rfftfreq(n_fft, 1.0 / sr) / 1000.0
    return np.stack([np.ones_like(freqs_khz), freqs_khz, freqs_khz**2]).astype(np.float32)


@lru_cache(maxsize=8)
def _contrast_bands(sr: int, n_fft: int) -> tuple[tuple[int, int, int], ...]:
    """``(first_bin, stop_bin, n_quantile)`` per contrast band, as librosa.feature.spectral_contrast."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.zeros(CONTRAST_BANDS + 2)
    edges[1:] = CONTRAST_FMIN_HZ * 2.0 ** np.arange(CONTRAST_BANDS + 1)
    bands = []
    for k, (f_low, f_high) in enumerate(zip(edges[:-1], edges[1:])):
        idx = np.flatnonzero((freqs >= f_low) & (freqs <= f_high))
        first, last = int(idx[0]), int(idx[-1])
        if k > 0:
            first -= 1  # librosa includes the bin below the band
        n_in_band = last - first + 1
        stop = last + 1
        if k == CONTRAST_BANDS:
            stop = len(freqs)  # the top band runs to Nyquist
            n_in_band = stop - first
        else:
            stop = last  # ... and drops its top bin (it belongs to the next band)
        n_quantile = max(int(np.rint(CONTRAST_QUANTILE * n_in_band)), 1)
        bands.append((first, stop, n_quantile))
    return tuple(bands)


def _power_to_db(power: np.ndarray) -> np.ndarray:
    """librosa.power_to_db with ref 1, amin 1e-10, top_db 80 (floor relative to the array's max)."""
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    return np.maximum(db, db.max(initial=-100.0) - TOP_DB)


def spectral_contrast(magnitude: np.ndarray, sr: int, n_fft: int) -> np.ndarray:
    """``(7, n_frames)`` spectral contrast in dB, numerically librosa's.

    Same algorithm (mean of the 2 % lowest and highest bins per octave band).
    What makes it cheaper: each frame's bins are contiguous (see
    ``stft_magnitude``), where numpy's SIMD sort runs about twice as fast as
    on librosa's strided bins axis; the single-bin low bands use min/max; and
    ``np.partition`` was measured slower than the full sort (10x with two kth).
    """
    n_frames = magnitude.shape[1]
    bands = _contrast_bands(sr, n_fft)
    peak = np.empty((len(bands), n_frames), dtype=np.float64)
    valley = np.empty_like(peak)
    frames_by_bin = magnitude.T  # (n_frames, n_bins); C-contiguous for stft_magnitude output
    for k, (first, stop, q) in enumerate(bands):
        if q == 1:  # the low bands average a single bin: min and max need no sort
            valley[k] = frames_by_bin[:, first:stop].min(axis=1)
            peak[k] = frames_by_bin[:, first:stop].max(axis=1)
            continue
        ordered = np.sort(frames_by_bin[:, first:stop], axis=1)
        valley[k] = ordered[:, :q].mean(axis=1)
        peak[k] = ordered[:, -q:].mean(axis=1)
    return _power_to_db(peak) - _power_to_db(valley)


def rolloff_hz(magnitude: np.ndarray, sr: int, n_fft: int) -> np.ndarray:
    """``(n_frames,)`` frequency of the first bin where the cumulative magnitude reaches 85 %.

    A full cumulative sum over 1025 bins per frame is sequential and slow; a
    two-level search (32-bin block sums, then a cumulative sum inside the one
    block per frame that crosses the threshold) finds the same bin from ~1/10
    of the work, with no copy of the spectrogram.
    """
    frames_by_bin = magnitude.T  # (n_frames, n_bins), rows contiguous for stft_magnitude output
    n_frames, n_bins = frames_by_bin.shape
    block = 32
    n_blocks = max((n_bins - 1) // block, 1)
    body = n_blocks * block
    # (n_frames, n_blocks, block) is a view when rows are contiguous; the bins past
    # the last full block (the Nyquist bin for n_fft = 2048) join the last block
    block_sums = frames_by_bin[:, :body].reshape(n_frames, n_blocks, block).sum(axis=2, dtype=np.float64)
    block_sums[:, -1] += frames_by_bin[:, body:].sum(axis=1, dtype=np.float64)
    block_cum = np.cumsum(block_sums, axis=1)
    threshold = ROLLOFF_PERCENT * block_cum[:, -1]
    first_block = np.minimum((block_cum < threshold[:, None]).sum(axis=1), n_blocks - 1)
    rows = np.arange(n_frames)
    before = np.where(first_block > 0, block_cum[rows, first_block - 1], 0.0)
    width = block + (n_bins - body)
    cols = np.minimum(first_block[:, None] * block + np.arange(width), n_bins - 1)
    inside = np.cumsum(frames_by_bin[rows[:, None], cols], axis=1, dtype=np.float64) + before[:, None]
    offset = (inside < threshold[:, None]).sum(axis=1)
    bin_index = np.minimum(first_block * block + offset, n_bins - 1)
    return bin_index * (sr / n_fft)


def _hop_blocks(y: np.ndarray, n_frames: int, n_fft: int, hop_length: int, mode: Any) -> np.ndarray:
    """``(n_frames - 1 + n_fft // hop, hop)`` view of ``y`` centred-padded by ``n_fft // 2`` (``mode`` as np.pad)."""
    pad = n_fft // 2
    padded = np.pad(y, (pad, pad), mode=mode) if len(y) else np.zeros(2 * pad, dtype=np.float32)
    n_blocks = n_frames - 1 + n_fft // hop_length
    return padded[: n_blocks * hop_length].reshape(n_blocks, hop_length)


def _sum_frames_of_blocks(block_values: np.ndarray, n_frames: int, blocks_per_frame: int) -> np.ndarray:
    """``(n_frames,)``: frame ``t`` sums hop blocks ``t .. t + blocks_per_frame - 1``."""
    total = np.zeros(n_frames, dtype=np.float64)
    for k in range(blocks_per_frame):
        total += block_values[k : k + n_frames]
    return total


def frame_rms_exact(y: np.ndarray, n_frames: int, n_fft: int, hop_length: int) -> np.ndarray:
    """``(n_frames,)`` unwindowed RMS of centred, zero-padded frames (librosa.feature.rms(y=...)).

    A frame of ``n_fft`` samples is ``n_fft / hop`` whole hop blocks, so one pass
    of per-block energies gives every frame; other sizes use a cumulative sum.
    """
    if n_fft % hop_length == 0:
        blocks = _hop_blocks(y, n_frames, n_fft, hop_length, "constant")
        # float32 per 512-sample block is exact to ~1e-7; the frame sums are float64
        block_energy = np.einsum("ij,ij->i", blocks, blocks).astype(np.float64)
        energy = _sum_frames_of_blocks(block_energy, n_frames, n_fft // hop_length)
        return np.sqrt(energy / n_fft)
    pad = n_fft // 2
    squares = np.zeros(len(y) + 2 * pad + 1, dtype=np.float64)
    np.cumsum(np.square(y, dtype=np.float64), out=squares[pad + 1 : pad + 1 + len(y)])
    squares[pad + 1 + len(y) :] = squares[pad + len(y)] if len(y) else 0.0
    start = np.arange(n_frames) * hop_length
    energy = squares[start + n_fft] - squares[start]
    # the cumulative sum leaves ~1e-12 residue after loud passages; clip the sign only
    return np.sqrt(np.maximum(energy, 0.0) / n_fft)


def frame_zcr_exact(y: np.ndarray, n_frames: int, n_fft: int, hop_length: int) -> np.ndarray:
    """``(n_frames,)`` zero-crossing rate of centred, edge-padded frames (librosa.feature.zero_crossing_rate).

    A sample counts as negative below -1e-10 (librosa's threshold, zero counted
    positive); a frame's rate is its crossings between consecutive samples / n_fft.
    """
    pad = n_fft // 2
    padded = np.pad(y, (pad, pad), mode="edge") if len(y) else np.zeros(2 * pad, dtype=np.float32)
    negative = padded < -1e-10
    # changed[n] = sign change between samples n - 1 and n (changed[0] = False)
    changed = np.empty(len(padded), dtype=bool)
    changed[0] = False
    np.not_equal(negative[1:], negative[:-1], out=changed[1:])
    start = np.arange(n_frames) * hop_length
    if n_fft % hop_length == 0:
        n_blocks = n_frames - 1 + n_fft // hop_length
        per_block = np.count_nonzero(changed[: n_blocks * hop_length].reshape(n_blocks, hop_length), axis=1)
        counts = _sum_frames_of_blocks(per_block, n_frames, n_fft // hop_length)
        # a frame's first sample pairs with the sample before the frame: not its crossing
        counts -= changed[start]
        return counts / n_fft
    crossings = np.zeros(len(padded) + 1, dtype=np.int64)
    np.cumsum(changed, out=crossings[1:])
    stop = np.minimum(start + n_fft, len(padded))
    return (crossings[stop] - crossings[start + 1]) / n_fft


def frame_rms_from_spectrum(magnitude: np.ndarray, n_fft: int) -> np.ndarray:
    """``(n_frames,)`` RMS from |STFT| by Parseval, divided by the Hann window's mean square (3/8).

    Used only when the time signal is unavailable: it matches the unwindowed
    frame RMS on average, not sample-exactly.
    """
    power = np.einsum("ft,ft->t", magnitude, magnitude, dtype=np.float64)
    power = 2.0 * power - magnitude[0].astype(np.float64) ** 2 - magnitude[-1].astype(np.float64) ** 2
    return np.sqrt(np.maximum(power, 0.0) / n_fft**2 / 0.375)


def estimate_tuning(power: np.ndarray, *, sr: int, n_fft: int) -> float:
    """Tuning offset in fractions of a semitone, ``[-0.5, 0.5)``: librosa.estimate_tuning in numpy.

    librosa's version runs numba stencils (parabolic interpolation, local maxima)
    whose compilation costs seconds on first use; this is the same algorithm
    (piptrack over 150-4000 Hz, threshold 0.1 x frame max, keep peaks above the
    median magnitude, histogram of semitone residuals at 0.01 resolution).

    Parameters
    ----------
    power : np.ndarray
        ``(n_bins, n_frames)`` power spectrogram (|STFT|^2), as chroma_stft passes it.
    """
    n_bins = power.shape[0]
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    in_range = np.flatnonzero((freqs >= TUNING_FMIN_HZ) & (freqs < min(TUNING_FMAX_HZ, sr / 2)))
    if len(in_range) == 0 or power.shape[1] == 0:
        return 0.0
    # a local maximum needs both neighbours; librosa treats the edge bins separately, never in range here
    lo, hi = max(int(in_range[0]), 1), min(int(in_range[-1]), n_bins - 2)
    frames_by_bin = power.T
    ref = 0.1 * frames_by_bin.max(axis=1, keepdims=True)
    left = frames_by_bin[:, lo - 1 : hi]
    centre = frames_by_bin[:, lo : hi + 1]
    right = frames_by_bin[:, lo + 1 : hi + 2]
    # librosa takes local maxima of the thresholded S * (S > ref). A peak needs
    # centre > ref, and then centre > left (resp. >= right) holds for the
    # thresholded neighbour exactly when it holds for the raw one, so the
    # thresholded copies are never built.
    peaks = centre > ref
    peaks &= centre > left
    peaks &= centre >= right
    frame_idx, bin_off = np.nonzero(peaks)
    if len(frame_idx) == 0:
        return 0.0
    c = centre[frame_idx, bin_off]
    left_v = left[frame_idx, bin_off]
    right_v = right[frame_idx, bin_off]
    a = right_v + left_v - 2 * c
    b = (right_v - left_v) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(np.abs(b) < np.abs(a), -b / a, 0.0).astype(power.dtype)
    pitch = (lo + bin_off + shift) * float(sr) / n_fft
    mag = c + 0.5 * b * shift
    valid = pitch > 0
    if not valid.any():
        return 0.0
    threshold = np.median(mag[valid])
    chosen = pitch[(mag >= threshold) & valid]
    return pitch_tuning(chosen)


def _hz_to_octaves(frequencies_hz: np.ndarray, tuning: float) -> np.ndarray:
    """Octaves above C0 (A440 / 16) for a tuning offset in fractions of a semitone (librosa.hz_to_octs)."""
    a440 = 440.0 * 2.0 ** (tuning / N_CHROMA)
    return np.log2(np.asarray(frequencies_hz, dtype=np.float64) / (a440 / 16.0))


def pitch_tuning(frequencies_hz: np.ndarray) -> float:
    """Most common deviation of ``frequencies_hz`` from the equal-tempered grid, in semitones ``[-0.5, 0.5)``.

    librosa.pitch_tuning (0.01 resolution, 12 bins per octave) in numpy: a
    histogram of each frequency's residual from the nearest semitone.
    """
    frequencies_hz = np.asarray(frequencies_hz, dtype=np.float64)
    frequencies_hz = frequencies_hz[frequencies_hz > 0]
    if len(frequencies_hz) == 0:
        log.debug("no pitched peaks to estimate tuning from; assuming A440")
        return 0.0
    residual = np.mod(N_CHROMA * _hz_to_octaves(frequencies_hz, 0.0), 1.0)
    residual[residual >= 0.5] -= 1.0
    edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / TUNING_RESOLUTION)) + 1)
    counts, edges = np.histogram(residual, edges)
    return float(edges[np.argmax(counts)])


@lru_cache(maxsize=16)
def chroma_filters(sr: int, n_fft: int, tuning: float) -> np.ndarray:
    """``(n_chroma, n_bins)`` float32 chroma filterbank, C-ordered as ``.T`` for BLAS.

    Numerically ``librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=tuning)``
    (Gaussian bumps per pitch class, unit L2 per bin, weighted by a Gaussian
    over octaves centred on octave 5 with width 2, starting at C), in numpy so
    the fast path never imports librosa (see ``engine.spectrum.mel_basis``).
    """
    n_chroma = N_CHROMA
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    semitones = n_chroma * _hz_to_octaves(frequencies, tuning)
    # the 0 Hz bin gets a made-up position 1.5 octaves below bin 1 (as librosa)
    semitones = np.concatenate(([semitones[0] - 1.5 * n_chroma], semitones))
    bin_width = np.concatenate((np.maximum(semitones[1:] - semitones[:-1], 1.0), [1.0]))
    distance = semitones[None, :] - np.arange(n_chroma, dtype=np.float64)[:, None]
    half = np.round(n_chroma / 2.0)
    distance = np.remainder(distance + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * distance / bin_width[None, :]) ** 2)
    norms = np.sqrt(np.sum(weights**2, axis=0, keepdims=True))
    norms[norms < np.finfo(np.float64).tiny] = 1.0
    weights /= norms
    weights *= np.exp(-0.5 * ((semitones / n_chroma - 5.0) / 2.0) ** 2)[None, :]
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    return np.asfortranarray(weights[:, : 1 + n_fft // 2], dtype=np.float32)


def mfcc_delta(mfcc: np.ndarray) -> np.ndarray:
    """``(n_mfcc, n_frames)`` librosa.feature.delta: Savitzky-Golay first derivative, width 9, 'interp' edges.

    With a first-order polynomial the Savitzky-Golay derivative is the
    least-squares slope over the window, ``sum(k * x[t + k]) / sum(k^2)``, and
    'interp' edges repeat the first and last full-window slopes; written out
    here so the fast path does not import scipy.signal (~0.5 s). Songs shorter
    than 9 frames (~0.2 s) use the widest odd window that fits; below 3 frames
    the derivative is zero.
    """
    n_frames = mfcc.shape[1]
    width = delta_width(n_frames)
    if width < 3:
        return np.zeros_like(mfcc)
    half = width // 2
    offsets = np.arange(-half, half + 1)
    slope = np.zeros((mfcc.shape[0], n_frames - 2 * half), dtype=np.float64)
    for k in offsets:
        if k:
            slope += k * mfcc[:, half + k : n_frames - half + k]
    slope /= float(np.sum(offsets**2))
    return np.concatenate(
        [np.repeat(slope[:, :1], half, axis=1), slope, np.repeat(slope[:, -1:], half, axis=1)], axis=1
    ).astype(mfcc.dtype)


def delta_width(n_frames: int) -> int:
    if n_frames >= DELTA_WIDTH:
        return DELTA_WIDTH
    return n_frames if n_frames % 2 else n_frames - 1


def normalise_columns_max(raw: np.ndarray) -> np.ndarray:
    """Divide each column by its max (librosa.util.normalize(norm=inf)); silent columns stay zero."""
    length = raw.max(axis=0, keepdims=True)
    length[length < np.finfo(raw.dtype).tiny] = 1.0
    return raw / length
