"""Benchmark: EditEnv steps per second on one core (no rendering) and PPO samples/s.

Baseline in the same run: a bare gymnasium env whose step returns a copy of
a window of a numpy array (the least an env with this observation can do);
the ratio says what the reward, masks and bookkeeping cost.

    python -m bench.env [--seconds 3] [--beats 512] [--hidden 64] [--updates 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import gymnasium as gym
import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


class ArrayWindowEnv(gym.Env):
    """Baseline: steps a cursor over a ``(n_beats, F)`` array, observation = window copy."""

    def __init__(self, features: np.ndarray, window: int) -> None:
        self.features = np.concatenate([np.zeros((window, features.shape[1]), np.float32), features])
        self.window = window
        self.n = features.shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (window, features.shape[1]), np.float32)
        self.action_space = gym.spaces.MultiDiscrete([20, 5, 5])
        self.cursor = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cursor = 0
        return self.features[: self.window].copy(), {}

    def step(self, action):
        self.cursor += 1
        obs = self.features[self.cursor : self.cursor + self.window].copy()
        return obs, 0.0, self.cursor >= self.n, False, {}


def steps_per_second(env: gym.Env, actions: list[np.ndarray], seconds: float) -> float:
    """Env steps per second over ``seconds`` (resets included)."""
    env.reset(seed=0)
    n, start = 0, time.perf_counter()
    while True:
        for a in actions:
            _, _, terminated, _, _ = env.step(a)
            n += 1
            if terminated:
                env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--beats", type=int, default=512)
    p.add_argument("--hidden", type=int, default=64, help="policy width for the PPO figure")
    p.add_argument("--updates", type=int, default=3)
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    from editorbot.engine.actions import AMOUNT_MASK
    from editorbot.training.config import AgentConfig, PPOConfig
    from editorbot.training.dataset import synthetic_episodes
    from editorbot.training.env import EditEnv
    from editorbot.training.ppo import train

    config = AgentConfig()
    episodes = synthetic_episodes(4, n_beats=args.beats)
    rng = np.random.default_rng(0)
    actions = []
    for _ in range(1000):  # legal mixes of types; sizes BEAT/BAR/TWO_BARS
        t = int(rng.integers(20))
        actions.append(np.array([t, int(rng.integers(3)), int(rng.choice(np.flatnonzero(AMOUNT_MASK[t])))]))

    env_sps = steps_per_second(EditEnv(episodes, config), actions, args.seconds)
    base_sps = steps_per_second(ArrayWindowEnv(episodes[0].features, config.window), actions, args.seconds)
    print(f"EditEnv (window {config.window}, {args.beats} beats, 109 features): {env_sps:,.0f} steps/s on one core")
    print(f"baseline (bare env, numpy window copy):        {base_sps:,.0f} steps/s")
    print(f"ratio EditEnv / baseline: {env_sps / base_sps:.2f}  (target >= 20,000 steps/s: "
          f"{'met' if env_sps >= 20_000 else 'NOT met'})")

    agent = AgentConfig(hidden=args.hidden, heads=4, layers=2, kernel=17, value_hidden=32, value_heads=2)
    ppo = PPOConfig(batch_size=256, num_envs=4, max_updates=args.updates, checkpoint_every=1000)
    sps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(episodes, tmp, agent_config=agent, ppo_config=ppo, quiet=True,
              on_update=lambda u, m: sps.append(m["charts/SPS"]))
        wall = time.perf_counter() - start
    print(f"PPO (hidden {args.hidden}, window {agent.window}, batch 256, {ppo.update_epochs} epochs, bf16 autocast): "
          f"{np.median(sps):,.0f} samples/s per update (rollout + optimisation), "
          f"{args.updates * 256 / wall:,.0f} samples/s wall incl. setup")
    print(f"ratio PPO samples/s / EditEnv steps/s: {np.median(sps) / env_sps:.4f} (the policy, not the env, bounds training)")


if __name__ == "__main__":
    main()
