"""SPEED runs checked on the samples (step 4 of inferring BC labels, with ``splices``).

The structural DP reads another editor's splices and stretches on its own
rate steps, so a SPEED it finds may be something else on the samples:

- a short SPEED that is only the overlap of an editor's splices (each join
  shortens the edit by up to ``OVERLAP_MAX_S``) is forward audio again
  (``overlap_speeds``, with ``forward_pieces``: a run whose windows match
  the raw song unstretched near the forward offsets beside it, in at most
  ``PIECE_MAX_STEPS`` steps; ``respliced``: the run as the splices play
  it);
- the beats at a SPEED run's ends that play the raw song unstretched
  (``speed_lead_ins``: the DP's step rate took them in to make up a rate
  between its steps) are read as KEEP, not judged;
- a lone one-beat SPEED that matches its line only fairly, up between
  forward beats or either way at a join of another kind or the walk's
  ends, is a splice's shortening or a piece's edge
  (``splice_like_speed``): KEEP, "I don't know" (``splice_speeds_unsure``,
  step 5, on the per-beat labels).

The forward offsets they compare with are ``splices.forward_offsets``.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import correlate

from editorbot.training.labels.align import CUT, FWD, LOOP, SIL, SPEED, SPEED_RATES, Move
from editorbot.training.labels.effects import BAND_NFFT
from editorbot.training.labels.frames import FRAME_SR, match_at, refine_offset

if TYPE_CHECKING:  # infer imports this module
    from editorbot.training.labels.infer import ExtendedLabels

log = logging.getLogger(__name__)

OVERLAP_MAX_S = 0.06  # the longest overlap per splice (a crossfade that shortens the edit) read as splices, not a SPEED
OVERLAP_MATCH = 0.7  # normalised correlation of unstretched forward audio across such a splice
PIECE_N = 1024  # samples per window when a SPEED run is checked for spliced forward audio (forward_pieces)
PIECE_SEARCH = 1400  # ... each window searched this far around the offsets beside the run (two 30 ms overlaps)
PIECE_STEP = 22  # ... offsets of neighbouring windows this far apart (1 ms) are a step
PIECE_MAX_STEPS = 3  # ... splices a run may hold (a cut and the overlaps around it)
PIECE_PLACED = 0.75  # ... share of its audible windows that must match near those offsets
LEAD_MATCH = 0.98  # normalised correlation of a window of a SPEED run's end beat with the raw song unstretched (speed_lead_ins):
# forward audio keeps 0.99 (after an mp3 round trip too); a time-stretch keeps grains of the raw waveform at one lag
# for a few windows at 0.93-0.97 (the renderer's, on a synthetic song), a stretched sustained passage 0.7
LEAD_SEARCH = 66  # samples (3 ms) around the forward beats' offset a SPEED run's end beat is matched unstretched (speed_lead_ins)
LEAD_WHOLE = 0.8  # ... share of the beat that must match so for the next beat in to be tried (else the SPEED starts inside it)
LEAD_JOINS = 2  # ... joins (an offset step of up to OVERLAP_MAX_S) a beat may hold (a stretch's grains step every few windows)
#: A lone one-beat faster SPEED matched under this is read as a splice's shortening (``splice_like_speed``) ...
SHORT_SPEED_MATCH = 0.8
#: ... and a lone one-beat SPEED either way at a join (beside a move of another kind, or at the walk's ends), under this.
JOIN_SPEED_MATCH = 0.9


def overlap_speeds(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    moves: list[Move],
    fwd_offset: dict[int, int],
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    max_overlap_s: float = OVERLAP_MAX_S,
    min_match: float = OVERLAP_MATCH,
) -> list[Move]:
    """Moves with each SPEED that is forward audio with a splice in it played forwards instead.

    An editor whose joins overlap (a crossfade that shortens the edit by up
    to ``max_overlap_s``) moves the offset between two forward runs by a few
    tens of ms, and an editor cutting on another tracker's beats jumps a
    fraction of a beat off this grid's; the alignment explains either with
    short SPEEDs, between forward beats or around a CUT. A SPEED is forward
    audio when

    - between forward beats whose offsets step back by no more than
      ``max_overlap_s`` per join it may hold (one more than its beats), its
      audio matches the raw beats unstretched (normalised correlation >=
      ``min_match`` at the offset before or after it, on either half of the
      span); or
    - it ends (or opens) the edit after (before) forward beats
      (``_peeled_overlaps``), is shorter than its raw beats by no more
      than such overlaps and plays them unstretched in at most two pieces
      near the forward beats' offset; or
    - the run of SPEED and CUT moves it is in plays the raw song at the
      offset of the forward audio before the run, then at the offset of the
      forward audio after it, split at one sample (``respliced``): the run
      becomes forward beats and a CUT of the beats mostly inside the raw
      audio the split skips.

    Both signals are mono at ``FRAME_SR``.
    """
    moves = _peeled_overlaps(raw_y, edit_y, moves, fwd_offset, starts, ends, max_overlap_s, min_match)
    out: list[Move] = []
    i = 0
    while i < len(moves):
        if moves[i].kind not in (SPEED, CUT):
            out.append(moves[i])
            i += 1
            continue
        j = i
        while j < len(moves) and moves[j].kind in (SPEED, CUT):
            j += 1
        run = moves[i:j]
        if not any(m.kind == SPEED for m in run):
            out.extend(run)
        elif j - i == 1 and _overlap_only(raw_y, edit_y, moves, i, fwd_offset, starts, ends, max_overlap_s, min_match):
            out.extend(_forward_beats(moves[i]))
        else:
            redone = respliced(raw_y, edit_y, moves, i, j, starts, ends, min_match=min_match)
            out.extend(run if redone is None else redone)
        i = j
    return out


def _peeled_overlaps(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], fwd_offset: dict[int, int],
    starts: np.ndarray, ends: np.ndarray, max_overlap_s: float, min_match: float,
) -> list[Move]:
    """Moves with a SPEED that ends (or opens) the edit and is forward audio with a splice in it played forwards instead.

    Where an editor's last piece begins with a crossfade (2-50 ms of
    overlap) or on another tracker's beat, the edit skips a few tens of
    ms at the join; with no forward beat beyond it (``_overlap_only``'s
    case) the DP squeezes the song's last beat, which the edit ends
    inside, into a one-beat SPEED (the same at the edit's start). Such a
    SPEED is shorter than its raw beats by at most ``max_overlap_s`` per
    join it may hold, and its edit span is the raw song unstretched in at
    most two pieces (``forward_pieces`` near the forward beats' offset),
    the later one earlier in the edit by no more than the shortfall; a
    stretched or resampled span drifts at every window. Such a SPEED
    becomes forward beats, each beat's ends placed by the pieces. Inside
    the walk (a CUT or another SPEED beyond the join) it is left to the
    DP: a true SPEED's lead-in read forwards left its shortened beat to
    be judged as an effect (WIDTH, on the dev half).
    """
    out = list(moves)
    i = -1
    while i + 1 < len(out):
        i += 1
        m = out[i]
        if m.kind != SPEED:
            continue
        prev = out[i - 1] if i > 0 else None
        nxt = out[i + 1] if i + 1 < len(out) else None
        before = prev is not None and prev.kind == FWD and prev.beat in fwd_offset and prev.beat + prev.n_beats == m.beat
        after = nxt is not None and nxt.kind == FWD and nxt.beat in fwd_offset and m.beat + m.n_beats == nxt.beat
        if before == after:
            continue  # forward on both sides (``_overlap_only``) or on neither
        if not all(q.kind == CUT for q in (out[i + 1 :] if before else out[:i])):
            continue  # inside the walk (see above)
        a = int(round(starts[m.beat] * FRAME_SR))
        b = int(round(ends[m.beat + m.n_beats - 1] * FRAME_SR))
        d0, d1 = int(round(m.dst_start_s * FRAME_SR)), int(round(m.dst_end_s * FRAME_SR))
        short = (b - a) - (d1 - d0)
        if not 0 < short <= int(max_overlap_s * FRAME_SR) * (m.n_beats + 1):
            continue
        side = prev if before else nxt
        assert side is not None  # ``before`` or ``after`` holds
        o = fwd_offset[side.beat]
        lags = forward_pieces(raw_y, edit_y, d0, d1, (o,), min_match=min_match)
        if lags is None:
            continue
        steps = np.abs(np.diff(lags)) > PIECE_STEP
        # one splice, and the edit only earlier than the forward beats beside it (before) or later (after)
        moved = (o - lags) if before else (lags - o)
        if int(steps.sum()) > 1 or moved.min() < -PIECE_STEP or moved.max() > short + PIECE_STEP:
            continue
        log.debug("SPEED at beat %d: forward audio with a splice %d samples short", m.beat, short)
        pieces = []
        for bt in range(m.beat, m.beat + m.n_beats):
            t = []
            for x in (starts[bt] * FRAME_SR, ends[bt] * FRAME_SR):
                w = int(np.clip((x + o - d0) // PIECE_N, 0, lags.shape[0] - 1))
                t.append(min(max(x + lags[w], d0), d1) / FRAME_SR)
            pieces.append(Move(bt, 1, FWD, 0, t[0], t[1], m.match))
        for a_, b_ in itertools.pairwise(pieces):
            b_.dst_start_s = a_.dst_end_s
        pieces[0].dst_start_s, pieces[-1].dst_end_s = m.dst_start_s, m.dst_end_s
        out[i : i + 1] = pieces
    return out


def speed_lead_ins(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    moves: list[Move],
    fwd_offset: dict[int, int],
    starts: np.ndarray,
    ends: np.ndarray,
    *,
    min_match: float = LEAD_MATCH,
    max_overlap_s: float = OVERLAP_MAX_S,
) -> tuple[list[Move], dict[int, float]]:
    """Moves with the unstretched beats at either end of each SPEED run played forwards, and how much of each is so.

    An editor's SPEED at a rate between this vocabulary's steps (a
    time-stretch by 1.15) shortens its span by more or less than a step's
    rate does over the same beats, and on another tracker's grid it starts
    inside one of this grid's beats: the DP's SPEED line at the step's rate
    takes in a beat or two of the forward audio beside it to make up the
    length (on the dev half, 7 of the foreign editor's 10 false effect
    labels were such lead-ins, one or two beats before a true SPEED).

    A beat at an end of a SPEED run of two beats or more whose audio is
    the raw song unstretched at the offset of the forward beats beside the
    run over at least half of it, counted from their side
    (``_forward_share``: windows of ``PIECE_N`` samples, normalised
    correlation ``>= min_match`` within ``LEAD_SEARCH`` samples of that
    offset, which a join of up to ``max_overlap_s`` may move: the editor
    joins every piece of its edit with an overlap), leaves the SPEED as a
    forward beat, and the next beat in is tried; a beat matched over less
    than ``LEAD_WHOLE`` of it is where the edit's SPEED begins (ends), and
    the peeling stops there. A run of SPEED moves over consecutive beats
    (the DP mixes rates over a stretch between them) is peeled as one and
    keeps at least one beat. Both signals are mono at ``FRAME_SR``;
    ``fwd_offset`` as ``forward_offsets`` gives it.

    Returns
    -------
    tuple[list[Move], dict[int, float]]
        the moves, and each peeled beat's share (0.5-1) that is the raw
        song unstretched: the caller reads these beats as KEEP without
        judging their effects (one sits beside a join or holds the SPEED's
        start: judged, one read WIDTH on the dev half).
    """
    out: list[Move] = []
    peeled: dict[int, float] = {}
    max_step = int(max_overlap_s * FRAME_SR)
    i = 0
    while i < len(moves):
        j = i + 1
        if moves[i].kind == SPEED:  # a run of SPEED moves over consecutive beats (at one rate or several)
            while j < len(moves) and moves[j].kind == SPEED and moves[j].beat == moves[j - 1].beat + moves[j - 1].n_beats:
                j += 1
        run = moves[i:j]
        prev = moves[i - 1] if i > 0 else None
        nxt = moves[j] if j < len(moves) else None
        i = j
        if run[0].kind != SPEED or sum(m.n_beats for m in run) < 2:
            out.extend(run)
            continue
        lo, hi = run[0].beat, run[-1].beat + run[-1].n_beats

        def match_of(beat: int, run: list[Move] = run) -> float:
            return next(m.match for m in run if m.beat <= beat < m.beat + m.n_beats)

        head: list[Move] = []
        tail: list[Move] = []
        found: dict[int, float] = {}
        if prev is not None and prev.kind == FWD and prev.beat + prev.n_beats == lo and prev.beat in fwd_offset:
            o = fwd_offset[prev.beat]
            while hi - lo > 1:
                share, o0, o = _forward_share(raw_y, edit_y, starts, ends, lo, o, min_match, from_start=True, max_step=max_step)
                if share < 0.5:
                    break
                head.append(Move(lo, 1, FWD, 0, starts[lo] + o0 / FRAME_SR, ends[lo] + o / FRAME_SR, match_of(lo)))
                found[lo] = share
                lo += 1
                if share < LEAD_WHOLE:
                    break
        if nxt is not None and nxt.kind == FWD and nxt.beat == hi and nxt.beat in fwd_offset:
            o = fwd_offset[nxt.beat]
            while hi - lo > 1:
                share, o, o1 = _forward_share(raw_y, edit_y, starts, ends, hi - 1, o, min_match, from_start=False, max_step=max_step)
                if share < 0.5:
                    break
                tail.append(Move(hi - 1, 1, FWD, 0, starts[hi - 1] + o / FRAME_SR, ends[hi - 1] + o1 / FRAME_SR, match_of(hi - 1)))
                found[hi - 1] = share
                hi -= 1
                if share < LEAD_WHOLE:
                    break
        tail.reverse()
        kept = [Move(max(m.beat, lo), min(m.beat + m.n_beats, hi) - max(m.beat, lo), SPEED, m.slot, m.dst_start_s, m.dst_end_s, m.match)
                for m in run if min(m.beat + m.n_beats, hi) > max(m.beat, lo)]
        if head:
            head[0].dst_start_s = run[0].dst_start_s
            kept[0].dst_start_s = head[-1].dst_end_s
        if tail:
            tail[-1].dst_end_s = run[-1].dst_end_s
            kept[-1].dst_end_s = tail[0].dst_start_s
        if not (head or tail) or any(m.dst_end_s <= m.dst_start_s for m in head + kept + tail):
            out.extend(run)
            continue
        log.debug("SPEED run at beats %d-%d: beats %s play unstretched", run[0].beat, run[-1].beat + run[-1].n_beats - 1,
                  [q.beat for q in head + tail])
        for a_, b_ in itertools.pairwise(head):
            b_.dst_start_s = a_.dst_end_s
        for a_, b_ in itertools.pairwise(tail):
            b_.dst_start_s = a_.dst_end_s
        peeled.update(found)
        out.extend([*head, *kept, *tail])
    return out, peeled


def _forward_share(
    raw_y: np.ndarray, edit_y: np.ndarray, starts: np.ndarray, ends: np.ndarray, beat: int, offset: int, min_match: float,
    *, from_start: bool, max_step: int,
) -> tuple[float, int, int]:
    """How much of raw beat ``beat`` is in the edit unstretched near ``offset``, counted from its start (or end) on.

    Windows of ``PIECE_N`` samples from that end of the beat, while each
    matches (``match_at`` within ``LEAD_SEARCH`` of the current offset,
    ``>= min_match``). An editor's join inside the beat (every piece of
    its edit is joined with an overlap) moves the edit earlier by up to
    ``max_step`` samples going forwards in time (later going backwards):
    up to ``LEAD_JOINS`` times a beat, a window that fails (and the one
    after it) is a join (its crossfade matches neither side) and counts as
    forward audio where the next window matches best within that step and
    the one after it matches there too (stretched audio drifts off any one
    offset within two windows).

    Returns
    -------
    tuple[float, int, int]
        the share of the beat's windows that matched, and the offsets
        (edit - raw samples) at the beat's start and end.
    """
    a = int(round(starts[beat] * FRAME_SR))
    b = int(round(ends[beat] * FRAME_SR))
    n_win = max(1, (b - a) // PIECE_N)
    win = (b - a) // n_win
    step = -max_step if from_start else max_step

    def at(k: int) -> int:
        return a + k * win if from_start else b - (k + 1) * win

    def fits(k: int, lag: int) -> bool:
        return match_at(raw_y, edit_y, at(k), at(k) + lag, win, search=LEAD_SEARCH) >= min_match

    def relock(k: int, lag: int) -> tuple[int, int] | None:
        """``(offset, next window)`` after a join at window ``k`` (its crossfade may take two windows), or None."""
        for q in (k + 1, k + 2):
            if q >= n_win:
                return None
            new = refine_offset(raw_y, edit_y, at(q), at(q) + lag + step // 2, win, search=abs(step) // 2 + LEAD_SEARCH)
            if fits(q, new) and (q + 1 >= n_win or fits(q + 1, new)):
                return new, q + 1
        return None

    lag, first, joins, k = offset, offset, 0, 0
    while k < n_win:
        if fits(k, lag):
            k += 1
            continue
        found = relock(k, lag) if joins < LEAD_JOINS else None
        if found is None:
            break
        if k == 0:
            first = found[0]
        (lag, k), joins = found, joins + 1
    return (k / n_win, first, lag) if from_start else (k / n_win, lag, first)


def _forward_beats(m: Move) -> list[Move]:
    """One forward move per beat of ``m``, its edit span shared out evenly."""
    step = (m.dst_end_s - m.dst_start_s) / m.n_beats
    return [Move(b, 1, FWD, 0, m.dst_start_s + k * step, m.dst_start_s + (k + 1) * step, m.match)
            for k, b in enumerate(range(m.beat, m.beat + m.n_beats))]


def _overlap_only(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], i: int, fwd_offset: dict[int, int],
    starts: np.ndarray, ends: np.ndarray, max_overlap_s: float, min_match: float,
) -> bool:
    """SPEED ``moves[i]`` sits between forward beats whose offsets step back by a splice overlap, and matches unstretched."""
    m = moves[i]
    prev, nxt = (moves[i - 1] if i > 0 else None), (moves[i + 1] if i + 1 < len(moves) else None)
    if (
        prev is None or nxt is None or prev.kind != FWD or nxt.kind != FWD
        or prev.beat not in fwd_offset or nxt.beat not in fwd_offset
    ):
        return False
    o1, o2 = fwd_offset[prev.beat], fwd_offset[nxt.beat]
    a = int(round(starts[m.beat] * FRAME_SR))
    b = int(round(ends[m.beat + m.n_beats - 1] * FRAME_SR))
    half = (b - a) // 2
    max_overlap = int(max_overlap_s * FRAME_SR) * (m.n_beats + 1)
    return -max_overlap <= o2 - o1 <= 0 and max(
        match_at(raw_y, edit_y, a, a + o1, half), match_at(raw_y, edit_y, a + half, a + half + o2, half)
    ) >= min_match


def _refine_diff(raw_y: np.ndarray, edit_y: np.ndarray, src0: int, dst0: int, n: int, search: int = 600) -> int:
    """``frames.refine_offset`` on the two signals' first differences (near ``src0`` and ``dst0`` only).

    A filter on the edit (a high-pass, a cut of the lows where most of a
    mix's power is) can move the plain correlation's peak by tens of ms;
    the differences weigh every band more evenly.
    """
    src0, dst0 = max(src0, 0), max(dst0, 0)
    lo = max(dst0 - search, 0)
    a = np.diff(raw_y[src0 : src0 + n + 1])
    e = np.diff(edit_y[lo : dst0 + n + search + 1])
    return refine_offset(a, e, 0, dst0 - lo, n, search=search) + lo - src0


def _edge_offset(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], i: int, j: int, starts: np.ndarray, ends: np.ndarray,
    step: int, win: int,
) -> int:
    """Edit minus raw offset (``FRAME_SR`` samples) of the forward audio before (``step`` -1) or after (+1) ``moves[i:j]``.

    Measured on ``win`` samples beside the run where the move there plays
    raw audio forwards at its edge (FWD, LOOP); else (the file's edge, a
    REVERSE, a SILENCE) on the run's own first (last) ``win`` samples,
    searched within half a beat of the offset the run implies
    (``_refine_diff``).
    """
    beat = int(float(ends[moves[i].beat] - starts[moves[i].beat]) * FRAME_SR)
    if step < 0:
        side = moves[i - 1] if i > 0 else None
        d0 = int(round(moves[i].dst_start_s * FRAME_SR))
        if side is not None and side.kind in (FWD, LOOP):
            r1 = int(round(ends[side.beat + side.n_beats - 1] * FRAME_SR))
            return _refine_diff(raw_y, edit_y, r1 - win, d0 - win, win)
        a = int(round(starts[moves[i].beat] * FRAME_SR))
        return _refine_diff(raw_y, edit_y, a, d0, win, search=beat // 2)
    side = moves[j] if j < len(moves) else None
    last = moves[j - 1]
    d1 = int(round(last.dst_end_s * FRAME_SR))
    if side is not None and side.kind in (FWD, LOOP):
        r0 = int(round(starts[side.beat] * FRAME_SR))
        return _refine_diff(raw_y, edit_y, r0, d1, win)
    b = int(round(ends[last.beat + last.n_beats - 1] * FRAME_SR))
    return _refine_diff(raw_y, edit_y, b - win, d1 - win, win, search=beat // 2)


def forward_pieces(
    raw_y: np.ndarray, edit_y: np.ndarray, d0: int, d1: int, offsets: tuple[int, ...], *, search: int = PIECE_SEARCH,
    min_match: float = OVERLAP_MATCH,
) -> np.ndarray | None:
    """Edit minus raw offset of each ``PIECE_N``-sample window of edit ``[d0, d1)``, where the span is spliced forward audio.

    Each window is matched (normalised correlation of first differences,
    which a filter on the edit changes less than the plain signals) within
    ``search`` samples of each of ``offsets`` (the forward audio's beside
    the span). Spliced forward audio places its windows (>= ``min_match``)
    at offsets that step only at its few splices (``PIECE_MAX_STEPS``, by
    more than ``PIECE_STEP``); a stretched or resampled span places few
    windows, or drifts a little at every one. Returns ``(n_windows,)``
    int64 offsets (a window that matched nowhere takes its neighbour's),
    or None where the span is not spliced forward audio (at least
    ``PIECE_PLACED`` of its audible windows must be placed).
    """
    n_win = (min(d1, edit_y.shape[0] - 1) - d0) // PIECE_N  # each window's difference reads one sample more
    if n_win < 1:
        return None
    lags = np.zeros(n_win, dtype=np.int64)
    placed = np.zeros(n_win, dtype=bool)
    audible = np.zeros(n_win, dtype=bool)
    for w in range(n_win):
        t0 = d0 + w * PIECE_N
        e = np.diff(edit_y[t0 : t0 + PIECE_N + 1].astype(np.float64))
        ee = float(e @ e)
        audible[w] = ee > 1e-7
        best = (-1.0, 0)
        for o in offsets:
            lo = t0 - o - search
            if lo < 0 or t0 - o + search + PIECE_N + 1 > raw_y.shape[0]:
                continue
            r = np.diff(raw_y[lo : t0 - o + search + PIECE_N + 1].astype(np.float64))
            c = correlate(r, e, mode="valid", method="fft")
            energy = np.concatenate([[0.0], np.cumsum(r * r)])
            win = energy[PIECE_N:] - energy[:-PIECE_N]
            score = c / np.sqrt(np.maximum(win, 1e-12) * max(ee, 1e-12))
            q = int(np.argmax(score))
            if score[q] > best[0]:
                best = (float(score[q]), t0 - (lo + q))
        placed[w] = audible[w] and best[0] >= min_match
        lags[w] = best[1]
    if not audible.any() or placed[audible].mean() < PIECE_PLACED:
        return None
    idx = np.flatnonzero(placed)
    steps = int(np.sum(np.abs(np.diff(lags[idx])) > PIECE_STEP))
    if steps > PIECE_MAX_STEPS:
        return None
    # windows placed nowhere (a splice's crossfade, a quiet patch) take the offset before them
    fill = np.maximum.accumulate(np.where(placed, np.arange(n_win), -1))
    fill = np.where(fill < 0, idx[0], fill)
    return lags[fill]


def respliced(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], i: int, j: int, starts: np.ndarray, ends: np.ndarray,
    *, min_match: float = OVERLAP_MATCH,
) -> list[Move] | None:
    """The run ``moves[i:j]`` (SPEED and CUT moves) as forward beats and CUTs, where the edit says it is spliced forward audio.

    The run's edit span must be the raw song played forwards in a few
    pieces (``forward_pieces``, near the offsets of the forward audio
    before and after the run, ``_edge_offset``): where an editor joined
    forward audio off this grid's beats (a crossfade that shortens the
    edit, a cut on another tracker's beats), each piece matches
    unstretched, while a stretched or resampled span drifts. The raw audio
    the pieces skip is cut: a beat mostly inside it is CUT, the rest play
    forwards. None where the run is not spliced forward audio, or the edit
    plays raw audio twice (a repeat, not a cut).
    """
    first, last = moves[i], moves[j - 1]
    d0, d1 = int(round(first.dst_start_s * FRAME_SR)), int(round(last.dst_end_s * FRAME_SR))
    if d1 - d0 < PIECE_N or d0 < 0 or d1 > edit_y.shape[0]:
        return None
    beat = float(ends[first.beat] - starts[first.beat]) * FRAME_SR
    win = max(BAND_NFFT, int(0.25 * beat))
    o_a = _edge_offset(raw_y, edit_y, moves, i, j, starts, ends, -1, win)
    o_b = _edge_offset(raw_y, edit_y, moves, i, j, starts, ends, 1, win)
    lags = forward_pieces(raw_y, edit_y, d0, d1, (o_a, o_b), min_match=min_match)
    log.debug("run of %d moves from beat %d: offsets %d, %d; pieces %s", j - i, first.beat, o_a, o_b,
              None if lags is None else sorted(set(lags.tolist())))
    if lags is None or np.any(np.diff(lags) > int(OVERLAP_MAX_S * FRAME_SR)):
        return None
    # raw sample played at the start of each window, and the raw audio the edit plays
    t_w = d0 + np.arange(lags.shape[0]) * PIECE_N
    x_w = t_w - lags
    ends_w = np.append(t_w[1:], d1) - lags
    out: list[Move] = []
    t = float(d0)
    for bt in range(first.beat, last.beat + last.n_beats):
        x0, x1 = starts[bt] * FRAME_SR, ends[bt] * FRAME_SR
        played = float(np.sum(np.clip(np.minimum(ends_w, x1) - np.maximum(x_w, x0), 0.0, None)))
        if played < 0.5 * (x1 - x0):
            p = out[-1] if out else None
            if p is not None and p.kind == CUT:
                out[-1] = Move(p.beat, p.n_beats + 1, CUT, 0, p.dst_start_s, p.dst_end_s)
            else:
                out.append(Move(bt, 1, CUT, 0, t / FRAME_SR, t / FRAME_SR))
            continue
        # the edit sample where raw x1 is played (the next window's start where x1 was skipped)
        w = int(np.searchsorted(ends_w, x1, side="left"))
        e1 = float(d1) if w >= lags.shape[0] else float(max(t_w[w], x1 + lags[w]))
        e1 = min(max(e1, t), float(d1))
        out.append(Move(bt, 1, FWD, 0, t / FRAME_SR, e1 / FRAME_SR, first.match))
        t = e1
    last_fwd = max((q for q, m in enumerate(out) if m.kind == FWD), default=None)
    if last_fwd is None:
        return None
    out[last_fwd].dst_end_s = d1 / FRAME_SR  # what rounding left over plays in the last forward beat
    for m in out[last_fwd + 1 :]:
        m.dst_start_s = m.dst_end_s = d1 / FRAME_SR
    return out


def splice_speeds_unsure(beats: ExtendedLabels, moves: list[Move]) -> None:
    """The beats of each SPEED move that is a splice's shortening (``splice_like_speed``) made KEEP, in place.

    After ``pitch_checks.pitch_in_speed``: a one-beat SPEED beside forward beats heard
    pitched its way is part of a resampled SPEED, not a splice. The beats
    keep the move's match as their confidence and are not judged for
    effects ("I don't know").
    """
    for gi, m in enumerate(moves):
        if m.kind != SPEED or not splice_like_speed(moves, gi):
            continue
        g = int(beats.group[m.beat])
        if g > 0 and int(np.sum(beats.group == g)) > m.n_beats:
            continue  # joined with pitched forward beats into a longer SPEED
        for b in range(m.beat, m.beat + m.n_beats):
            beats.types[b], beats.slots[b], beats.group[b] = "KEEP", 0, -1


def splice_like_speed(moves: list[Move], gi: int, min_match: float = SHORT_SPEED_MATCH) -> bool:
    """SPEED ``moves[gi]`` is one beat, alone, at a join, that matches its line only fairly: a splice, not a SPEED.

    An editor's splice that overlaps (2-50 ms) or cuts a fraction of a
    beat on another tracker's grid shortens the edit at one join, and the
    DP plays the beat there faster: a one-beat SPEED up, alone. On the
    foreign editor's pairs of the dev half (45 tracks) such SPEEDs matched
    under ``min_match`` were right 2 times in 25 (6 of them on unedited
    audio): not a label to learn from ("I don't know": KEEP, with the
    match as its confidence; ``splice_speeds_unsure``).

    Beside a move of another kind (a CUT, LOOP, REVERSE: the other
    editor's join of two pieces of the song, on its own beats; not a
    SILENCE, which mutes the song in place) or at the walk's ends (the edit's
    first and last pieces start or end on those beats), a lone one-beat
    SPEED either way matched under ``JOIN_SPEED_MATCH`` is as unsure: the
    DP squeezes or stretches our beat there to fit the join (dev half, 45
    tracks: 34 such SPEEDs, none right; the 16 right lone one-beat SPEEDs
    all lay between forward beats). Runs of SPEEDs, closely matched ones
    and slower ones between forward beats stay SPEED.
    """
    m = moves[gi]
    if m.n_beats != 1:
        return False
    beside = [moves[k] for k in (gi - 1, gi + 1) if 0 <= k < len(moves)]
    if any(x.kind == SPEED for x in beside):
        return False  # part of a run of SPEEDs
    # a SILENCE mutes the song where it is: no two pieces of it joined on the other editor's beats
    at_join = len(beside) < 2 or any(x.kind not in (FWD, SIL) for x in beside)
    if at_join and m.match < JOIN_SPEED_MATCH:
        return True
    return SPEED_RATES[m.slot] > 1.0 and m.match < min_match
