"""Step 4 of inferring BC labels: the grid's phase and every splice, measured on the samples.

The tracker's beats sit a few ms off the beats the edit was cut on. Each
forward beat gets a sample offset into the edit, the running median of its
run's cross-correlation lags (``forward_offsets``: it steps where an
editor's splices overlap; ``speed_checks`` reads the SPEED runs against
them). The exact splice samples between forward runs (or,
without splices, the raw song's attacks) give one shift for the whole grid
(``grid_shift``, ``onset_shift``), then every splice is measured on the
sample, with the render's crossfade modelled (``splice_starts``): jumps
between forward runs, loop lengths and starts, stutter slices (the edit's
exact repetition period), reversed and muted spans (two-sided against the
reversed raw and zeros), SPEED ends from the offsets, and the edit's first
and last samples. An edit file turned up or down as a whole (a louder
export, a peak normalisation) is found here too (``edit_file_gain``), so
that the effects step does not read it as a GAIN on every beat.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.signal import correlate

from editorbot.engine.render import CROSSFADE_S
from editorbot.training.labels.align import (
    CUT,
    FWD,
    LOOP,
    LOOP_REPEATS,
    REV,
    SIL,
    SPEED,
    SPEED_RATES,
    STUT,
    STUTTER_SLICES,
    Move,
)
from editorbot.training.labels.effects import BAND_NFFT
from editorbot.training.labels.frames import FRAME_SR, refine_offset

log = logging.getLogger(__name__)

OFFSET_WINDOW = 5  # beats of a forward run whose median lag is each beat's offset
FILE_GAIN_SHAPE = 0.98  # normalised correlation of a forward beat with its raw beat: its waveform unchanged (``edit_file_gain``)


def forward_offsets(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], starts: np.ndarray, beat_s: float
) -> dict[int, int]:
    """Edit minus raw position (samples at ``FRAME_SR``) of every forward-played beat.

    Each beat's cross-correlation lag near where the alignment put it,
    then, along each run of forward beats contiguous in both files, the
    running median over ``OFFSET_WINDOW`` beats: one beat alone can lock
    onto the wrong period of a filtered or repetitive passage, and an
    editor whose splices overlap (a crossfade of 2-50 ms that shortens the
    edit at every join) moves the offset in steps inside what the
    alignment sees as one run; a running median keeps the steps and drops
    the lone outliers.
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
    half = OFFSET_WINDOW // 2
    for run in runs:
        lags = []
        for m in run:
            src0 = int(round(starts[m.beat] * FRAME_SR))
            dst0 = int(round(m.dst_start_s * FRAME_SR))
            lags.append(refine_offset(raw_y, edit_y, src0, dst0, max(n_beat, BAND_NFFT)))
        if len(run) < OFFSET_WINDOW:
            for m in run:
                out[m.beat] = int(np.median(lags))
            continue
        for i, m in enumerate(run):
            lo = min(max(i - half, 0), len(run) - OFFSET_WINDOW)
            out[m.beat] = int(np.median(lags[lo : lo + OFFSET_WINDOW]))
    return out


def edit_file_gain(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    moves: list[Move],
    starts: np.ndarray,
    ends: np.ndarray,
    fwd_offset: dict[int, int],
    *,
    share: float = 0.35,
    tolerance_db: float = 0.5,
) -> float:
    """The edit file's overall gain (dB): the level change the largest group of forward beats shares, else 0.

    A whole edit turned up or down (a louder export, a peak normalisation
    after effects that raised the peaks) shows as one level difference on
    every unedited forward-played beat; beats under effects scatter around
    it. Where at least 8 beats keep the raw waveform (normalised
    correlation ``FILE_GAIN_SHAPE`` or more: an mp3 round trip keeps
    0.99; a delay's echoes, a reverb or a filter do not), only they are
    grouped. The largest group of beats within ``tolerance_db`` of one
    value is the unedited audio when it holds at least ``share`` of the
    beats grouped (an editor's GAIN covers some sections, fewer beats
    than the song's unedited ones).
    """
    diffs, same_shape = [], []
    for m in moves:
        if m.kind != FWD or m.beat not in fwd_offset:
            continue
        a = int(round(starts[m.beat] * FRAME_SR))
        b = int(round(ends[m.beat] * FRAME_SR))
        o = fwd_offset[m.beat]
        if a + o < 0 or b + o > edit_y.shape[0] or b <= a:
            continue
        x = raw_y[a:b].astype(np.float64)
        y = edit_y[a + o : b + o].astype(np.float64)
        n = min(x.shape[0], y.shape[0])  # the grid's last beat may end past the raw song's last sample
        if n == 0:
            continue
        x, y = x[:n], y[:n]
        pr, pe = float(x @ x) / x.shape[0], float(y @ y) / y.shape[0]
        if pr > 1e-8 and pe > 1e-10:
            diffs.append(10.0 * math.log10(pe / pr))
            same_shape.append(float(x @ y) / (math.sqrt(pr * pe) * x.shape[0]) >= FILE_GAIN_SHAPE)
    if len(diffs) < 8:
        return 0.0
    d = np.asarray(diffs)
    # a whole-file gain changes no beat's waveform: where enough beats keep theirs, the
    # gain is read from them only (a long delay or reverb at one level would outnumber
    # the unedited beats: -2.2 dB read on every beat of a 16-s delay, +3 dB GAIN elsewhere)
    if sum(same_shape) >= 8:
        d = d[np.asarray(same_shape)]
    close = np.abs(d[:, None] - d[None, :]) < tolerance_db
    centre = int(np.argmax(close.sum(axis=1)))
    group = d[close[centre]]
    level = float(np.median(group))
    if abs(level) < tolerance_db or group.size < max(8, share * d.size):
        return 0.0
    return level


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
    if ends is None:
        ends = np.append(starts[1:], starts[-1] + np.median(np.diff(starts)))
    found = _SpliceStarts(raw_y, edit_y, starts, ends, fwd_offset, search_s)
    for i, a in enumerate(moves):
        if a.kind != FWD or a.beat not in fwd_offset:
            continue
        k = i + 1
        while k < len(moves) and moves[k].kind == CUT:
            k += 1
        if k >= len(moves):
            break
        found.after_forward(moves, i, k)
    # Every other structural move between forward beats: its own splices.
    for i, m in enumerate(moves):
        if m.kind not in (FWD, CUT):
            found.around(moves, i)
    found.edit_ends(moves)
    return found.out


class _SpliceStarts:
    """The beat starts ``splice_starts`` measures, kept first-found per beat, and how each kind of splice is measured.

    Attributes
    ----------
    out : dict[int, float]
        ``{beat: start_s}`` found so far.
    win : int
        search half-width, samples at ``FRAME_SR``.
    """

    def __init__(
        self, raw_y: np.ndarray, edit_y: np.ndarray, starts: np.ndarray, ends: np.ndarray, fwd_offset: dict[int, int], search_s: float
    ) -> None:
        self.raw_y, self.edit_y = raw_y, edit_y
        self.starts, self.ends = starts, ends
        self.fwd_offset = fwd_offset
        self.search_s = search_s
        self.win = int(search_s * FRAME_SR)
        self.out: dict[int, float] = {}

    def put(self, beat: int, samples: float) -> None:
        """Beat ``beat`` starts at raw sample ``samples`` (unless already found, or too far from the grid's guess)."""
        t = samples / FRAME_SR
        if 0 < beat < self.starts.shape[0] and beat not in self.out and abs(t - self.starts[beat]) <= 0.75 * self.search_s:
            self.out[beat] = t

    def after_forward(self, moves: list[Move], i: int, k: int) -> None:
        """The splice after forward beat ``moves[i]`` into ``moves[k]`` (CUTs between): a jump, or a LOOP's second pass."""
        raw_y, edit_y, starts, win = self.raw_y, self.edit_y, self.starts, self.win
        a, b = moves[i], moves[k]
        da = self.fwd_offset[a.beat]
        if b.kind == FWD and b.beat != a.beat + 1 and b.beat in self.fwd_offset:
            db = self.fwd_offset[b.beat]
            tau = _splice_at(raw_y, edit_y, int(round(starts[b.beat] * FRAME_SR)) + db, da, db, win)
            if tau is None:
                # no clean splice to see (a quiet passage, effects on a side): the jump
                # is still da - db exactly; put the splice midway between the grid's guesses
                tau = 0.5 * (starts[a.beat + 1] * FRAME_SR + da + starts[b.beat] * FRAME_SR + db)
            if a.beat + 1 < starts.shape[0]:
                self.put(a.beat + 1, tau - da)
                self.put(b.beat, tau - db)
        elif b.kind == LOOP and k == i + 1 and b.beat == a.beat + 1 and k + 1 < len(moves):
            c = moves[k + 1]
            e = b.beat + b.n_beats
            if c.kind != FWD or c.beat != e or c.beat not in self.fwd_offset or e >= starts.shape[0]:
                return
            reps = LOOP_REPEATS[b.slot]
            length = (self.fwd_offset[c.beat] - da) / reps
            grid_len = (starts[e] - starts[b.beat]) * FRAME_SR
            if abs(length - grid_len) > win:
                return
            L = int(round(length))
            tau = _splice_at(raw_y, edit_y, int(round(starts[e] * FRAME_SR)) + da, da, da + L, win)
            if tau is not None:
                self.put(e, tau - da)
                self.put(b.beat, tau - da - L)

    def around(self, moves: list[Move], i: int) -> None:
        """The splices of structural move ``moves[i]`` (not a CUT) with the forward beats next to it."""
        m = moves[i]
        b, e = m.beat, m.beat + m.n_beats
        prev = moves[i - 1] if i > 0 else None
        nxt = moves[i + 1] if i + 1 < len(moves) else None
        da = dc = None
        if prev is not None and prev.kind == FWD and prev.beat == b - 1 and abs(prev.dst_end_s - m.dst_start_s) < 1e-6:
            da = self.fwd_offset.get(prev.beat)
        if nxt is not None and nxt.kind == FWD and nxt.beat == e and abs(nxt.dst_start_s - m.dst_end_s) < 1e-6:
            dc = self.fwd_offset.get(nxt.beat)
        if m.kind == LOOP and e < self.starts.shape[0]:
            self.loop(m, da, dc)
        elif m.kind == STUT:
            self.stutter(m, da)
        elif m.kind == REV and e < self.starts.shape[0]:
            self.reverse(m, da, dc)
        elif m.kind == SIL:
            self.silence(m, da, dc)
        elif m.kind == SPEED:
            self.speed(m, da, dc)

    def _span(self, m: Move) -> tuple[int, int, int]:
        """Raw start and first beat's length of ``m``, and its edit start: samples at ``FRAME_SR``."""
        b = m.beat
        s0 = int(round(self.starts[b] * FRAME_SR))
        n_beat = int(round((self.ends[b] - self.starts[b]) * FRAME_SR))
        return s0, n_beat, int(round(m.dst_start_s * FRAME_SR))

    def loop(self, m: Move, da: int | None, dc: int | None) -> None:
        """A LOOP's length from the offsets around it (or its second pass), then its splice into the second pass."""
        raw_y, edit_y, starts, win = self.raw_y, self.edit_y, self.starts, self.win
        b, e = m.beat, m.beat + m.n_beats
        s0, n_beat, dst0 = self._span(m)
        reps = LOOP_REPEATS[m.slot]
        grid_len = (starts[e] - starts[b]) * FRAME_SR
        d0 = da if da is not None else refine_offset(raw_y, edit_y, s0, dst0, n_beat)
        if dc is not None:
            length = (dc - d0) / reps
        else:  # where the second pass starts matching the loop's first beat
            length = refine_offset(raw_y, edit_y, s0, dst0 + int(round(grid_len)), n_beat) - d0
        if abs(length - grid_len) > win:
            return
        L = int(round(length))
        tau = _splice_at(raw_y, edit_y, int(round(starts[e] * FRAME_SR)) + d0, d0, d0 + L, win)
        if tau is not None:
            self.put(e, tau - d0)
            self.put(b, tau - d0 - L)

    def stutter(self, m: Move, da: int | None) -> None:
        """A STUTTER's first splice (back into the forward run) and its slice length, the edit's exact repetition period."""
        raw_y, edit_y, starts = self.raw_y, self.edit_y, self.starts
        b = m.beat
        s0, n_beat, dst0 = self._span(m)
        v = STUTTER_SLICES[m.slot]  # the slot is the shortest slice that repeats (infer._structure)
        p_grid = int(round(v * n_beat))
        end = int(round(m.dst_end_s * FRAME_SR))
        period = _period_at(edit_y, dst0 + 200, end - 200, p_grid, max(4, min(60, p_grid // 8)))
        if period is None:
            return
        first = None
        if da is not None:  # the first slice continues the forward run: the splice back into it
            tau = _splice_at(raw_y, edit_y, s0 + da + period, da, da + period, min(self.win, period // 2 - 1))
            if tau is not None:
                first = tau - da - period
        if first is not None:
            self.put(b, first)
        base = self.out.get(b, starts[b]) * FRAME_SR
        if b + 1 < starts.shape[0]:
            self.put(b + 1, base + period / v)

    def reverse(self, m: Move, da: int | None, dc: int | None) -> None:
        """A REVERSE's two splices, two-sided against the reversed raw song.

        The reversed span is known up to one constant c (edit[t] = raw[c - t]):
        found from its middle, then both of its splices are two-sided.
        """
        raw_y, edit_y, win = self.raw_y, self.edit_y, self.win
        b, e = m.beat, m.beat + m.n_beats
        s0, _, dst0 = self._span(m)
        s1 = int(round(self.starts[e] * FRAME_SR))
        end = int(round(m.dst_end_s * FRAME_SR))
        mid_n = min(end - dst0 - 2 * win, 2 * FRAME_SR)
        c_guess = dst0 + s1 - 1
        c = _reverse_anchor(raw_y, edit_y, dst0 + win, mid_n, c_guess, win) if mid_n > 0 else None
        if c is None:
            return
        if da is not None:
            lo, hi = s0 + da - win, s0 + da + win
            if lo - da >= 0 and c - hi + 1 >= 0 and hi <= edit_y.shape[0] and c - lo < raw_y.shape[0]:
                k = _split(edit_y[lo:hi].astype(np.float64), raw_y[lo - da : hi - da].astype(np.float64),
                           raw_y[c - hi + 1 : c - lo + 1][::-1].astype(np.float64))
                if k is not None:
                    self.put(b, lo + k - da)
        if dc is not None:
            lo, hi = s1 + dc - win, s1 + dc + win
            if lo - dc >= 0 and hi - dc <= raw_y.shape[0] and c - hi + 1 >= 0 and hi <= edit_y.shape[0] and c - lo < raw_y.shape[0]:
                k = _split(edit_y[lo:hi].astype(np.float64), raw_y[c - hi + 1 : c - lo + 1][::-1].astype(np.float64),
                           raw_y[lo - dc : hi - dc].astype(np.float64))
                if k is not None:
                    self.put(e, lo + k - dc)

    def silence(self, m: Move, da: int | None, dc: int | None) -> None:
        """A SILENCE's two splices: the muted span is known too, zeros crossfaded like any other side."""
        raw_y, edit_y, win = self.raw_y, self.edit_y, self.win
        b, e = m.beat, m.beat + m.n_beats
        s0, _, _ = self._span(m)
        if da is not None:
            lo, hi = s0 + da - win, s0 + da + win
            if lo - da >= 0 and lo >= 0 and hi <= edit_y.shape[0] and hi - da <= raw_y.shape[0]:
                e_w = edit_y[lo:hi].astype(np.float64)
                k = _split(e_w, raw_y[lo - da : hi - da].astype(np.float64), np.zeros_like(e_w))
                if k is not None:
                    self.put(b, lo + k - da)
        if dc is not None and e < self.starts.shape[0]:
            s1 = int(round(self.starts[e] * FRAME_SR))
            lo, hi = s1 + dc - win, s1 + dc + win
            if lo - dc >= 0 and lo >= 0 and hi <= edit_y.shape[0] and hi - dc <= raw_y.shape[0]:
                e_w = edit_y[lo:hi].astype(np.float64)
                k = _split(e_w, np.zeros_like(e_w), raw_y[lo - dc : hi - dc].astype(np.float64))
                if k is not None:
                    self.put(e, lo + k - dc)

    def speed(self, m: Move, da: int | None, dc: int | None) -> None:
        """A SPEED's start (a one-sided splice: the stretched side is unknown sample for sample) and its end from the offsets."""
        b, e = m.beat, m.beat + m.n_beats
        s0, _, _ = self._span(m)
        if da is not None:
            tau = _edge_at(self.raw_y, self.edit_y, s0 + da, da, self.win, ends=True)
            if tau is not None:
                self.put(b, tau - da)
        # the stretcher's last samples still resemble the raw just before the
        # next run: its end is read from the offsets instead. Playing the
        # span at rate r moves the edit by span * (1 / r - 1) samples.
        rate = SPEED_RATES[m.slot]
        if da is not None and dc is not None and b in self.out and e < self.starts.shape[0]:
            self.put(e, self.out[b] * FRAME_SR + (dc - da) / (1.0 / rate - 1.0))

    def edit_ends(self, moves: list[Move]) -> None:
        """The edit's own ends are splices too.

        A walk that opens with CUTs plays its first forward beat from edit
        sample 0, and one that closes with CUTs ends its last forward beat at
        the edit's last sample.
        """
        played = [m for m in moves if m.kind != CUT]
        fwd_offset = self.fwd_offset
        if played and moves[0].kind == CUT and played[0].kind == FWD and played[0].beat in fwd_offset:
            self.put(played[0].beat, -fwd_offset[played[0].beat])
        if played and moves[-1].kind == CUT and played[-1].kind == FWD and played[-1].beat in fwd_offset:
            self.put(played[-1].beat + 1, self.edit_y.shape[0] - fwd_offset[played[-1].beat])
