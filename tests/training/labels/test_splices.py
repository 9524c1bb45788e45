"""training.labels.splices: the grid's phase and the edit's splices, measured on the sample."""

from __future__ import annotations

import numpy as np

from editorbot.engine.render import CROSSFADE_S
from editorbot.training.labels.align import CUT, FWD, Move
from editorbot.training.labels.frames import FRAME_SR
from editorbot.training.labels.splices import edit_file_gain, onset_shift, splice_starts


def _spliced(raw: np.ndarray, cut: int, skip: int) -> np.ndarray:
    """``raw`` with ``skip`` samples from ``cut`` left out, spliced as ``engine.render`` splices: crossfaded before the cut."""
    xf = int(round(CROSSFADE_S * FRAME_SR))
    a = raw[cut - xf : cut].astype(np.float64)
    b = raw[cut - xf + skip : cut + skip].astype(np.float64)
    r = min(1.0, max(0.0, float(a @ b) / np.sqrt(float(a @ a) * float(b @ b))))
    t = (np.arange(xf) + 0.5) / xf
    f_in, f_out = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)
    mix = (f_out * a + f_in * b) / np.sqrt(1.0 + 2.0 * r * f_in * f_out)
    return np.concatenate([raw[: cut - xf], mix.astype(np.float32), raw[cut + skip :]])


def test_onset_shift_puts_the_grid_on_the_attacks() -> None:
    """Clicks 12 ms after the grid's beats: the shift found is within two of its 1.5 ms steps of it."""
    beats = np.arange(1, 17) * 0.5
    y = np.zeros(int(9.0 * FRAME_SR), np.float32)
    for t in beats + 0.012:
        k = int(t * FRAME_SR)
        y[k : k + 400] = np.exp(-np.arange(400) / 80.0)
    step_s = 32 / FRAME_SR
    assert abs(onset_shift(y, beats) - 0.012) <= 2 * step_s
    assert abs(onset_shift(y, beats + 0.012)) <= 2 * step_s


def test_a_jump_is_measured_on_its_sample_and_a_louder_file_is_seen() -> None:
    """Raw beats 0-3, a CUT of 4-5, then 6-9: the splice falls where the edit has it, not where the grid guessed."""
    rng = np.random.default_rng(4)
    beat = 11025  # 0.5 s
    raw = (0.1 * rng.standard_normal(10 * beat)).astype(np.float32)
    cut = 4 * beat + 90  # the edit was cut 90 samples after the grid's beat 4 (and beat 6 likewise)
    edit = _spliced(raw, cut, 2 * beat)
    starts = np.arange(10) * beat / FRAME_SR
    ends = starts + beat / FRAME_SR
    sec = beat / FRAME_SR
    moves = [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(4)]
    moves += [Move(4, 2, CUT, 0, 4 * sec, 4 * sec)]
    moves += [Move(b, 1, FWD, 0, (b - 2) * sec, (b - 1) * sec) for b in range(6, 10)]
    offsets = {b: 0 for b in range(4)} | {b: -2 * beat for b in range(6, 10)}
    found = splice_starts(raw, edit, moves, starts, offsets, ends=ends)
    assert abs(found[4] * FRAME_SR - cut) <= 2 and abs(found[6] * FRAME_SR - (cut + 2 * beat)) <= 2
    assert edit_file_gain(raw, edit, moves, starts, ends, offsets) == 0.0
    louder = edit * np.float32(10 ** (3 / 20))
    assert abs(edit_file_gain(raw, louder, moves, starts, ends, offsets) - 3.0) < 0.05
