"""training.labels.infer: structure, effects and amounts recovered from short (raw, edit) pairs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from editorbot.engine import actions as vocab
from editorbot.engine.audio import Audio, load_audio, write_audio
from editorbot.engine.plan import plan_to_dict
from editorbot.training.labels import infer
from editorbot.training.labels.evaluate import STRUCTURAL_TYPES, truth_on_beats
from editorbot.training.labels.frames import FRAME_SR, Frames
from editorbot.training.labels.infer import ExtendedLabels, PairLabels, _unsure_effects, infer_pair
from editorbot.training.labels.pitch_checks import pitch_in_speed, resampled_pitch
from tests.training.labels.pairs import STRUCT_WALK


def _scores(result: PairLabels, plan: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True types and amounts, then inferred ones, per analysis beat."""
    tt, ta = truth_on_beats(plan, result.beat_times)
    return tt, ta, result.labels[:, 0], result.labels[:, 2]


def test_structural_types_recovered(corpus, struct_result):
    res = struct_result
    assert res.alignable and res.match > 0.8
    tt, ta, pt, pa = _scores(res, corpus["struct"]["plan"])
    acc = float(np.mean(pt == tt))
    assert acc >= 0.95, f"beat accuracy {acc:.3f}"
    for name in ("CUT", "LOOP", "REVERSE", "STUTTER", "SILENCE", "SPEED"):
        sel = tt == vocab.type_index(name)
        assert sel.any()
        assert np.mean(pt[sel] == tt[sel]) >= 0.75, name
    for name in ("LOOP", "SPEED"):
        sel = (tt == vocab.type_index(name)) & (pt == tt)
        assert np.all(pa[sel] == ta[sel]), f"{name} amount"
    # the walk covers the extended grid and every beat has a valid label
    assert np.all(vocab.AMOUNT_MASK[res.labels[:, 0], res.labels[:, 2]])
    assert res.action_start.any() and len(res.walk) >= len(STRUCT_WALK) - 2


def test_structural_splices_measured(corpus, struct_result):
    """LOOP, REVERSE, STUTTER, SILENCE and SPEED spans render from where the edit has them (within 2 ms)."""
    truth = corpus["struct"]["plan"]["segments"]
    inferred = plan_to_dict(struct_result.plan)["segments"]
    for seg in truth:
        if seg.get("action") not in ("LOOP", "REVERSE", "STUTTER", "SILENCE", "SPEED"):
            continue
        same = [s for s in inferred if s["action"] == seg["action"]]
        assert same, seg
        best = min(same, key=lambda s: abs(s["src_start_s"] - seg["src_start_s"]) + abs(s["dst_start_s"] - seg["dst_start_s"]))
        for key in ("src_start_s", "src_end_s", "dst_start_s"):
            assert abs(best[key] - seg[key]) <= 0.002, (seg["action"], key, best[key], seg[key])


def test_effects_and_amounts(corpus):
    p = corpus["fx"]
    res = infer_pair(p["raw"], p["edit"], name="fx", cache=False)
    assert res.alignable
    tt, ta, pt, pa = _scores(res, p["plan"])
    assert np.mean(pt == tt) >= 0.85, np.mean(pt == tt)
    for name in ("GAIN", "LOWPASS", "DISTORTION", "WIDTH", "PITCH", "TREBLE", "FADE_IN", "FADE_OUT"):
        sel = tt == vocab.type_index(name)
        assert np.mean(pt[sel] == tt[sel]) >= 0.5, name
    right = (pt == tt) & np.array([vocab.TYPES[t] not in vocab.NEUTRAL_ONLY for t in tt])
    assert np.mean(pa[right] == ta[right]) >= 0.8


def test_different_songs_are_unalignable(corpus):
    res = infer_pair(corpus["struct"]["raw"], corpus["fx"]["edit"], name="mixed_up", cache=False)
    assert not res.alignable
    assert "does not match" in res.reason or "no alignment" in res.reason
    assert res.labels.shape == (0, 3)


@pytest.mark.parametrize("damage", ["mp3", "48k", "gain"])
def test_damaged_edit_keeps_structure(corpus, struct_result, tmp_path, damage):
    import pedalboard
    import soxr

    p = corpus["struct"]
    y, sr = p["rendered"], p["sr"]
    if damage == "mp3":
        out = str(tmp_path / "edit.mp3")
        with pedalboard.io.AudioFile(out, "w", sr, y.shape[0], quality="128k") as f:
            f.write(y)
    elif damage == "48k":
        out = str(tmp_path / "edit.wav")
        write_audio(out, soxr.resample(y.T, sr, 48000).T.copy(), 48000)
    else:
        out = str(tmp_path / "edit.wav")
        write_audio(out, y * 10 ** (3 / 20), sr)
    assert load_audio(out).duration_s > 10
    res = infer_pair(p["raw"], out, name=damage, cache=False, effects=False)
    assert res.alignable
    tt, _, pt, _ = _scores(res, p["plan"])
    structural = np.isin(tt, [vocab.type_index(t) for t in STRUCTURAL_TYPES])
    fwd = np.isin(pt, [vocab.type_index(t) for t in vocab.TYPES if t not in STRUCTURAL_TYPES[1:]])
    pt = np.where(fwd, vocab.type_index("KEEP"), pt)  # effects off: forward beats are KEEP
    assert np.mean(pt[structural] == tt[structural]) >= 0.9


def test_pitch_between_two_speeds_one_way_is_that_speed() -> None:
    """A resampled rate between the steps: forward beats heard pitched up between two faster SPEEDs join them."""
    beats = ExtendedLabels.keep(9)
    beats.types = ["KEEP", "SPEED", "PITCH", "PITCH", "SPEED", "KEEP", "PITCH", "SPEED", "KEEP"]
    beats.slots = [0, 2, 2, 3, 2, 0, 2, 2, 0]  # SPEED slot 2: x1.1; PITCH slots 2, 3: up
    beats.group[:] = [-1, 2, -1, -1, 4, -1, -1, 6, -1]
    beats.confidence[:] = [1.0, 0.8, 0.5, 0.9, 0.7, 1.0, 0.6, 0.9, 1.0]
    pitch_in_speed(beats)
    assert beats.types[:5] == ["KEEP", "SPEED", "SPEED", "SPEED", "SPEED"]
    assert list(beats.group[1:5]) == [2, 2, 2, 2] and beats.slots[1:5] == [2, 2, 2, 2]
    assert np.allclose(beats.confidence[2:4], [0.5, 0.8])  # no surer than the SPEED it joins
    # a PITCH with a SPEED on one side only is an edit of its own
    assert beats.types[6] == "PITCH" and beats.group[6] == -1
    # pitched down between two faster SPEEDs: not a resampling
    beats = ExtendedLabels.keep(3)
    beats.types, beats.slots = ["SPEED", "PITCH", "SPEED"], [2, 1, 2]
    beats.group[:] = [1, -1, 3]
    pitch_in_speed(beats)
    assert beats.types == ["SPEED", "PITCH", "SPEED"]


def test_an_unsure_effect_that_explains_little_is_keep() -> None:
    """Under 0.2 confidence with over 1 dB unexplained: KEEP (its confidence kept); a subtle close fit, a sure one or a fade run stays."""
    beats = ExtendedLabels.keep(11)
    beats.types = ["GAIN", "GAIN", "KEEP", "BASS", "BASS", "KEEP", "REVERB", "FADE_OUT", "FADE_OUT", "KEEP", "FADE_OUT"]
    beats.slots = [1, 1, 0, 3, 3, 0, 2, 0, 0, 0, 0]
    beats.group[:] = -1
    beats.confidence[:] = [0.05, 0.15, 1.0, 0.06, 0.1, 1.0, 0.6, 0.05, 0.1, 1.0, 0.04]
    beats.residual_db[:] = [2.5, 3.0, 0.0, 0.1, 0.12, 0.0, 3.0, 2.0, 2.0, 0.0, 2.0]
    _unsure_effects(beats)
    # a two-beat fade is a ramp (``false_fades`` judged it); a one-beat fade this unsure is a guess
    assert beats.types == ["KEEP", "KEEP", "KEEP", "BASS", "BASS", "KEEP", "REVERB", "FADE_OUT", "FADE_OUT", "KEEP", "KEEP"]
    assert beats.slots[:2] == [0, 0] and np.allclose(beats.confidence[:2], [0.05, 0.15])
    # a structural move's beats are not effects
    beats = ExtendedLabels.keep(2)
    beats.types, beats.group[:] = ["SPEED", "SPEED"], [3, 3]
    beats.confidence[:], beats.residual_db[:] = 0.05, 4.0
    _unsure_effects(beats)
    assert beats.types == ["SPEED", "SPEED"]


def test_a_grid_moved_later_keeps_its_last_sliver_of_a_beat(monkeypatch) -> None:
    """A grid ending 30 ms before the song, moved 38 ms later to the edit's splices: the walk stays on the plan's grid."""
    duration_s, beat_s = 4.0, 0.5
    starts = np.append(np.arange(8) * beat_s, duration_s - 0.03)  # the last beat: a 30 ms sliver
    ends = np.append(starts[1:], duration_s)
    audio = Audio(np.zeros((1, int(duration_s * FRAME_SR)), np.float32), FRAME_SR, None)
    grid = SimpleNamespace(tempo_bpm=120.0, beat_times=starts, downbeats=np.array([0, 4, 8]))
    analysis = SimpleNamespace(y=audio.samples[0], n_beats=9, audio=audio, sha256="ab" * 32, grid=grid)
    frames = Frames.__new__(Frames)
    pair = infer._Pair("sliver", analysis, audio, audio.samples[0], frames, frames, starts, ends, 0, beat_s)
    monkeypatch.setattr(infer, "grid_shift", lambda *args: 0.0377)
    infer._shift_grid(pair, [], {})
    assert np.all(np.diff(pair.starts) > 0) and pair.starts[-1] < duration_s
    assert np.allclose(pair.starts[1:-1], starts[1:-1] + 0.0377)
    result = PairLabels("sliver", "raw.wav", "edit.wav", alignable=True, match=1.0)
    infer._walk_and_plan(result, pair, ExtendedLabels.keep(9))
    plan = result.plan
    assert plan is not None
    assert sum(vocab.SIZE_BEATS[vocab.size_index(a.size)] for a in plan.actions) == 9
    assert plan.segments[-1].src_end_s == pytest.approx(duration_s)


def test_a_lone_faster_one_beat_speed_matched_fairly_is_a_splice_not_a_speed() -> None:
    """One faster beat alone under a 0.8 match: a splice's shortening (KEEP); closer, slower, longer or in a run: SPEED."""
    from editorbot.training.labels.align import CUT, FWD, SPEED, Move
    from editorbot.training.labels.speed_checks import splice_like_speed

    def walk(kind_mid: int, slot: int, match: float, n: int = 1, after: int = FWD) -> list[Move]:
        return [Move(0, 1, FWD, 0, 0.0, 0.5, 0.9), Move(1, n, kind_mid, slot, 0.5, 0.95, match), Move(1 + n, 1, after, 0, 0.95, 1.45, 0.9)]

    assert splice_like_speed(walk(SPEED, 2, 0.6), 1)  # x1.1 at 0.6
    assert splice_like_speed(walk(SPEED, 3, 0.7, after=CUT), 1)  # x1.25 beside a CUT
    assert not splice_like_speed(walk(SPEED, 2, 0.85), 1)  # its line matches closely
    assert not splice_like_speed(walk(SPEED, 1, 0.6), 1)  # slower: a splice never lengthens the edit
    assert not splice_like_speed(walk(SPEED, 2, 0.6, n=2), 1)  # two beats
    assert not splice_like_speed(walk(SPEED, 2, 0.6, after=SPEED), 1)  # part of a run of SPEEDs


def test_a_lone_one_beat_speed_at_a_join_matched_under_09_is_unsure_either_way() -> None:
    """Beside another editor's join (a CUT, LOOP, REVERSE) or at the edit's ends, a lone one-beat SPEED under 0.9 is KEEP, slower too."""
    from editorbot.training.labels.align import FWD, LOOP, REV, SIL, SPEED, Move
    from editorbot.training.labels.speed_checks import splice_like_speed

    def ending(slot: int, match: float, n: int = 1) -> list[Move]:
        return [Move(0, 1, FWD, 0, 0.0, 0.5, 0.9), Move(1, n, SPEED, slot, 0.5, 0.95, match)]

    def beside(kind: int, slot: int, match: float) -> list[Move]:
        return [*ending(slot, match), Move(2, 1, kind, 0, 0.95, 1.45, 0.9)]

    assert splice_like_speed(ending(1, 0.7), 1)  # x0.9 ending the edit
    assert splice_like_speed(ending(3, 0.85), 1)  # x1.25 at 0.85
    assert splice_like_speed(ending(2, 0.85)[::-1], 0)  # opening it
    assert splice_like_speed(beside(LOOP, 1, 0.85), 1)  # x0.9 before a LOOP
    assert splice_like_speed(beside(REV, 2, 0.85), 1)  # x1.1 before a REVERSE
    assert not splice_like_speed(beside(FWD, 2, 0.85), 1)  # between forward beats
    assert not splice_like_speed(beside(SIL, 1, 0.85), 1)  # before a mute: no join of two pieces
    assert not splice_like_speed(beside(SPEED, 1, 0.7), 1)  # part of a run of SPEEDs
    assert not splice_like_speed(ending(2, 0.95), 1)  # its line matches closely
    assert not splice_like_speed(ending(1, 0.7, n=2), 1)  # two beats


def test_a_splice_like_speed_is_keep_unless_pitched_beats_join_it_into_a_resampled_speed() -> None:
    """A lone one-beat faster SPEED at 0.6 is KEEP; the same SPEED beside beats heard pitched up towards another SPEED stays."""
    from editorbot.training.labels.align import FWD, SPEED, Move
    from editorbot.training.labels.speed_checks import splice_speeds_unsure

    moves = [Move(0, 1, FWD, 0, 0.0, 0.5, 0.9), Move(1, 1, SPEED, 2, 0.5, 0.95, 0.6), Move(2, 1, FWD, 0, 0.95, 1.45, 0.9)]
    beats = ExtendedLabels.keep(3)
    beats.types, beats.slots = ["KEEP", "SPEED", "KEEP"], [0, 2, 0]
    beats.group[:] = [-1, 2, -1]
    beats.confidence[:] = [0.9, 0.6, 0.9]
    splice_speeds_unsure(beats, moves)
    assert beats.types == ["KEEP", "KEEP", "KEEP"] and beats.group[1] == -1 and abs(beats.confidence[1] - 0.6) < 1e-6
    # x1.1 (resampled: pitched up) read as SPEED, PITCH up, SPEED: one SPEED
    moves = [Move(0, 1, SPEED, 2, 0.0, 0.45, 0.6), Move(1, 1, FWD, 0, 0.45, 0.9, 0.8), Move(2, 2, SPEED, 2, 0.9, 1.8, 0.7)]
    beats = ExtendedLabels.keep(4)
    beats.types, beats.slots = ["SPEED", "PITCH", "SPEED", "SPEED"], [2, 3, 2, 2]
    beats.group[:] = [1, -1, 3, 3]
    pitch_in_speed(beats)
    splice_speeds_unsure(beats, moves)
    assert beats.types == ["SPEED"] * 4


def test_a_lead_in_beat_of_a_speed_is_keep_and_not_judged(monkeypatch) -> None:
    """A beat taken off a SPEED run's end (``speed_checks.speed_lead_ins``), 0.6 unstretched, is KEEP 0.6 sure; the others are judged."""
    from editorbot.training.labels.align import FWD, SPEED, Move

    judged = []

    class Judge:
        def __init__(self, pair, fwd_offset) -> None:
            pass

        def judge(self, beats, m, prev) -> float:
            judged.append(m.beat)
            beats.types[m.beat] = "GAIN"
            return 1.0

        def flush(self, beats) -> None:
            pass

    monkeypatch.setattr(infer, "_ForwardJudge", Judge)
    moves = [Move(0, 1, FWD, 0, 0.0, 0.5, 0.9), Move(1, 1, FWD, 0, 0.5, 1.0, 0.9), Move(2, 2, SPEED, 3, 1.0, 1.8, 0.8)]
    pair = SimpleNamespace(starts=np.arange(4) * 0.5, ends=np.arange(1, 5) * 0.5)
    beats = infer._judge_beats(pair, moves, {0: 0, 1: 0}, {1: 0.6}, effects=True)
    assert judged == [0]
    assert beats.types == ["GAIN", "KEEP", "SPEED", "SPEED"] and beats.group[1] == -1
    assert beats.confidence[1] == pytest.approx(0.6) and beats.confidence[0] == pytest.approx(0.9)


def test_pitch_beats_played_shorter_are_a_resampled_speed() -> None:
    """Two PITCH-up beats played 6% shorter (x1.06) are a SPEED x1.1; played at their length they stay PITCH."""
    from editorbot.training.labels.align import FWD, Move

    beat_s = 0.5
    starts = np.arange(4) * beat_s
    ends = starts + beat_s

    def judged(played_s: float, pitch_slot: int) -> list[str]:
        moves = [Move(0, 1, FWD, 0, 0.0, 0.5, 0.9)]
        t = 0.5
        for b in (1, 2):
            moves.append(Move(b, 1, FWD, 0, t, t + played_s, 0.9))
            t += played_s
        moves.append(Move(3, 1, FWD, 0, t, t + 0.5, 0.9))
        beats = ExtendedLabels.keep(4)
        beats.types, beats.slots = ["KEEP", "PITCH", "PITCH", "KEEP"], [0, pitch_slot, pitch_slot, 0]
        beats.group[:] = -1
        resampled_pitch(beats, moves, starts, ends)
        if beats.types[1] == "SPEED":
            assert beats.group[1] == beats.group[2] > 0
        return [f"{t}{s if t == 'SPEED' else ''}" for t, s in zip(beats.types, beats.slots)]

    assert judged(beat_s / 1.06, 2) == ["KEEP", "SPEED2", "SPEED2", "KEEP"]
    assert judged(beat_s * 1.06, 1) == ["KEEP", "SPEED1", "SPEED1", "KEEP"]  # down: longer, slower
    assert judged(beat_s, 2) == ["KEEP", "PITCH", "PITCH", "KEEP"]  # a pitch shift keeps the length
    assert judged(beat_s * 1.06, 2) == ["KEEP", "PITCH", "PITCH", "KEEP"]  # up but longer: not a resample
    assert judged(beat_s - 0.012, 2) == ["KEEP", "PITCH", "PITCH", "KEEP"]  # within the DP's slack
