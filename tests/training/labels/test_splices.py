"""training.labels.splices: the grid's phase and the edit's splices, measured on the sample."""

from __future__ import annotations

import numpy as np

from editorbot.engine.render import CROSSFADE_S
from editorbot.training.labels.align import CUT, FWD, SPEED, SPEED_RATES, Move
from editorbot.training.labels.frames import FRAME_SR
from editorbot.training.labels.speed_checks import (
    OVERLAP_MATCH,
    OVERLAP_MAX_S,
    _peeled_overlaps,
    overlap_speeds,
    respliced,
    speed_lead_ins,
)
from editorbot.training.labels.splices import (
    edit_file_gain,
    forward_offsets,
    onset_shift,
    splice_starts,
)


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


def test_a_splice_overlap_is_not_a_speed_and_a_normalised_file_is_one_gain() -> None:
    """Joins that overlap by 30 ms shorten the edit: forward audio, not SPEED; a peak-normalised edit is one file gain."""
    rng = np.random.default_rng(5)
    beat = 11025
    raw = (0.1 * rng.standard_normal(12 * beat)).astype(np.float32)
    overlap = int(0.03 * FRAME_SR)
    edit = np.concatenate([raw[: 6 * beat], raw[6 * beat + overlap :]])  # beat 6 loses its first 30 ms
    sec = beat / FRAME_SR
    starts = np.arange(12) * sec
    ends = starts + sec
    rate = SPEED_RATES[2]
    moves = [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(6)]
    moves += [Move(6, 1, SPEED, 2, 6 * sec, 6 * sec + sec / rate)]
    moves += [Move(b, 1, FWD, 0, b * sec - overlap / FRAME_SR, (b + 1) * sec - overlap / FRAME_SR) for b in range(7, 12)]
    offsets = forward_offsets(raw, edit, moves, starts, sec)
    assert offsets[0] == 0 and offsets[11] == -overlap
    fixed = overlap_speeds(raw, edit, moves, offsets, starts, ends)
    assert [m.kind for m in fixed] == [FWD] * 12
    # a resampled beat (faster and higher) is a real SPEED
    n_fast = int(round(beat / rate))
    fast = np.interp(np.arange(n_fast) * rate, np.arange(beat), raw[6 * beat : 7 * beat]).astype(np.float32)
    sped = np.concatenate([raw[: 6 * beat], fast, raw[7 * beat :]])
    offsets = forward_offsets(raw, sped, moves, starts, sec)
    assert [m.kind for m in overlap_speeds(raw, sped, moves, offsets, starts, ends)].count(SPEED) == 1
    # most beats one level lower (a peak normalisation), a few lower still (an editor's GAIN)
    fwd = [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(12)]
    quieter = raw * np.float32(10 ** (-6 / 20))
    quieter[2 * beat : 4 * beat] *= np.float32(10 ** (-4.5 / 20))
    quieter[8 * beat : 10 * beat] *= np.float32(10 ** (-9 / 20))
    gain = edit_file_gain(raw, quieter, fwd, starts, ends, {b: 0 for b in range(12)})
    assert abs(gain + 6.0) < 0.05


def test_a_speed_beside_a_cut_off_the_grid_is_forward_audio_and_a_cut() -> None:
    """An editor cut one beat from 3000 samples past the grid's beat 4: the DP's SPEED + CUT are read back as CUT + forward."""
    rng = np.random.default_rng(6)
    beat = 11025
    sec = beat / FRAME_SR
    raw = (0.1 * rng.standard_normal(12 * beat)).astype(np.float32)
    edit = np.concatenate([raw[: 4 * beat + 3000], raw[5 * beat + 3000 :]])
    starts = np.arange(12) * sec
    ends = starts + sec
    moves = [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(4)]
    moves += [Move(4, 1, SPEED, 2, 4 * sec, 5 * sec), Move(5, 1, CUT, 0, 5 * sec, 5 * sec)]
    moves += [Move(b, 1, FWD, 0, (b - 1) * sec, b * sec) for b in range(6, 12)]
    redone = respliced(raw, edit, moves, 4, 6, starts, ends)
    assert redone is not None
    # beat 4 plays only its first 3000 samples (under half): CUT; beat 5 plays from 3000 on: forward
    assert [(m.beat, m.n_beats, m.kind) for m in redone] == [(4, 1, CUT), (5, 1, FWD)]
    assert redone[-1].dst_end_s == 5 * sec
    fixed = overlap_speeds(raw, edit, moves, forward_offsets(raw, edit, moves, starts, sec), starts, ends)
    assert SPEED not in [m.kind for m in fixed]
    # a resampled beat (faster and higher) between forward beats stays a SPEED
    rate = SPEED_RATES[2]
    n_fast = int(round(beat / rate))
    fast = np.interp(np.arange(n_fast) * rate, np.arange(beat), raw[4 * beat : 5 * beat]).astype(np.float32)
    sped = np.concatenate([raw[: 4 * beat], fast, raw[5 * beat :]])
    moves = [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(4)]
    moves += [Move(4, 1, SPEED, 2, 4 * sec, 4 * sec + n_fast / FRAME_SR)]
    moves += [Move(b, 1, FWD, 0, (b - 1) * sec + n_fast / FRAME_SR, b * sec + n_fast / FRAME_SR) for b in range(5, 12)]
    assert respliced(raw, sped, moves, 4, 5, starts, ends) is None


def test_an_edit_ending_after_a_splice_overlap_ends_inside_the_last_beat_not_in_a_speed() -> None:
    """The last piece joined with a 30 ms overlap: the song's short last beat plays forwards, not as a SPEED."""
    rng = np.random.default_rng(8)
    beat = 11025
    tail = int(0.85 * beat)  # the song ends inside its last beat
    raw = (0.1 * rng.standard_normal(11 * beat + tail)).astype(np.float32)
    overlap = int(0.03 * FRAME_SR)
    edit = np.concatenate([raw[: 11 * beat], raw[11 * beat + overlap :]])
    sec = beat / FRAME_SR
    starts = np.arange(12) * sec
    ends = starts + sec
    ends[-1] = raw.shape[0] / FRAME_SR
    moves = [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(11)]
    moves.append(Move(11, 1, SPEED, 2, 11 * sec, edit.shape[0] / FRAME_SR))
    offsets = forward_offsets(raw, edit, moves, starts, sec)
    fixed = _peeled_overlaps(raw, edit, moves, offsets, starts, ends, OVERLAP_MAX_S, OVERLAP_MATCH)
    assert [m.kind for m in fixed] == [FWD] * 12
    assert abs(fixed[-1].dst_end_s - edit.shape[0] / FRAME_SR) < 1e-9
    # the last beat resampled faster (shorter and higher) is a real SPEED
    rate = SPEED_RATES[2]
    n_fast = int(round(tail / rate))
    fast = np.interp(np.arange(n_fast) * rate, np.arange(tail), raw[11 * beat :]).astype(np.float32)
    sped = np.concatenate([raw[: 11 * beat], fast])
    moves[-1] = Move(11, 1, SPEED, 2, 11 * sec, sped.shape[0] / FRAME_SR)
    offsets = forward_offsets(raw, sped, moves, starts, sec)
    kinds = [m.kind for m in _peeled_overlaps(raw, sped, moves, offsets, starts, ends, OVERLAP_MAX_S, OVERLAP_MATCH)]
    assert kinds.count(SPEED) == 1


def test_a_long_effect_at_one_level_is_not_the_files_gain() -> None:
    """15 beats under a delay (echoes, -2 dB) outnumber 9 unedited ones: the file's gain is read from the unedited beats."""
    rng = np.random.default_rng(10)
    beat = 11025
    raw = (0.1 * rng.standard_normal(24 * beat)).astype(np.float32)
    edit = raw.copy()
    lag = 3000
    wet = 0.55 * raw[9 * beat :] + 0.3 * raw[9 * beat - lag : -lag]  # a delay's dry part lowered, its echo added
    edit[9 * beat :] = wet
    sec = beat / FRAME_SR
    starts = np.arange(24) * sec
    fwd = [Move(b, 1, FWD, 0, b * sec, (b + 1) * sec) for b in range(24)]
    zero = {b: 0 for b in range(24)}
    assert edit_file_gain(raw, edit, fwd, starts, starts + sec, zero) == 0.0
    # the grid's last beat ending past the raw song's last sample
    ends = starts + sec
    ends[-1] += 0.01
    assert edit_file_gain(raw, np.concatenate([edit, np.zeros(FRAME_SR, np.float32)]), fwd, starts, ends, zero) == 0.0
    # the same edit turned down 4 dB as a whole: the unedited beats say -4
    gain = edit_file_gain(raw, edit * np.float32(10 ** (-4 / 20)), fwd, starts, starts + sec, zero)
    assert abs(gain + 4.0) < 0.05


def test_a_speed_runs_unstretched_lead_in_beats_play_forwards() -> None:
    """An editor resampled raw 5.6-8.0 beats (x1.15): the DP's SPEEDs over beats 4-7 give back 4 (forward) and 5 (0.6 forward)."""
    rng = np.random.default_rng(12)
    beat = 11025
    sec = beat / FRAME_SR
    raw = (0.1 * rng.standard_normal(12 * beat)).astype(np.float32)
    a, b = int(5.6 * beat), 8 * beat
    rate = 1.15
    n_fast = int(round((b - a) / rate))
    fast = np.interp(np.arange(n_fast) * rate, np.arange(b - a), raw[a:b]).astype(np.float32)
    edit = np.concatenate([raw[:a], fast, raw[b:]])
    shift = n_fast - (b - a)  # samples the forward audio after the SPEED moved (negative: earlier)
    starts = np.arange(12) * sec
    ends = starts + sec
    moves = [Move(k, 1, FWD, 0, k * sec, (k + 1) * sec) for k in range(4)]
    # the DP's run: x1.1 over beats 4-5, x1.25 over 6-7
    mid = 6 * sec - 0.1
    moves.append(Move(4, 2, SPEED, 2, 4 * sec, mid))
    moves.append(Move(6, 2, SPEED, 3, mid, 8 * sec + shift / FRAME_SR))
    moves += [Move(k, 1, FWD, 0, k * sec + shift / FRAME_SR, (k + 1) * sec + shift / FRAME_SR) for k in range(8, 12)]
    offsets = forward_offsets(raw, edit, moves, starts, sec)
    fixed, peeled = speed_lead_ins(raw, edit, moves, offsets, starts, ends)
    assert [(m.beat, m.n_beats, m.kind, m.slot) for m in fixed[3:7]] == [(3, 1, FWD, 0), (4, 1, FWD, 0), (5, 1, FWD, 0), (6, 2, SPEED, 3)]
    assert set(peeled) == {4, 5} and peeled[4] == 1.0 and 0.5 <= peeled[5] < 0.8
    assert fixed[6].dst_start_s == fixed[5].dst_end_s and fixed[6].dst_end_s == moves[5].dst_end_s
    assert abs(fixed[4].dst_start_s - 4 * sec) < 1e-9
    # the same SPEED from the grid's beat 4 on: nothing of it plays unstretched
    a = 4 * beat
    n_fast = int(round((b - a) / rate))
    fast = np.interp(np.arange(n_fast) * rate, np.arange(b - a), raw[a:b]).astype(np.float32)
    edit = np.concatenate([raw[:a], fast, raw[b:]])
    shift = n_fast - (b - a)
    moves[4:] = [Move(4, 4, SPEED, 2, 4 * sec, 8 * sec + shift / FRAME_SR)]
    moves += [Move(k, 1, FWD, 0, k * sec + shift / FRAME_SR, (k + 1) * sec + shift / FRAME_SR) for k in range(8, 12)]
    offsets = forward_offsets(raw, edit, moves, starts, sec)
    fixed, peeled = speed_lead_ins(raw, edit, moves, offsets, starts, ends)
    assert fixed == moves and peeled == {}
