"""training.labels.effects and effect_runs: each forward beat judged; runs of them labelled together; a fade is one ramp."""

from __future__ import annotations

import numpy as np

from editorbot.training.labels.effect_runs import false_fades, label_run
from editorbot.training.labels.effects import N_EFFECT_BANDS, BeatEffect, _level_candidates


def _beat(ramp: tuple[float, float] | None, judged: dict[tuple[str, int], float]) -> BeatEffect:
    """A judged forward beat: its candidates' distances (dB) and its fade fit's gain ramp."""
    (t, slot), d = min(judged.items(), key=lambda kv: kv[1])
    return BeatEffect(t, slot, d, 0.1, judged, ramp)


def test_a_fade_is_one_ramp_from_or_to_silence() -> None:
    fade_in = [_beat((k / 4, (k + 1) / 4), {("FADE_IN", 0): 0.3, ("KEEP", 0): 3.0}) for k in range(4)]
    assert false_fades(fade_in, [("FADE_IN", 0)] * 4) == set()
    fade_out = [_beat((1 - k / 2, 1 - (k + 1) / 2), {("FADE_OUT", 0): 0.3, ("KEEP", 0): 3.0}) for k in range(2)]
    assert false_fades(fade_out, [("FADE_OUT", 0)] * 2) == set()
    assert false_fades(fade_out[1:], [("FADE_OUT", 0)]) == set()  # a one-beat fade-out ends at silence
    # a compressor riding each beat's level: every beat restarts its ramp
    ramps = ((0.11, 0.3), (0.11, 0.19), (0.21, 0.41))
    sawtooth = [_beat(r, {("FADE_IN", 0): 0.4, ("COMPRESS", 3): 0.5}) for r in ramps]
    labels = [("KEEP", 0), ("FADE_IN", 0), ("FADE_IN", 0), ("FADE_IN", 0)]
    assert false_fades([_beat(None, {("KEEP", 0): 0.1}), *sawtooth], labels) == {1, 2, 3}
    assert label_run(sawtooth) == [("COMPRESS", 3)] * 3
    # a fade never lifts the level, and a one-beat fade-in starts at silence
    lifting = _beat((0.9, 1.2), {("FADE_IN", 0): 0.2, ("GAIN", 3): 0.3})
    late = _beat((0.2, 0.5), {("FADE_IN", 0): 0.2, ("GAIN", 1): 0.3})
    assert false_fades([lifting], [("FADE_IN", 0)]) == false_fades([late], [("FADE_IN", 0)]) == {0}
    assert label_run([late]) == [("GAIN", 1)]


def test_an_effect_outside_the_vocabulary_is_keep_not_an_invented_effect() -> None:
    """A chorus (not in the vocabulary) is KEEP or a low-confidence guess; a low-pass is found with confidence."""
    import numpy as np
    import pedalboard

    from editorbot.training.labels.effects import beat_effect
    from editorbot.training.labels.frames import FRAME_SR

    rng = np.random.default_rng(3)
    n = FRAME_SR // 2
    t = np.arange(4 * n) / FRAME_SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((110.0, 220.0, 440.0, 880.0, 1760.0, 3520.0), 1))
    raw = (0.2 * tone * np.exp(-6.0 * (t % 0.5)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)

    def judged(board: pedalboard.Pedalboard):
        edit = board(raw[None, :].copy(), FRAME_SR)[0].astype(np.float32)
        return beat_effect(raw, edit, 2 * n, 2 * n, n, beat_s=0.5, effect_sr=FRAME_SR)

    chorus = judged(pedalboard.Pedalboard([pedalboard.Chorus(rate_hz=1.3, depth=0.35, mix=0.6)]))
    # KEEP, or at most the nearest type with a low confidence: never a confident invented effect
    assert chorus.type == "KEEP" or chorus.confidence < 0.5
    lowpass = judged(pedalboard.Pedalboard([pedalboard.LowpassFilter(cutoff_frequency_hz=1100.0)]))
    assert lowpass.type == "LOWPASS" and lowpass.confidence > 0.8


def test_a_fade_run_that_does_not_reach_silence_is_not_a_fade() -> None:
    """Three beats of gain ramps that never come near silence (a compressor's level ride) are no fade-out."""
    riding = [_beat((1.0 - 0.05 * k, 0.95 - 0.05 * k), {("FADE_OUT", 0): 0.3, ("COMPRESS", 1): 0.4}) for k in range(3)]
    assert false_fades(riding, [("FADE_OUT", 0)] * 3) == {0, 1, 2}
    assert label_run(riding) == [("COMPRESS", 1)] * 3
    reaching = [_beat((1.0 - k / 3, 1.0 - (k + 1) / 3), {("FADE_OUT", 0): 0.3, ("COMPRESS", 1): 0.4}) for k in range(3)]
    assert false_fades(reaching, [("FADE_OUT", 0)] * 3) == set()


def test_a_gain_between_steps_reads_as_gain_and_a_level_dependent_change_as_compress():
    """-4.5 dB on every frame is a GAIN (no render fits it better); a change falling with the level is a COMPRESS."""
    rng = np.random.default_rng(4)
    frame_level = rng.uniform(-30.0, -10.0, size=(40, 1))  # dB: quiet and loud frames
    b_r = frame_level + rng.uniform(-20.0, 0.0, size=(1, N_EFFECT_BANDS))
    weight = np.ones_like(b_r)
    gain = _level_candidates(b_r, b_r - 4.5, weight)
    assert [c[1] for c in gain] == ["GAIN"] and gain[0][0] < 0.05
    squeezed = b_r - 0.6 * (frame_level - frame_level.min())  # ratio 2.5 above the quietest frame
    comp = {c[1]: c for c in _level_candidates(b_r, squeezed, weight)}
    assert "COMPRESS" in comp and comp["COMPRESS"][0] < 0.1
    assert comp["COMPRESS"][0] < comp.get("GAIN", (np.inf,))[0]
    # a level lifted 12 dB (a distortion's drive) is neither
    assert _level_candidates(b_r, b_r + 12.0, weight) == []


def test_a_beat_inside_a_delay_reads_as_delay_at_its_actions_beat_length() -> None:
    """A delay timed by a beat 5% longer than the period, its first beat misread: a later beat is still DELAY."""
    from editorbot.training.labels.effects import _effect_chain, beat_effect
    from editorbot.training.labels.frames import FRAME_SR

    rng = np.random.default_rng(4)
    period, own = 0.5, 0.5232  # the tracker's beats are whole hops: its lengths differ from the period
    step = int(period * FRAME_SR) // 8
    t = np.arange(step) / FRAME_SR
    raw = np.concatenate([np.sin(2 * np.pi * f * t) * np.exp(-t / 0.03) for f in rng.uniform(150, 3000, 8 * 12)])
    raw = (0.3 * raw).astype(np.float32)
    a = 2 * 8 * step  # the delay's segment starts at beat 2, from an empty memory
    wet = _effect_chain("DELAY", 3, own, FRAME_SR)(raw[None, a:].copy(), FRAME_SR)[0]
    edit = np.concatenate([raw[:a], wet]).astype(np.float32)
    n = 8 * step
    src0 = 5 * n  # three beats into the delay

    def judge(lengths: tuple[float, ...] | None):
        return beat_effect(raw, edit, src0, src0, n, beat_s=period, effect_sr=FRAME_SR, run_start=0,
                           tail_cache={}, prev_effect=("KEEP", 0), delay_beats_s=lengths)

    found = judge((period, own))
    assert found.type == "DELAY" and found.slot == 3 and found.distance < 0.3
    assert judge(None).distance > found.distance + 0.2  # timed by the period, the echoes land elsewhere


def test_a_delay_on_no_beat_is_found_at_its_measured_echo_time() -> None:
    """Another editor's delay (0.27 s, between the vocabulary's echo times) is measured and read as DELAY."""
    import pedalboard

    from editorbot.training.labels.effects import beat_effect, echo_lag
    from editorbot.training.labels.frames import FRAME_SR

    rng = np.random.default_rng(6)
    step = FRAME_SR // 16
    t = np.arange(step) / FRAME_SR
    raw = np.concatenate([np.sin(2 * np.pi * f * t) * np.exp(-t / 0.03) for f in rng.uniform(150, 3000, 16 * 6)])
    raw = (0.3 * raw).astype(np.float32)
    n = FRAME_SR // 2
    a = 4 * n
    board = pedalboard.Pedalboard([pedalboard.Delay(delay_seconds=0.27, feedback=0.38, mix=0.4)])
    edit = np.concatenate([raw[:a], board(raw[None, a:].copy(), FRAME_SR)[0]]).astype(np.float32)
    src0 = a + 2 * n
    lag, corr = echo_lag(raw, edit, src0, src0, n)
    assert abs(lag - 0.27) < 0.002 and corr > 0.8
    # a filter changes the beat without repeating the song: no echo time passes
    lowpass = pedalboard.Pedalboard([pedalboard.LowpassFilter(cutoff_frequency_hz=1100.0)])(raw[None, :].copy(), FRAME_SR)[0]
    assert echo_lag(raw, lowpass.astype(np.float32), src0, src0, n)[1] < 0.5
    found = beat_effect(raw, edit, src0, src0, n, beat_s=0.5, effect_sr=FRAME_SR, run_start=a,
                        tail_cache={}, prev_effect=("KEEP", 0), delay_beats_s=(0.5,))
    assert found.type == "DELAY"


def test_a_gain_run_whose_gain_moves_with_the_level_is_a_compressor() -> None:
    """GAIN beats each lowered by what their level asks (a compressor between the renders) read COMPRESS; a gain stays GAIN."""
    from editorbot.training.labels.effect_runs import compressed_gains

    def gain(flat: float, slope: float) -> BeatEffect:
        return BeatEffect("GAIN", 0, 0.8, 0.1, {("GAIN", 0): 0.8}, level=(flat, slope))

    riding = [gain(-6.9, -0.5), gain(-7.4, -0.67), gain(-6.3, -0.49)]
    labels = compressed_gains(riding, [("GAIN", 0)] * 3)
    assert [t for t, _ in labels] == ["COMPRESS"] * 3
    assert labels[0][1] == 0  # median slope -0.5: ratio 1 / (1 - 0.5) = 2, the first step
    steady = [gain(-7.5, 0.0), gain(-7.5, -0.01), gain(-7.49, 0.0)]
    assert compressed_gains(steady, [("GAIN", 0)] * 3) == [("GAIN", 0)] * 3
    # moving without a level dependence (an effect outside the vocabulary) is no compressor
    wobble = [gain(-0.8, 0.3), gain(-2.5, 0.1), gain(-1.1, 0.2)]
    assert compressed_gains(wobble, [("GAIN", 1)] * 3) == [("GAIN", 1)] * 3


def test_a_sliver_of_a_beat_at_the_songs_end_is_no_delay_length() -> None:
    """The grid's last beat cut to 0.6 ms by the song's end is never a beat length a DELAY is rendered at."""
    from editorbot.training.labels.effects import delay_beat_lengths

    lengths = np.array([0.65] * 40 + [0.673] * 30 + [0.7, 0.000567])  # the sliver ties the 0.7 s beat, ahead of it
    got = delay_beat_lengths(lengths, 0.6666)
    assert got[0] == 0.6666
    assert set(got[1:]) == {0.65, 0.673, 0.7}


def test_a_long_fades_quiet_beat_is_a_ramp_and_a_steady_quiet_beat_is_not() -> None:
    """A squared fade-in's beat 45 dB down rises by thousandths in gain: still a FADE_IN candidate; a steady one is none."""
    from editorbot.training.labels.effects import _fade_candidate, band_db
    from editorbot.training.labels.frames import FRAME_SR

    rng = np.random.default_rng(9)
    n = FRAME_SR // 2
    raw = (0.2 * rng.standard_normal(n)).astype(np.float32)
    t = np.linspace(0.0, 1.0, n)
    ramp = ((3.0 + t) / 40.0) ** 2  # beat 3 of a 40-beat squared fade-in: gain 0.0056 -> 0.01
    b_r = band_db(raw)
    weight = np.ones_like(b_r)
    cand, fitted = _fade_candidate(b_r, band_db((raw * ramp).astype(np.float32)), weight)
    assert cand is not None and cand[1] == "FADE_IN" and fitted[1] > fitted[0]
    steady, _ = _fade_candidate(b_r, band_db((raw * 0.0075).astype(np.float32)), weight)
    assert steady is None


def test_beats_under_a_reverbs_tail_on_a_fast_grid_are_keep() -> None:
    """0.27-s beats after a REVERB bar rendered by ``engine.render``: its 2-s tail covers the next bar, which reads KEEP.

    Read without the tail (as every beat but the first after the run was),
    the tail's added energy passes for an effect.
    """
    from types import SimpleNamespace

    from editorbot.engine.audio import Audio
    from editorbot.engine.grid import Grid
    from editorbot.engine.plan import plan_from_actions
    from editorbot.engine.render import render_plan
    from editorbot.training.labels.effect_tails import OpenTail
    from editorbot.training.labels.effects import beat_effect
    from editorbot.training.labels.frames import FRAME_SR

    beat_s, n_beats = 0.27, 12
    n = int(round(beat_s * FRAME_SR))
    rng = np.random.default_rng(5)
    t = np.arange(n // 4) / FRAME_SR
    left = np.concatenate([np.sin(2 * np.pi * f * t) * np.exp(-t / 0.04) for f in rng.uniform(150, 2500, 4 * n_beats + 8)])
    left = left[: n * n_beats + FRAME_SR]
    raw = (0.3 * np.stack([left, 0.9 * np.roll(left, 37)])).astype(np.float32)  # a little stereo
    grid = Grid(tempo_bpm=60.0 / beat_s, beat_times=np.arange(n_beats) * beat_s, downbeats=np.arange(0, n_beats, 4),
                beats_per_bar=4, phrase_starts=np.arange(0, n_beats, 16))
    song = SimpleNamespace(audio=Audio(raw, FRAME_SR, "raw.wav"), sha256="0" * 64, grid=grid)
    plan = plan_from_actions(song, [("KEEP", "BAR", "NEUTRAL"), ("REVERB", "BAR", "POS_LARGE"), ("KEEP", "BAR", "NEUTRAL")])
    edit = render_plan(plan, raw, FRAME_SR)
    raw_y, edit_y = raw.mean(axis=0), edit.mean(axis=0)

    tail = OpenTail(raw, FRAME_SR)
    for b in range(4, 8):  # the effects step judged the REVERB bar (every beat plays where it was)
        tail.follow("REVERB", 3, b * n, b * n, n, beat_s)
    for b in range(9, 12):  # two to four beats after the run: 0.27-0.81 s into its tail
        src0 = b * n
        over = tail.over(src0, n, n)
        assert over is not None
        kw = dict(beat_s=beat_s, effect_sr=FRAME_SR, run_start=8 * n, tail_cache={}, raw_st=raw[:, src0 : src0 + n])
        found = beat_effect(raw_y, edit_y, src0, src0, n, edit_st=edit[:, src0 : src0 + n] - over.stereo, tail=over.mono, **kw)
        assert found.type == "KEEP" and found.distance < 0.5
        blind = beat_effect(raw_y, edit_y, src0, src0, n, edit_st=edit[:, src0 : src0 + n], **kw)
        assert blind.type != "KEEP"
    assert tail.over(8 * n + int(2.0 * FRAME_SR) + 1, n, n) is None  # the renderer's tail ends at 2 s
    # inside the run the tail of its first beats is no reason to end it
    inside = OpenTail(raw, FRAME_SR)
    for b in (4, 5):
        inside.follow("REVERB", 3, b * n, b * n, n, beat_s)
    src0 = 6 * n
    over = inside.over(src0, n, n)
    assert over is not None
    going_on = beat_effect(raw_y, edit_y, src0, src0, n, beat_s=beat_s, effect_sr=FRAME_SR, run_start=4 * n, tail_cache={},
                           prev_effect=("REVERB", 3), tail=over.mono)
    assert going_on.type == "REVERB" and going_on.slot == 3
    tail.follow("LOWPASS", 1, 8 * n, 8 * n, n, beat_s)  # another effect leaves the tail sounding
    assert tail.over(9 * n, n, n) is not None


def test_a_one_beat_gain_cut_before_a_delay_is_the_delays_first_beat() -> None:
    """Another editor's delay lowers the dry sound: before its echoes begin, its first beat fits a gain cut best."""
    first = _beat(None, {("GAIN", 1): 0.5, ("DELAY", 1): 2.0, ("KEEP", 0): 3.0})
    inside = [_beat(None, {("DELAY", 1): 0.5, ("GAIN", 1): 3.0, ("KEEP", 0): 4.0}) for _ in range(3)]
    assert label_run([first, *inside]) == [("DELAY", 1)] * 4
    # a gain of its own: two beats long, or a lift, stays a GAIN
    assert label_run([first, first, *inside])[:2] == [("GAIN", 1)] * 2
    lift = _beat(None, {("GAIN", 2): 0.5, ("DELAY", 1): 2.0, ("KEEP", 0): 3.0})
    assert label_run([lift, *inside])[0] == ("GAIN", 2)


def test_a_width_change_keeps_the_mid_a_beat_changed_otherwise_is_no_width() -> None:
    """On a near-mono song, half a beat changed by something else moves the faint side: no WIDTH; a true one, a few ms off, is."""
    from editorbot.training.labels.width import WIDTH_VALUES, width_slot

    rng = np.random.default_rng(5)
    n, lag = 16000, 100
    mid = rng.standard_normal(n + lag)
    side = 0.05 * rng.standard_normal(n + lag)  # 26 dB under the mid: a near-mono song
    raw_st = np.stack([mid + side, mid - side])[:, lag:]
    # half of the beat is another part of the song at the same level (another editor's
    # splice or effect on its own grid), and the leaked side with it
    other = rng.standard_normal(n)
    mid_e, side_e = mid[lag:].copy(), side[lag:].copy()
    mid_e[n // 2 :] = other[n // 2 :]
    side_e[n // 2 :] *= 0.3
    assert width_slot(raw_st, np.stack([mid_e + side_e, mid_e - side_e])) is None
    # a true width change (the side scaled, the mid kept), placed ``lag`` samples off
    w = WIDTH_VALUES[-1]
    edit_st = np.stack([mid + w * side, mid - w * side])[:, :n]
    found = width_slot(raw_st, edit_st)
    assert found is not None and found[0] == len(WIDTH_VALUES) - 1
    # ... and where the next action reaches into its last eighth, it still holds over the rest
    edit_st[:, -n // 8 :] = 0.7 * np.stack([other, other])[:, -n // 8 :]
    found = width_slot(raw_st, edit_st)
    assert found is not None and found[0] == len(WIDTH_VALUES) - 1
