"""Step 3's second look: the DP's walk of moves checked on the samples, where the frames cannot decide.

A LOOP moves one beat where its repeats start there (``loop_phase``),
one-rate SPEED moves over consecutive beats merge (``merge_speed_runs``),
and a SPEED the forward offsets around it contradict is played forwards
(``drop_false_speeds``). CUTs and LOOPs between two moves on one forward
diagonal that play back like the raw song forwards are forward beats
(``forward_rearrangements``). Each takes and returns a list of
``align.Move``; times are seconds, samples at ``frames.FRAME_SR``.
"""

from __future__ import annotations

import logging

import numpy as np

from editorbot.training.labels.align import CUT, FWD, LOOP, LOOP_REPEATS, REV, SIL, SPEED, SPEED_RATES, STUT, Move
from editorbot.training.labels.frames import FRAME_HOP, FRAME_SR, match_at

log = logging.getLogger(__name__)

LOOP_PHASE_MARGIN = 0.05  # correlation a one-beat loop shift must gain to be taken (loop_phase)
REARRANGE_TOL_S = 0.03  # forward offsets this close on either side of a rearrangement are one diagonal
REARRANGE_MARGIN = 0.02  # mean correlation the forward reading of a rearrangement may lose and still be taken


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


def loop_phase(
    raw_y: np.ndarray,
    edit_y: np.ndarray,
    moves: list[Move],
    starts: np.ndarray,
    ends: np.ndarray,
    bar_starts: np.ndarray | None = None,
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
    higher (by ``LOOP_PHASE_MARGIN``). With ``bar_starts`` (indices into
    ``starts`` of the grid's downbeats), a shift from a loop off the bar
    line onto it is taken unless it scores lower by that margin: on a song
    that repeats itself exactly the repeats cannot choose (and an exact
    grid leaves the DP no frame of difference either), and an editor loops
    from the bar line.
    """
    bars = set() if bar_starts is None else {int(b) for b in bar_starts}

    def margin(b_from: int, b_to: int) -> float:
        return -LOOP_PHASE_MARGIN if b_to in bars and b_from not in bars else LOOP_PHASE_MARGIN
    out = list(moves)
    to_samples = FRAME_SR

    def score(b: int, k: int, reps: int, e0: float, span_s: float) -> float:
        if b < 0 or b + k > starts.shape[0]:
            return -1.0
        src0 = int(round(starts[b] * to_samples))
        n = int(round((ends[b] - starts[b]) * to_samples))
        span = span_s * to_samples
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
        span_s = (m.dst_end_s - m.dst_start_s) / (reps + 1)  # each play as the DP found it (the tracker's beats)
        best = (score(m.beat, k, reps, m.dst_start_s, span_s), 0)
        prev = out[i - 1] if i > 0 else None
        nxt = out[i + 1] if i + 1 < len(out) else None
        if prev is not None and prev.kind == FWD and prev.beat == m.beat - 1 and abs(prev.dst_end_s - m.dst_start_s) < 1e-6:
            best = max(best, (score(m.beat - 1, k, reps, prev.dst_start_s, span_s) - margin(m.beat, m.beat - 1), -1))
        if nxt is not None and nxt.kind == FWD and nxt.beat == m.beat + k and abs(nxt.dst_start_s - m.dst_end_s) < 1e-6:
            e0 = m.dst_start_s + (ends[m.beat] - starts[m.beat])
            best = max(best, (score(m.beat + 1, k, reps, e0, span_s) - margin(m.beat, m.beat + 1), 1))
        if best[1] == -1:
            assert prev is not None  # best[1] == -1 only when the earlier move was checked
            tail = ends[m.beat + k - 1] - starts[m.beat + k - 1]  # the old loop's last beat now plays after it
            loop = Move(m.beat - 1, k, LOOP, m.slot, prev.dst_start_s, m.dst_end_s - tail)
            fwd = Move(m.beat + k - 1, 1, FWD, 0, m.dst_end_s - tail, m.dst_end_s)
            out[i - 1 : i + 1] = [loop, fwd]
            log.debug("loop at beat %d moved one beat earlier (its repeats match %.2f, bar-line margin applied)", m.beat, best[0])
        elif best[1] == 1:
            assert nxt is not None  # best[1] == 1 only when the next move was checked
            head = ends[m.beat] - starts[m.beat]
            fwd = Move(m.beat, 1, FWD, 0, m.dst_start_s, m.dst_start_s + head)
            loop = Move(m.beat + 1, k, LOOP, m.slot, m.dst_start_s + head, nxt.dst_end_s)
            out[i : i + 2] = [fwd, loop]
            log.debug("loop at beat %d moved one beat later (its repeats match %.2f, bar-line margin applied)", m.beat, best[0])
        i += 1
    return out


def forward_rearrangements(
    raw_y: np.ndarray, edit_y: np.ndarray, moves: list[Move], starts: np.ndarray, ends: np.ndarray
) -> list[Move]:
    """Moves with each CUT/LOOP rearrangement that plays back like the raw song forwards made forward beats.

    A song that repeats itself bar for bar (a tracker loop, a drum
    machine) lets the DP explain a stretch the edit plays unchanged as
    CUTs and LOOPs of equal total length (cut a bar, loop the next one):
    the copies are equal, and once earlier loops have moved the edit off
    the raw song by a fraction of a frame (a loop's length is no multiple
    of the frame hop), a copy whose frames fall on another phase can match
    the edit's frames a few hundredths better per frame, more over a
    phrase than the rearrangement's action costs. The samples tell the
    two apart where the frames cannot: between two moves on one forward
    diagonal (a forward beat or a LOOP's last repeat before, a forward
    beat or a LOOP's first play after, edit minus raw within
    ``REARRANGE_TOL_S``) with only CUT, LOOP and forward moves in between,
    the raw beats between them played forwards at that offset are taken
    when their mean normalised correlation with the edit (per beat,
    ``match_at``) is at most ``REARRANGE_MARGIN`` below that of the moves'
    own reading: equal audio, the simpler edit.
    """
    out = list(moves)
    sr = FRAME_SR

    def corr(src_s: float, dst_s: float, n_s: float) -> float:
        return match_at(raw_y, edit_y, int(round(src_s * sr)), int(round(dst_s * sr)), int(round(n_s * sr)))

    def own(m: Move) -> list[float]:
        """Per-beat correlation of a FWD or LOOP move's reading of the edit (none for a CUT)."""
        if m.kind == CUT:
            return []
        reps = LOOP_REPEATS[m.slot] if m.kind == LOOP else 0
        span = (m.dst_end_s - m.dst_start_s) / (reps + 1)
        return [
            corr(starts[b], m.dst_start_s + r * span + starts[b] - starts[m.beat], ends[b] - starts[b])
            for r in range(reps + 1)
            for b in range(m.beat, m.beat + m.n_beats)
        ]

    i = 0
    while i < len(out):
        a = out[i]
        if a.kind not in (FWD, LOOP) or i + 1 >= len(out) or out[i + 1].kind == FWD and out[i + 1].beat == a.beat + a.n_beats:
            i += 1
            continue
        off_s = a.dst_end_s - ends[a.beat + a.n_beats - 1]
        first = a.beat + a.n_beats
        k = i + 1
        while k < len(out) and out[k].kind in (CUT, LOOP, FWD):
            c = out[k]
            if c.kind != CUT and c.beat > first and abs(c.dst_start_s - starts[c.beat] - off_s) < REARRANGE_TOL_S:
                break
            k += 1
        if k >= len(out) or out[k].kind not in (FWD, LOOP) or out[k].beat <= first:
            i += 1
            continue
        last = out[k].beat
        mine = [v for m in out[i + 1 : k] for v in own(m)]
        keep = [corr(starts[b], starts[b] + off_s, ends[b] - starts[b]) for b in range(first, last)]
        if not mine or float(np.mean(keep)) < float(np.mean(mine)) - REARRANGE_MARGIN:
            i += 1
            continue
        log.debug(
            "beats %d-%d: %d moves read as forward beats (correlation %.3f against %.3f)",
            first, last - 1, k - i - 1, float(np.mean(keep)), float(np.mean(mine)),
        )
        out[i + 1 : k] = [Move(b, 1, FWD, 0, starts[b] + off_s, ends[b] + off_s) for b in range(first, last)]
        i += 1 + last - first
    return out
