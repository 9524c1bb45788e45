"""Step 3 of inferring BC labels: the structure of the edit, as a walk of moves over the raw beats.

A dynamic programme walks the raw beat grid (the analysis grid, extended
with pseudo-beats over the lead-in and the tail so that every raw sample
belongs to a beat: ``extended_grid``) and the edit timeline together:
state ``(raw beat j, edit frame t)``. Moves: play beat ``j`` forwards
(every effect type, fades, gain and pitch play forwards), CUT it, mute it
(SILENCE), reverse ``k`` beats, loop ``k`` beats ``n`` extra times (``k``
any length up to two bars, ``LOOP_SIZES``: an editor loops 3 or 6 beats too),
stutter ``k`` beats, play ``k`` beats at a SPEED rate. A move scores the
sum of ``S`` (``frames.similarity``) over the edit frames it explains
(along the diagonal, anti-diagonal, repeated diagonal or sloped line it
implies); stutter frames score their periodicity at the slice length (a
fraction of the tracker's own beat, as an editor slices its grid, or of
the grid's period); silence frames score whether the edit is silent there.
A REVERSE's line may move up to a beat along the raw song (an editor on
another beat grid reverses a span off every span of ours). Every non-KEEP
move pays a small prior cost so that ties go to the simplest edit;
structural moves may end a frame off the grid's guess. The path must end
where the edit ends (a forward beat may stop there, the raw song after it
CUT: another editor's last piece ends off our grid); a beam keeps the DP fast (a path scoring poorly per
frame is searched again with a wider one, while widening gains). The search runs in numba kernels
compiled once and cached on disk beside this file; it reads ``S`` and its
diagonal sums through ``stripes``, which makes them a stripe of raw
frames at a time as the DP moves along the raw beats.

The walk is then checked on the samples (``move_checks``). The beat period is the line through the grid (``grid_period``), not the
median beat.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numba
import numpy as np

from editorbot.engine import actions as vocab
from editorbot.engine.plan import beat_spans
from editorbot.training.labels.frames import FRAME_HOP, FRAME_SR, Frames, periodicity
from editorbot.training.labels.stripes import Rings, Stripes, backward_pass

log = logging.getLogger(__name__)

SMOOTH_BEATS = 8  # half-width in beats of the local line fit that removes beat-tracker jitter
STUTTER_CORR_MID = 0.8  # self-correlation at the slice length scoring 0 for a stutter frame (1 scores +1)
RETRY_WIDENINGS = 2  # times a poor path is searched again with a beam 4x as wide (AlignConfig.retry_score)
RETRY_GAIN = 0.01  # ... while the last widening gained at least this much similarity per edit frame
SPEED_PROBE = 12  # frames of a SPEED line scored before deciding to score the rest
SPEED_PROBE_SIM = 0.5  # ... only if their mean similarity reaches this
STUTTER_BEAT_LENGTHS = 4  # most common beat lengths of the grid whose slices are scored (plus the period's)
REVERSE_SHIFT_BEATS = 1.0  # the raw span a REVERSE plays may sit this far (in beats) off its beats'
REVERSE_SHIFT_SIM = 0.6  # ... where the shifted line's mean frame similarity reaches this

# Structural move kinds of the alignment DP.
FWD, CUT, SIL, REV, LOOP, STUT, SPEED = range(7)
KIND_NAMES = ("FWD", "CUT", "SILENCE", "REVERSE", "LOOP", "STUTTER", "SPEED")

# Lengths (beats) of a LOOP's span: every length up to two bars, then the vocabulary's longer sizes.
# The vocabulary has no 3-beat span; the walk tiles such a loop with its sizes (``infer._walk``).
LOOP_SIZES = tuple(sorted(set(range(1, 9)) | set(vocab.SIZE_BEATS)))
LOOP_REPEATS = tuple(int(v) for v in vocab.AMOUNT_TABLE["LOOP"] if not math.isnan(v))  # (1, 2, 3, 4)
STUTTER_SLICES = tuple(v for v in vocab.AMOUNT_TABLE["STUTTER"] if not math.isnan(v))  # beats per slice
SPEED_RATES = tuple(v for v in vocab.AMOUNT_TABLE["SPEED"] if not math.isnan(v))
AMOUNT_SLOTS = (0, 1, 3, 4)  # amount indices of the four non-NEUTRAL amounts, ascending value


@dataclass
class AlignConfig:
    """Scores and search limits of the structural DP (units: similarity x frames).

    Attributes
    ----------
    action_cost : float
        prior cost of each non-KEEP move.
    cut_cost : float
        extra cost per CUT beat.
    slack_cost : float
        cost of moving a forward beat's end by one frame.
    beam : int
        states kept per raw beat (retried 4x wider when no path survives).
    stutter_weight : float
        scale of the periodicity score of stutter frames.
    retry_score : float
        DP score per edit frame under which the search is
        repeated with a 4x wider beam, and again 4x wider while the
        path stays under it (``RETRY_WIDENINGS`` times; the best path
        is kept).
    wide_retry_max_s : float
        longest edit (seconds) whose poor path is widened a second
        time (16x); a missing path always is. On the foreign editor's
        4-minute pairs the 16x beam took 3/4 of the pair's time and
        returned the same path.
    sim_cache_mb : float
        the frame similarity is kept (made once, not twice) when it
        takes at most this many MiB (``stripes``): a pair up to ~2.4
        minutes a side. Longer pairs make it twice: where it was
        measured, faulting in a kept 0.5 GB cost as much CPU as making it
        again (a 4-minute pair's whole inference: 9.2 s CPU made twice,
        8.9 s kept).
    """

    action_cost: float = 1.5
    cut_cost: float = 0.3
    slack_cost: float = 0.4
    beam: int = 256
    stutter_weight: float = 1.0
    retry_score: float = 0.8
    wide_retry_max_s: float = 120.0
    sim_cache_mb: float = 256.0


# --------------------------------------------------------------------------- structural DP kernels

# numba is a librosa dependency; compiled functions are cached on disk (in __pycache__ beside this file)
_njit = numba.njit(cache=True, nogil=True)


@_njit
def _fsum(cd: np.ndarray, tr: int, t: int, r: int, n: int) -> float:
    """Sum of ``S[t + u, r + u]`` for ``u`` in ``[0, n)``; frames outside ``S`` count 0.

    ``cd``: the diagonal sums ring (``stripes.Rings``), raw frame ``r`` in column ``r % cap``.
    """
    te = cd.shape[0] - 1
    cap = cd.shape[1]
    if n <= 0:
        return 0.0
    if r < 0:  # skip the part before the raw start
        t -= r
        n += r
        r = 0
    m = min(n, te - t, tr - r)
    if m <= 0 or t < 0:
        return 0.0
    return float(cd[t + m, (r + m) % cap] - cd[t, r % cap])


@_njit
def _rsum(ca: np.ndarray, tr: int, t: int, r1: int, n: int) -> float:
    """Sum of ``S[t + u, r1 - 1 - u]`` for ``u`` in ``[0, n)``; frames outside ``S`` count 0 (``ca`` a ring too)."""
    te = ca.shape[0] - 1
    cap = ca.shape[1]
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
    return float(ca[t + m, (r1 - m) % cap] - ca[t, r1 % cap])


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
    tr_n: int,
    j_lo: int,
    j_hi: int,
    state: tuple,
    sil_cum: np.ndarray,
    per_cum: np.ndarray,
    stut_rows: np.ndarray,
    starts_f: np.ndarray,
    ends_f: np.ndarray,
    own_cum_f: np.ndarray,
    sizes: np.ndarray,
    loop_sizes: np.ndarray,
    loop_reps: np.ndarray,
    stut_slices: np.ndarray,
    speed_rates: np.ndarray,
    t_end_f: float,
    action_cost: float,
    cut_cost: float,
    slack_cost: float,
    rev_shift: int,
    beam: int,
    bound: np.ndarray,
) -> None:
    """The DP's moves from raw beats ``j_lo .. j_hi - 1``; see the module docstring.

    ``s``, ``cd``, ``ca``: the rings of ``stripes.Rings`` (raw frame ``r`` in
    column ``r % cap``), holding every raw frame these beats read.
    ``state``: ``(val, pos, b_t, b_kind, b_k, b_par)`` from ``_dp_state``,
    updated in place.
    """
    val, pos, b_t, b_kind, b_k, b_par = state
    te_n = s.shape[0]
    cap = s.shape[1]
    n = starts_f.shape[0]
    neg = -1e30
    t_max = val.shape[1] - 1

    for j in range(j_lo, j_hi):
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
                sc = v + _fsum(cd, tr_n, t, r0, te - t) - (slack_cost if d != 0 else 0.0)
                if sc > val[j + 1, te]:
                    val[j + 1, te] = sc
                    pos[j + 1, te] = pe
                    b_t[j + 1, te] = t
                    b_kind[j + 1, te] = 0
                    b_k[j + 1, te] = 1
                    b_par[j + 1, te] = d + 1
            # the edit ends inside this beat (another editor's last piece ends off our grid, a
            # fade-out on its own beat): the beat plays forwards up to the edit's end and the raw
            # song after it is CUT (else a SPEED squeezes the whole beat into what is left). Only
            # past what a whole beat's slack and the end's tolerance reach, and at a CUT's cost: a
            # beat that does end there (a near-silent fade's last) stays whole
            te = int(round(t_end_f))
            if t < te <= t_max and p + beat_len > t_end_f + 4.0:
                sc = v + _fsum(cd, tr_n, t, r0, te - t) - action_cost - cut_cost
                if sc > val[j + 1, te]:
                    val[j + 1, te] = sc
                    pos[j + 1, te] = t_end_f
                    b_t[j + 1, te] = t
                    b_kind[j + 1, te] = 0
                    b_k[j + 1, te] = 1
                    b_par[j + 1, te] = 1
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
                    # REVERSE: edit frame t + u plays raw frame r1 + d - 1 - u. An editor on
                    # another beat grid reverses a span off every span of ours (its ends up
                    # to half a beat off, which moves the line by twice that): the raw span
                    # may move by d frames (a slack cost, and a quarter of one per frame
                    # moved: a true reversal scores alike a frame or two either side); the
                    # labels keep the beats
                    # (only a line that plays the edit back closely: a shifted line through
                    # the wrong states would crowd the beam)
                    # (every other d, then the two beside the best: the frames overlap,
                    # a line one frame off still scores most of the right one's)
                    best_d = 0
                    best = _rsum(ca, tr_n, t, r1, te - t)
                    for d in range(-rev_shift, rev_shift + 1, 2):
                        if d != 0:
                            sd = _rsum(ca, tr_n, t, r1 + d, te - t)
                            cost = slack_cost * (1.0 + abs(d) / 4.0)
                            if sd - cost > best and sd >= REVERSE_SHIFT_SIM * (te - t):
                                best, best_d = sd - cost, d
                    coarse = best_d
                    if coarse != 0:
                        for d in (coarse - 1, coarse + 1):
                            if d != 0 and abs(d) <= rev_shift:
                                sd = _rsum(ca, tr_n, t, r1 + d, te - t)
                                cost = slack_cost * (1.0 + abs(d) / 4.0)
                                if sd - cost > best and sd >= REVERSE_SHIFT_SIM * (te - t):
                                    best, best_d = sd - cost, d
                    _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, v - action_cost + best, 3, k, best_d, t_max, slack_cost)
                    # STUTTER: the first slice plays forwards, the rest repeats it (a slice of
                    # this beat's own length or of the grid's period: stut_rows)
                    for a in range(stut_slices.shape[0]):
                        ns = int(round(stut_slices[a] * beat_len))
                        ns = max(1, min(ns, te - t))
                        sc0 = v - action_cost + _fsum(cd, tr_n, t, r0, ns)
                        for w in range(stut_rows.shape[2]):
                            row = stut_rows[j, a, w]
                            if w > 0 and row == stut_rows[j, a, 0]:
                                continue
                            sc = sc0 + per_cum[row, min(te, te_n)] - per_cum[row, min(t + ns, te_n)]
                            _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, sc, 5, k, a, t_max, slack_cost)
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
                            sc += s[tt, rr % cap]
                        if u == SPEED_PROBE - 1 and n_out > 2 * SPEED_PROBE and sc - v + action_cost < SPEED_PROBE_SIM * SPEED_PROBE:
                            sc = neg  # the first frames do not match: not worth the whole line
                            break
                    _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, sc, 6, k, a, t_max, slack_cost)
            # LOOP: the span plays 1 + reps times. Its length is any of loop_sizes (an editor
            # loops 2, 3 or 6 beats as readily as a bar). The edit jumps back after each play
            # but the last, which runs on into the next beat. A play is as long as the beats
            # of the grid the edit was made on: the smoothed one's (a song's own grid, a
            # synthetic song's) or the tracker's own (an edit made on the analysis, as ``data
            # pair`` makes it: its bar can be ~20 ms off the smoothed one, which the repeats
            # add up). Where they differ, the tracker's one pays a slack cost: on a song that
            # repeats itself the extra choice would otherwise win on the phase of its frames
            # alone. Each full play is scored once, its sum carried into the longer loops
            for li in range(loop_sizes.shape[0]):
                k = loop_sizes[li]
                if j + k > n:
                    break
                span = ends_f[j + k - 1] - r0f
                own_span = own_cum_f[j + k] - own_cum_f[j]
                differ = abs(own_span - span) >= 0.5
                for w in range(2):
                    play = span if w == 0 else own_span
                    if w == 1 and not differ:
                        break
                    sc = v - action_cost - (slack_cost if w == 1 else 0.0)
                    m = 0
                    for a in range(loop_reps.shape[0]):
                        reps = loop_reps[a]
                        pe = p + play * reps + span
                        te = int(round(pe))
                        if te > t_max:
                            break
                        while m < reps:
                            ta = int(round(p + play * m))
                            tb = int(round(p + play * (m + 1)))
                            sc += _fsum(cd, tr_n, ta, r0, tb - ta)
                            m += 1
                        ta = int(round(p + play * reps))
                        last = sc + _fsum(cd, tr_n, ta, r0, te - ta)
                        _relax(val, pos, b_t, b_kind, b_k, b_par, j + k, t, pe, last, 4, k, a, t_max, slack_cost)


@_njit
def _dp_end(state: tuple, t_end: float, slack_cost: float) -> tuple:
    """The best walk's score and moves from the DP's table: it ends where the edit ends.

    Returns ``(score, moves)`` with moves ``(n_moves, 6)`` int64 rows
    ``(beat, n_beats, kind, param, t0, t1)`` in walk order (``param``: the
    amount slot of LOOP/STUTTER/SPEED, else 0), or ``(-inf, empty)``.
    """
    val, pos, b_t, b_kind, b_k, b_par = state
    n = val.shape[0] - 1
    t_max = val.shape[1] - 1
    neg = -1e30
    best = neg
    best_t = -1
    te_want = int(round(t_end))
    for tq in range(max(0, te_want - 3), min(t_max, te_want + 3) + 1):
        sc = val[n, tq] - slack_cost * abs(tq - te_want)
        if val[n, tq] > neg / 2 and sc > best:
            best = sc
            best_t = tq
    if best_t < 0:
        return neg, np.zeros((0, 6), dtype=np.int64)
    rows = []
    j = n
    t = np.int64(best_t)
    while j > 0:
        k = np.int64(b_k[j, t])
        t0 = np.int64(b_t[j, t])
        rows.append((np.int64(j - k), k, np.int64(b_kind[j, t]), np.int64(b_par[j, t]), t0, t))
        j -= k
        t = t0
    out = np.zeros((len(rows), 6), dtype=np.int64)
    for i in range(len(rows)):
        r = rows[len(rows) - 1 - i]
        for c in range(6):
            out[i, c] = r[c]
    return best, out


def _dp_state(n: int, te_n: int) -> tuple:
    """The DP's table over (beat 0..n, edit frame 0..Te+1): score, exact end, and the back pointers."""
    width = te_n + 2
    val = np.full((n + 1, width), -1e30)
    val[0, 0] = 0.0
    return (
        val,
        np.zeros((n + 1, width)),
        np.full((n + 1, width), -1, dtype=np.int32),
        np.zeros((n + 1, width), dtype=np.int8),
        np.zeros((n + 1, width), dtype=np.int8),
        np.zeros((n + 1, width), dtype=np.int8),
    )


# --------------------------------------------------------------------------- alignment


@dataclass
class Move:
    """One move of the alignment: raw beats ``[beat, beat + n_beats)`` -> edit ``[dst_start_s, dst_end_s)``.

    Attributes
    ----------
    beat : int
        first beat (index into the extended grid).
    n_beats : int
        beats covered.
    kind : int
        ``FWD``, ``CUT``, ``SIL``, ``REV``, ``LOOP``, ``STUT`` or ``SPEED``.
    slot : int
        amount slot 0..3 (NEG_LARGE..POS_LARGE) for LOOP/STUTTER/SPEED.
    dst_start_s, dst_end_s : float
        the edit span it explains, seconds.
    match : float
        mean frame similarity over that span (1 for a CUT).
    shift_s : float
        a REVERSE's raw span (the one it plays backwards over its edit
        span) less its beats' span, seconds: its beats' moved by this,
        twice as far as a reversed span off its beats is (0 for other kinds).
    """

    beat: int
    n_beats: int
    kind: int
    slot: int
    dst_start_s: float
    dst_end_s: float
    match: float = 1.0
    shift_s: float = 0.0


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

    Returns
    -------
    tuple[np.ndarray, np.ndarray, int]
        ``starts_s (n,)``, ``ends_s (n,)`` float64 seconds and the index of
        the first analysis beat.
    """
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
    slice_beats_s: np.ndarray | None = None,
    debug: dict | None = None,
) -> tuple[float, list[Move], Stripes]:
    """Structural DP of an edit against the raw beats (see the module docstring).

    Parameters
    ----------
    raw, edit : Frames
        frame features of the two files.
    starts_s, ends_s : np.ndarray
        ``(n,)`` extended raw beat grid covering the raw file, seconds.
    edit_duration_s : float
        length of the edit, seconds.
    beat_s : float | None
        beat period, seconds (``grid_period``; default the median beat length).
    slice_beats_s : np.ndarray | None
        ``(n,)`` the length of each beat a STUTTER slices and a LOOP repeats,
        seconds: the tracker's own beats, before ``smooth_beats`` (default
        ``ends_s - starts_s``).
    debug : dict | None
        if a dict, receives ``"table"``: the DP's best score per
        (beat, edit frame) state, ``(n + 1, n_edit_frames + 2)``.

    Returns
    -------
    tuple[float, list[Move], Stripes]
        ``(score, moves, S)`` with ``S`` the frame similarity
        ``(n_edit_frames, n_raw_frames)`` (``Stripes.values`` reads it).
    """
    cfg = config or AlignConfig()
    te_n = edit.n_frames
    sil = np.where(edit.silent, 1.0, -1.0)
    sil_cum = np.concatenate([[0.0], np.cumsum(sil)])
    if beat_s is None:
        beat_s = float(np.median(ends_s - starts_s))
    if slice_beats_s is None:
        slice_beats_s = np.asarray(ends_s) - np.asarray(starts_s)
    per, stut_rows, stutter_best = _stutter_scores(edit, beat_s, slice_beats_s, cfg.stutter_weight)
    to_f = FRAME_SR / FRAME_HOP
    frame_best = np.maximum(sil, stutter_best)
    starts_f = np.asarray(starts_s, dtype=np.float64) * to_f
    ends_f = np.asarray(ends_s, dtype=np.float64) * to_f
    own_cum_f = np.concatenate([[0.0], np.cumsum(np.asarray(slice_beats_s, dtype=np.float64))]) * to_f
    r_starts = np.maximum(np.round(starts_f).astype(np.int64) - 2, 0)
    rev_shift = min(int(REVERSE_SHIFT_BEATS * beat_s * to_f), 60)
    s = Stripes(edit, raw, cache_mb=cfg.sim_cache_mb)
    bound, ckpt = backward_pass(s, frame_best, r_starts)
    sweep = _Sweep(
        s,
        ckpt,
        bound,
        (
            sil_cum,
            per,
            stut_rows,
            starts_f,
            ends_f,
            own_cum_f,
            np.asarray(vocab.SIZE_BEATS, dtype=np.int64),
            np.asarray(LOOP_SIZES, dtype=np.int64),
            np.asarray(LOOP_REPEATS, dtype=np.int64),
            np.asarray(STUTTER_SLICES, dtype=np.float64),
            np.asarray(SPEED_RATES, dtype=np.float64),
            edit_duration_s * to_f,
            cfg.action_cost,
            cfg.cut_cost,
            cfg.slack_cost,
            rev_shift,
        ),
        edit_duration_s * to_f,
        rev_shift,
    )
    keep = debug is not None
    beam = cfg.beam
    score, rows, table = sweep.run(beam, keep)
    # No path, or a poor one: the beam ranks states by score so far plus an optimistic
    # bound on the rest, which flatters states that skipped edit frames (a long CUT):
    # on effect-heavy edits it can drop the true path for a CUT + long LOOP walk
    # scoring far lower (seen 0.57-0.76 per frame against >= 0.85 for every good
    # path), and an edit that repeats a lot (an extended mix looping two bars five
    # times) can need a beam 16x as wide. Each widening is tried while the path is
    # missing or poor and the last widening found a better one (one that gains under
    # RETRY_GAIN per frame says the edit, not the beam, makes the path poor: a 52-s
    # pair went from 2 to 9 s for the same path).
    for widening in range(RETRY_WIDENINGS):
        if rows.shape[0] and score >= cfg.retry_score * te_n:
            break
        if rows.shape[0] and widening and te_n > cfg.wide_retry_max_s * to_f:
            break  # a poor path of a long edit: the 16x beam costs most of the pair's time
        beam *= 4
        wide = sweep.run(beam, keep)
        stalled = bool(rows.shape[0]) and wide[0] < score + RETRY_GAIN * te_n
        if rows.shape[0]:
            log.debug("poor path (%.2f per frame): a beam of %d gives %.2f", score / te_n, beam, wide[0] / max(te_n, 1))
        else:
            log.debug("no path: a beam of %d gives %d moves", beam, wide[1].shape[0])
        if wide[1].shape[0] and (rows.shape[0] == 0 or wide[0] > score):
            score, rows, table = wide
        if stalled:
            break
    moves = [
        Move(
            beat=beat,
            n_beats=k,
            kind=kind,
            slot=par if kind in (LOOP, STUT, SPEED) else 0,
            dst_start_s=t0 / to_f,
            dst_end_s=t1 / to_f,
            shift_s=par / to_f if kind == REV else 0.0,
        )
        for beat, k, kind, par, t0, t1 in rows.tolist()
    ]
    if debug is not None:
        debug["table"] = table
    return float(score), moves, s


class _Sweep:
    """Pass 2 of ``stripes``: the DP over the raw beats in order, with the stripes it reads in the rings."""

    def __init__(self, stripes: Stripes, ckpt: np.ndarray, bound: np.ndarray, dp_args: tuple, t_end: float, rev_shift: int) -> None:
        self.stripes, self.ckpt, self.bound, self.dp_args, self.t_end = stripes, ckpt, bound, dp_args, t_end
        self.slack_cost = dp_args[-2]
        starts_f, ends_f = dp_args[3], dp_args[4]
        n = starts_f.shape[0]
        tr = stripes.shape[1]
        longest = max(vocab.SIZE_BEATS)
        last = np.minimum(np.arange(n) + longest, n) - 1
        # the raw frames (sum columns) a move from beat j reads: from just before its
        # start (a reversal's last frame rounds down) to just after the end of the
        # longest move from it (a SPEED line's last frame rounds up), and a shifted
        # REVERSE's frames either side
        self.need_lo = np.maximum(np.floor(starts_f).astype(np.int64) - 3 - rev_shift, 0)
        self.need_hi = np.minimum(np.ceil(ends_f[last]).astype(np.int64) + 6 + rev_shift, tr)
        self._state: tuple | None = None
        self._rings: Rings | None = None

    def run(self, beam: int, keep_table: bool = False) -> tuple[float, np.ndarray, np.ndarray]:
        """``(score, moves, table)`` of the DP with ``beam`` states per beat (see ``_dp_end``; table: ``val``).

        A second run reuses the first one's table and rings (fresh memory
        costs page faults); its table is then the first's unless ``keep_table``
        made that a copy.
        """
        te_n, tr = self.stripes.shape
        n = self.need_lo.shape[0]
        if self._state is None or self._rings is None:
            self._rings = Rings(self.stripes, self.ckpt, int(np.max(self.need_hi - self.need_lo)) + 1 if n else 1)
            self._state = _dp_state(n, te_n)
        else:
            self._rings.rewind()
            # only the scores need resetting: the rest of a state is read only where its score was set
            self._state[0].fill(-1e30)
            self._state[0][0, 0] = 0.0
        rings, state = self._rings, self._state
        slack_cost = self.slack_cost
        j = 0
        while j < n:
            rings.cover(int(self.need_lo[j]), int(self.need_hi[j]))
            j1 = j + 1 + int(np.searchsorted(self.need_hi[j + 1 :], rings.hi, side="right"))
            _align_dp(*((rings.s, rings.cd, rings.ca, tr, j, j1, state) + self.dp_args + (beam, self.bound)))
            j = j1
        score, rows = _dp_end(state, self.t_end, slack_cost)
        return float(score), rows, state[0].copy() if keep_table else state[0]


def _stutter_scores(
    edit: Frames, beat_s: float, beat_lengths_s: np.ndarray, weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stutter score of each edit frame per slice length: how exactly the edit repeats itself one slice earlier.

    A stutter's slice is a fraction of a beat: of the beat it starts on
    (an editor slicing its own grid; the tracker's beats are whole
    analysis hops, 3-6% apart in length within a song) or of the song's
    period. A repetition is exact only at its own lag (a sample off, the
    correlation of music falls to ~0.98; 5% off, to ~0), so each
    slice is scored at the ``STUTTER_BEAT_LENGTHS`` most common beat
    lengths of the grid (each beat reads the nearest) and at ``beat_s``.

    Parameters
    ----------
    edit : Frames
        the edit's frame features.
    beat_s : float
        the grid's period, seconds.
    beat_lengths_s : np.ndarray
        ``(n_beats,)`` each beat's length, seconds.
    weight : float
        scale of a frame's score.

    Returns
    -------
    per : np.ndarray
        ``(n_rows, n_frames + 1)`` the cumulative sums of the frame scores
        (in -``weight``..``weight``, silent frames -``weight``) per scored
        (slice, beat length).
    rows : np.ndarray
        ``(n_beats, len(STUTTER_SLICES), 2)`` int64: the row of ``per`` of
        each beat's slice at its own length and at ``beat_s``.
    best : np.ndarray
        ``(n_frames,)`` the best score of each frame over the rows.
    """
    te_n = edit.n_frames
    lengths = np.asarray(beat_lengths_s, dtype=np.float64)
    n_beats = lengths.shape[0]
    samples = np.round(lengths * FRAME_SR).astype(np.int64)
    uniq, counts = np.unique(samples, return_counts=True) if n_beats else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    common = np.sort(uniq[np.argsort(-counts, kind="stable")[:STUTTER_BEAT_LENGTHS]]).astype(np.float64)
    cands = np.append(common / FRAME_SR, beat_s)
    nearest = np.argmin(np.abs(lengths[:, None] - cands[None, : max(common.shape[0], 1)]), axis=1)
    per_rows: list[np.ndarray] = []
    rows = np.zeros((n_beats, len(STUTTER_SLICES), 2), dtype=np.int64)
    stutter_best = np.full(te_n, -1.0)
    for a, v in enumerate(STUTTER_SLICES):
        lag_row: dict[int, int] = {}
        cand_row = np.zeros(cands.shape[0], dtype=np.int64)
        for ci, length in enumerate(cands):
            lag = v * length * FRAME_SR
            key = int(round(lag))
            if key not in lag_row:  # the period's slice can fall on a beat length's
                c = periodicity(edit.y, lag, te_n)
                # a stutter repeats its slice sample for sample (correlation ~1); echoes of a
                # DELAY at that lag correlate ~0.6-0.85 (median ~0.7) and must not pass for one
                score = weight * np.where(edit.silent, -1.0, np.clip((c - STUTTER_CORR_MID) / (1.0 - STUTTER_CORR_MID), -1.0, 1.0))
                stutter_best = np.maximum(stutter_best, score)
                lag_row[key] = len(per_rows)
                per_rows.append(np.concatenate([[0.0], np.cumsum(score)]))
            cand_row[ci] = lag_row[key]
        rows[:, a, 0] = cand_row[nearest]
        rows[:, a, 1] = cand_row[-1]
    per = np.stack(per_rows) if per_rows else np.zeros((1, te_n + 1))
    return per, rows, stutter_best
