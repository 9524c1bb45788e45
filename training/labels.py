"""Label inference: recover the edit, beat by beat, from a (raw, edited) audio pair.

Given only a raw song and an edit of it, ``infer_pair`` finds what was done
to each beat of the raw song as factored ``(type, size, amount)`` actions
(``engine.actions``), the walk those actions form, and an ``EditPlan`` that
renders to (nearly) the edit. ``build_dataset`` does it for a pair
directory and writes the behavioural-cloning file.

How
---
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
   1 where both are silent, 0 where only one is. Time-reversed audio has the time-reversed frames (magnitudes do not see
   the reversal), so a reversed span is an anti-diagonal of ``S``.
3. Structure. A dynamic programme walks the raw beat grid (the analysis
   grid, extended with pseudo-beats over the lead-in and the tail so that
   every raw sample belongs to a beat) and the edit timeline together:
   state ``(raw beat j, edit frame t)``. Moves: play beat ``j`` forwards
   (every effect type, fades, gain and pitch play forwards), CUT it, mute
   it (SILENCE), reverse ``k`` beats, loop ``k`` beats ``n`` extra times,
   stutter ``k`` beats, play ``k`` beats at a SPEED rate. A move scores the
   sum of ``S`` over the edit frames it explains (along the diagonal,
   anti-diagonal, repeated diagonal or sloped line it implies); stutter
   frames score their periodicity at the slice length; silence frames
   score whether the edit is silent there. Every non-KEEP move pays a
   small prior cost so that ties go to the simplest edit; structural moves
   may end a frame off the grid's guess. The path must end where the edit
   ends; a beam keeps the DP fast (a path scoring poorly per frame is
   searched again with a wider one). The walk is then checked on the
   samples: a LOOP moves one beat where its repeats start there
   (``loop_phase``), one-rate SPEED moves over consecutive beats merge
   (``merge_speed_runs``), and a SPEED the forward offsets around it
   contradict is played forwards (``drop_false_speeds``).
4. Grid phase and splices. The tracker's beats sit a few ms off the beats
   the edit was cut on; the exact splice samples between forward runs
   (or, without splices, the raw song's attacks) give one shift for the
   whole grid, then every splice is measured on the sample, with the
   render's crossfade modelled (``splice_starts``): jumps between forward
   runs, loop lengths and starts, stutter slices (the edit's exact
   repetition period), reversed and muted spans (two-sided against the
   reversed raw and zeros), SPEED ends from the offsets, and the edit's
   first and last samples. The beat period is the line through the grid
   (``grid_period``), not the median beat.
5. Effects. Each beat played forwards is compared with the raw beat it
   came from (band powers, splice edges left out): unchanged -> KEEP;
   else the closest of the linear effects (GAIN, filters, shelves: their
   measured band responses added to the raw beat), a straight gain ramp
   (FADE_IN / FADE_OUT), renders of the raw beat through the nonlinear
   effects (``engine.render`` chains: reverb, delay, distortion,
   compression; reverb and delay fed the source since their forward run
   began, or only the beat itself where the beat before was judged
   otherwise (an effect starts at its segment with an empty memory), the
   reverb rendered in stereo at the song's rate as the edit's was; after
   a reverb or delay beat, "unchanged plus its tail" counts as KEEP);
   PITCH when a pitch-warped variant of the raw frames
   matches the edit clearly better than the raw frames; WIDTH from the
   stereo side/mid energies. Neighbouring forward beats then take their
   labels together (``smooth_effects``: each beat's candidate distances
   plus a cost per label change), so one effect over an action reads as
   one label. A run labelled a fade must be one ramp from or to silence
   (``false_fades``): a compressor riding each beat's level also fits a
   short ramp per beat, but restarts it every beat and may lift the
   level; such a run is labelled again without its fade candidates
   (``label_run``). LOOP and SPEED amounts come from the DP, the
   STUTTER amount from the shortest slice at which the span repeats.
6. Walk and plan. Runs of beats with one label become actions whose sizes
   tile the run (largest sizes first; a fade run is one ramp); the plan
   comes from ``engine.plan.plan_from_actions`` on the extended grid.

A pair whose best path still matches poorly (mean similarity below
``UNALIGNABLE_SIM``) is reported as unalignable and gets no labels.

The behavioural-cloning file (``bc_rich.npz``)
----------------------------------------------
One compressed ``.npz`` (no pickles), written atomically, readable by
``training.bc.BCData.load`` (so ``editorbot train rl --bc-mixed`` takes it
as it is): the ``training.bc`` arrays (``format``, ``features``, ``done``,
``position``, ``padding_mask``, ``mask_*``, ``actions`` ``(N, 3)``,
``pair_ids``, ``pair_names``, ``confidence``, ``tempo_bpm``, ``energy``,
``phrase``), made by walking ``EditEnv`` over each alignable pair with the
inferred per-beat labels (``training.bc.bc_examples``); each example's
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
extended beat ``i + first_real``. Labels in the npz are on the analysis
grid.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import actions as vocab

log = logging.getLogger(__name__)

BC_SCHEMA = "editorbot.bclabels/1"

FRAME_SR = 22050
FRAME_NFFT = 1024
FRAME_HOP = 384  # samples at FRAME_SR: 17.4 ms
N_BANDS = 64
EQ_WINDOW_FRAMES = 17  # per-band local mean removed over ~0.3 s
SILENCE_DB = -80.0  # a frame this far below the file's loud frames is silent
ABS_SILENCE_DB = -100.0  # ... or below this absolute level (dB re full-scale power)

#: Mean similarity along the best path below which a pair is unalignable.
UNALIGNABLE_SIM = 0.55
VARIANT_SEMITONES = (-2.0, -1.0, 1.0, 2.0)  # pitch warps of the raw frames
VARIANT_DRIVE_DB = 20.0  # distortion of the raw frames
SMOOTH_BEATS = 8  # half-width in beats of the local line fit that removes beat-tracker jitter



STUTTER_CORR_MID = 0.8  # self-correlation at the slice length scoring 0 for a stutter frame (1 scores +1)
SPEED_PROBE = 12  # frames of a SPEED line scored before deciding to score the rest
SPEED_PROBE_SIM = 0.5  # ... only if their mean similarity reaches this

# Structural move kinds of the alignment DP.
FWD, CUT, SIL, REV, LOOP, STUT, SPEED = range(7)
KIND_NAMES = ("FWD", "CUT", "SILENCE", "REVERSE", "LOOP", "STUTTER", "SPEED")

LOOP_REPEATS = tuple(int(v) for v in vocab.AMOUNT_TABLE["LOOP"] if not math.isnan(v))  # (1, 2, 3, 4)
STUTTER_SLICES = tuple(v for v in vocab.AMOUNT_TABLE["STUTTER"] if not math.isnan(v))  # beats per slice
SPEED_RATES = tuple(v for v in vocab.AMOUNT_TABLE["SPEED"] if not math.isnan(v))
AMOUNT_SLOTS = (0, 1, 3, 4)  # amount indices of the four non-NEUTRAL amounts, ascending value


@dataclass
class AlignConfig:
    """Scores and search limits of the structural DP (units: similarity x frames).

    Attributes:
        action_cost: prior cost of each non-KEEP move.
        cut_cost: extra cost per CUT beat.
        slack_cost: cost of moving a forward beat's end by one frame.
        beam: states kept per raw beat (retried 4x wider when no path survives).
        stutter_weight: scale of the periodicity score of stutter frames.
        retry_score: DP score per edit frame under which the search is
            repeated with a 4x wider beam (the better path is kept).
    """

    action_cost: float = 1.5
    cut_cost: float = 0.3
    slack_cost: float = 0.4
    beam: int = 256
    stutter_weight: float = 1.0
    retry_score: float = 0.8


# --------------------------------------------------------------------------- frames


@dataclass
class Frames:
    """Frame features of one mono signal.

    Attributes:
        shape: ``(n_frames, N_BANDS)`` float32 unit rows (zeros where silent).
        level_db: ``(n_frames,)`` frame power in dB re full scale.
        silent: ``(n_frames,)`` bool.
        y: ``(n_samples,)`` float32 the signal at ``FRAME_SR``.
        variants: more ``(n_frames, N_BANDS)`` shapes of processed versions
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
    from scipy.ndimage import uniform_filter1d

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
    from engine.spectrum import mel_basis, stft_magnitude

    y = np.ascontiguousarray(y, dtype=np.float32)
    mag = stft_magnitude(y, n_fft=FRAME_NFFT, hop_length=FRAME_HOP)
    basis = mel_basis(sr, FRAME_NFFT, N_BANDS)
    power = basis @ (mag * mag)  # (bands, frames)
    total = 10.0 * np.log10(power.sum(axis=0) + 1e-12) - 10.0 * math.log10((FRAME_NFFT / 4.0) ** 2)
    loud = float(np.percentile(total, 95)) if total.size else 0.0
    silent = (total < loud + SILENCE_DB) | (total < ABS_SILENCE_DB)
    frames = Frames(_shape(power, silent), total.astype(np.float32), silent, y)
    if variants:
        import pedalboard

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
    s = edit.shape @ raw.shape.T
    for v in raw.variants:
        np.maximum(s, edit.shape @ v.T, out=s)
    es, rs = edit.silent, raw.silent
    if es.any():
        s[es, :] = 0.0
        s[np.ix_(es, rs)] = 1.0
    if rs.any():
        s[np.ix_(~es, rs)] = 0.0
    return s


def periodicity(y: np.ndarray, lag: float, n_frames: int, *, half_window: int = 512, spread: int = 1) -> np.ndarray:
    """``(n_frames,)`` normalised correlation of ``y`` with itself ``lag`` samples earlier.

    Around each frame centre (``FRAME_HOP`` apart) over ``2 * half_window``
    samples; the best of integer lags within ``spread`` of ``lag``. Quiet
    windows give 0.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    centres = np.arange(n_frames) * FRAME_HOP
    lo = np.clip(centres - half_window, 0, n)
    hi = np.clip(centres + half_window, 0, n)
    e = np.concatenate([[0.0], np.cumsum(y * y)])
    best = np.zeros(n_frames)
    base = int(round(lag))
    # window sums of the lagged product from block sums where the window edges
    # fall on blocks (all but the first and last few frames), the rest directly
    blk = math.gcd(FRAME_HOP, half_window)
    nb = n // blk
    for lg in range(max(1, base - spread), base + spread + 1):
        if lg >= n:
            continue
        prod = np.zeros(nb * blk)
        m = min(n, nb * blk)
        prod[lg:m] = y[lg:m] * y[: m - lg]
        c_blk = np.concatenate([[0.0], np.cumsum(prod.reshape(nb, blk).sum(axis=1))])
        a = np.maximum(lo, lg)
        b = np.maximum(hi, a)
        aligned = (a % blk == 0) & (b % blk == 0) & (b <= nb * blk)
        num = np.zeros(n_frames)
        num[aligned] = c_blk[b[aligned] // blk] - c_blk[a[aligned] // blk]
        for i in np.nonzero(~aligned)[0]:
            num[i] = float(y[a[i] : b[i]] @ y[a[i] - lg : b[i] - lg])
        e1 = e[b] - e[a]
        e0 = e[b - lg] - e[a - lg]
        den = np.sqrt(e1 * e0)
        r = np.where(den > 1e-8 * (b - a + 1), num / np.maximum(den, 1e-30), 0.0)
        best = np.maximum(best, r)
    return best.astype(np.float32)


# --------------------------------------------------------------------------- structural DP


def _njit(fn):  # numba is a librosa dependency; compiled functions are cached on disk
    import numba

    return numba.njit(cache=True, nogil=True)(fn)


@_njit
def _diag_cumsum(s: np.ndarray) -> np.ndarray:
    """``C[t + 1, r + 1] = C[t, r] + S[t, r]``: sums along diagonals, ``(Te + 1, Tr + 1)``."""
    te, tr = s.shape
    c = np.zeros((te + 1, tr + 1), dtype=np.float32)
    for t in range(te):
        for r in range(tr):
            c[t + 1, r + 1] = c[t, r] + s[t, r]
    return c


@_njit
def _anti_cumsum(s: np.ndarray) -> np.ndarray:
    """``C[t + 1, r] = C[t, r + 1] + S[t, r]``: sums along anti-diagonals, ``(Te + 1, Tr + 1)``."""
    te, tr = s.shape
    c = np.zeros((te + 1, tr + 1), dtype=np.float32)
    for t in range(te):
        for r in range(tr):
            c[t + 1, r] = c[t, r + 1] + s[t, r]
    return c


@_njit
def _fsum(cd: np.ndarray, t: int, r: int, n: int) -> float:
    """Sum of ``S[t + u, r + u]`` for ``u`` in ``[0, n)``; frames outside ``S`` count 0."""
    te = cd.shape[0] - 1
    tr = cd.shape[1] - 1
    if n <= 0:
        return 0.0
    if r < 0:  # skip the part before the raw start
        t -= r
        n += r
        r = 0
    m = min(n, te - t, tr - r)
    if m <= 0 or t < 0:
        return 0.0
    return float(cd[t + m, r + m] - cd[t, r])


@_njit
def _rsum(ca: np.ndarray, t: int, r1: int, n: int) -> float:
    """Sum of ``S[t + u, r1 - 1 - u]`` for ``u`` in ``[0, n)``; frames outside ``S`` count 0."""
    te = ca.shape[0] - 1
    tr = ca.shape[1] - 1
    if n <= 0 or t < 0:
        return 0.0
    if r1 > tr:
        skip = r1 - tr
        t += skip
        n -= skip
        r1 = tr
    m = min(n, te - t, r1)
    if m <= 0:
        return 0.0
    return float(ca[t + m, r1 - m] - ca[t, r1])


@_njit
def _future_bound(s: np.ndarray, frame_best: np.ndarray, r_starts: np.ndarray) -> np.ndarray:
    """Optimistic score of the edit frames from ``t`` on, given raw beat ``j`` is next.

    Every later edit frame comes from raw beat ``j`` or later (the walk only
    moves forwards; loops and reversals stay inside their span), so frame
    ``u`` scores at most ``max(max_{r >= r_j} S[u, r], frame_best[u])``
    (``frame_best``: the best non-similarity score of the frame: silence or
    stutter). Returns ``H (Te + 1, n_beats + 1)`` with ``H[t, j]`` the sum of
    those bounds over ``u >= t`` (``H[:, n_beats] = 0``).
    """
    te, tr = s.shape
    nb = r_starts.shape[0]
    m = np.zeros((te, nb))
    for u in range(te):
        run = -1.0
        jj = nb - 1
        for r in range(tr - 1, -1, -1):
            if s[u, r] > run:
                run = s[u, r]
            while jj >= 0 and r_starts[jj] >= r:
                m[u, jj] = max(run, frame_best[u])
                jj -= 1
        while jj >= 0:
            m[u, jj] = max(run, frame_best[u])
            jj -= 1
    h = np.zeros((te + 1, nb + 1))
    for u in range(te - 1, -1, -1):
        for j in range(nb):
            h[u, j] = h[u + 1, j] + m[u, j]
    return h


@_njit
def _relax(
    val: np.ndarray,
    pos: np.ndarray,
    b_t: np.ndarray,
    b_kind: np.ndarray,
    b_k: np.ndarray,
    b_par: np.ndarray,
    row: int,
    t: int,
    pe: float,
    sc: float,
    kind: int,
    k: int,
    par: int,
    t_max: int,
    slack_cost: float,
) -> None:
    """Offer the DP state ``(row, round(pe) + d)`` for ``d`` in -1..1 frames, ``slack_cost`` per frame moved.

    A structural move's nominal end comes from the tracker's grid, which can
    sit a frame off the edit's splice; the forward beat after it then lands
    off its diagonal, where the sharp frame features score poorly, and a
    spurious one-beat SPEED wins instead. The slack lets the move end where
    the edit does (the frame it gains or loses is scored by the next move).
    """
    for d in range(-1, 2):
        ped = pe + d
        te = int(round(ped))
        if te < t or te > t_max:
            continue
        scd = sc - (slack_cost if d != 0 else 0.0)
        if scd > val[row, te]:
            val[row, te] = scd
            pos[row, te] = ped
            b_t[row, te] = t
            b_kind[row, te] = kind
            b_k[row, te] = k
            b_par[row, te] = par


@_njit
def _align_dp(
    s: np.ndarray,
    cd: np.ndarray,
    ca: np.ndarray,
    sil_cum: np.ndarray,
    per_cum: np.ndarray,
    starts_f: np.ndarray,
    ends_f: np.ndarray,
    sizes: np.ndarray,
    loop_reps: np.ndarray,
    stut_slices: np.ndarray,
    speed_rates: np.ndarray,
    beat_frames: float,
    t_end: float,
    action_cost: float,
    cut_cost: float,
    slack_cost: float,
    beam: int,
    stutter_weight: float,
    bound: np.ndarray,
) -> tuple:
    """Best walk over raw beats explaining the edit frames; see the module docstring.

    Returns ``(score, moves)`` with moves ``(n_moves, 6)`` int64 rows
    ``(beat, n_beats, kind, param, t0, t1)`` in walk order (``param``: the
    amount slot of LOOP/STUTTER/SPEED, else 0), or ``(-inf, empty)``.
    """
    te_n = s.shape[0]
    tr_n = s.shape[1]
    n = starts_f.shape[0]
    neg = -1e30
    width = te_n + 2
    val = np.full((n + 1, width), neg)
    pos = np.zeros((n + 1, width))
    b_t = np.full((n + 1, width), -1, dtype=np.int64)
    b_kind = np.zeros((n + 1, width), dtype=np.int64)
    b_k = np.zeros((n + 1, width), dtype=np.int64)
    b_par = np.zeros((n + 1, width), dtype=np.int64)
    val[0, 0] = 0.0
    t_max = width - 1

    for j in range(n):
        alive = np.nonzero(val[j] > neg / 2)[0]
        if alive.shape[0] == 0:
            continue
        if alive.shape[0] > beam:
            keys = np.empty(alive.shape[0])
            for q in range(alive.shape[0]):
                tq = alive[q]
                keys[q] = -(val[j, tq] + bound[min(tq, te_n), j])
            order = np.argsort(keys)[:beam]
            alive = alive[order]
        r0f = starts_f[j]
        r0 = int(round(r0f))
        beat_len = ends_f[j] - starts_f[j]
        for q in range(alive.shape[0]):
            t = alive[q]
            v = val[j, t]
            p = pos[j, t]
            # play one beat forwards (KEEP and every effect)
            for d in range(-1, 2):
                pe = p + beat_len + d
                te = int(round(pe))
                if te < t or te > t_max:
                    continue
                sc = v + _fsum(cd, t, r0, te - t) - (slack_cost if d != 0 else 0.0)
                if sc > val[j + 1, te]:
                    val[j + 1, te] = sc
                    pos[j + 1, te] = pe
                    b_t[j + 1, te] = t
                    b_kind[j + 1, te] = 0
                    b_k[j + 1, te] = 1
                    b_par[j + 1, te] = d + 1
            for si in range(sizes.shape[0]):
                k = sizes[si]
                if j + k > n:
                    break
                span = ends_f[j + k - 1] - r0f
                r1 = int(round(ends_f[j + k - 1]))
                # CUT
                sc = v - action_cost - cut_cost * k
                if sc > val[j + k, t]:
                    val[j + k, t] = sc
                    pos[j + k, t] = p
                    b_t[j + k, t] = t
                    b_kind[j + k, t] = 1
                    b_k[j + k, t] = k
                    b_par[j + k, t] = 0
                # SILENCE and REVERSE: same length
                pe = p + span
                te = int(round(pe))
                if te <= t_max:
                    sc = v - action_cost + (sil_cum[min(te, te_n)] - sil_cum[min(t, te_n)])
                    _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, sc, 2, k, 0, t_max, slack_cost)
                    sc = v - action_cost + _rsum(ca, t, r1, te - t)
                    _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, sc, 3, k, 0, t_max, slack_cost)
                    # STUTTER: the first slice plays forwards, the rest repeats it
                    for a in range(stut_slices.shape[0]):
                        ns = int(round(stut_slices[a] * beat_len))
                        ns = max(1, min(ns, te - t))
                        sc = v - action_cost + _fsum(cd, t, r0, ns)
                        sc += per_cum[a, min(te, te_n)] - per_cum[a, min(t + ns, te_n)]
                        _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, sc, 5, k, a, t_max, slack_cost)
                # LOOP: the span plays 1 + reps times
                for a in range(loop_reps.shape[0]):
                    reps = loop_reps[a]
                    pe = p + span * (reps + 1)
                    te = int(round(pe))
                    if te > t_max:
                        break
                    sc = v - action_cost
                    for m in range(reps + 1):
                        ta = int(round(p + span * m))
                        tb = int(round(p + span * (m + 1)))
                        sc += _fsum(cd, ta, r0, tb - ta)
                    _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, sc, 4, k, a, t_max, slack_cost)
                # SPEED: the span plays at a rate
                for a in range(speed_rates.shape[0]):
                    rate = speed_rates[a]
                    pe = p + span / rate
                    te = int(round(pe))
                    if te > t_max:
                        continue
                    sc = v - action_cost
                    n_out = te - t
                    for u in range(n_out):
                        tt = t + u
                        rr = int(round(r0f + rate * u))
                        if tt < te_n and 0 <= rr < tr_n:
                            sc += s[tt, rr]
                        if u == SPEED_PROBE - 1 and n_out > 2 * SPEED_PROBE and sc - v + action_cost < SPEED_PROBE_SIM * SPEED_PROBE:
                            sc = neg  # the first frames do not match: not worth the whole line
                            break
                    _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, sc, 6, k, a, t_max, slack_cost)

    # the walk ends where the edit ends
    best = neg
    best_t = -1
    te_want = int(round(t_end))
    for t in range(max(0, te_want - 3), min(t_max, te_want + 3) + 1):
        sc = val[n, t] - slack_cost * abs(t - te_want)
        if val[n, t] > neg / 2 and sc > best:
            best = sc
            best_t = t
    if best_t < 0:
        return neg, np.zeros((0, 6), dtype=np.int64), val
    rows = []
    j = n
    t = best_t
    while j > 0:
        k = b_k[j, t]
        t0 = b_t[j, t]
        rows.append((j - k, k, b_kind[j, t], b_par[j, t], t0, t))
        j -= k
        t = t0
    out = np.zeros((len(rows), 6), dtype=np.int64)
    for i in range(len(rows)):
        r = rows[len(rows) - 1 - i]
        for c in range(6):
            out[i, c] = r[c]
    return best, out, val


# --------------------------------------------------------------------------- alignment


@dataclass
class Move:
    """One move of the alignment: raw beats ``[beat, beat + n_beats)`` -> edit ``[dst_start_s, dst_end_s)``.

    Attributes:
        beat: first beat (index into the extended grid).
        n_beats: beats covered.
        kind: ``FWD``, ``CUT``, ``SIL``, ``REV``, ``LOOP``, ``STUT`` or ``SPEED``.
        slot: amount slot 0..3 (NEG_LARGE..POS_LARGE) for LOOP/STUTTER/SPEED.
        dst_start_s, dst_end_s: the edit span it explains, seconds.
        match: mean frame similarity over that span (1 for a CUT).
    """

    beat: int
    n_beats: int
    kind: int
    slot: int
    dst_start_s: float
    dst_end_s: float
    match: float = 1.0


@dataclass
class Alignment:
    """Structural alignment of an edit to its raw song.

    Attributes:
        starts_s, ends_s: ``(n,)`` extended beat grid of the raw song, seconds.
        first_real: index in it of the analysis grid's first beat.
        moves: the walk of moves, in order.
        match: mean frame similarity along the path (non-silent edit frames).
        score: DP score.
    """

    starts_s: np.ndarray
    ends_s: np.ndarray
    first_real: int
    moves: list[Move]
    match: float
    score: float


def smooth_beats(beat_times: np.ndarray, *, half_window: int = SMOOTH_BEATS) -> np.ndarray:
    """Beat times ``(n,)`` s with tracker jitter removed: a local straight-line fit per beat.

    Beat ``i`` moves to the least-squares line through beats
    ``i - half_window .. i + half_window`` (fewer at the ends), evaluated
    at ``i``. A constant tempo comes out exact; a tempo that drifts is
    followed. The result is still strictly increasing (else the input is
    returned).
    """
    bt = np.asarray(beat_times, dtype=np.float64)
    n = bt.shape[0]
    if n < 4:
        return bt.copy()
    idx = np.arange(n, dtype=np.float64)
    out = np.empty(n)
    for i in range(n):
        lo, hi = max(0, i - half_window), min(n, i + half_window + 1)
        x, y = idx[lo:hi], bt[lo:hi]
        slope, icpt = np.polyfit(x, y, 1)
        out[i] = icpt + slope * i
    if np.any(np.diff(out) <= 0) or out[0] < 0:
        return bt.copy()
    return out


def grid_period(beat_times: np.ndarray) -> float:
    """Beat period (s) of a grid: the slope of the least-squares line through ``(index, time)``.

    The median of the beat lengths sits on the tracker's frame quantisation
    (seen 10+ samples off per beat at 22,050 Hz); the line through all the
    beats averages it out (within ~1-3 samples on the synthetic corpus).
    A stutter's slice and its periodicity lag are multiples of this.
    """
    bt = np.asarray(beat_times, dtype=np.float64)
    if bt.size < 4:
        return float(np.median(np.diff(bt))) if bt.size > 1 else 0.5
    return float(np.polyfit(np.arange(bt.size, dtype=np.float64), bt, 1)[0])


def extended_grid(beat_times: np.ndarray, duration_s: float, *, tempo_bpm: float = 120.0) -> tuple[np.ndarray, np.ndarray, int]:
    """The analysis grid extended with pseudo-beats so that beats cover ``[0, duration_s)``.

    Pseudo-beats one median period long are added before the first beat
    and after the last one (the first may be up to 1.25 periods, starting
    at 0; the last ends at ``duration_s``).

    Returns:
        ``starts_s (n,)``, ``ends_s (n,)`` float64 seconds and the index of
        the first analysis beat.
    """
    from engine.plan import beat_spans

    bt = smooth_beats(np.asarray(beat_times, dtype=np.float64))
    starts, ends = beat_spans(bt, duration_s, tempo_bpm=tempo_bpm)
    if starts.size == 0:
        period = 60.0 / max(tempo_bpm, 1.0)
        starts = np.array([0.0])
        ends = np.array([min(duration_s, period)])
    period = float(np.median(ends - starts)) if starts.size > 1 else float(ends[0] - starts[0])
    period = max(period, 1e-3)
    pre: list[float] = []
    first = float(starts[0])
    while first > 0.25 * period:
        first = max(0.0, first - period)
        pre.insert(0, first)
    n_pre = len(pre)
    st = list(pre) + [float(x) for x in starts]
    en = [float(x) for x in starts[:0]]
    en = pre[1:] + [float(starts[0])] if pre else []
    en += [float(x) for x in ends]
    st[0] = 0.0
    while en[-1] < duration_s - 0.25 * period:
        st.append(en[-1])
        en.append(min(duration_s, en[-1] + period))
    en[-1] = duration_s
    return np.asarray(st), np.asarray(en), n_pre


def align(
    raw: Frames,
    edit: Frames,
    starts_s: np.ndarray,
    ends_s: np.ndarray,
    edit_duration_s: float,
    *,
    config: AlignConfig | None = None,
    beat_s: float | None = None,
    debug: dict | None = None,
) -> tuple[float, list[Move], np.ndarray]:
    """Structural DP of an edit against the raw beats (see the module docstring).

    Parameters:
        raw, edit: frame features of the two files.
        starts_s, ends_s: ``(n,)`` extended raw beat grid covering the raw file, seconds.
        edit_duration_s: length of the edit, seconds.
        beat_s: beat period, seconds (``grid_period``; default the median beat length).
        debug: if a dict, receives ``"table"``: the DP's best score per
            (beat, edit frame) state, ``(n + 1, n_edit_frames + 2)``.

    Returns:
        ``(score, moves, S)`` with ``S (n_edit_frames, n_raw_frames)`` the frame similarity.
    """
    cfg = config or AlignConfig()
    s = similarity(edit, raw)
    cd = _diag_cumsum(s)
    ca = _anti_cumsum(s)
    te_n = edit.n_frames
    sil = np.where(edit.silent, 1.0, -1.0)
    sil_cum = np.concatenate([[0.0], np.cumsum(sil)])
    if beat_s is None:
        beat_s = float(np.median(ends_s - starts_s))
    per = np.zeros((len(STUTTER_SLICES), te_n + 1))
    stutter_best = np.full(te_n, -1.0)
    for a, v in enumerate(STUTTER_SLICES):
        c = periodicity(edit.y, v * beat_s * FRAME_SR, te_n)
        # a stutter repeats its slice sample for sample (correlation ~1); echoes of a
        # DELAY at that lag correlate ~0.6-0.85 (median ~0.7) and must not pass for one
        score = cfg.stutter_weight * np.where(
            edit.silent, -1.0, np.clip((c - STUTTER_CORR_MID) / (1.0 - STUTTER_CORR_MID), -1.0, 1.0)
        )
        stutter_best = np.maximum(stutter_best, score)
        per[a, 1:] = np.cumsum(score)
    to_f = FRAME_SR / FRAME_HOP
    frame_best = np.maximum(sil, stutter_best)
    r_starts = np.maximum(np.round(np.asarray(starts_s) * to_f).astype(np.int64) - 2, 0)
    bound = _future_bound(s, frame_best, r_starts)
    args = (
        s,
        cd,
        ca,
        sil_cum,
        per,
        np.asarray(starts_s, dtype=np.float64) * to_f,
        np.asarray(ends_s, dtype=np.float64) * to_f,
        np.asarray(vocab.SIZE_BEATS, dtype=np.int64),
        np.asarray(LOOP_REPEATS, dtype=np.int64),
        np.asarray(STUTTER_SLICES, dtype=np.float64),
        np.asarray(SPEED_RATES, dtype=np.float64),
        beat_s * to_f,
        edit_duration_s * to_f,
        cfg.action_cost,
        cfg.cut_cost,
        cfg.slack_cost,
    )
    score, rows, table = _align_dp(*args, cfg.beam, cfg.stutter_weight, bound)
    if rows.shape[0] == 0:
        log.debug("no path with a beam of %d: retrying with %d", cfg.beam, 4 * cfg.beam)
        score, rows, table = _align_dp(*args, 4 * cfg.beam, cfg.stutter_weight, bound)
    elif score < cfg.retry_score * te_n:
        # The beam ranks states by score so far plus an optimistic bound on the rest,
        # which flatters states that skipped edit frames (a long CUT): on effect-heavy
        # edits it can drop the true path for a CUT + long LOOP walk scoring far
        # lower (seen 0.57-0.76 per frame against >= 0.85 for every good path).
        wide = _align_dp(*args, 4 * cfg.beam, cfg.stutter_weight, bound)
        log.debug("poor path (%.2f per frame) with a beam of %d: %d gives %.2f",
                  score / te_n, cfg.beam, 4 * cfg.beam, wide[0] / te_n)
        if wide[1].shape[0] and wide[0] > score:
            score, rows, table = wide
    moves = []
    for beat, k, kind, par, t0, t1 in rows.tolist():
        moves.append(
            Move(
                beat=beat,
                n_beats=k,
                kind=kind,
                slot=par if kind in (LOOP, STUT, SPEED) else 0,
                dst_start_s=t0 / to_f,
                dst_end_s=t1 / to_f,
            )
        )
    if debug is not None:
        debug["table"] = table
    return float(score), moves, s


# --------------------------------------------------------------------------- effects

BAND_NFFT = 1024
BAND_HOP = 256
N_EFFECT_BANDS = 24
KEEP_DB = 0.35  # mean band difference (dB) under which a forward beat is unchanged
LOOP_PHASE_MARGIN = 0.05  # correlation a one-beat loop shift must gain to be taken (loop_phase)
OFFSET_PROBES = 8  # beats of a forward run cross-correlated to find its offset
LINEAR_OK_DB = 0.3  # a linear effect or fade this close needs no rendered candidates
SPLICE_GUARD_S = 0.012  # left out at both ends of a beat when judging its effect
QUIET_BEAT_DB = 45.0  # a raw beat this far below the song's peaks is too quiet to judge effects on
KEEP_BAND_DB = 0.6  # ... and no band's mean level moved more than this
EFFECT_SWITCH_DB = 0.3  # cost of a label change between neighbouring forward beats (effect smoothing)
# A fade is one straight gain ramp from or to silence, never above unity; a compressor riding
# each beat's level fits a short ramp too, but restarts it every beat (a sawtooth) and may lift.
FADE_MAX_GAIN = 1.08  # edit/raw gain a fade's ramp may reach (fit noise)
FADE_STEP_BACK = 0.15  # how far a fade's gain may step back from one beat's end to the next's start
FADE_EDGE_GAIN = 0.08  # a one-beat fade starts (in) or ends (out) within this of silence
PRE_ROLL_S = 0.25  # source audio fed to candidate effects before the beat
TAIL_PRE_ROLL_S = 2.0  # ... at most, to reverb and delay candidates (engine.render.MAX_TAIL_S)
TAIL_CHUNK_BEATS = 16  # reverb/delay candidates render this many beats ahead at once
REVERB_SCREEN_DB = 1.5  # a quick mono reverb this close to the best candidate earns the true render
LINEAR_TYPES = ("GAIN", "LOWPASS", "HIGHPASS", "BASS", "TREBLE")
RENDER_TYPES = ("REVERB", "DELAY", "DISTORTION", "COMPRESS")
WIDTH_VALUES = tuple(v for v in vocab.AMOUNT_TABLE["WIDTH"] if not math.isnan(v))


def band_db(y: np.ndarray, *, sr: int = FRAME_SR) -> np.ndarray:
    """``(n_frames, N_EFFECT_BANDS)`` mel band power in dB (floor -100) of mono ``y``.

    Centred Hann frames of ``BAND_NFFT`` every ``BAND_HOP`` samples (as
    ``engine.spectrum.stft_magnitude``), on one thread: these are short
    snippets, where a thread pool costs more than the transform.
    """
    from engine.spectrum import mel_basis

    y = np.asarray(y, dtype=np.float32)
    pad = BAND_NFFT // 2
    padded = np.pad(y, (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(padded, BAND_NFFT)[::BAND_HOP]
    spec = np.fft.rfft(frames * _hann(BAND_NFFT), axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32) @ mel_basis(sr, BAND_NFFT, N_EFFECT_BANDS).T
    return 10.0 * np.log10(power + 1e-10)


_HANN: dict[int, np.ndarray] = {}


def _hann(n: int) -> np.ndarray:
    """``(n,)`` float32 periodic Hann window."""
    if n not in _HANN:
        _HANN[n] = np.hanning(n + 1)[:-1].astype(np.float32)
    return _HANN[n]


def _effect_chain(type_name: str, slot: int, beat_s: float, sr: int) -> Any:
    from engine.plan import Effect
    from engine.render import build_chain

    name, params = vocab.effect_params(type_name, AMOUNT_SLOTS[slot], beat_s=beat_s)
    if "cutoff_hz" in params:
        params["cutoff_hz"] = min(params["cutoff_hz"], 0.45 * sr)
    return build_chain([Effect(name, params)], sr)


_RESPONSES: dict[int, np.ndarray] = {}


def linear_responses(*, effect_sr: int = FRAME_SR) -> np.ndarray:
    """``(len(LINEAR_TYPES), 4, N_EFFECT_BANDS)`` dB band responses of the linear effects at ``FRAME_SR``.

    Measured once per rate (no linear effect depends on the tempo) by
    filtering white noise through each effect (GAIN: its flat gain) at
    ``effect_sr``, the rate the edit was rendered at, and reading both
    noises' bands at ``FRAME_SR``: a filter made at a
    lower rate bends differently near its Nyquist frequency (a 5 kHz
    low-pass made at 22 kHz would read as a treble cut). The prediction of
    an effect on a beat is the raw beat's band powers plus this response.
    """
    import soxr

    if effect_sr in _RESPONSES:
        return _RESPONSES[effect_sr]
    rng = np.random.default_rng(0)
    noise = (0.05 * rng.standard_normal(effect_sr * 4)).astype(np.float32)

    def bands(y: np.ndarray) -> np.ndarray:
        y = soxr.resample(y, effect_sr, FRAME_SR) if effect_sr != FRAME_SR else y
        return band_db(y)[8:-8].mean(axis=0)

    ref = bands(noise)
    out = np.zeros((len(LINEAR_TYPES), 4, N_EFFECT_BANDS))
    for ti, t in enumerate(LINEAR_TYPES):
        for slot in range(4):
            if t == "GAIN":
                out[ti, slot] = vocab.amount_value(t, AMOUNT_SLOTS[slot])
                continue
            chain = _effect_chain(t, slot, 0.5, effect_sr)  # any beat: the linear effects take none
            out[ti, slot] = bands(chain(noise[None, :].copy(), effect_sr)[0]) - ref
    _RESPONSES[effect_sr] = out
    return out


def _band_distance(pred: np.ndarray, target: np.ndarray, weight: np.ndarray) -> float:
    """Weighted mean absolute dB difference of ``(n_frames, bands)`` arrays."""
    d = np.abs(np.clip(pred, -100.0, None) - np.clip(target, -100.0, None))
    return float((np.minimum(d, 30.0) * weight).sum() / max(weight.sum(), 1e-9))


@dataclass
class BeatEffect:
    """The effect found on one forward beat."""

    type: str
    slot: int  # amount slot 0..3 (NEG_LARGE..POS_LARGE); 0 for NEUTRAL-only types
    distance: float  # dB, best candidate
    margin: float  # dB, second best minus best
    candidates: dict[tuple[str, int], float] | None = None  # dB per (type, slot) judged; None: not to be smoothed
    ramp: tuple[float, float] | None = None  # fitted edit/raw gain at the first and last judged frame (fade candidate)

    @property
    def amount_idx(self) -> int:
        return int(vocab.Amount.NEUTRAL) if self.type in vocab.NEUTRAL_ONLY else AMOUNT_SLOTS[self.slot]


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
    from scipy.signal import correlate

    c = correlate(b, a, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(b * b)])
    win = energy[a.size :] - energy[: -a.size]
    score = c / np.sqrt(np.maximum(win, 1e-12))
    k = int(np.argmax(score))
    return lo + k - max(src0, 0)


def merge_speed_runs(moves: list[Move], starts: np.ndarray, ends: np.ndarray) -> list[Move]:
    """Moves with each run of one-rate SPEED moves over consecutive beats made one move.

    The DP scores a SPEED line from the tracker's beat start: a few frames
    off, a long line scores worse than short lines that each restart on
    the diagonal, so one stretched bar comes out as several one-beat SPEED
    moves, sometimes with a forward beat between them. An editor's SPEED
    is one stretched segment: a single forward beat between two SPEED
    moves of one rate joins them when the DP had to stretch that beat the
    rate's way too (its edit span at least half a frame off its raw length
    in the direction of ``1 / rate``: a forward beat with an effect between
    two SPEEDs keeps its length), and the run becomes one move.
    """
    out = list(moves)
    half_frame = 0.5 * FRAME_HOP / FRAME_SR
    for i in range(1, len(out) - 1):
        a, m, c = out[i - 1], out[i], out[i + 1]
        if (
            m.kind == FWD and a.kind == SPEED and c.kind == SPEED and a.slot == c.slot
            and a.beat + a.n_beats == m.beat and m.beat + m.n_beats == c.beat
        ):
            stretch = (m.dst_end_s - m.dst_start_s) - (ends[m.beat] - starts[m.beat])
            if stretch * (1.0 / SPEED_RATES[a.slot] - 1.0) > 0 and abs(stretch) >= half_frame:
                out[i] = Move(m.beat, m.n_beats, SPEED, a.slot, m.dst_start_s, m.dst_end_s, m.match)
    merged: list[Move] = []
    for m in out:
        p = merged[-1] if merged else None
        if p is not None and m.kind == SPEED and p.kind == SPEED and p.slot == m.slot and p.beat + p.n_beats == m.beat:
            merged[-1] = Move(p.beat, p.n_beats + m.n_beats, SPEED, p.slot, p.dst_start_s, m.dst_end_s)
        else:
            merged.append(m)
    return merged


def drop_false_speeds(moves: list[Move], fwd_offset: dict[int, int], starts: np.ndarray, ends: np.ndarray) -> list[Move]:
    """Moves with each SPEED the forward offsets around it contradict played forwards instead.

    A SPEED at rate ``r`` over ``L`` raw samples moves everything after it
    in the edit by ``L (1 / r - 1)``; REVERSE, SILENCE and STUTTER keep the
    length. Where the forward runs on either side of a SPEED (with only
    such moves between) sit at the same offset, within a third of that
    shift, the DP's SPEED was a patch over a frame or two of misfit (a
    reverb tail, a grid error), not the edit's.
    """
    out: list[Move] = []
    for i, m in enumerate(moves):
        if m.kind != SPEED or i == 0 or moves[i - 1].kind != FWD or moves[i - 1].beat not in fwd_offset:
            out.append(m)
            continue
        k = i + 1
        while k < len(moves) and moves[k].kind in (REV, SIL, STUT):
            k += 1
        if k >= len(moves) or moves[k].kind != FWD or moves[k].beat not in fwd_offset:
            out.append(m)
            continue
        shift = (ends[m.beat + m.n_beats - 1] - starts[m.beat]) * FRAME_SR * (1.0 / SPEED_RATES[m.slot] - 1.0)
        seen = fwd_offset[moves[k].beat] - fwd_offset[moves[i - 1].beat]
        if abs(seen) < abs(shift) / 3.0:
            log.debug("SPEED at beat %d dropped: the offsets around it moved %d samples, not %.0f", m.beat, seen, shift)
            t = m.dst_start_s
            step = (m.dst_end_s - m.dst_start_s) / m.n_beats
            for b in range(m.beat, m.beat + m.n_beats):
                out.append(Move(b, 1, FWD, 0, t, t + step, m.match))
                t += step
        else:
            out.append(m)
    return out


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
    from scipy.signal import correlate

    c = correlate(b, a, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(b * b)])
    win = energy[a.size :] - energy[: -a.size]
    return float(np.max(c / np.sqrt(np.maximum(win, 1e-12) * ea)))


def loop_phase(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], starts: np.ndarray, ends: np.ndarray
) -> list[Move]:
    """Moves with each LOOP shifted by one beat where the edit's repeats say so.

    The frame features cannot tell a loop of beats ``j..j+k-1`` after a
    forward beat ``j-1`` from a loop of ``j-1..j+k-2`` before a forward beat
    ``j+k-1`` when the song repeats itself bar by bar; the repeats can: each
    starts with exactly the loop's first raw beat. For a LOOP next to a
    forward beat of the right raw beat (and edit time), the hypotheses
    "as found", "one beat earlier" and "one beat later" are scored by the
    normalised correlation of the loop's first raw beat with the edit where
    each repeat would start; a shift is taken when it scores clearly
    higher (by ``LOOP_PHASE_MARGIN``).
    """
    out = list(moves)
    to_samples = FRAME_SR

    def score(b: int, k: int, reps: int, e0: float) -> float:
        if b < 0 or b + k > starts.shape[0]:
            return -1.0
        src0 = int(round(starts[b] * to_samples))
        n = int(round((ends[b] - starts[b]) * to_samples))
        span = (ends[b + k - 1] - starts[b]) * to_samples
        vals = [match_at(raw_y, edit_y, src0, int(round(e0 * to_samples + m * span)), n) for m in range(1, reps + 1)]
        return float(np.mean(vals)) if vals else -1.0

    i = 0
    while i < len(out):
        m = out[i]
        if m.kind != LOOP:
            i += 1
            continue
        reps = LOOP_REPEATS[m.slot]
        k = m.n_beats
        best = (score(m.beat, k, reps, m.dst_start_s), 0)
        prev = out[i - 1] if i > 0 else None
        nxt = out[i + 1] if i + 1 < len(out) else None
        if prev is not None and prev.kind == FWD and prev.beat == m.beat - 1 and abs(prev.dst_end_s - m.dst_start_s) < 1e-6:
            best = max(best, (score(m.beat - 1, k, reps, prev.dst_start_s) - LOOP_PHASE_MARGIN, -1))
        if nxt is not None and nxt.kind == FWD and nxt.beat == m.beat + k and abs(nxt.dst_start_s - m.dst_end_s) < 1e-6:
            e0 = m.dst_start_s + (ends[m.beat] - starts[m.beat])
            best = max(best, (score(m.beat + 1, k, reps, e0) - LOOP_PHASE_MARGIN, 1))
        if best[1] == -1:
            tail = ends[m.beat + k - 1] - starts[m.beat + k - 1]  # the old loop's last beat now plays after it
            loop = Move(m.beat - 1, k, LOOP, m.slot, prev.dst_start_s, m.dst_end_s - tail)
            fwd = Move(m.beat + k - 1, 1, FWD, 0, m.dst_end_s - tail, m.dst_end_s)
            out[i - 1 : i + 1] = [loop, fwd]
            log.debug("loop at beat %d moved one beat earlier (its repeats match %.2f)", m.beat, best[0] + LOOP_PHASE_MARGIN)
        elif best[1] == 1:
            head = ends[m.beat] - starts[m.beat]
            fwd = Move(m.beat, 1, FWD, 0, m.dst_start_s, m.dst_start_s + head)
            loop = Move(m.beat + 1, k, LOOP, m.slot, m.dst_start_s + head, nxt.dst_end_s)
            out[i : i + 2] = [fwd, loop]
            log.debug("loop at beat %d moved one beat later (its repeats match %.2f)", m.beat, best[0] + LOOP_PHASE_MARGIN)
        i += 1
    return out


def _width_slot(raw_st: np.ndarray, edit_st: np.ndarray) -> tuple[int, float] | None:
    """Amount slot of a WIDTH change between stereo beats ``(2, n)``, with its dB error; None if none.

    WIDTH scales the side signal and keeps the mid one.
    """
    if raw_st.shape[0] < 2 or edit_st.shape[0] < 2:
        return None
    mid_r = 0.5 * (raw_st[0] + raw_st[1])
    mid_e = 0.5 * (edit_st[0] + edit_st[1])
    side_r = 0.5 * (raw_st[0] - raw_st[1])
    side_e = 0.5 * (edit_st[0] - edit_st[1])
    em_r, em_e = float(mid_r @ mid_r), float(mid_e @ mid_e)
    es_r, es_e = float(side_r @ side_r), float(side_e @ side_e)
    if em_r <= 1e-9 or es_r <= 1e-4 * em_r:
        return None  # mono source: width means nothing
    if abs(10.0 * math.log10(max(em_e, 1e-12) / em_r)) > 1.0:
        return None  # the mid changed too: not a width change
    w = math.sqrt(es_e / es_r)
    if abs(w - 1.0) < 0.2:
        return None
    slot = int(np.argmin([abs(w - v) for v in WIDTH_VALUES]))
    return slot, abs(w - WIDTH_VALUES[slot])


def _tail_render(
    raw_y: np.ndarray,
    type_name: str,
    slot: int,
    beat_s: float,
    want0: int,
    src0: int,
    n: int,
    effect_sr: int,
    cache: dict | None,
    run_key: int | None = None,
) -> np.ndarray:
    """``(n,)`` mono at ``FRAME_SR``: raw samples ``[src0, src0 + n)`` through a REVERB or DELAY candidate fed from ``want0``.

    Rendered in chunks from ``want0`` to ``TAIL_CHUNK_BEATS`` beats past
    the beat and kept in ``cache`` per forward run (``run_key``): a later
    beat of the run inside the chunk whose wanted start is not before the
    chunk's start reads its render from it (a longer pre-roll within the
    run only adds older, fainter tail); without a ``cache``, just the
    beat is rendered. A reverb at ``effect_sr`` other
    than ``FRAME_SR`` renders as the edit was made, stereo at the song's
    rate (in mono at 22 kHz it is 2-4 dB per band off); at ``FRAME_SR``,
    plain mono (a quick screen).
    """
    key = (type_name, slot, run_key, effect_sr)
    hit = cache.get(key) if cache is not None else None
    if hit is not None and hit[0] <= want0 and src0 + n <= hit[1]:
        c0, _, y = hit
        return y[src0 - c0 : src0 - c0 + n]
    c0 = want0
    ahead = int(TAIL_CHUNK_BEATS * beat_s * FRAME_SR) if cache is not None else 0
    c1 = min(src0 + n + ahead, raw_y.shape[0])
    x = np.ascontiguousarray(raw_y[None, c0:c1], dtype=np.float32)
    if type_name == "REVERB" and effect_sr != FRAME_SR:
        chain = _effect_chain(type_name, slot, beat_s, effect_sr)
        y = _reverb_output(chain(_reverb_input(x, effect_sr), effect_sr), effect_sr, x.shape[1])
    else:
        chain = _effect_chain(type_name, slot, beat_s, FRAME_SR)
        y = chain(x, FRAME_SR)[0]
    if cache is not None:
        cache[key] = (c0, c1, y)
    return y[src0 - c0 : src0 - c0 + n]


def _effect_tail(
    raw_y: np.ndarray, type_name: str, slot: int, beat_s: float, c0: int, src0: int, n: int, effect_sr: int
) -> np.ndarray:
    """``(n,)`` at ``FRAME_SR``: what a REVERB/DELAY over raw ``[c0, src0)`` still sounds over the next ``n`` samples.

    The effect fed the source then zeros, as ``engine.render`` renders a
    run's tail (its fade-out over the tail's second half is not modelled:
    one beat after the run it has not begun).
    """
    x = np.zeros((1, src0 - c0 + n), dtype=np.float32)
    x[0, : src0 - c0] = raw_y[c0:src0]
    if type_name == "REVERB":
        chain = _effect_chain(type_name, slot, beat_s, effect_sr)
        y = _reverb_output(chain(_reverb_input(x, effect_sr), effect_sr), effect_sr, x.shape[1])
    else:
        chain = _effect_chain(type_name, slot, beat_s, FRAME_SR)
        y = chain(x, FRAME_SR)[0]
    return y[src0 - c0 :].astype(np.float32)


def _reverb_input(x: np.ndarray, sr: int) -> np.ndarray:
    """``(2, m)`` float32: mono ``x`` ``(1, n)`` at ``FRAME_SR`` resampled to ``sr``, on both channels."""
    import soxr

    y = soxr.resample(np.asarray(x[0], dtype=np.float32), FRAME_SR, sr) if sr != FRAME_SR else x[0]
    return np.ascontiguousarray(np.stack([y, y]).astype(np.float32))


def _reverb_output(y: np.ndarray, sr: int, n: int) -> np.ndarray:
    """``(n,)`` mono at ``FRAME_SR`` of a ``(2, m)`` render at ``sr`` (``engine.audio.analysis_mono``'s mix)."""
    import soxr

    mono = np.asarray(y, dtype=np.float32).mean(axis=0)
    if sr != FRAME_SR:
        mono = soxr.resample(mono, sr, FRAME_SR)
    if mono.shape[0] < n:
        mono = np.pad(mono, (0, n - mono.shape[0]))
    return mono[:n]


def beat_effect(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    src0: int,
    dst0: int,
    n: int,
    *,
    beat_s: float,
    raw_st: np.ndarray | None = None,
    edit_st: np.ndarray | None = None,
    pitch_votes: np.ndarray | None = None,
    quiet_db: float = -np.inf,
    run_start: int | None = None,
    effect_sr: int = 44100,
    tail_cache: dict | None = None,
    prev_effect: tuple[str, int] | None = None,
) -> BeatEffect:
    """What was done to one forward-played beat.

    Parameters:
        raw_y, edit_y: mono signals at ``FRAME_SR``.
        src0, dst0: first sample of the beat in the raw song and in the edit.
        n: beat length, samples.
        beat_s: beat period, seconds (sets the delay time).
        raw_st, edit_st: the same beat in stereo ``(2, m)`` at any common rate, or None.
        pitch_votes: ``(1 + len(VARIANT_SEMITONES) + 1,)`` mean frame
            similarity of the beat against the clean raw frames, each pitch
            warp and the distorted frames.
        quiet_db: a raw beat quieter than this (dB re full scale power) is
            KEEP: nothing can be told from it.
        run_start: first raw sample of the forward run the beat is in (the
            earliest an effect over it can have started); reverb and delay
            candidates are fed the source from there (up to
            ``TAIL_PRE_ROLL_S``), so that a beat deep in a reverb carries
            the tail the edit built up before it.
        effect_sr: the song's sample rate: reverb candidates render at it.
        tail_cache: a dict kept over one pair's beats (in order): reverb and
            delay renders cover ``TAIL_CHUNK_BEATS`` beats at once.
        prev_effect: ``(type, slot)`` the previous beat of the run was
            judged; after a REVERB or DELAY, "unchanged plus that effect's
            tail" (what ``engine.render`` overlap-adds after an effect run)
            is one more way for the beat to be KEEP.

    Returns:
        The best ``BeatEffect`` among KEEP, the linear effects (from their
        band responses), FADE_IN/FADE_OUT (a straight gain ramp), the
        rendered effects (reverb, delay, distortion, compression), PITCH
        (from ``pitch_votes``) and WIDTH (stereo side/mid).
    """
    pre = int(PRE_ROLL_S * FRAME_SR)
    a0 = max(src0 - pre, 0)
    lead = src0 - a0
    x_r = raw_y[a0 : src0 + n]
    x_e = edit_y[max(dst0, 0) : dst0 + n]
    if x_e.shape[0] < n or x_r.shape[0] < lead + n or n < BAND_NFFT:
        return BeatEffect("KEEP", 0, 0.0, 0.0)
    raw_power = float(np.mean(np.square(x_r[lead:], dtype=np.float64)))
    if 10.0 * math.log10(raw_power + 1e-20) < quiet_db:
        return BeatEffect("KEEP", 0, 0.0, 0.0)
    # splice crossfades blur a beat's first and last few milliseconds: judge the inside
    trim = min(int(SPLICE_GUARD_S * FRAME_SR), n // 8)
    b_r = band_db(x_r[lead + trim : lead + n - trim])
    b_e = band_db(x_e[trim : n - trim])
    ref = np.maximum(b_r, b_e)
    weight = (ref > ref.max() - 60.0).astype(np.float64)
    cands: list[tuple[float, str, int]] = [(_band_distance(b_r, b_e, weight), "KEEP", 0)]
    band_shift = np.abs(((b_e - b_r) * weight).sum(axis=0) / np.maximum(weight.sum(axis=0), 1e-9))
    if cands[0][0] < KEEP_DB and float(band_shift.max()) < KEEP_BAND_DB:
        w = _width_slot(raw_st, edit_st) if raw_st is not None and edit_st is not None else None
        if w is not None:
            return BeatEffect("WIDTH", w[0], cands[0][0], 1.0)
        return BeatEffect("KEEP", 0, cands[0][0], 1.0)
    resp = linear_responses(effect_sr=effect_sr)
    for ti, t in enumerate(LINEAR_TYPES):
        for slot in range(4):
            cands.append((_band_distance(b_r + resp[ti, slot], b_e, weight), t, slot))
    # fades: the level ratio is a straight line in gain
    lr = 10.0 * np.log10(np.sum(10.0 ** (b_r / 10.0), axis=1) + 1e-10)
    le = 10.0 * np.log10(np.sum(10.0 ** (b_e / 10.0), axis=1) + 1e-10)
    ok = lr > lr.max() - 40.0
    ramp = None
    if ok.sum() >= 4:
        g = 10.0 ** ((le - lr) / 20.0)
        x = np.arange(g.shape[0], dtype=np.float64)
        slope, icpt = np.polyfit(x[ok], np.clip(g[ok], 0.0, 2.0), 1)
        fit = np.clip(icpt + slope * x, 1e-3, 1.5)
        rise = slope * g.shape[0]
        if abs(rise) > 0.02:
            d = _band_distance(b_r + 20.0 * np.log10(fit)[:, None], b_e, weight)
            cands.append((d, "FADE_IN" if rise > 0 else "FADE_OUT", 0))
            ramp = (float(icpt), float(icpt + slope * x[-1]))
    x_r2 = np.ascontiguousarray(x_r[None, :], dtype=np.float32)
    # a gain change or a gain ramp can also be a compressor riding the level or a reverb's
    # added energy: only a filter's shape settles the question without rendering
    settled = min((c[0] for c in cands[1:] if c[1] not in ("GAIN", "FADE_IN", "FADE_OUT")), default=np.inf)
    render_types = RENDER_TYPES if settled > LINEAR_OK_DB else ()
    # reverb and delay build up over their whole segment: a beat inside one carries
    # the tail of everything since it started (read as GAIN from a 0.25 s pre-roll)
    want0 = max(src0 - int(min(TAIL_PRE_ROLL_S * FRAME_SR, max(pre, src0 - run_start))), 0) if run_start is not None else a0

    def tail(t: str, slot: int, sr: int) -> np.ndarray:
        # A beat after one judged otherwise would start the effect, and the renderer
        # begins an effect at its segment with none of the source before it in memory:
        # the beat alone, uncached. Inside the effect's run, from the run's render.
        if prev_effect is None or prev_effect[0] != t:
            return _tail_render(raw_y, t, slot, beat_s, src0, src0, n, sr, None)
        return _tail_render(raw_y, t, slot, beat_s, want0, src0, n, sr, tail_cache, run_start)

    for t in render_types:
        if t == "REVERB":
            continue  # last: only where it can win
        for slot in range(4):
            if t == "DELAY":
                y = tail(t, slot, FRAME_SR)
                y = y[trim : n - trim]
            else:
                chain = _effect_chain(t, slot, beat_s, FRAME_SR)
                y = chain(x_r2.copy(), FRAME_SR)[0, lead + trim : lead + n - trim]
            cands.append((_band_distance(band_db(y), b_e, weight), t, slot))
    if "REVERB" in render_types:
        # The reverb has to render as the edit's did (both channels at the song's
        # rate, ~5x the work); its quick mono 22 kHz render, a few dB off, says
        # whether it can come near the best other candidate.
        best_other = min(c[0] for c in cands)
        quick = [
            (_band_distance(band_db(tail("REVERB", slot, FRAME_SR)[trim : n - trim]), b_e, weight), slot)
            for slot in range(4)
        ]
        if best_other > LINEAR_OK_DB and min(q[0] for q in quick) <= best_other + REVERB_SCREEN_DB:
            for slot in range(4):
                y = tail("REVERB", slot, effect_sr)
                cands.append((_band_distance(band_db(y[trim : n - trim]), b_e, weight), "REVERB", slot))
        else:
            cands.extend((d, "REVERB", slot) for d, slot in quick)
    if prev_effect is not None and prev_effect[0] in ("REVERB", "DELAY") and run_start is not None and src0 > run_start:
        tail = _effect_tail(raw_y, prev_effect[0], prev_effect[1], beat_s, max(run_start, src0 - int(TAIL_PRE_ROLL_S * FRAME_SR)),
                            src0, n, effect_sr)
        y = x_r[lead:] + tail
        d = _band_distance(band_db(y[trim : n - trim]), b_e, weight)
        cands = [(min(c[0], d), c[1], c[2]) if c[1] == "KEEP" else c for c in cands]
    cands.sort(key=lambda c: c[0])
    best = cands[0]
    second = next((c for c in cands[1:] if c[1] != best[1]), cands[-1])
    judged: dict[tuple[str, int], float] = {}
    for d, t, slot in cands:
        judged.setdefault((t, slot), d)
    effect = BeatEffect(best[1], best[2], best[0], second[0] - best[0], judged, ramp)
    if pitch_votes is not None and pitch_votes.shape[0] >= 1 + len(VARIANT_SEMITONES):
        clean = float(pitch_votes[0])
        k = int(np.argmax(pitch_votes[1 : 1 + len(VARIANT_SEMITONES)]))
        if pitch_votes[1 + k] > clean + 0.08 and effect.distance > 1.0:
            semis = VARIANT_SEMITONES[k]
            slot = int(np.argmin([abs(semis - v) for v in (-2.0, -1.0, 1.0, 2.0)]))
            return BeatEffect("PITCH", slot, effect.distance, float(pitch_votes[1 + k] - clean))
    if effect.type in ("KEEP", "GAIN") and raw_st is not None and edit_st is not None:
        w = _width_slot(raw_st, edit_st)
        if w is not None:
            return BeatEffect("WIDTH", w[0], effect.distance, 1.0)
    return effect


# --------------------------------------------------------------------------- one pair


@dataclass
class PairLabels:
    """What label inference found for one (raw, edit) pair.

    Attributes:
        name: pair name.
        raw_path, edit_path: the two files.
        alignable: False when the edit does not come from the raw song.
        match: mean frame similarity along the alignment path (0..1).
        reason: why a pair is unalignable ("" otherwise).
        beat_times: ``(n_beats,)`` analysis beat times, seconds.
        labels: ``(n_beats, 3)`` int64 (type, size, amount) per analysis beat.
        confidence: ``(n_beats,)`` float32 in [0, 1].
        action_start: ``(n_beats,)`` bool, an action of the walk starts here.
        walk: ``(type, size, amount)`` names from the extended grid's beat 0.
        plan: the inferred EditPlan (extended grid), or None.
        features: ``(n_beats, n_features)`` float32 analysis features.
        feature_names: their names.
        grid: the raw song's ``engine.grid.Grid``.
        duration_s: the raw song's length, seconds.
        seconds: wall time spent, by stage.
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
    plan: Any = None
    features: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    feature_names: list[str] = field(default_factory=list)
    grid: Any = None
    duration_s: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)


def _move_frame_scores(mv: Move, s: np.ndarray, edit: Frames, starts_f: np.ndarray, ends_f: np.ndarray) -> np.ndarray:
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
        r = int(round(ends_f[mv.beat + mv.n_beats - 1])) - 1 - u
    elif mv.kind == LOOP:
        span = ends_f[mv.beat + mv.n_beats - 1] - r0
        r = np.round(r0 + np.mod(u, max(span, 1.0))).astype(np.int64)
    elif mv.kind == SPEED:
        r = np.round(r0 + SPEED_RATES[mv.slot] * u).astype(np.int64)
    elif mv.kind == STUT:
        return np.full(t1 - t0, 1.0)  # scored by periodicity in the DP
    else:
        r = np.round(r0 + u).astype(np.int64)
    ok = (r >= 0) & (r < s.shape[1])
    out = np.zeros(t1 - t0)
    out[ok] = s[t0 + u[ok], r[ok]]
    return out


def _stutter_slot(edit_y: np.ndarray, mv: Move, beat_s: float, dp_slot: int) -> int:
    """Amount slot of a stutter: the shortest slice at which the span repeats."""
    a = int(round(mv.dst_start_s * FRAME_SR))
    b = int(round(mv.dst_end_s * FRAME_SR))
    seg = edit_y[max(a, 0) : b].astype(np.float64)
    for slot, v in enumerate(STUTTER_SLICES):
        lag = int(round(v * beat_s * FRAME_SR))
        if seg.shape[0] < 2 * lag + 64:
            continue
        x, y = seg[lag:], seg[:-lag]
        den = math.sqrt(float(x @ x) * float(y @ y))
        if den > 0 and float(x @ y) / den > 0.8:
            return slot
    return dp_slot


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
    read as KEEP; a run one size short of an action size (by at most a
    quarter of it) takes those KEEP beats so that the walk has one fade
    with one ramp, as the edit has.
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
        if 0 < extra <= target // 4:
            lo, hi = (e, e + extra) if t == "FADE_IN" else (b - extra, b)
            if lo >= 0 and hi <= n and all(types[i] == "KEEP" and group[i] < 0 for i in range(lo, hi)):
                for i in range(lo, hi):
                    types[i], slots[i] = t, 0
                e = max(e, hi)
        b = e


def false_fades(effects: list[BeatEffect], labels: list[tuple[str, int]]) -> set[int]:
    """Beats of consecutive forward beats whose FADE_IN/FADE_OUT run is not one fade.

    A run labelled a fade is rejected when the gain ramps fitted on its beats
    (``BeatEffect.ramp``) go above unity (``FADE_MAX_GAIN``), step back
    between neighbours by more than ``FADE_STEP_BACK`` (each beat restarting
    its ramp: a compressor), or, for a one-beat run, do not start (in) or end
    (out) at silence (``FADE_EDGE_GAIN``).
    """
    bad: set[int] = set()
    for kind, beats in itertools.groupby(range(len(labels)), key=lambda k: labels[k][0]):
        if kind not in ("FADE_IN", "FADE_OUT"):
            continue
        run = list(beats)
        sign = 1.0 if kind == "FADE_IN" else -1.0  # gain rises along a fade-in, falls along a fade-out
        ramps = [effects[k].ramp for k in run]
        known = [r for r in ramps if r is not None]
        loud = any(max(r) > FADE_MAX_GAIN for r in known)
        back = any(
            a is not None and b is not None and sign * (b[0] - a[1]) < -FADE_STEP_BACK for a, b in itertools.pairwise(ramps)
        )
        lone = len(run) == 1 and bool(known) and known[0][0 if kind == "FADE_IN" else 1] > FADE_EDGE_GAIN
        if loud or back or lone:
            bad.update(run)
    return bad


def _without_fades(effect: BeatEffect) -> BeatEffect:
    """``effect`` with its fade candidates dropped and its best remaining candidate as the label."""
    cands = {k: d for k, d in (effect.candidates or {}).items() if k[0] not in ("FADE_IN", "FADE_OUT")}
    if not cands:
        return BeatEffect("KEEP", 0, effect.distance, 0.0, {("KEEP", 0): effect.distance})
    (t, slot), d = min(cands.items(), key=lambda kv: kv[1])
    return BeatEffect(t, slot, d, effect.margin, cands)


def label_run(effects: list[BeatEffect]) -> list[tuple[str, int]]:
    """Labels of consecutive forward beats: ``smooth_effects``, then again without the fades that are not fades."""
    labels = smooth_effects(effects)
    bad = false_fades(effects, labels)
    if not bad:
        return labels
    return smooth_effects([_without_fades(e) if k in bad else e for k, e in enumerate(effects)])


def smooth_effects(effects: list[BeatEffect], *, switch_db: float = EFFECT_SWITCH_DB) -> list[tuple[str, int]]:
    """Labels of consecutive forward beats, chosen together (Viterbi) from each beat's candidates.

    Each beat costs the distance of its label's candidate (a label a beat
    did not judge costs that beat's worst distance plus ``switch_db``);
    each change of label between neighbours costs ``switch_db``. An edit
    applies an effect over whole actions, so a beat whose best candidate is
    barely better than its neighbours' label (compression read as a gain
    ramp on every other beat, a delay's amount flickering) takes theirs.
    """
    labels = sorted({k for e in effects for k in (e.candidates or {})})
    if len(effects) < 2 or not labels:
        return [(e.type, e.slot) for e in effects]
    n, m = len(effects), len(labels)
    cost = np.empty((n, m))
    for i, e in enumerate(effects):
        c = e.candidates or {}
        worst = max(c.values()) if c else 0.0
        cost[i] = [c.get(k, worst + switch_db) for k in labels]
    acc = cost[0].copy()
    back = np.zeros((n, m), dtype=np.int64)
    for i in range(1, n):
        j = int(np.argmin(acc))
        stay = acc
        move = acc[j] + switch_db
        back[i] = np.where(stay <= move, np.arange(m), j)
        acc = np.minimum(stay, move) + cost[i]
    k = int(np.argmin(acc))
    out = [labels[k]] * n
    for i in range(n - 1, 0, -1):
        k = int(back[i, k])
        out[i - 1] = labels[k]
    return out


def _one_blas_thread() -> Any:
    """Limit BLAS to one thread until ``.restore_original_limits()``; None without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a librosa dependency
        return None
    return threadpool_limits(limits=1, user_api="blas")


def forward_offsets(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], starts: np.ndarray, beat_s: float
) -> dict[int, int]:
    """Edit minus raw position (samples at ``FRAME_SR``) of every forward-played beat.

    A run of forward beats contiguous in both files has one offset: the
    median of the cross-correlation lags of up to ``OFFSET_PROBES`` of its
    beats spread over the run (one beat alone can lock onto the wrong
    period of a filtered or repetitive passage).
    """
    runs: list[list[Move]] = []
    prev: Move | None = None
    for m in moves:
        if m.kind != FWD:
            prev = None
            continue
        if prev is not None and prev.beat == m.beat - 1 and abs(prev.dst_end_s - m.dst_start_s) < 1e-6:
            runs[-1].append(m)
        else:
            runs.append([m])
        prev = m
    n_beat = int(beat_s * FRAME_SR)
    out: dict[int, int] = {}
    for run in runs:
        picks = np.unique(np.linspace(0, len(run) - 1, min(OFFSET_PROBES, len(run))).round().astype(int))
        lags = []
        for i in picks:
            m = run[i]
            src0 = int(round(starts[m.beat] * FRAME_SR))
            dst0 = int(round(m.dst_start_s * FRAME_SR))
            lags.append(refine_offset(raw_y, edit_y, src0, dst0, max(n_beat, BAND_NFFT)))
        offset = int(np.median(lags))
        for m in run:
            out[m.beat] = offset
    return out


def edit_file_gain(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    moves: list[Move],
    starts: np.ndarray,
    ends: np.ndarray,
    fwd_offset: dict[int, int],
    *,
    share: float = 0.6,
    tolerance_db: float = 0.5,
) -> float:
    """The edit file's overall gain (dB) when most forward beats share one level change, else 0.

    A whole edit turned up or down (a louder export) shows as the same level
    difference on most forward-played beats; an editor's GAIN covers some
    sections, not ``share`` of the song at one value.
    """
    diffs = []
    for m in moves:
        if m.kind != FWD or m.beat not in fwd_offset:
            continue
        a = int(round(starts[m.beat] * FRAME_SR))
        b = int(round(ends[m.beat] * FRAME_SR))
        o = fwd_offset[m.beat]
        if a + o < 0 or b + o > edit_y.shape[0] or b <= a:
            continue
        pr = float(np.mean(np.square(raw_y[a:b], dtype=np.float64)))
        pe = float(np.mean(np.square(edit_y[a + o : b + o], dtype=np.float64)))
        if pr > 1e-8 and pe > 1e-10:
            diffs.append(10.0 * math.log10(pe / pr))
    if len(diffs) < 8:
        return 0.0
    d = np.asarray(diffs)
    med = float(np.median(d))
    if abs(med) < tolerance_db or np.mean(np.abs(d - med) < tolerance_db) < share:
        return 0.0
    return med


def onset_shift(y: np.ndarray, beat_times: np.ndarray, *, search_s: float = 0.04, hop: int = 32) -> float:
    """Seconds to add to ``beat_times`` so that they sit on the attacks of mono ``y`` (``FRAME_SR``).

    The beat tracker works on ~23 ms frames; this refines its phase to ~1.5
    ms: the shift (within ``search_s``) that maximises the summed rise of
    the short-time energy at the beats.
    """
    bt = np.asarray(beat_times, dtype=np.float64)
    if bt.size < 4:
        return 0.0
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0] // hop
    energy = np.square(y[: n * hop]).reshape(n, hop).sum(axis=1)
    rise = np.maximum(0.0, np.log(energy[2:] + 1e-9) - np.log(energy[:-2] + 1e-9))
    rise = np.concatenate([[0.0], rise, [0.0]])  # frame k: rise from k - 1 to k + 1
    shifts = np.arange(-int(search_s * FRAME_SR / hop), int(search_s * FRAME_SR / hop) + 1)
    idx = np.round(bt * FRAME_SR / hop).astype(np.int64)
    best, best_score = 0, -1.0
    for sh in shifts:
        k = idx + sh
        ok = (k >= 0) & (k < n)
        score = float(rise[k[ok]].sum())
        if score > best_score:
            best, best_score = int(sh), score
    return best * hop / FRAME_SR


def grid_shift(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    moves: list[Move],
    starts: np.ndarray,
    fwd_offset: dict[int, int],
    *,
    search_s: float = 0.04,
) -> float | None:
    """Seconds to add to the raw beat times so that splices fall where the edit has them.

    The beat tracker's grid can sit a few milliseconds off the beats the
    edit was cut on. At every splice between two forward runs whose raw
    positions are not contiguous (a CUT between them), the exact splice sample is
    where the edit stops matching the first run and starts matching the
    second (least squared error, within ``search_s``); the median of those
    splice positions minus the grid's is the shift. None when there is no such splice.
    """
    found = []
    win = int(search_s * FRAME_SR)
    n_e, n_r = edit_y.shape[0], raw_y.shape[0]
    for a, b in zip(moves, moves[1:] + [None]):
        if b is None:
            break
        if a.kind != FWD:
            continue
        # the next forward move after any CUTs
        k = moves.index(b)
        while k < len(moves) and moves[k].kind == CUT:
            k += 1
        if k >= len(moves) or moves[k].kind != FWD or moves[k].beat == a.beat + 1:
            continue
        b = moves[k]
        da, db = fwd_offset.get(a.beat), fwd_offset.get(b.beat)
        if da is None or db is None:
            continue
        tau0 = int(round(starts[b.beat] * FRAME_SR)) + db  # the grid's splice, edit samples
        lo, hi = tau0 - win, tau0 + win
        if lo - da < 0 or lo - db < 0 or hi - da > n_r or hi - db > n_r or lo < 0 or hi > n_e:
            continue
        e = edit_y[lo:hi].astype(np.float64)
        ea = (e - raw_y[lo - da : hi - da]) ** 2
        eb = (e - raw_y[lo - db : hi - db]) ** 2
        cost = np.concatenate([[0.0], np.cumsum(ea)]) + (eb.sum() - np.concatenate([[0.0], np.cumsum(eb)]))
        if float(e @ e) < 1e-6 or cost.min() > 0.05 * float(e @ e):
            continue  # the edit is not the two runs spliced here
        found.append((lo + int(np.argmin(cost)) + _splice_bias() - tau0) / FRAME_SR)
    if not found:
        return None
    return float(np.median(found))


def _splice_bias() -> int:
    """Samples (``FRAME_SR``) from a rendered splice's least-squares split point to the splice itself.

    ``engine.render`` crossfades a splice over the ``CROSSFADE_S`` before it
    (equal power, so symmetric): the split between "outgoing" and
    "incoming" lands mid-crossfade, half a crossfade early.
    """
    from engine.render import CROSSFADE_S

    return int(round(0.5 * CROSSFADE_S * FRAME_SR))


def _splice_at(
    raw_y: np.ndarray, edit_y: np.ndarray, tau0: int, da: int, db: int, win: int
) -> int | None:
    """Edit sample where the edit stops matching raw at offset ``da`` and starts matching it at ``db``.

    Least squared error within ``win`` samples of ``tau0`` (each side as
    it is, else each side with its own least-squares gain: a GAIN, a fade);
    None when the window leaves either file or the edit is not those two
    pieces spliced there.
    """
    n_e, n_r = edit_y.shape[0], raw_y.shape[0]
    lo, hi = tau0 - win, tau0 + win
    if lo - da < 0 or lo - db < 0 or hi - da > n_r or hi - db > n_r or lo < 0 or hi > n_e:
        return None
    e = edit_y[lo:hi].astype(np.float64)
    ra = raw_y[lo - da : hi - da].astype(np.float64)
    rb = raw_y[lo - db : hi - db].astype(np.float64)
    ee = float(e @ e)
    if ee < 1e-6:
        return None
    k = _split(e, ra, rb)
    if k is not None:
        return lo + k
    # A side with a gain, a fade or a ramp's near-silent start (a FADE_IN after a
    # cut): each side scaled by its own least-squares gain.
    z = np.zeros(1)
    c_ee = np.concatenate([z, np.cumsum(e * e)])
    c_ea, c_aa = np.concatenate([z, np.cumsum(e * ra)]), np.concatenate([z, np.cumsum(ra * ra)])
    c_eb, c_bb = np.concatenate([z, np.cumsum(e * rb)]), np.concatenate([z, np.cumsum(rb * rb)])
    res_a = c_ee - c_ea**2 / np.maximum(c_aa, 1e-12)
    eb_sum, bb_sum = c_eb[-1] - c_eb, c_bb[-1] - c_bb
    res_b = (c_ee[-1] - c_ee) - eb_sum**2 / np.maximum(bb_sum, 1e-12)
    cost = res_a + res_b
    k = int(np.argmin(cost))
    if cost[k] > 0.05 * ee or k < 16 or k > cost.shape[0] - 17:
        return None
    return lo + k + _splice_bias()


def _edge_at(raw_y: np.ndarray, edit_y: np.ndarray, tau0: int, d: int, win: int, *, ends: bool) -> int | None:
    """Edit sample where the edit stops (``ends``) or starts matching raw at offset ``d``, within ``win`` of ``tau0``.

    A one-sided splice: the other side is something that is not raw at
    ``d`` (reversed, muted, stretched audio), modelled as anything but it:
    its cost per sample is the edit's own power. None when the window
    leaves either file, or the matching side does not match (residual over
    5 % of its power), or the best split is at the window's edge.
    """
    n_e, n_r = edit_y.shape[0], raw_y.shape[0]
    lo, hi = tau0 - win, tau0 + win
    if lo < 0 or hi > n_e or lo - d < 0 or hi - d > n_r:
        return None
    e = edit_y[lo:hi].astype(np.float64)
    res = (e - raw_y[lo - d : hi - d]) ** 2
    pw = e * e
    c_res = np.concatenate([[0.0], np.cumsum(res)])
    c_pw = np.concatenate([[0.0], np.cumsum(pw)])
    if ends:  # matching before the split, other after it
        cost = c_res + (c_pw[-1] - c_pw)
    else:  # other before the split, matching after it
        cost = c_pw + (c_res[-1] - c_res)
    k = int(np.argmin(cost))
    if k < 16 or k > cost.shape[0] - 17:
        return None
    match_res = c_res[k] if ends else c_res[-1] - c_res[k]
    match_pw = c_pw[k] if ends else c_pw[-1] - c_pw[k]
    if match_pw < 1e-6 or match_res > 0.05 * match_pw:
        return None
    return lo + k + _splice_bias()


def _xfade_split(e: np.ndarray, pa: np.ndarray, pb: np.ndarray, k0: int, *, span: int = 48) -> tuple[int, float]:
    """The splice index (and its squared error) of ``e`` = ``pa`` then ``pb`` with ``engine.render``'s crossfade.

    The renderer fades ``pa`` out and ``pb`` in over the ``CROSSFADE_S``
    before the splice (equal power, over ``sqrt(1 + 2 r cos sin)`` with
    ``r`` the two sides' correlation there). A two-piece least-squares
    split lands inside that window, how far in depending on the sides'
    levels; modelling the window puts the splice on the sample. Searched
    within ``span`` of ``k0``; ``(k0, inf)`` when nothing fits the window.
    """
    from engine.render import CROSSFADE_S

    xf = int(round(CROSSFADE_S * FRAME_SR))
    n = e.shape[0]
    ca = np.concatenate([[0.0], np.cumsum((e - pa) ** 2)])
    cb = np.concatenate([[0.0], np.cumsum((e - pb) ** 2)])
    t = (np.arange(xf, dtype=np.float64) + 0.5) / xf
    f_in, f_out = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)
    best, best_cost = k0, np.inf
    for k in range(max(xf, k0 - span), min(n, k0 + span) + 1):
        a, b = pa[k - xf : k], pb[k - xf : k]
        den = math.sqrt(float(a @ a) * float(b @ b))
        r = min(1.0, max(0.0, float(a @ b) / den)) if den > 0 else 0.0
        norm = np.sqrt(1.0 + 2.0 * r * f_in * f_out)
        mix = (f_out * a + f_in * b) / norm
        cost = ca[k - xf] + float(np.sum((e[k - xf : k] - mix) ** 2)) + (cb[n] - cb[k])
        if cost < best_cost:
            best, best_cost = k, cost
    return best, best_cost


def _split(e: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> int | None:
    """Index where ``e`` stops being ``pa`` and starts being ``pb`` (same lengths), or None.

    A two-piece least-squares split, then placed on the sample with the
    render's crossfade modelled (``_xfade_split``). None when that fit
    leaves over 5 % of ``e``'s power or the split sits at the window's edge.
    """
    ea = (e - pa) ** 2
    eb = (e - pb) ** 2
    cost = np.concatenate([[0.0], np.cumsum(ea)]) + (eb.sum() - np.concatenate([[0.0], np.cumsum(eb)]))
    ee = float(e @ e)
    k = int(np.argmin(cost))
    if ee < 1e-6 or k < 16 or k > cost.shape[0] - 17:
        return None
    k, c = _xfade_split(e, pa, pb, k + _splice_bias())
    return k if c <= 0.05 * ee else None


def _reverse_anchor(raw_y: np.ndarray, edit_y: np.ndarray, t0: int, n: int, c_guess: int, search: int) -> int | None:
    """``c`` with ``edit[t] == raw[c - t]`` over edit samples ``[t0, t0 + n)`` (a reversed span), searched within ``search`` of ``c_guess``.

    None when no lag correlates above 0.9 or the windows leave the files.
    """
    p0 = c_guess - t0 - n + 1  # raw start of the time-reversed edit window
    lo, hi = p0 - search, p0 + n + search
    if t0 < 0 or t0 + n > edit_y.shape[0] or lo < 0 or hi > raw_y.shape[0] or n < 256:
        return None
    seg = edit_y[t0 : t0 + n][::-1].astype(np.float64)
    b = raw_y[lo:hi].astype(np.float64)
    from scipy.signal import correlate

    c = correlate(b, seg, mode="valid", method="fft")
    energy = np.concatenate([[0.0], np.cumsum(b * b)])
    win = energy[n:] - energy[:-n]
    score = c / np.sqrt(np.maximum(win, 1e-12) * max(float(seg @ seg), 1e-12))
    k = int(np.argmax(score))
    if score[k] < 0.9:
        return None
    return lo + k + t0 + n - 1


def _period_at(edit_y: np.ndarray, a: int, b: int, lag0: int, spread: int) -> int | None:
    """Lag (samples) within ``spread`` of ``lag0`` at which ``edit_y[a:b]`` best repeats itself (None if it does not).

    A stutter's slices repeat sample for sample: the normalised correlation
    of the span with itself one slice later is ~1 at the exact slice length.
    """
    lo_lag = max(1, lag0 - spread)
    a = max(a, 0)
    b = min(b, edit_y.shape[0])
    if b - a - (lag0 + spread) < 256:
        return None
    n = b - a - (lag0 + spread)
    x = edit_y[a : a + n].astype(np.float64)
    best, best_c = None, 0.9
    ex = float(x @ x)
    for lag in range(lo_lag, lag0 + spread + 1):
        y = edit_y[a + lag : a + lag + n].astype(np.float64)
        den = math.sqrt(ex * float(y @ y))
        if den <= 0:
            continue
        c = float(x @ y) / den
        if c > best_c:
            best, best_c = lag, c
    return best


def splice_starts(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    moves: list[Move],
    starts: np.ndarray,
    fwd_offset: dict[int, int],
    *,
    ends: np.ndarray | None = None,
    search_s: float = 0.04,
) -> dict[int, float]:
    """Raw start times (s) of the beats at the edit's splices, where the edit says they are.

    After one global grid shift the tracker's local timing error remains;
    every splice rendered on the grid then moves the rest of the render by
    that error. Here each splice is measured: at a jump between two forward
    runs (offsets ``da``, ``db``) the splice sample ``tau`` puts the first
    run's end at ``tau - da`` and the second run's start at ``tau - db``; a
    LOOP between two forward runs is ``(db - da) / repeats`` samples long,
    and the splice into its second pass puts its end at ``tau - da``. A
    walk that opens (closes) with CUTs starts (ends) its first (last)
    forward beat at the edit's first (last) sample.
    Returns ``{beat: start_s}`` for the beats whose start was measured.
    """
    win = int(search_s * FRAME_SR)
    out: dict[int, float] = {}
    if ends is None:
        ends = np.append(starts[1:], starts[-1] + np.median(np.diff(starts)))

    def put(beat: int, samples: float) -> None:
        t = samples / FRAME_SR
        if 0 < beat < starts.shape[0] and beat not in out and abs(t - starts[beat]) <= 0.75 * search_s:
            out[beat] = t

    for i, a in enumerate(moves):
        if a.kind != FWD or a.beat not in fwd_offset:
            continue
        k = i + 1
        while k < len(moves) and moves[k].kind == CUT:
            k += 1
        if k >= len(moves):
            break
        da = fwd_offset[a.beat]
        b = moves[k]
        if b.kind == FWD and b.beat != a.beat + 1 and b.beat in fwd_offset:
            db = fwd_offset[b.beat]
            tau = _splice_at(raw_y, edit_y, int(round(starts[b.beat] * FRAME_SR)) + db, da, db, win)
            if tau is None:
                # no clean splice to see (a quiet passage, effects on a side): the jump
                # is still da - db exactly; put the splice midway between the grid's guesses
                tau = 0.5 * (starts[a.beat + 1] * FRAME_SR + da + starts[b.beat] * FRAME_SR + db)
            if a.beat + 1 < starts.shape[0]:
                put(a.beat + 1, tau - da)
                put(b.beat, tau - db)
        elif b.kind == LOOP and k == i + 1 and b.beat == a.beat + 1 and k + 1 < len(moves):
            c = moves[k + 1]
            e = b.beat + b.n_beats
            if c.kind != FWD or c.beat != e or c.beat not in fwd_offset or e >= starts.shape[0]:
                continue
            reps = LOOP_REPEATS[b.slot]
            length = (fwd_offset[c.beat] - da) / reps
            grid_len = (starts[e] - starts[b.beat]) * FRAME_SR
            if abs(length - grid_len) > win:
                continue
            L = int(round(length))
            tau = _splice_at(raw_y, edit_y, int(round(starts[e] * FRAME_SR)) + da, da, da + L, win)
            if tau is not None:
                put(e, tau - da)
                put(b.beat, tau - da - L)
    # Every other structural move between forward beats: its own splices.
    for i, m in enumerate(moves):
        if m.kind in (FWD, CUT):
            continue
        b, e = m.beat, m.beat + m.n_beats
        prev = moves[i - 1] if i > 0 else None
        nxt = moves[i + 1] if i + 1 < len(moves) else None
        da = dc = None
        if prev is not None and prev.kind == FWD and prev.beat == b - 1 and abs(prev.dst_end_s - m.dst_start_s) < 1e-6:
            da = fwd_offset.get(prev.beat)
        if nxt is not None and nxt.kind == FWD and nxt.beat == e and abs(nxt.dst_start_s - m.dst_end_s) < 1e-6:
            dc = fwd_offset.get(nxt.beat)
        s0 = int(round(starts[b] * FRAME_SR))
        n_beat = int(round((ends[b] - starts[b]) * FRAME_SR))
        dst0 = int(round(m.dst_start_s * FRAME_SR))
        if m.kind == LOOP and e < starts.shape[0]:
            reps = LOOP_REPEATS[m.slot]
            grid_len = (starts[e] - starts[b]) * FRAME_SR
            d0 = da if da is not None else refine_offset(raw_y, edit_y, s0, dst0, n_beat)
            if dc is not None:
                length = (dc - d0) / reps
            else:  # where the second pass starts matching the loop's first beat
                length = refine_offset(raw_y, edit_y, s0, dst0 + int(round(grid_len)), n_beat) - d0
            if abs(length - grid_len) > win:
                continue
            L = int(round(length))
            tau = _splice_at(raw_y, edit_y, int(round(starts[e] * FRAME_SR)) + d0, d0, d0 + L, win)
            if tau is not None:
                put(e, tau - d0)
                put(b, tau - d0 - L)
        elif m.kind == STUT:
            slot = _stutter_slot(edit_y, m, float(ends[b] - starts[b]), m.slot)
            v = STUTTER_SLICES[slot]
            p_grid = int(round(v * n_beat))
            end = int(round(m.dst_end_s * FRAME_SR))
            period = _period_at(edit_y, dst0 + 200, end - 200, p_grid, max(4, min(60, p_grid // 8)))
            if period is None:
                continue
            first = None
            if da is not None:  # the first slice continues the forward run: the splice back into it
                tau = _splice_at(raw_y, edit_y, s0 + da + period, da, da + period, min(win, period // 2 - 1))
                if tau is not None:
                    first = tau - da - period
            if first is not None:
                put(b, first)
            base = out.get(b, starts[b]) * FRAME_SR
            if b + 1 < starts.shape[0]:
                put(b + 1, base + period / v)
        elif m.kind == REV and e < starts.shape[0]:
            # the reversed span is known up to one constant c (edit[t] = raw[c - t]):
            # found from its middle, then both of its splices are two-sided
            s1 = int(round(starts[e] * FRAME_SR))
            end = int(round(m.dst_end_s * FRAME_SR))
            mid_n = min(end - dst0 - 2 * win, 2 * FRAME_SR)
            c_guess = dst0 + s1 - 1
            c = _reverse_anchor(raw_y, edit_y, dst0 + win, mid_n, c_guess, win) if mid_n > 0 else None
            if c is None:
                continue
            if da is not None:
                lo, hi = s0 + da - win, s0 + da + win
                if lo - da >= 0 and c - hi + 1 >= 0 and hi <= edit_y.shape[0] and c - lo < raw_y.shape[0]:
                    k = _split(edit_y[lo:hi].astype(np.float64), raw_y[lo - da : hi - da].astype(np.float64),
                               raw_y[c - hi + 1 : c - lo + 1][::-1].astype(np.float64))
                    if k is not None:
                        put(b, lo + k - da)
            if dc is not None:
                lo, hi = s1 + dc - win, s1 + dc + win
                if lo - dc >= 0 and hi - dc <= raw_y.shape[0] and c - hi + 1 >= 0 and hi <= edit_y.shape[0] and c - lo < raw_y.shape[0]:
                    k = _split(edit_y[lo:hi].astype(np.float64), raw_y[c - hi + 1 : c - lo + 1][::-1].astype(np.float64),
                               raw_y[lo - dc : hi - dc].astype(np.float64))
                    if k is not None:
                        put(e, lo + k - dc)
        elif m.kind == SIL:
            # the muted span is known too: zeros, crossfaded like any other side
            if da is not None:
                lo, hi = s0 + da - win, s0 + da + win
                if lo - da >= 0 and lo >= 0 and hi <= edit_y.shape[0] and hi - da <= raw_y.shape[0]:
                    e_w = edit_y[lo:hi].astype(np.float64)
                    k = _split(e_w, raw_y[lo - da : hi - da].astype(np.float64), np.zeros_like(e_w))
                    if k is not None:
                        put(b, lo + k - da)
            if dc is not None and e < starts.shape[0]:
                s1 = int(round(starts[e] * FRAME_SR))
                lo, hi = s1 + dc - win, s1 + dc + win
                if lo - dc >= 0 and lo >= 0 and hi <= edit_y.shape[0] and hi - dc <= raw_y.shape[0]:
                    e_w = edit_y[lo:hi].astype(np.float64)
                    k = _split(e_w, np.zeros_like(e_w), raw_y[lo - dc : hi - dc].astype(np.float64))
                    if k is not None:
                        put(e, lo + k - dc)
        elif m.kind == SPEED:
            # the stretched side is unknown sample for sample: a one-sided splice
            if da is not None:
                tau = _edge_at(raw_y, edit_y, s0 + da, da, win, ends=True)
                if tau is not None:
                    put(b, tau - da)
            # the stretcher's last samples still resemble the raw just before the
            # next run: its end is read from the offsets instead. Playing the
            # span at rate r moves the edit by span * (1 / r - 1) samples.
            rate = SPEED_RATES[m.slot]
            if da is not None and dc is not None and b in out and e < starts.shape[0]:
                put(e, out[b] * FRAME_SR + (dc - da) / (1.0 / rate - 1.0))
    # The edit's own ends are splices too: a walk that opens with CUTs plays
    # its first forward beat from edit sample 0, and one that closes with
    # CUTs ends its last forward beat at the edit's last sample.
    played = [m for m in moves if m.kind != CUT]
    if played and moves[0].kind == CUT and played[0].kind == FWD and played[0].beat in fwd_offset:
        put(played[0].beat, -fwd_offset[played[0].beat])
    if played and moves[-1].kind == CUT and played[-1].kind == FWD and played[-1].beat in fwd_offset:
        put(played[-1].beat + 1, edit_y.shape[0] - fwd_offset[played[-1].beat])
    return out


class _ExtendedAnalysis:
    """What ``plan_from_actions`` reads: the raw audio with the extended grid."""

    def __init__(self, audio: Any, sha256: str, tempo_bpm: float, starts_s: np.ndarray, first_real: int, downbeats: np.ndarray) -> None:
        from engine.grid import Grid

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
) -> PairLabels:
    """Infer the edit that turned ``raw_path`` into ``edit_path`` (see the module docstring).

    Parameters:
        raw_path, edit_path: the two audio files (any format ``engine.audio`` reads).
        name: pair name (default: the raw file's stem).
        cache: the feature cache for ``engine.analysis.analyze``.
        config: DP scores (``AlignConfig``).
        effects: also find effects on forward-played beats (else they are KEEP).

    Returns:
        ``PairLabels``; ``alignable`` False (and no labels) when the edit
        does not match the raw song.
    """
    import time

    from engine.analysis import analyze
    from engine.audio import analysis_mono, load_audio
    from engine.plan import plan_from_actions

    raw_path, edit_path = os.fspath(raw_path), os.fspath(edit_path)
    name = name or os.path.splitext(os.path.basename(raw_path))[0]
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    an = analyze(raw_path, cache=cache)
    edit_audio = load_audio(edit_path)
    edit_y = analysis_mono(edit_audio)
    seconds["load"] = time.perf_counter() - t
    t = time.perf_counter()
    raw_f = frame_features(an.y, variants=True)
    edit_f = frame_features(edit_y)
    starts, ends, first_real = extended_grid(an.grid.beat_times, an.audio.duration_s, tempo_bpm=an.grid.tempo_bpm)
    seconds["frames"] = time.perf_counter() - t
    t = time.perf_counter()
    beat_s = grid_period(smooth_beats(an.grid.beat_times)) if an.n_beats >= 4 else float(np.median(ends - starts))
    score, moves, s = align(raw_f, edit_f, starts, ends, edit_audio.duration_s, config=config, beat_s=beat_s)
    moves = merge_speed_runs(loop_phase(an.y, edit_y, moves, starts, ends), starts, ends)
    seconds["align"] = time.perf_counter() - t
    n_beats = an.n_beats
    result = PairLabels(
        name=name,
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
    to_f = FRAME_SR / FRAME_HOP
    starts_f, ends_f = starts * to_f, ends * to_f
    if not moves:
        result.reason = "no alignment path reaches the end of the edit"
        return result
    frame_scores = [_move_frame_scores(m, s, edit_f, starts_f, ends_f) for m in moves]
    for m, fs in zip(moves, frame_scores):
        m.match = float(fs.mean()) if fs.size else 1.0
    loud = ~edit_f.silent
    path = np.zeros(edit_f.n_frames)
    for m, fs in zip(moves, frame_scores):
        t0 = int(round(m.dst_start_s * to_f))
        path[t0 : t0 + fs.size] = fs[: max(0, edit_f.n_frames - t0)]
    result.match = float(path[loud].mean()) if loud.any() else 0.0
    if result.match < UNALIGNABLE_SIM:
        result.reason = f"the edit does not match the raw song (mean similarity {result.match:.2f} < {UNALIGNABLE_SIM})"
        log.warning("%s: unalignable: %s", name, result.reason)
        return result
    result.alignable = True

    # effects and amounts, per extended beat; many tiny BLAS products: one thread
    # (idle BLAS threads spinning against other processes cost ~10x here)
    t = time.perf_counter()
    limiter = _one_blas_thread()
    n_ext = starts.shape[0]
    ext_type = ["KEEP"] * n_ext
    ext_slot = [0] * n_ext
    ext_conf = np.ones(n_ext, dtype=np.float32)
    ext_group = np.zeros(n_ext, dtype=np.int64)  # moves that are one action
    raw_sr, edit_sr = an.audio.sample_rate, edit_audio.sample_rate
    fwd_offset = forward_offsets(an.y, edit_y, moves, starts, beat_s)
    kept = drop_false_speeds(moves, fwd_offset, starts, ends)
    if sum(m.kind == SPEED for m in kept) != sum(m.kind == SPEED for m in moves):
        moves = kept
        fwd_offset = forward_offsets(an.y, edit_y, moves, starts, beat_s)
    # the grid's phase: where the edit's splices really are, else where the raw beats' attacks are
    shift_s = grid_shift(an.y, edit_y, moves, starts, fwd_offset)
    if shift_s is None:
        shift_s = onset_shift(an.y, starts[first_real : first_real + n_beats])
    if shift_s:
        log.debug("%s: beat grid moved by %+.1f ms to the edit's splices", name, 1e3 * shift_s)
        starts = starts.copy()
        ends = ends.copy()
        starts[1:] += shift_s
        ends[:-1] += shift_s
    measured = splice_starts(an.y, edit_y, moves, starts, fwd_offset, ends=ends)
    if measured:
        fixed = starts.copy()
        for beat, t_s in measured.items():
            fixed[beat] = t_s
        if np.all(np.diff(fixed) > 0.25 * beat_s):
            log.debug("%s: %d beat starts moved to the edit's splices", name, len(measured))
            starts = fixed
            ends = ends.copy()
            ends[:-1] = starts[1:]
    file_gain_db = edit_file_gain(an.y, edit_y, moves, starts, ends, fwd_offset)
    if file_gain_db:
        log.info("%s: the edit file is %+.1f dB overall: judging effects without it", name, file_gain_db)
        scale = np.float32(10.0 ** (-file_gain_db / 20.0))
        edit_y = edit_y * scale
        edit_audio = type(edit_audio)(edit_audio.samples * scale, edit_audio.sample_rate, edit_audio.path)
    loud_db = 10.0 * math.log10(float(np.percentile(np.square(an.y, dtype=np.float64), 99.5)) + 1e-20)
    quiet_db = loud_db - QUIET_BEAT_DB
    run: list[tuple[int, BeatEffect]] = []  # consecutive forward beats judged from candidates
    run_start = 0  # raw sample (FRAME_SR) where the current forward run began
    tail_cache: dict = {}  # reverb/delay candidate renders (beat_effect)

    def flush_run() -> None:
        for (b, _), (tname, slot) in zip(run, label_run([e for _, e in run])):
            ext_type[b], ext_slot[b] = tname, slot
        run.clear()

    for gi, m in enumerate(moves):
        span = range(m.beat, m.beat + m.n_beats)
        conf = float(np.clip(m.match, 0.0, 1.0))
        if m.kind == FWD:
            src0 = int(round(starts[m.beat] * FRAME_SR))
            n = int(round((ends[m.beat] - starts[m.beat]) * FRAME_SR))
            offset = fwd_offset[m.beat]
            if effects:
                d0 = src0 + offset
                rs = int(round(starts[m.beat] * raw_sr))
                rn = int(round((ends[m.beat] - starts[m.beat]) * raw_sr))
                es = int(round(d0 / FRAME_SR * edit_sr))
                en = int(round(rn / raw_sr * edit_sr))
                raw_st = an.audio.samples[:, rs : rs + rn]
                edit_st = edit_audio.samples[:, max(es, 0) : es + en]
                if edit_st.shape[1] != raw_st.shape[1]:
                    edit_st = raw_st = None
                t0 = int(round(d0 / FRAME_HOP))
                r0 = int(round(src0 / FRAME_HOP))
                k = max(1, min(int(n / FRAME_HOP), edit_f.n_frames - t0, raw_f.n_frames - r0))
                votes = None
                if k > 0 and t0 >= 0:
                    e = edit_f.shape[t0 : t0 + k]
                    votes = np.array(
                        [float(np.mean(np.sum(e * v[r0 : r0 + k], axis=1))) for v in [raw_f.shape, *raw_f.variants]]
                    )
                if gi == 0 or moves[gi - 1].kind != FWD or moves[gi - 1].beat != m.beat - 1:
                    run_start = src0
                eff = beat_effect(
                    an.y, edit_y, src0, d0, n,
                    beat_s=beat_s, raw_st=raw_st, edit_st=edit_st, pitch_votes=votes, quiet_db=quiet_db,
                    run_start=run_start, effect_sr=int(raw_sr), tail_cache=tail_cache,
                    prev_effect=(ext_type[m.beat - 1], ext_slot[m.beat - 1]) if run_start < src0 and m.beat > 0 else None,
                )
                ext_type[m.beat] = eff.type
                ext_slot[m.beat] = eff.slot
                if eff.candidates is None or (run and run[-1][0] != m.beat - 1):
                    flush_run()
                if eff.candidates is not None:
                    run.append((m.beat, eff))
                conf *= float(1.0 - math.exp(-max(eff.margin, 0.0) / 0.5))
            ext_group[m.beat] = -1  # grouped later by label
        else:
            flush_run()
            tname = {CUT: "CUT", SIL: "SILENCE", REV: "REVERSE", LOOP: "LOOP", STUT: "STUTTER", SPEED: "SPEED"}[m.kind]
            slot = m.slot
            if m.kind == STUT:
                slot = _stutter_slot(edit_y, m, float(ends[m.beat] - starts[m.beat]), m.slot)
            group = gi + 1
            if m.kind == SPEED and gi > 0:
                # one SPEED played over several DP moves at one rate is one action
                # (one stretched segment, as an editor makes it)
                pm = moves[gi - 1]
                if pm.kind == SPEED and pm.slot == m.slot and pm.beat + pm.n_beats == m.beat:
                    group = int(ext_group[pm.beat])
            for b in span:
                ext_type[b] = tname
                ext_slot[b] = slot
                ext_group[b] = group
            ext_conf[list(span)] = conf
        if m.kind == FWD:
            ext_conf[m.beat] = conf
    flush_run()
    if limiter is not None:
        limiter.restore_original_limits()
    seconds["effects"] = time.perf_counter() - t

    _extend_fades(ext_type, ext_slot, ext_group)

    # walk: structural moves are actions; forward beats group by label
    walk: list[tuple[str, str, str]] = []
    ext_size = np.zeros(n_ext, dtype=np.int64)
    ext_start = np.zeros(n_ext, dtype=bool)
    b = 0
    while b < n_ext:
        e = b + 1
        if ext_group[b] > 0:
            while e < n_ext and ext_group[e] == ext_group[b]:
                e += 1
            size_list = _sizes_for(e - b)
        else:
            while e < n_ext and ext_group[e] < 0 and ext_type[e] == ext_type[b] and ext_slot[e] == ext_slot[b]:
                e += 1
            size_list = _sizes_for(e - b)
            if ext_type[b] in ("FADE_IN", "FADE_OUT") and len(size_list) > 1:
                # one ramp of the largest size that fits; the rest of the run is plain
                # (after a fade-in, before a fade-out: the ramp's near-unity end)
                ramp = vocab.SIZE_BEATS[size_list[0]]
                if ext_type[b] == "FADE_IN":
                    for i in range(b + ramp, e):
                        ext_type[i] = "KEEP"
                    e = b + ramp
                else:
                    for i in range(b, e - ramp):
                        ext_type[i] = "KEEP"
                    continue  # re-read from b: the KEEP beats, then the ramp
                size_list = [size_list[0]]
        tname = ext_type[b]
        amount = "NEUTRAL" if tname in vocab.NEUTRAL_ONLY else vocab.AMOUNTS[AMOUNT_SLOTS[ext_slot[b]]]
        c = b
        for si in size_list:
            walk.append((tname, vocab.SIZES[si], amount))
            ext_start[c] = True
            ext_size[c : c + vocab.SIZE_BEATS[si]] = si
            c += vocab.SIZE_BEATS[si]
        b = e
    plan = plan_from_actions(
        _ExtendedAnalysis(an.audio, an.sha256, an.grid.tempo_bpm, starts, first_real, an.grid.downbeats), walk
    )
    real = np.arange(first_real, first_real + n_beats)
    real = np.clip(real, 0, n_ext - 1)
    labels = np.zeros((n_beats, 3), dtype=np.int64)
    for i, b in enumerate(real):
        tname = ext_type[b]
        labels[i, 0] = vocab.type_index(tname)
        labels[i, 1] = ext_size[b]
        labels[i, 2] = int(vocab.Amount.NEUTRAL) if tname in vocab.NEUTRAL_ONLY else AMOUNT_SLOTS[ext_slot[b]]
    result.labels = labels
    result.confidence = ext_conf[real].astype(np.float32)
    result.action_start = ext_start[real]
    result.walk = walk
    result.plan = plan
    return result


# --------------------------------------------------------------------------- evaluation

STRUCTURAL_TYPES: tuple[str, ...] = ("KEEP", "CUT", "LOOP", "REVERSE", "STUTTER", "SILENCE")


def truth_on_beats(plan_doc: dict[str, Any], beat_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True (type, amount) indices of each analysed beat from a label plan's actions.

    A beat takes the action whose source span holds its middle (KEEP/NEUTRAL
    where none does). Works whatever grid the plan was made on.

    Returns ``type_idx (n,)``, ``amount_idx (n,)`` int64.
    """
    bt = np.asarray(beat_times, dtype=np.float64)
    n = bt.shape[0]
    period = float(np.median(np.diff(bt))) if n > 1 else 0.5
    mids = bt + 0.5 * np.append(np.diff(bt), period) if n else bt
    t = np.zeros(n, dtype=np.int64)
    a = np.full(n, int(vocab.Amount.NEUTRAL), dtype=np.int64)
    for act in plan_doc.get("actions", []):
        sel = (mids >= act["start_s"]) & (mids < act["end_s"])
        t[sel] = vocab.type_index(act["type"])
        a[sel] = vocab.amount_index(act["amount"])
    return t, a


def _boundaries_true(plan_doc: dict[str, Any], beat_times: np.ndarray) -> list[float]:
    """Start and end (in fractional analysed-beat units) of every non-KEEP label action."""
    bt = np.asarray(beat_times, dtype=np.float64)
    idx = np.arange(bt.shape[0], dtype=np.float64)
    out = []
    for act in plan_doc.get("actions", []):
        if act["type"] == "KEEP":
            continue
        for x in (act["start_s"], act["end_s"]):
            if bt[0] - 1e-6 <= x <= bt[-1] + 1e-6:
                out.append(float(np.interp(x, bt, idx)))
    return out


def _boundaries_pred(labels: np.ndarray, action_start: np.ndarray) -> np.ndarray:
    """Beat indices where a predicted non-KEEP action starts or ends."""
    n = labels.shape[0]
    keep = vocab.type_index("KEEP")
    out = set()
    for i in range(n):
        if not action_start[i] or labels[i, 0] == keep:
            continue
        out.add(i)
        j = i + 1
        while j < n and not action_start[j]:
            j += 1
        out.add(j)
    return np.asarray(sorted(out), dtype=np.float64)


@dataclass
class Evaluation:
    """Label inference against true labels, over all evaluated beats.

    Attributes:
        n_pairs, n_beats: how much was compared.
        beat_accuracy: share of beats whose type is right.
        structural_accuracy: the same over beats whose true type is structural.
        macro_f1: mean F1 over the types present in the truth or the predictions.
        amount_accuracy: share of right amounts where the type is right (amount types only).
        boundary_within_1: share of true non-KEEP action edges with a predicted edge within 1 beat.
        per_type: type -> (precision, recall, f1, support).
        unalignable: names of pairs reported unalignable.
    """

    n_pairs: int = 0
    n_beats: int = 0
    beat_accuracy: float = float("nan")
    structural_accuracy: float = float("nan")
    macro_f1: float = float("nan")
    amount_accuracy: float = float("nan")
    boundary_within_1: float = float("nan")
    per_type: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    unalignable: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        out = [
            f"pairs {self.n_pairs}, beats {self.n_beats}, unalignable {len(self.unalignable)}",
            f"beat accuracy {self.beat_accuracy:.4f}; structural types {self.structural_accuracy:.4f}; "
            f"macro-F1 {self.macro_f1:.4f}; amount accuracy {self.amount_accuracy:.4f}; "
            f"boundaries within 1 beat {self.boundary_within_1:.4f}",
            f"{'type':<11} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}",
        ]
        for t, (p, r, f, n) in self.per_type.items():
            out.append(f"{t:<11} {p:9.3f} {r:7.3f} {f:6.3f} {n:8d}")
        return out


class Evaluator:
    """Accumulates ``PairLabels`` against label plans; ``result()`` gives the ``Evaluation``."""

    def __init__(self) -> None:
        self.true_t: list[np.ndarray] = []
        self.true_a: list[np.ndarray] = []
        self.pred: list[np.ndarray] = []
        self.bound_hits = 0
        self.bound_total = 0
        self.unalignable: list[str] = []
        self.n_pairs = 0

    def add(self, result: PairLabels, plan_doc: dict[str, Any]) -> None:
        """Compare one pair (``plan_doc``: the label file's plan as a dict)."""
        self.n_pairs += 1
        if not result.alignable:
            self.unalignable.append(result.name)
            return
        t, a = truth_on_beats(plan_doc, result.beat_times)
        self.true_t.append(t)
        self.true_a.append(a)
        self.pred.append(result.labels)
        pb = _boundaries_pred(result.labels, result.action_start)
        for x in _boundaries_true(plan_doc, result.beat_times):
            self.bound_total += 1
            if pb.size and float(np.min(np.abs(pb - x))) <= 1.0 + 1e-6:
                self.bound_hits += 1

    def result(self) -> Evaluation:
        ev = Evaluation(n_pairs=self.n_pairs, unalignable=list(self.unalignable))
        if not self.pred:
            return ev
        tt = np.concatenate(self.true_t)
        ta = np.concatenate(self.true_a)
        pred = np.concatenate(self.pred)
        pt, pa = pred[:, 0], pred[:, 2]
        ev.n_beats = int(tt.shape[0])
        ev.beat_accuracy = float(np.mean(pt == tt))
        structural = np.isin(tt, [vocab.type_index(x) for x in STRUCTURAL_TYPES])
        ev.structural_accuracy = float(np.mean(pt[structural] == tt[structural])) if structural.any() else float("nan")
        f1s = []
        for i, name in enumerate(vocab.TYPES):
            tp = int(np.sum((pt == i) & (tt == i)))
            n_pred, n_true = int(np.sum(pt == i)), int(np.sum(tt == i))
            if n_pred == 0 and n_true == 0:
                continue
            p = tp / n_pred if n_pred else 0.0
            r = tp / n_true if n_true else 0.0
            f = 2 * p * r / (p + r) if p + r else 0.0
            ev.per_type[name] = (p, r, f, n_true)
            f1s.append(f)
        ev.macro_f1 = float(np.mean(f1s)) if f1s else float("nan")
        amount_types = np.array([t not in vocab.NEUTRAL_ONLY for t in vocab.TYPES])
        right = (pt == tt) & amount_types[tt]
        ev.amount_accuracy = float(np.mean(pa[right] == ta[right])) if right.any() else float("nan")
        ev.boundary_within_1 = self.bound_hits / self.bound_total if self.bound_total else float("nan")
        return ev


# --------------------------------------------------------------------------- dataset

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".aif", ".aiff")


def find_pairs(data_dir: str | os.PathLike) -> list[tuple[str, str, str, str | None]]:
    """``(name, raw_path, edit_path, label_path or None)`` for every pair in a data directory.

    A pair is ``input/NAME_raw.*`` with ``desired_output/NAME_edit.*``;
    ``labels/NAME.json`` when present.
    """
    from engine.errors import BadInput

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


def read_label_plan(label_path: str) -> dict[str, Any] | None:
    """The plan dict of a label file (``{"plan": {...}}`` or a bare plan), or None."""
    try:
        with open(label_path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read labels: %s", label_path, err)
        return None
    plan = doc.get("plan", doc) if isinstance(doc, dict) else None
    return plan if isinstance(plan, dict) and isinstance(plan.get("actions"), list) else None


def episode_of(result: PairLabels, analysis_grid: Any) -> Any:
    """A ``training.dataset.Episode`` of an alignable pair with its inferred labels."""
    from training.dataset import Episode
    from training.reward import output_beats

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
    from engine.atomic import atomic_path

    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
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
    agent_config: Any = None,
) -> DatasetReport:
    """Infer labels for every pair of ``data_dir`` and write the BC file (module docstring).

    The npz is in ``training.bc.BC_FORMAT`` (``BCData.load`` reads it; the
    examples come from walking ``EditEnv`` on the inferred labels, each
    weighted by the inferred confidence of its cursor beat) plus the
    ``beat_*``/``pair_*`` arrays of the module docstring. Plans go to
    ``<out stem>_plans/NAME.plan.json``. With ``evaluate``, pairs that have
    ``labels/NAME.json`` are scored (``Evaluation``); label files are never
    read during inference.
    """
    import time

    from engine.errors import BadInput
    from engine.plan import plan_to_dict, save_plan
    from engine.progress import progress
    from training.bc import BC_FORMAT, bc_examples
    from training.config import AgentConfig

    out_path = os.fspath(out_path)
    if not out_path.endswith(".npz"):
        raise BadInput(out_path, "the output must be a .npz file")
    pairs = find_pairs(data_dir)
    plan_dir = os.path.splitext(out_path)[0] + "_plans"
    os.makedirs(plan_dir, exist_ok=True)
    evaluator = Evaluator() if evaluate else None
    results: list[PairLabels] = []
    episodes = []
    unalignable: list[tuple[str, str]] = []
    t_start = time.perf_counter()
    audio_s = 0.0
    for name, raw, edit, label in progress(pairs, desc="labels", quiet=quiet):
        try:
            res = infer_pair(raw, edit, name=name, cache=cache)
        except BadInput as err:
            unalignable.append((name, str(err)))
            log.warning("%s: skipped: %s", name, err)
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
        episodes.append(episode_of(res, res.grid))
        save_plan(res.plan, os.path.join(plan_dir, f"{name}.plan.json"))
    elapsed = time.perf_counter() - t_start
    arrays: dict[str, np.ndarray] = {}
    n_examples = 0
    if episodes:
        bc = bc_examples(episodes, agent_config or AgentConfig(), quiet=quiet)
        cursors = example_cursors(bc.actions, bc.pair_ids, {i: e.n_beats for i, e in enumerate(episodes)})
        bc.confidence = np.array(
            [results[int(p)].confidence[c] for p, c in zip(bc.pair_ids, cursors)], dtype=np.float32
        )
        from dataclasses import fields as dc_fields

        arrays = {f.name: getattr(bc, f.name) for f in dc_fields(bc)}
        n_examples = len(bc)
    else:
        log.warning("no alignable pairs: the npz holds no examples")
    arrays["format"] = np.array(BC_FORMAT)
    arrays["labels_schema"] = np.array(BC_SCHEMA)
    offsets = np.cumsum([0] + [r.labels.shape[0] for r in results]).astype(np.int64)
    n_feat = results[0].features.shape[1] if results else 0
    arrays.update(
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
        plans=np.asarray([json.dumps(plan_to_dict(r.plan)) for r in results], dtype=str),
        match=np.asarray([r.match for r in results], dtype=np.float32),
        unalignable_names=np.asarray([u[0] for u in unalignable], dtype=str),
        unalignable_reasons=np.asarray([u[1] for u in unalignable], dtype=str),
    )
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


# --------------------------------------------------------------------------- checks


def msstft_distance(a: np.ndarray, b: np.ndarray, *, sizes: tuple[int, ...] = (512, 1024, 2048)) -> float:
    """Multi-scale STFT distance of mono signals ``a`` and ``b`` (``(n,)``, one rate).

    ``a`` is cut or zero-padded to ``b``'s length. Per FFT size (hop a
    quarter of it): spectral convergence ``|| |A| - |B| ||_F / || |B| ||_F``
    plus the mean absolute log-magnitude difference; summed over sizes.
    """
    from engine.spectrum import stft_magnitude

    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    a = a[: b.shape[0]] if a.shape[0] >= b.shape[0] else np.pad(a, (0, b.shape[0] - a.shape[0]))
    total = 0.0
    for n_fft in sizes:
        ma = stft_magnitude(a, n_fft=n_fft, hop_length=n_fft // 4)
        mb = stft_magnitude(b, n_fft=n_fft, hop_length=n_fft // 4)
        sc = float(np.linalg.norm(ma - mb) / max(np.linalg.norm(mb), 1e-9))
        lm = float(np.mean(np.abs(np.log(ma + 1e-5) - np.log(mb + 1e-5))))
        total += sc + lm
    return total


def render_check(result: PairLabels) -> tuple[float, float]:
    """``(d(render of the inferred plan, edit), d(raw, edit))`` in ``msstft_distance`` units (mono, 22,050 Hz)."""
    from engine.audio import Audio, analysis_mono, load_audio
    from engine.render import render_plan

    raw = load_audio(result.raw_path)
    edit = analysis_mono(load_audio(result.edit_path))
    rendered = render_plan(result.plan, raw.samples, raw.sample_rate)
    mono = analysis_mono(Audio(rendered, raw.sample_rate))
    return msstft_distance(mono, edit), msstft_distance(analysis_mono(raw), edit)
