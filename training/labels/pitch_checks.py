"""Forward beats heard pitched that are a speed change by resampling: PITCH runs made SPEED (step 5 of ``infer``).

A speed change by resampling (a turntable, a rate between the
vocabulary's steps: x1.06 is +1 semitone) raises the pitch with the rate.
The alignment DP, whose nearest rate over a beat is 1 or 1.1, plays some
of its beats forwards, and the effects step then hears them pitched. Two
checks on the per-beat labels (``infer.ExtendedLabels``), in this order:
``pitch_in_speed`` (PITCH beats between two SPEEDs their way join them)
and ``resampled_pitch`` (PITCH beats the edit plays shorter or longer than
the raw song are a SPEED of their own).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from editorbot.training.labels.align import FWD, SPEED_RATES, Move
from editorbot.training.labels.frames import FRAME_HOP, FRAME_SR

if TYPE_CHECKING:  # infer imports this module
    from editorbot.training.labels.infer import ExtendedLabels

log = logging.getLogger(__name__)

#: A run of PITCH beats played at this rate or beyond, the pitch's way, is a resampled SPEED (``resampled_pitch``):
#: half of +1 semitone (x1.059), over at least this many frames of length change (the DP's slack is a frame or so).
RESAMPLE_MIN_RATE = 1.03
RESAMPLE_MIN_FRAMES = 1.5


def _ungrouped_pitch_runs(beats: ExtendedLabels) -> Iterator[tuple[int, int, bool]]:
    """``(b, e, up)``: each run ``[b, e)`` of PITCH beats in no action group, and whether most of it is pitched up.

    Runs are read as the caller leaves the beats: one may relabel a run
    before the next is looked for.
    """
    types, slots, group = beats.types, beats.slots, beats.group
    n = len(types)
    b = 0
    while b < n:
        if types[b] != "PITCH" or group[b] >= 0:
            b += 1
            continue
        e = b
        while e < n and types[e] == "PITCH" and group[e] < 0:
            e += 1
        yield b, e, sum(slots[k] >= 2 for k in range(b, e)) * 2 > e - b  # PITCH slots 2, 3 are up
        b = e


def pitch_in_speed(beats: ExtendedLabels) -> None:
    """Forward beats read as PITCH beside a SPEED that goes their way become part of that SPEED, in place.

    A speed change by resampling (a turntable, a rate between this
    vocabulary's steps) raises the pitch with the rate; the DP plays some
    of its beats forwards (a rate of 1.06 is nearer 1 than 1.1 over one
    beat) and the effects step then hears them pitched. A run of PITCH
    beats up (down) between two faster (slower) SPEEDs is that SPEED: the
    run and the later SPEED join the earlier one's slot and action group.
    (A PITCH on one side of a SPEED only is an edit of its own.)
    """
    types, slots, group = beats.types, beats.slots, beats.group
    n = len(types)
    faster = [SPEED_RATES[s] > 1.0 for s in range(len(SPEED_RATES))]

    def speed_at(k: int, up: bool) -> bool:
        return 0 <= k < n and types[k] == "SPEED" and group[k] > 0 and faster[slots[k]] == up

    for b, e, up in _ungrouped_pitch_runs(beats):
        if speed_at(b - 1, up) and speed_at(e, up):
            g, slot = int(group[b - 1]), slots[b - 1]
            conf = float(beats.confidence[b - 1])
            for k in range(b, e):
                types[k], slots[k], group[k] = "SPEED", slot, g
                beats.confidence[k] = min(float(beats.confidence[k]), conf)
            other = int(group[e])
            for k in range(e, n):
                if group[k] != other:
                    break
                group[k], slots[k] = g, slot


def resampled_pitch(
    beats: ExtendedLabels, moves: list[Move], starts: np.ndarray, ends: np.ndarray, *, min_rate: float = RESAMPLE_MIN_RATE
) -> None:
    """Runs of PITCH beats that the edit plays shorter (pitched up) or longer (down) than the raw song become a SPEED, in place.

    A speed change by resampling between this vocabulary's rates (x1.06 is
    +1 semitone) plays its beats faster and higher; the DP, whose nearest
    rate over a beat is 1 or 1.1, plays most of them forwards and takes the
    shortening in its forward moves' slack, and the effects step then
    hears them pitched. A pitch shift keeps the beats' length. A run of
    PITCH beats (forward, one way) whose moves span at least
    ``RESAMPLE_MIN_FRAMES`` frames less (more) in the edit than its raw
    beats, at a rate beyond ``min_rate`` (``1 / min_rate``) the pitch's way,
    is that SPEED: its beats take the vocabulary's nearest rate that way
    (1.1 or 0.9) and an action group of their own (on the dev half, 14 of
    the foreign editor's wrong labels were such PITCH beats inside
    resampled SPEEDs). ``starts``/``ends``: ``(n,)`` extended grid, seconds.
    """
    types, slots, group = beats.types, beats.slots, beats.group
    n = len(types)
    edit_s = np.zeros(n)
    for m in moves:
        if m.kind == FWD:
            edit_s[m.beat : m.beat + m.n_beats] = (m.dst_end_s - m.dst_start_s) / m.n_beats
    frame_s = FRAME_HOP / FRAME_SR
    next_group = max(int(group.max()) if n else 0, 0) + 1
    for b, e, up in _ungrouped_pitch_runs(beats):
        raw_s, played_s = float(np.sum(ends[b:e] - starts[b:e])), float(np.sum(edit_s[b:e]))
        rate = raw_s / max(played_s, 1e-9)
        if played_s > 0 and abs(raw_s - played_s) >= RESAMPLE_MIN_FRAMES * frame_s and (
            rate >= min_rate if up else rate <= 1.0 / min_rate
        ):
            log.debug("beats %d-%d: PITCH played at x%.3f, a resampled SPEED", b, e - 1, rate)
            slot = 2 if up else 1  # SPEED_RATES: 0.8, 0.9, 1.1, 1.25
            for k in range(b, e):
                types[k], slots[k], group[k] = "SPEED", slot, next_group
            next_group += 1
