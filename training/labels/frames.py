"""Steps 1 and 2 of inferring BC labels: frame features of both files and their similarity.

1. Frames. Both files are mixed to mono at 22,050 Hz and cut into frames
   (``FRAME_HOP`` samples, ~17 ms). Each frame is a 64-band log-mel vector
   with its local time average per band removed (a static EQ, a shelf, a
   gain or a filter adds a constant per band: it cancels) and its mean over
   bands removed (a gain ramp, a fade, cancels), scaled to unit length.
   Silent frames are flagged instead.
2. Frame similarity ``S[t, r]`` (edit frame ``t``, raw frame ``r``): the
   cosine of those vectors, the best over the raw frames and their
   variants (the raw spectrum warped by -2..+2 semitones, the raw song
   distorted), so pitched and distorted spans still match their source;
   1 where both are silent, 0 where only one is. Time-reversed audio has
   the time-reversed frames (magnitudes do not see the reversal), so a
   reversed span is an anti-diagonal of ``S``.

On the samples, the same question has three finer answers used by the later
steps: ``periodicity`` (how well a signal repeats itself at a lag, per
frame), ``refine_offset`` and ``match_at`` (where, and how well, a raw
span lines up with the edit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pedalboard
from numba import njit
from scipy.ndimage import uniform_filter1d
from scipy.signal import correlate

from editorbot.engine.spectrum import mel_basis, stft_magnitude

FRAME_SR = 22050
FRAME_NFFT = 1024
FRAME_HOP = 384  # samples at FRAME_SR: 17.4 ms
N_BANDS = 64
EQ_WINDOW_FRAMES = 17  # per-band local mean removed over ~0.3 s
SILENCE_DB = -80.0  # a frame this far below the file's loud frames is silent
ABS_SILENCE_DB = -100.0  # ... or below this absolute level (dB re full-scale power)
VARIANT_SEMITONES = (-2.0, -1.0, 1.0, 2.0)  # pitch warps of the raw frames
VARIANT_DRIVE_DB = 20.0  # distortion of the raw frames
SIM_ROWS = 512  # edit frames per BLAS block of similarity_block (the block and its variants stay in L2)


@dataclass
class Frames:
    """Frame features of one mono signal.

    Attributes
    ----------
    shape : np.ndarray
        ``(n_frames, N_BANDS)`` float32 unit rows (zeros where silent).
    level_db : np.ndarray
        ``(n_frames,)`` frame power in dB re full scale.
    silent : np.ndarray
        ``(n_frames,)`` bool.
    y : np.ndarray
        ``(n_samples,)`` float32 the signal at ``FRAME_SR``.
    variants : list[np.ndarray]
        more ``(n_frames, N_BANDS)`` shapes of processed versions
        of the signal (see ``frame_features``).
    """

    shape: np.ndarray
    level_db: np.ndarray
    silent: np.ndarray
    y: np.ndarray
    variants: list[np.ndarray] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.shape.shape[0])


def _shape(power: np.ndarray, silent: np.ndarray) -> np.ndarray:
    """``(n_frames, N_BANDS)`` unit shape vectors of mel power ``(N_BANDS, n_frames)``."""
    db = 10.0 * np.log10(power + 1e-10)
    db = np.maximum(db, db.max(axis=0, keepdims=True) - 80.0)
    x = db - uniform_filter1d(db, EQ_WINDOW_FRAMES, axis=1, mode="nearest")
    x -= x.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(x, axis=0, keepdims=True)
    x = x / np.maximum(norm, 1e-6)
    x[:, silent] = 0.0
    return np.ascontiguousarray(x.T, dtype=np.float32)


def frame_features(y: np.ndarray, *, sr: int = FRAME_SR, variants: bool = False) -> Frames:
    """Gain/EQ-robust frame features of mono ``y`` ``(n_samples,)`` at ``sr`` Hz.

    With ``variants`` (for the raw song), ``Frames.variants`` also holds the
    shapes of the raw song as it would sound distorted (``VARIANT_DRIVE_DB``)
    and pitch-shifted by ``VARIANT_SEMITONES`` (a warp of the magnitude
    spectrum along frequency), so that the similarity of an edit frame
    processed that way is still high against its source.

    Returns ``Frames`` with ``1 + n_samples // FRAME_HOP`` frames.
    """
    y = np.ascontiguousarray(y, dtype=np.float32)
    mag = stft_magnitude(y, n_fft=FRAME_NFFT, hop_length=FRAME_HOP)
    basis = mel_basis(sr, FRAME_NFFT, N_BANDS)
    power = basis @ (mag * mag)  # (bands, frames)
    total = 10.0 * np.log10(power.sum(axis=0) + 1e-12) - 10.0 * math.log10((FRAME_NFFT / 4.0) ** 2)
    loud = float(np.percentile(total, 95)) if total.size else 0.0
    silent = (total < loud + SILENCE_DB) | (total < ABS_SILENCE_DB)
    frames = Frames(_shape(power, silent), total.astype(np.float32), silent, y)
    if variants:
        bins = np.arange(mag.shape[0], dtype=np.float64)
        for semitones in VARIANT_SEMITONES:
            src = bins / 2.0 ** (semitones / 12.0)
            lo = np.clip(np.floor(src).astype(np.int64), 0, mag.shape[0] - 1)
            hi = np.clip(lo + 1, 0, mag.shape[0] - 1)
            w = (src - lo)[:, None].astype(np.float32)
            warped = (1.0 - w) * mag[lo] + w * mag[hi]
            frames.variants.append(_shape(basis @ (warped * warped), silent))
        dist = pedalboard.Distortion(drive_db=VARIANT_DRIVE_DB)(y[None, :], sr)[0]
        dmag = stft_magnitude(np.ascontiguousarray(dist, dtype=np.float32), n_fft=FRAME_NFFT, hop_length=FRAME_HOP)
        frames.variants.append(_shape(basis @ (dmag * dmag), silent))
    return frames


def similarity(edit: Frames, raw: Frames) -> np.ndarray:
    """``(n_edit_frames, n_raw_frames)`` float32 frame similarity in [-1, 1].

    Cosine of the shape vectors (the best over the raw song's variants);
    1 where both frames are silent, 0 where exactly one is.
    """
    return similarity_block(edit, raw, 0, raw.n_frames)


def similarity_block(edit: Frames, raw: Frames, lo: int, hi: int) -> np.ndarray:
    """``similarity(edit, raw)[:, lo:hi]``, ``(n_edit_frames, hi - lo)`` float32, without the rest.

    The same products as the whole matrix (BLAS over ``SIM_ROWS`` edit
    frames at a time, each element the same 64-term sum), so the values
    agree bit for bit for blocks of more than one raw frame. The variants'
    maximum is taken a row block at a time, while the block is in cache:
    over the whole stripe each variant's product went out to memory and
    back, a quarter of the time.
    """
    s = np.empty((edit.n_frames, hi - lo), dtype=np.float32)
    sides = [raw.shape[lo:hi].T] + [v[lo:hi].T for v in raw.variants]  # views: the whole matrix's BLAS call (transposed)
    tmp = np.empty((min(SIM_ROWS, edit.n_frames), hi - lo), dtype=np.float32)
    for a in range(0, edit.n_frames, SIM_ROWS):
        e, out = edit.shape[a : a + SIM_ROWS], s[a : a + SIM_ROWS]
        np.matmul(e, sides[0], out=out)
        for side in sides[1:]:
            t = tmp[: out.shape[0]]
            np.matmul(e, side, out=t)
            np.maximum(out, t, out=out)
    es, rs = edit.silent, raw.silent[lo:hi]
    if es.any():
        s[es, :] = 0.0
    if rs.any():
        s[:, rs] = es[:, None]
    return s


def similarity_at(edit: Frames, raw: Frames, t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``similarity(edit, raw)[t, r]`` for index arrays ``t``, ``r`` of one shape, float32.

    Row by row dot products: within a rounding step (~1e-7) of the matrix.
    """
    e = edit.shape[t]
    s = np.einsum("ij,ij->i", e, raw.shape[r])
    for v in raw.variants:
        np.maximum(s, np.einsum("ij,ij->i", e, v[r]), out=s)
    es, rs = edit.silent[t], raw.silent[r]
    s[es] = 0.0
    s[rs] = es[rs]
    return s.astype(np.float32)


def periodicity(y: np.ndarray, lag: float, n_frames: int, *, half_window: int = 512, spread: int = 1) -> np.ndarray:
    """``(n_frames,)`` normalised correlation of ``y`` with itself ``lag`` samples earlier.

    Around each frame centre (``FRAME_HOP`` apart) over ``2 * half_window``
    samples; the best of integer lags within ``spread`` of ``lag``. Quiet
    windows give 0.
    """
    base = int(round(lag))
    lags = np.arange(max(1, base - spread), base + spread + 1, dtype=np.int64)
    return _periodicity(np.ascontiguousarray(y), lags, int(n_frames), FRAME_HOP, int(half_window))


@njit(cache=True, nogil=True, fastmath=True)
def _block_prefix(y: np.ndarray, lag_a: int, lag_b: int, first: int, blk: int) -> np.ndarray:
    """``(n // blk + 1,)`` float64 prefix over ``blk``-sample blocks of ``y[k - lag_a] * y[k - lag_b]``, ``k >= first``.

    Each block is summed in float32 (128 terms: a relative error ~1e-6,
    where a sequential float64 prefix per sample cost 20x the time).
    """
    nb = y.shape[0] // blk
    out = np.zeros(nb + 1)
    for j in range(nb):
        lo = j * blk
        if lo < first:  # the block the products start in (a loop of fixed length vectorises; this one need not)
            acc = np.float32(0.0)
            for k in range(first, lo + blk):
                acc += y[k - lag_a] * y[k - lag_b]
        else:
            u = y[lo - lag_a : lo - lag_a + blk]
            v = y[lo - lag_b : lo - lag_b + blk]
            acc = np.float32(0.0)
            for k in range(blk):
                acc += u[k] * v[k]
        out[j + 1] = acc
    for j in range(nb):
        out[j + 1] += out[j]
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _periodicity(y: np.ndarray, lags: np.ndarray, n_frames: int, hop: int, half_window: int) -> np.ndarray:
    """``periodicity`` over the integer ``lags``, from block sums of the three products it needs.

    Where a window's edges fall on ``gcd(hop, half_window)``-sample blocks
    (all frames but the first and last few) its sums are differences of
    ``_block_prefix``; elsewhere they are summed directly.
    """
    n = y.shape[0]
    blk = math.gcd(hop, half_window)
    nb = n // blk
    e_now = _block_prefix(y, 0, 0, 0, blk)
    best = np.zeros(n_frames, dtype=np.float32)
    for lg in lags:
        if lg >= n:
            continue
        num_p = _block_prefix(y, 0, lg, lg, blk)
        e_then = _block_prefix(y, lg, lg, lg, blk)
        for i in range(n_frames):
            centre = i * hop
            a = min(max(centre - half_window, lg), n)
            b = max(min(max(centre + half_window, 0), n), a)
            if a % blk == 0 and b % blk == 0 and b <= nb * blk:
                num = num_p[b // blk] - num_p[a // blk]
                e1 = e_now[b // blk] - e_now[a // blk]
                e0 = e_then[b // blk] - e_then[a // blk]
            else:
                num, e1, e0 = 0.0, 0.0, 0.0
                for k in range(a, b):
                    num += float(y[k]) * float(y[k - lg])
                    e1 += float(y[k]) * float(y[k])
                    e0 += float(y[k - lg]) * float(y[k - lg])
            den = np.sqrt(max(e1 * e0, 0.0))
            if den > 1e-8 * (b - a + 1):
                r = num / max(den, 1e-30)
                if r > best[i]:
                    best[i] = r
    return best


def refine_offset(raw_y: np.ndarray, edit_y: np.ndarray, src0: int, dst0: int, n: int, *, search: int = 600) -> int:
    """Sample offset ``dst - src`` (at ``FRAME_SR``) that best lines ``edit`` up with ``raw``.

    Cross-correlates ``n`` samples of raw from ``src0`` with the edit
    around ``dst0`` within ``search`` samples. Returns ``dst0 - src0`` when
    there is too little signal.
    """
    n = int(min(n, FRAME_SR * 2))
    a = raw_y[max(src0, 0) : max(src0, 0) + n].astype(np.float64)
    lo = max(dst0 - search, 0)
    b = edit_y[lo : dst0 + n + search].astype(np.float64)
    if a.size < 256 or b.size < a.size or float(a @ a) < 1e-9:
        return dst0 - src0
    c = correlate(b, a, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(b * b)])
    win = energy[a.size :] - energy[: -a.size]
    score = c / np.sqrt(np.maximum(win, 1e-12))
    k = int(np.argmax(score))
    return lo + k - max(src0, 0)


def match_at(raw_y: np.ndarray, edit_y: np.ndarray, src0: int, dst0: int, n: int, *, search: int = 600) -> float:
    """Best normalised correlation (-1..1) of ``n`` raw samples from ``src0`` with the edit within ``search`` of ``dst0``.

    Both at ``FRAME_SR``; 0 when either side has too little signal or leaves its file.
    """
    n = int(min(n, FRAME_SR * 2))
    if src0 < 0 or src0 + n > raw_y.shape[0] or dst0 + n + search > edit_y.shape[0]:
        return 0.0
    a = raw_y[src0 : src0 + n].astype(np.float64)
    lo = max(dst0 - search, 0)
    b = edit_y[lo : dst0 + n + search].astype(np.float64)
    ea = float(a @ a)
    if a.size < 256 or b.size < a.size or ea < 1e-9:
        return 0.0
    c = correlate(b, a, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(b * b)])
    win = energy[a.size :] - energy[: -a.size]
    return float(np.max(c / np.sqrt(np.maximum(win, 1e-12) * ea)))
