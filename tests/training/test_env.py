"""EditEnv: gymnasium API, observation layout, masks, legalised actions, vector envs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from editorbot.engine.actions import AMOUNT_MASK, SIZE_BEATS, ActionType, Amount, Size, action_masks
from editorbot.engine.observation import DONE_LAYOUT, song_position, song_summary
from editorbot.training.config import AgentConfig
from editorbot.training.dataset import synthetic_episodes
from editorbot.training.env import EditEnv, legal_action, make_vector_env

CFG = AgentConfig(window=16, hidden=32, heads=2, layers=1, kernel=5, value_hidden=16, value_heads=2, history=6)
W, HALF, K = CFG.window, CFG.window // 2, CFG.history


@pytest.fixture(scope="module")
def episodes():
    return synthetic_episodes(3, n_beats=40, seed=3)


def keep(size: Size) -> np.ndarray:
    return np.array([ActionType.KEEP, size, Amount.NEUTRAL])


def test_check_env(episodes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(EditEnv(episodes, CFG), skip_render_check=True)


def test_observation_layout_at_reset(episodes) -> None:
    env = EditEnv(episodes, CFG)
    obs, info = env.reset(seed=0, options={"song": 1})
    e = episodes[1]
    assert obs["features"].shape == (W, CFG.in_dim) and obs["features"].dtype == np.float32
    assert obs["done"].shape == (K, len(DONE_LAYOUT)) and not obs["done"].any()
    assert obs["position"].shape == (W, 4)
    # the cursor (beat 0) sits at W // 2; everything before it is padding
    assert obs["padding_mask"][:HALF].all() and not obs["padding_mask"][HALF:].any()
    np.testing.assert_array_equal(obs["features"][HALF], e.features[0])
    np.testing.assert_array_equal(obs["features"][HALF + 3], e.features[3])
    np.testing.assert_array_equal(obs["position"][HALF:], song_position(e.n_beats, e.phrase_starts)[: W - HALF])
    assert obs["position"][HALF, 0] == 0 and obs["position"][HALF, 1] == 1  # progress, remaining
    assert not obs["position"][:HALF].any()
    np.testing.assert_allclose(obs["summary"], e.features.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(obs["summary"], song_summary(e.features))
    assert obs["output_ratio"] == 0.0
    assert info["cursor"] == 0 and info["song"] == 1
    assert info["aux"]["phrase"][HALF] == 1 and info["aux"]["phrase"][HALF + 1] == 0


def test_walk_marks_done_and_ends_at_song_end(episodes) -> None:
    env = EditEnv(episodes, CFG)
    env.reset(options={"song": 0})
    n = episodes[0].n_beats
    loop = np.array([ActionType.LOOP, Size.BAR, Amount.NEG_SMALL])
    obs, _, terminated, _, info = env.step(loop)
    assert env.cursor == 4 and not terminated and not info["invalid_action"]
    # the four looped beats are now the last history rows, marked decided LOOP / NEG_SMALL
    rows = obs["done"][K - 4 :]
    assert rows[:, 0].all() and rows[:, 1 + ActionType.LOOP].all()
    assert rows[:, 1 + len(ActionType) + Amount.NEG_SMALL].all()
    assert not obs["done"][: K - 4].any()  # before the song's start
    # the bar played three times (12 output beats): the ratio to the labelled target shows it
    assert episodes[0].target_beats
    assert obs["output_ratio"] == pytest.approx(12 / episodes[0].target_beats)
    assert "episode" not in info
    steps = 1
    while not terminated:
        _, _, terminated, _, info = env.step(keep(Size.BAR))
        steps += 1
    assert env.cursor == n and steps == -(-n // 4)
    assert info["episode"]["l"] == steps and info["episode"]["out_beats"] == pytest.approx(n + 2 * 4)
    with pytest.raises(RuntimeError):
        env.step(keep(Size.BEAT))


def test_masks_follow_engine_actions(episodes) -> None:
    env = EditEnv(episodes, CFG)
    _, info = env.reset(options={"song": 2})
    n = episodes[2].n_beats
    while True:
        t, s, a = action_masks(env.cursor, n)
        m = info["action_masks"]
        np.testing.assert_array_equal(m["type"], t)
        np.testing.assert_array_equal(m["size"], s)
        np.testing.assert_array_equal(m["amount"], a)
        _, _, terminated, _, info = env.step(keep(Size.TWO_BARS if s[Size.TWO_BARS] else Size.BEAT))
        if terminated:
            break
    assert env.cursor == n


def test_invalid_actions_are_made_legal() -> None:
    n = 40
    # a span running past the end becomes the longest allowed size below it
    (t, s, a), invalid = legal_action((0, Size.TWO_PHRASES, Amount.NEUTRAL), n - 6, n)
    assert invalid and s == Size.BAR
    (t, s, a), invalid = legal_action((0, Size.BAR, Amount.NEUTRAL), n - 3, n)
    assert invalid and s == Size.BEAT
    (t, s, a), invalid = legal_action((0, Size.TWO_PHRASES, Amount.NEUTRAL), n - 9, n)
    assert invalid and s == Size.TWO_BARS and SIZE_BEATS[s] <= 9
    # an amount the type does not allow becomes an allowed one
    (t, s, a), invalid = legal_action((ActionType.LOOP, 0, Amount.NEUTRAL), 0, n)
    assert invalid and AMOUNT_MASK[t, a]
    (t, s, a), invalid = legal_action((ActionType.CUT, 0, Amount.POS_LARGE), 0, n)
    assert invalid and a == Amount.NEUTRAL
    # out-of-range indices are clipped; a legal action is left alone
    (t, s, a), invalid = legal_action((99, -3, 7), 0, n)
    assert invalid and (t, s) == (19, 0) and AMOUNT_MASK[t, a]
    assert legal_action(np.array([8, 1, 4]), 0, n) == ((8, 1, 4), False)
    for bad in ((1, 2), (np.nan, 0, 2), "abc"):
        with pytest.raises(ValueError):
            legal_action(bad, 0, n)


def test_env_rejects_bad_episodes(episodes) -> None:
    with pytest.raises(ValueError):
        EditEnv([], CFG)
    with pytest.raises(ValueError):
        EditEnv(synthetic_episodes(1, n_beats=8, in_dim=10), CFG)


@pytest.mark.parametrize("subprocess", [False, True])
def test_vector_envs_step(episodes, subprocess: bool) -> None:
    envs = make_vector_env(episodes, CFG, 2, subprocess=subprocess)
    try:
        obs, info = envs.reset(seed=1)
        assert obs["features"].shape == (2, W, CFG.in_dim)
        rng = np.random.default_rng(0)
        finished = 0
        for _ in range(60):
            masks = info["action_masks"]
            assert masks["type"].shape == (2, 20) and masks["amount"].shape == (2, 20, 5)
            acts = []
            for i in range(2):
                t = int(rng.integers(20))
                s = int(rng.choice(np.flatnonzero(masks["size"][i])))
                a = int(rng.choice(np.flatnonzero(masks["amount"][i, t])))
                acts.append((t, s, a))
            obs, reward, term, trunc, info = envs.step(np.array(acts))
            assert reward.shape == (2,) and np.isfinite(reward).all()
            assert not info["invalid_action"].any()
            if term.any():
                ep = info["final_info"]["episode"]
                finished += int(info["_final_info"].sum())
                assert np.isfinite(ep["r"][term]).all()
        assert finished >= 2
    finally:
        envs.close()
