"""Tests for engine.actions: the action vocabulary (DESIGN section 4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from editorbot.engine import actions as A


def test_vocabulary_sizes_and_order():
    assert A.TYPES == (
        "KEEP", "CUT", "LOOP", "REVERSE", "STUTTER", "SILENCE", "FADE_IN",
        "FADE_OUT", "GAIN", "PITCH", "SPEED", "LOWPASS", "HIGHPASS", "BASS",
        "TREBLE", "REVERB", "DELAY", "DISTORTION", "COMPRESS", "WIDTH",
    )  # fmt: skip
    assert A.SIZES == ("BEAT", "BAR", "TWO_BARS", "PHRASE", "TWO_PHRASES")
    assert A.SIZE_BEATS == (1, 4, 8, 16, 32)
    assert A.AMOUNTS == ("NEG_LARGE", "NEG_SMALL", "NEUTRAL", "POS_SMALL", "POS_LARGE")
    assert A.N_ACTIONS == 500
    assert A.SIZE_BEATS[A.Size.BAR] == 4
    assert set(A.UNITS) == set(A.TYPES) == set(A.AMOUNT_TABLE)


def test_index_round_trip_over_all_500():
    seen = set()
    for i in range(A.N_ACTIONS):
        act = A.action_from_index(i)
        assert act.index == i
        assert A.action_index(act.type_idx, act.size_idx, act.amount_idx) == i
        assert A.action_index(act.type, act.size, act.amount) == i
        seen.add((act.type_idx, act.size_idx, act.amount_idx))
    assert len(seen) == 500
    assert A.action_index("KEEP", "BEAT", "NEG_LARGE") == 0
    assert A.action_index("WIDTH", "TWO_PHRASES", "POS_LARGE") == 499
    assert A.action_index("LOOP", "BAR", "POS_SMALL") == 2 * 25 + 1 * 5 + 3


@pytest.mark.parametrize("bad", [-1, 500, 1.0, "3", True])
def test_action_from_index_rejects(bad):
    with pytest.raises(ValueError):
        A.action_from_index(bad)


@pytest.mark.parametrize(
    "args", [("NOPE", "BAR", "NEUTRAL"), ("KEEP", "BARS", "NEUTRAL"), ("KEEP", "BAR", 5), (20, 0, 0)]
)
def test_action_index_rejects_unknown(args):
    with pytest.raises(ValueError):
        A.action_index(*args)


def test_amount_mask_two_kinds_of_type():
    neutral = A.Amount.NEUTRAL
    for t, name in enumerate(A.TYPES):
        row = A.AMOUNT_MASK[t]
        if name in A.NEUTRAL_ONLY:
            assert row.tolist() == [False, False, True, False, False], name
            assert A.UNITS[name] == ""
        else:
            assert row.tolist() == [True, True, False, True, True], name
            assert not row[neutral]
            assert A.UNITS[name] != ""
    assert A.NEUTRAL_ONLY == {"KEEP", "CUT", "REVERSE", "SILENCE", "FADE_IN", "FADE_OUT"}
    assert A.AMOUNT_MASK.shape == (20, 5) and A.AMOUNT_MASK.dtype == bool
    with pytest.raises(ValueError):
        A.AMOUNT_MASK[0, 0] = True  # read-only: one definition for everyone


def test_amount_value_table():
    def values(t):
        return [A.amount_value(t, a) for a in ("NEG_LARGE", "NEG_SMALL", "POS_SMALL", "POS_LARGE")]

    assert values("GAIN") == [-6, -3, 3, 6]
    assert values("PITCH") == [-2, -1, 1, 2]
    assert values("SPEED") == [0.8, 0.9, 1.1, 1.25]
    assert values("LOOP") == [1, 2, 3, 4]
    assert values("STUTTER") == [1 / 16, 1 / 8, 1 / 4, 1 / 2]
    assert values("WIDTH") == [0.0, 0.5, 1.5, 2.0]
    assert values("BASS") == values("TREBLE") == [-6, -3, 3, 6]
    for name in A.TYPES:
        if name in A.NEUTRAL_ONLY:
            assert A.amount_value(name, "NEUTRAL") == 0.0
            continue
        vs = values(name)
        assert all(math.isfinite(v) for v in vs)
        assert vs == sorted(vs) and len(set(vs)) == 4, name  # ascending, injective
        with pytest.raises(ValueError, match="does not allow"):
            A.amount_value(name, "NEUTRAL")
    with pytest.raises(ValueError):
        A.amount_value("CUT", "POS_LARGE")
    # names and indices agree
    assert A.amount_value(A.ActionType.GAIN, A.Amount.POS_SMALL) == 3.0


def test_effect_params_cover_every_effect_type():
    for t, name in A.EFFECT_NAMES.items():
        for a in ("NEG_LARGE", "NEG_SMALL", "POS_SMALL", "POS_LARGE"):
            got_name, params = A.effect_params(t, a, beat_s=0.5)
            assert got_name == name
            assert tuple(params) == A.EFFECT_PARAMS[name]
            assert all(math.isfinite(v) for v in params.values())
    assert A.effect_params("DELAY", "POS_SMALL", beat_s=0.6)[1]["delay_s"] == pytest.approx(0.3)
    assert A.effect_params("LOWPASS", "NEG_SMALL")[1] == {"cutoff_hz": 800.0}
    with pytest.raises(ValueError):
        A.effect_params("GAIN", "POS_SMALL")
    with pytest.raises(ValueError):
        A.effect_params("REVERB", "NEUTRAL")


def test_as_action_accepts_names_indices_and_rejects_masked():
    assert A.as_action(("LOOP", "BAR", "NEG_SMALL")) == A.FactoredAction(2, 1, 1)
    assert A.as_action((2, 1, 1)) == A.FactoredAction(2, 1, 1)
    assert A.as_action(A.action_index("LOOP", "BAR", "NEG_SMALL")) == A.FactoredAction(2, 1, 1)
    with pytest.raises(ValueError, match="does not allow"):
        A.as_action(("CUT", "BAR", "POS_SMALL"))
    with pytest.raises(ValueError):
        A.as_action("CUT")


def test_labels():
    assert A.action_label("LOOP", "NEG_SMALL") == "LOOP x2"
    assert A.action_label("CUT", "NEUTRAL") == "CUT"
    assert A.action_label("GAIN", "POS_SMALL") == "GAIN +3 dB"
    assert A.action_label("SPEED", "POS_LARGE") == "SPEED 1.25x"
    assert A.action_label("STUTTER", "POS_SMALL") == "STUTTER 1/4 beat"


def test_masks_in_the_middle_of_a_song():
    type_mask, size_mask, amount_mask = A.action_masks(0, 100)
    assert type_mask.shape == (20,) and type_mask.all()
    assert size_mask.shape == (5,) and size_mask.all()
    assert amount_mask.shape == (20, 5)
    assert np.array_equal(amount_mask, A.AMOUNT_MASK)
    amount_mask[0, 0] = True  # a copy: callers may modify it
    assert not A.AMOUNT_MASK[0, 0]


def test_masks_sizes_past_the_end():
    # 10 beats left: BEAT, BAR, TWO_BARS fit; PHRASE and TWO_PHRASES do not
    _, size_mask, _ = A.action_masks(90, 100)
    assert size_mask.tolist() == [True, True, True, False, False]
    # exactly 16 left: PHRASE fits
    _, size_mask, _ = A.action_masks(84, 100)
    assert size_mask.tolist() == [True, True, True, True, False]
    # 3 left: only BEAT
    _, size_mask, _ = A.action_masks(97, 100)
    assert size_mask.tolist() == [True, False, False, False, False]


def test_masks_last_beat_and_tiny_songs():
    _, size_mask, _ = A.action_masks(99, 100)
    assert size_mask.tolist() == [True, False, False, False, False]
    _, size_mask, _ = A.action_masks(0, 1)
    assert size_mask.tolist() == [True, False, False, False, False]
    for bad in [(100, 100), (-1, 100), (0, 0)]:
        with pytest.raises(ValueError):
            A.action_masks(*bad)


def test_flat_mask_matches_factored_masks():
    flat = A.flat_action_mask(97, 100)
    assert flat.shape == (500,)
    for i in range(500):
        act = A.action_from_index(i)
        expect = act.size_idx == 0 and A.AMOUNT_MASK[act.type_idx, act.amount_idx]
        assert flat[i] == expect
    # 6 NEUTRAL-only types x 1 + 14 amount types x 4, at one size
    assert flat.sum() == 6 + 14 * 4
