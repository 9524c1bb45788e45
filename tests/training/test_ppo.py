"""PPO + BC trainer: a short run logs every scalar, BC learns a label rule,
resume after SIGKILL, clean save on SIGTERM, two-process DDP keeps replicas equal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from editorbot.engine.actions import TYPES
from editorbot.training.bc import BCData, bc_examples, bc_loss
from editorbot.training.config import AgentConfig, PPOConfig
from editorbot.training.dataset import synthetic_episodes
from editorbot.training.ppo import CHECKPOINT_FORMAT, bc_learning_rate, load_agent, load_checkpoint, train
from editorbot.training.reward import TERMS
from tests.training import torchrun_two

torch.set_num_threads(1)

TINY = dict(window=16, hidden=32, heads=2, layers=1, kernel=5, value_hidden=16, value_heads=2, history=8)
CFG = AgentConfig(**TINY)
PPO = dict(batch_size=64, num_envs=2, num_minibatches=2, grad_accum=2, update_epochs=2, checkpoint_every=2)


def tb_scalars(log_dir: Path) -> tuple[set[str], dict[str, str]]:
    """Scalar tags and text summaries in a TensorBoard folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    texts = {tag: acc.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in acc.Tags()["tensors"]}
    return set(acc.Tags()["scalars"]), texts


def test_short_run_logs_every_scalar_and_checkpoints(tmp_path: Path) -> None:
    episodes = synthetic_episodes(3, n_beats=48, seed=1)
    bc = bc_examples(episodes, CFG)
    seen: list[int] = []
    result = train(
        episodes, tmp_path, agent_config=CFG, ppo_config=PPOConfig(**PPO, max_updates=3), bc_data=bc,
        quiet=True, on_update=lambda u, m: seen.append(u),
    )
    assert result["updates"] == 3 and seen == [1, 2, 3] and result["global_step"] == 3 * 64
    tags, texts = tb_scalars(tmp_path / "tb")
    expected = {
        "train/episode_reward", "train/entropy", "losses/approx_kl", "losses/old_approx_kl", "losses/clipfrac",
        "losses/explained_variance", "losses/pg_loss", "losses/v_loss", "losses/entropy_loss", "losses/bc_loss",
        "losses/aux_loss", "losses/bc_accuracy_type", "charts/SPS", "charts/learning_rate", "actions/top_type_share",
    }
    expected |= {f"reward/{k}" for k in TERMS} | {f"actions/type_share/{t}" for t in TYPES}
    assert expected <= tags, expected - tags
    table = next(v for k, v in texts.items() if k.startswith("hyperparameters"))
    assert "|ppo|ent_coef|0.02|" in table and "|agent|hidden|32|" in table
    m = result["metrics"]
    assert 0 < m["train/entropy"] <= 6.21 and np.isfinite(m["train/episode_reward"])
    assert sum(m[f"actions/type_share/{t}"] for t in TYPES) == pytest.approx(1.0)
    lines = (tmp_path / "progress.jsonl").read_text().splitlines()
    assert [json.loads(x)["update"] for x in lines] == [1, 2, 3]

    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["format"] == CHECKPOINT_FORMAT and ckpt["update"] == 3 and ckpt["global_step"] == 3 * 64
    assert {"agent", "agent_config", "ppo_config", "optimizer", "scaler", "rng"} <= set(ckpt)
    assert {"python", "numpy", "torch"} <= set(ckpt["rng"][0])
    assert (tmp_path / "best.pt").is_file()
    agent = load_agent(tmp_path / "last.pt")
    assert agent.config.hidden == 32
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_collapse_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The warning fires exactly when the top action type's share of an update passes ``collapse_share``.

    Seeded runs repeat the same actions, so one run measures the top share and
    two more put the threshold just under and just over it.
    """
    episodes = synthetic_episodes(2, n_beats=32, seed=2)

    def run(collapse_share: float, name: str) -> tuple[dict[str, float], list[str]]:
        seen: list[dict[str, float]] = []
        caplog.clear()
        train(episodes, tmp_path / name, agent_config=CFG,
              ppo_config=PPOConfig(**PPO, max_updates=1, collapse_share=collapse_share), quiet=True,
              on_update=lambda u, m: seen.append(m))
        return seen[-1], [r.getMessage() for r in caplog.records if "action collapse" in r.getMessage()]

    metrics, warned = run(1.0, "never")
    top = metrics["actions/top_type_share"]
    top_type = max(TYPES, key=lambda t: metrics[f"actions/type_share/{t}"])
    assert not warned and 1 / len(TYPES) <= top < 0.99
    metrics, warned = run(top - 0.01, "under")
    assert metrics["actions/top_type_share"] == top
    assert len(warned) == 1 and f"{top_type} is {100 * top:.0f}%" in warned[0], warned
    _, warned = run(top + 0.01, "over")
    assert not warned


def test_bc_only_learns_the_label_rule(tmp_path: Path) -> None:
    """The synthetic labels' type is a function of the cursor beat's features:
    BC alone must reach > 90% type accuracy on songs it never saw."""
    train_eps = synthetic_episodes(128, n_beats=64, seed=10)
    held_out = bc_examples(synthetic_episodes(8, n_beats=64, seed=99), CFG)
    data = bc_examples(train_eps, CFG)
    path = data.save(tmp_path / "bc.npz")
    data = BCData.load(path)
    assert len(data) == 128 * 16 and set(np.unique(data.actions[:, 0])) <= {0, 1, 2, 8}

    def held_out_accuracy(agent) -> float:
        obs, masks, actions, _, _ = held_out.batch(np.arange(len(held_out)))
        with torch.no_grad():
            _, acc = bc_loss(agent.policy_logits(obs), masks, actions)
        return float(acc["type"])

    cfg = PPOConfig(bc_only=True, bc_epochs=5, bc_batch_size=32, bc_lr=3e-3, checkpoint_every=100)
    result = train(train_eps, tmp_path / "run", agent_config=CFG, ppo_config=cfg, bc_data=data, quiet=True)
    assert result["updates"] == 0 and result["bc_epochs"] == 5
    agent = load_agent(tmp_path / "run" / "last.pt")
    assert held_out_accuracy(agent) > 0.9
    untrained = load_agent(tmp_path / "run" / "last.pt")
    for p in untrained.policy_head.parameters():
        torch.nn.init.zeros_(p)
    assert held_out_accuracy(untrained) < 0.6


@pytest.mark.parametrize("anneal", [False, True])
def test_bc_learning_rate_is_constant_or_falls_to_zero(tmp_path: Path, anneal: bool) -> None:
    """``bc_anneal`` lowers the BC rate linearly over every step of every pass; without it the rate stays."""
    episodes = synthetic_episodes(2, n_beats=48, seed=3)
    data = bc_examples(episodes, CFG)
    cfg = PPOConfig(bc_only=True, bc_epochs=2, bc_batch_size=8, bc_lr=1e-3, bc_anneal=anneal, checkpoint_every=100)
    result = train(episodes, tmp_path, agent_config=CFG, ppo_config=cfg, bc_data=data, quiet=True)
    total = 2 * -(-len(data) // 8)
    assert [bc_learning_rate(cfg, k, total) for k in (0, total // 2)] == ([1e-3, 1e-3] if not anneal else [1e-3, 5e-4])
    assert result["metrics"]["bc/learning_rate"] == pytest.approx(1e-3 / total if anneal else 1e-3)


def test_label_head_loss_falls_on_a_tiny_bc_set(tmp_path: Path) -> None:
    """``aux_label_weight`` trains a per-beat label head whose loss falls; its weights stay out of the agent's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    episodes = synthetic_episodes(16, n_beats=48, seed=7)
    data = bc_examples(episodes, CFG, keep_size=0)
    cfg = PPOConfig(bc_only=True, bc_epochs=6, bc_batch_size=32, bc_lr=3e-3, aux_label_weight=1.0, checkpoint_every=100)
    result = train(episodes, tmp_path / "head", agent_config=CFG, ppo_config=cfg, bc_data=data, quiet=True)
    acc = EventAccumulator(str(tmp_path / "head" / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    curve = [e.value for e in acc.Scalars("bc/label_loss")]
    assert len(curve) == 6 and curve[-1] < 0.5 * curve[0], curve
    assert result["metrics"]["bc/label_loss"] == pytest.approx(curve[-1])
    ckpt = load_checkpoint(tmp_path / "head" / "last.pt")
    assert set(ckpt["label_head"]) == {"linear.weight", "linear.bias"}
    assert not any(k.startswith("label") for k in ckpt["agent"])
    load_agent(tmp_path / "head" / "last.pt")  # the agent alone, as export and inference read it

    # weight 0 (the default): no head, no label loss, a checkpoint without one
    plain = PPOConfig(bc_only=True, bc_epochs=1, bc_batch_size=32, bc_lr=3e-3, checkpoint_every=100)
    result = train(episodes, tmp_path / "plain", agent_config=CFG, ppo_config=plain, bc_data=data, quiet=True)
    assert "bc/label_loss" not in result["metrics"]
    assert load_checkpoint(tmp_path / "plain" / "last.pt")["label_head"] is None
    with pytest.raises(ValueError, match="label head"):  # its optimiser state has no head's
        train(episodes, tmp_path / "plain", agent_config=CFG, ppo_config=replace(plain, bc_epochs=2, aux_label_weight=1.0),
              bc_data=data, resume=True, quiet=True)


def test_label_head_without_labels_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    episodes = synthetic_episodes(2, n_beats=48, seed=2)
    data = bc_examples(episodes, CFG)
    old = replace(data, label_type=np.full_like(data.label_type, -1))  # a file made before label_type
    cfg = PPOConfig(bc_only=True, bc_epochs=1, bc_batch_size=32, aux_label_weight=1.0, checkpoint_every=100)
    with caplog.at_level("WARNING", logger="editorbot.training.ppo"):
        result = train(episodes, tmp_path, agent_config=CFG, ppo_config=cfg, bc_data=old, quiet=True)
    assert any("know no beat's label" in r.getMessage() for r in caplog.records)
    assert result["metrics"]["bc/label_loss"] == 0


def test_label_head_joins_the_bc_term_of_ppo(tmp_path: Path) -> None:
    episodes = synthetic_episodes(3, n_beats=48, seed=1)
    data = bc_examples(episodes, CFG)
    result = train(episodes, tmp_path, agent_config=CFG, ppo_config=PPOConfig(**PPO, max_updates=1, aux_label_weight=1.0),
                   bc_data=data, quiet=True)
    assert result["metrics"]["losses/label_loss"] > 0
    plain = train(episodes, tmp_path / "plain", agent_config=CFG, ppo_config=PPOConfig(**PPO, max_updates=1),
                  bc_data=data, quiet=True)
    assert plain["metrics"]["losses/label_loss"] == 0


RUNNER = textwrap.dedent(
    """
    import json, sys, time, torch
    torch.set_num_threads(1)
    from editorbot.training.config import AgentConfig, PPOConfig
    from editorbot.training.dataset import synthetic_episodes
    from editorbot.training.ppo import train
    args = json.loads(sys.argv[1])
    eps = synthetic_episodes(3, n_beats=48, seed=1)
    train(eps, args["save_dir"], agent_config=AgentConfig(**args["agent"]), ppo_config=PPOConfig(**args["ppo"]),
          resume=args["resume"], quiet=True, on_update=lambda u, m: time.sleep(args["sleep"]))
    """
)


def run_trainer(tmp_path: Path, save_dir: Path, *, resume: bool, sleep: float, updates: int) -> subprocess.Popen:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    args = {"save_dir": str(save_dir), "agent": TINY, "ppo": {**PPO, "max_updates": updates},
            "resume": resume, "sleep": sleep}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), json.dumps(args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def logged_updates(save_dir: Path) -> list[int]:
    path = save_dir / "progress.jsonl"
    if not path.exists():
        return []
    return [json.loads(x)["update"] for x in path.read_text().splitlines() if x.strip()]


def wait_for_updates(proc: subprocess.Popen, save_dir: Path, n: int, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while len(logged_updates(save_dir)) < n:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.time() < deadline, "trainer too slow"
        time.sleep(0.05)


def test_resume_after_sigkill_loses_at_most_one_interval(tmp_path: Path) -> None:
    save_dir = tmp_path / "run"
    proc = run_trainer(tmp_path, save_dir, resume=False, sleep=0.2, updates=6)
    wait_for_updates(proc, save_dir, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before_kill = max(logged_updates(save_dir))
    saved = load_checkpoint(save_dir / "last.pt")["update"]
    assert 0 < done_before_kill - saved + 1 and done_before_kill - saved <= PPO["checkpoint_every"]

    proc = run_trainer(tmp_path, save_dir, resume=True, sleep=0.0, updates=6)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    final = load_checkpoint(save_dir / "last.pt")
    assert final["update"] == 6 and final["global_step"] == 6 * 64
    after = logged_updates(save_dir)
    assert after[-(6 - saved) :] == list(range(saved + 1, 7))  # the resumed run continued from the checkpoint


def test_sigterm_saves_cleanly(tmp_path: Path) -> None:
    save_dir = tmp_path / "run"
    proc = run_trainer(tmp_path, save_dir, resume=False, sleep=0.2, updates=50)
    wait_for_updates(proc, save_dir, 2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert load_checkpoint(save_dir / "last.pt")["update"] == max(logged_updates(save_dir)) < 50


DDP_RUNNER = textwrap.dedent(
    """
    import json, sys, torch
    torch.set_num_threads(1)
    from editorbot.training.config import AgentConfig, PPOConfig
    from editorbot.training.dataset import synthetic_episodes
    from editorbot.training.bc import bc_examples
    from editorbot.training.ppo import train
    args = json.loads(sys.argv[1])
    eps = synthetic_episodes(3, n_beats=48, seed=1)
    cfg = AgentConfig(**args["agent"])
    train(eps, args["save_dir"], agent_config=cfg, ppo_config=PPOConfig(**args["ppo"]),
          bc_data=bc_examples(eps, cfg), quiet=True)
    """
)


def test_torchrun_two_processes_keep_replicas_identical(tmp_path: Path) -> None:
    script = tmp_path / "ddp_runner.py"
    script.write_text(DDP_RUNNER)
    save_dir = tmp_path / "run"
    args = {"save_dir": str(save_dir), "agent": TINY, "ppo": {**PPO, "max_updates": 2, "bc_epochs": 1, "bc_batch_size": 16}}
    proc = torchrun_two(script, json.dumps(args), save_dir, timeout=180)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    hashes = json.loads((save_dir / "replicas.json").read_text())["hashes"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]
    ckpt = load_checkpoint(save_dir / "last.pt")
    assert ckpt["update"] == 2 and ckpt["world"] == 2 and len(ckpt["rng"]) == 2
    assert ckpt["global_step"] == 2 * 64 * 2  # both ranks' steps count
