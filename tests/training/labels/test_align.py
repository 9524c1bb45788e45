"""training.labels.align: the beat period and the walk's checks on the samples."""

from __future__ import annotations

import numpy as np

from editorbot.training.labels.align import (
    CUT,
    FWD,
    LOOP,
    LOOP_REPEATS,
    REV,
    STUTTER_SLICES,
    Move,
    _stutter_scores,
    align,
    grid_period,
)
from editorbot.training.labels.frames import FRAME_HOP, FRAME_SR, frame_features
from editorbot.training.labels.move_checks import forward_rearrangements, loop_phase

BEAT = 11025  # samples at FRAME_SR: 0.5 s
N_BEATS = 16


def notes_song(seed: int) -> np.ndarray:
    """``N_BEATS`` beats of ``BEAT`` samples at ``FRAME_SR``: a short note of its own pitch every eighth of a beat.

    (White noise would look alike everywhere.)
    """
    rng = np.random.default_rng(seed)
    t = np.arange(BEAT // 8) / FRAME_SR
    notes = [np.sin(2 * np.pi * f * t) * np.exp(-t / 0.02) for f in rng.uniform(200, 4000, 8 * N_BEATS)]
    return np.concatenate(notes).astype(np.float32)


def test_grid_period_is_the_line_through_the_beats():
    """Frame-quantised beats: the fitted period is within 0.1 ms of the true one, the median beat is not."""
    period = 0.4321
    hop = 512 / 22050
    beats = np.round(np.arange(64) * period / hop) * hop  # a tracker's frame grid
    assert abs(grid_period(beats) - period) < 1e-4
    assert abs(float(np.median(np.diff(beats))) - period) > 1e-3


def test_loop_phase_moves_a_loop_to_where_its_repeats_start():
    """A loop found one beat early (after a beat it should include) is moved to the beat its repeats start on."""
    rng = np.random.default_rng(3)
    beat = 2000  # samples at FRAME_SR
    raw = rng.standard_normal(12 * beat).astype(np.float32)
    # the edit: beat 0, then beats 1..4 played twice (LOOP BAR, one repeat), then beats 5..11
    edit = np.concatenate([raw[:beat], raw[beat : 5 * beat], raw[beat : 5 * beat], raw[5 * beat :]])
    starts = np.arange(12) * beat / FRAME_SR
    ends = starts + beat / FRAME_SR
    sec = beat / FRAME_SR
    slot = LOOP_REPEATS.index(1)
    found = [  # what the frames could not tell apart: loop of beats 0..3, then beat 4
        Move(0, 4, LOOP, slot, 0.0, 8 * sec),
        Move(4, 1, FWD, 0, 8 * sec, 9 * sec),
    ] + [Move(b, 1, FWD, 0, (b + 4) * sec, (b + 5) * sec) for b in range(5, 12)]
    fixed = loop_phase(raw, edit, found, starts, ends)
    assert (fixed[0].kind, fixed[0].beat) == (FWD, 0)
    assert (fixed[1].kind, fixed[1].beat, fixed[1].n_beats) == (LOOP, 1, 4)
    assert abs(fixed[1].dst_start_s - sec) < 1e-6 and abs(fixed[1].dst_end_s - 9 * sec) < 1e-6
    assert [m.beat for m in fixed[2:]] == list(range(5, 12))


def test_a_rearrangement_of_a_song_that_repeats_itself_is_read_forwards():
    """CUT two beats, loop the next two: on a song repeating every two beats, the beats played forwards; on noise, kept."""
    rng = np.random.default_rng(5)
    beat = 2000  # samples at FRAME_SR
    sec = beat / FRAME_SR
    starts = np.arange(12) * sec
    ends = starts + sec
    found = [  # beat 0, CUT 1-2, beats 3-4 played twice, beats 5.. (one forward diagonal either side)
        Move(0, 1, FWD, 0, 0.0, sec),
        Move(1, 2, CUT, 0, sec, sec),
        Move(3, 2, LOOP, LOOP_REPEATS.index(1), sec, 5 * sec),
    ] + [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(5, 12)]
    repeating = np.tile(rng.standard_normal(2 * beat).astype(np.float32), 6)
    fixed = forward_rearrangements(repeating, repeating, found, starts, ends)
    assert [(m.kind, m.beat) for m in fixed] == [(FWD, b) for b in range(12)]
    assert all(abs(m.dst_start_s - m.beat * sec) < 1e-6 for m in fixed)
    # a song that does not repeat: the edit really is that rearrangement
    raw = rng.standard_normal(12 * beat).astype(np.float32)
    edit = np.concatenate([raw[:beat], raw[3 * beat : 5 * beat], raw[3 * beat : 5 * beat], raw[5 * beat :]])
    assert forward_rearrangements(raw, edit, found, starts, ends) == found


def test_stutter_slices_are_scored_at_each_beats_own_length():
    """A stutter slicing a beat 5% longer than the grid's period repeats at its own beat's lag, not the period's."""
    rng = np.random.default_rng(5)
    period_s = 0.5
    lengths = np.full(8, period_s)
    lengths[2] = 0.525  # the tracker's beats are whole hops: 3-6% apart within a song
    a = STUTTER_SLICES.index(0.25)
    lag = int(round(0.25 * lengths[2] * FRAME_SR))
    y = rng.standard_normal(4 * FRAME_SR).astype(np.float32)
    t0 = FRAME_SR
    edit = np.concatenate([y[:t0], np.tile(y[t0 : t0 + lag], 8), y[t0:]])
    per, rows, best = _stutter_scores(frame_features(edit), period_s, lengths, 1.0)
    f0, f1 = (t0 + 2 * lag) // FRAME_HOP, (t0 + 7 * lag) // FRAME_HOP
    own, grid = rows[2, a]
    assert own != grid
    assert (per[own, f1] - per[own, f0]) / (f1 - f0) > 0.9
    assert (per[grid, f1] - per[grid, f0]) / (f1 - f0) < 0.0
    assert np.all(best[f0:f1] > 0.9)
    # the other beats read the period's lag
    assert rows[0, a, 0] == rows[0, a, 1] == grid


def test_a_reverse_off_the_grid_is_found_on_the_beats_it_covers():
    """A span reversed by an editor on another grid (0.3 beat off every span of ours) is a shifted REVERSE."""
    raw = notes_song(7)
    a, b = int(6.3 * BEAT), int(7.3 * BEAT)  # one beat's length, 0.3 beat late
    edit = np.concatenate([raw[:a], raw[a:b][::-1], raw[b:]])
    starts = np.arange(N_BEATS) * 0.5
    _, moves, _ = align(frame_features(raw, variants=True), frame_features(edit), starts, starts + 0.5, len(edit) / FRAME_SR, beat_s=0.5)
    rev = [m for m in moves if m.kind == REV]
    assert len(rev) == 1 and (rev[0].beat, rev[0].n_beats) == (6, 1)
    assert abs(rev[0].shift_s - 0.3) < 0.03  # twice 0.3 beat of 0.5 s: the line through a reversal
    assert all(m.kind == FWD for m in moves if m is not rev[0])


def test_a_loop_of_three_beats_is_one_loop_move():
    """Three beats played three times (a length off the vocabulary's sizes) align as one 3-beat LOOP, two repeats."""
    raw = notes_song(11)
    a, b = 5 * BEAT, 8 * BEAT
    edit = np.concatenate([raw[:b], raw[a:b], raw[a:b], raw[b:]])
    starts = np.arange(N_BEATS) * 0.5
    _, moves, _ = align(frame_features(raw, variants=True), frame_features(edit), starts, starts + 0.5, len(edit) / FRAME_SR, beat_s=0.5)
    loops = [m for m in moves if m.kind == LOOP]
    assert len(loops) == 1
    assert (loops[0].beat, loops[0].n_beats, LOOP_REPEATS[loops[0].slot]) == (5, 3, 2)
    assert all(m.kind == FWD for m in moves if m is not loops[0])


def test_an_edit_that_ends_inside_a_beat_plays_it_forwards_then_cuts():
    """The edit stops 40% into beat 12 (another editor's last splice off our grid): forward beats, then CUT, no SPEED."""
    raw = notes_song(13)
    edit = raw[: int(12.4 * BEAT)]
    starts = np.arange(N_BEATS) * 0.5
    _, moves, _ = align(frame_features(raw, variants=True), frame_features(edit), starts, starts + 0.5, len(edit) / FRAME_SR, beat_s=0.5)
    assert [m.kind for m in moves if m.beat < 13] == [FWD] * 13
    assert all(m.kind == CUT for m in moves if m.beat >= 13)
    assert abs(moves[12].dst_end_s - len(edit) / FRAME_SR) < 0.03


def test_a_loop_of_the_trackers_own_bar_is_found():
    """A bar looped four times as the tracker has it (60 ms longer than the smoothed grid's): one LOOP, forwards after."""
    raw = notes_song(11)
    own = np.full(N_BEATS, 0.5)
    own[4:8] = [0.5, 0.52, 0.5, 0.54]  # the tracker's beats 4-7: a bar of 2.06 s, starting on the grid
    a, b = 4 * BEAT, 4 * BEAT + int(round(2.06 * FRAME_SR))
    edit = np.concatenate([raw[:a]] + [raw[a:b]] * 3 + [raw[a:]])  # the bar plays four times, then the rest
    starts = np.arange(N_BEATS) * 0.5
    _, moves, _ = align(
        frame_features(raw, variants=True), frame_features(edit), starts, starts + 0.5, len(edit) / FRAME_SR,
        beat_s=0.5, slice_beats_s=own,
    )
    loops = [m for m in moves if m.kind == LOOP]
    assert len(loops) == 1 and (loops[0].beat, loops[0].n_beats, LOOP_REPEATS[loops[0].slot]) == (4, 4, 3)
    assert all(m.kind == FWD for m in moves if m is not loops[0])
