"""training.rollout: generalised advantage estimation against the recursion written out by hand."""

from __future__ import annotations

import torch

from editorbot.training.rollout import compute_gae


def test_gae_follows_the_recursion_and_stops_at_episode_starts() -> None:
    """Two envs, three steps; env 1 starts a new episode at step 2, so step 1 does not bootstrap from it."""
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    values = torch.tensor([[0.5, 0.2], [0.4, 0.3], [0.1, 0.6]])
    dones = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    next_value, next_done = torch.tensor([0.7, 0.8]), torch.tensor([1.0, 0.0])
    adv, ret = compute_gae(rewards, values, dones, next_value, next_done, gamma, lam)

    want = torch.zeros(3, 2)
    for e in range(2):
        a = 0.0
        for t in (2, 1, 0):
            nonterminal = 1.0 - float(next_done[e] if t == 2 else dones[t + 1, e])
            v_next = float(next_value[e] if t == 2 else values[t + 1, e])
            delta = float(rewards[t, e]) + gamma * v_next * nonterminal - float(values[t, e])
            a = delta + gamma * lam * nonterminal * a
            want[t, e] = a
    torch.testing.assert_close(adv, want)
    torch.testing.assert_close(ret, want + values)
    # the episode boundaries: env 0's last step ends its episode, env 1's step 1 precedes a new one
    assert abs(float(adv[2, 0]) - (1.0 - 0.1)) < 1e-6
    assert abs(float(adv[1, 1]) - (2.0 - 0.3)) < 1e-6
