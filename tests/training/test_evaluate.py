"""training.evaluate: beat-level type F1 on hand-made labels, walks of a tiny policy, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from editorbot.engine.actions import SIZE_BEATS, TYPES, ActionType
from editorbot.training.config import AgentConfig
from editorbot.training.dataset import synthetic_episodes
from editorbot.training.evaluate import (
    evaluate_baseline,
    evaluate_policy,
    format_per_type,
    format_table,
    keep_walk,
    main,
    policy_walks,
    type_f1,
)
from editorbot.training.models.agent import EditAgent

torch.set_num_threads(1)

KEEP, CUT, LOOP, GAIN = (int(ActionType[n]) for n in ("KEEP", "CUT", "LOOP", "GAIN"))
TINY = AgentConfig(window=16, hidden=32, heads=2, layers=1, kernel=5, value_hidden=16, value_heads=2)


def test_f1_by_hand() -> None:
    # 10 beats: truth KEEP x6, CUT x3, LOOP x1; prediction gets 5 KEEPs, 2 CUTs, and invents a GAIN
    true = np.array([KEEP] * 6 + [CUT] * 3 + [LOOP])
    pred = np.array([KEEP] * 5 + [CUT] + [CUT, CUT, KEEP] + [GAIN])
    r = type_f1(true, pred)
    assert r.n_beats == 10
    assert r.micro_f1 == pytest.approx(7 / 10)  # 5 KEEP + 2 CUT right
    rows = {row.type: row for row in r.per_type}
    assert set(rows) == {"KEEP", "CUT", "LOOP", "GAIN"}  # union of truth and prediction
    # KEEP: tp 5, predicted 6, true 6 -> p = r = 5/6
    assert rows["KEEP"].precision == pytest.approx(5 / 6) and rows["KEEP"].recall == pytest.approx(5 / 6)
    # CUT: tp 2, predicted 3, true 3
    assert rows["CUT"].f1 == pytest.approx(2 / 3)
    assert rows["LOOP"].f1 == 0.0 and rows["LOOP"].support == 1 and rows["LOOP"].predicted == 0
    assert rows["GAIN"].f1 == 0.0 and rows["GAIN"].support == 0 and rows["GAIN"].predicted == 1
    assert r.macro_f1 == pytest.approx((5 / 6 + 2 / 3 + 0 + 0) / 4)
    assert np.isnan(r.type_amount_accuracy)  # types only


def test_f1_pools_songs_skips_unknown_beats_and_checks_amounts() -> None:
    a_true = np.array([[KEEP, 0, 2], [KEEP, 0, 2], [-1, -1, -1], [GAIN, 1, 3]])
    a_pred = np.array([[KEEP, 2, 2], [CUT, 0, 2], [CUT, 0, 2], [GAIN, 1, 4]])
    b_true = np.array([[CUT, 1, 2], [CUT, 1, 2]])
    b_pred = np.array([[CUT, 1, 2], [CUT, 1, 2]])
    r = type_f1([a_true, b_true], [a_pred, b_pred])
    assert r.n_beats == 5  # the unknown beat is left out
    assert r.micro_f1 == pytest.approx(4 / 5)
    assert r.type_amount_accuracy == pytest.approx(3 / 5)  # the GAIN amount is wrong
    assert r.action_accuracy == pytest.approx(2 / 5)  # and the first KEEP's size
    perfect = type_f1([b_true], [b_true])
    assert perfect.micro_f1 == perfect.macro_f1 == 1.0


def test_f1_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="beats"):
        type_f1(np.zeros(3, np.int64), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="no labelled beats"):
        type_f1(np.full(3, -1), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="type index"):
        type_f1(np.zeros(2, np.int64), np.array([0, len(TYPES)]))


def test_keep_baseline_scores_the_keep_share() -> None:
    episodes = synthetic_episodes(3, n_beats=40, seed=2)
    ev = evaluate_baseline(episodes, "keep")
    labels = np.concatenate([e.labels[:, 0] for e in episodes])
    assert ev.report.micro_f1 == pytest.approx(np.mean(labels == KEEP))
    assert keep_walk(5).tolist() == [[KEEP, 0, 2]] * 5
    assert "always-KEEP" in format_table([ev]) and "| KEEP |" in format_per_type(ev)


def test_policy_walk_covers_every_beat_with_legal_steps() -> None:
    torch.manual_seed(0)
    episodes = synthetic_episodes(3, n_beats=37, seed=3)
    agent = EditAgent(TINY)
    with torch.no_grad():  # a policy that prefers CUT over two bars: exercises sizes clipped at the end
        agent.policy_head.bias[CUT] = 5.0
        agent.policy_head.bias[len(TYPES) + 2] = 5.0
    walks = policy_walks(agent, episodes, batch_songs=2)
    assert [w.shape for w in walks] == [(37, 3)] * 3
    for w in walks:
        assert (w[:, 0] == CUT).all()
        # steps of TWO_BARS while they fit, then BEAT steps up to the end
        assert (w[:32, 1] == 2).all() and (w[32:, 1] == 0).all()
        assert SIZE_BEATS[2] == 8
    ev = evaluate_policy(agent, episodes, name="cut")
    labels = np.concatenate([e.labels[:, 0] for e in episodes])
    assert ev.report.micro_f1 == pytest.approx(np.mean(labels == CUT))
    # greedy walks are deterministic
    again = policy_walks(agent, episodes)
    assert all((a == b).all() for a, b in zip(walks, again, strict=True))


def test_trained_policy_beats_keep(tmp_path: Path) -> None:
    """A few BC passes on the learnable synthetic rule: the walk's F1 rises above always-KEEP."""
    from editorbot.training.bc import bc_examples
    from editorbot.training.config import PPOConfig
    from editorbot.training.ppo import train

    train_eps = synthetic_episodes(12, n_beats=48, seed=4)
    test_eps = synthetic_episodes(6, n_beats=48, seed=5)
    bc = bc_examples(train_eps, TINY)
    train(train_eps, tmp_path, agent_config=TINY, quiet=True, bc_data=bc,
          ppo_config=PPOConfig(bc_only=True, bc_epochs=30, bc_batch_size=32, bc_lr=3e-3, batch_size=64,
                               num_envs=2, num_minibatches=2, grad_accum=2))
    from editorbot.training.ppo import load_agent

    agent = load_agent(tmp_path / "last.pt")
    keep = evaluate_baseline(test_eps).report.micro_f1
    got = evaluate_policy(agent, test_eps).report.micro_f1
    assert got > keep + 0.2, (got, keep)


def test_cli_on_a_pair_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from editorbot.training.data.pairs import make_synth_pairs
    from editorbot.training.ppo import save_checkpoint

    monkeypatch.setenv("EDITORBOT_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "pairs"
    make_synth_pairs(2, data, ["radio_edit"], seed=7, duration_s=20.0, quiet=True)
    torch.manual_seed(0)
    agent = EditAgent(TINY)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, {"format": "editorbot.ppo/1", "agent": agent.state_dict(), "agent_config": TINY.to_dict()})
    out = tmp_path / "scores.json"
    rc = main(["--data-dir", str(data), "--checkpoint", str(ckpt), "--name", "tiny", "--baseline", "keep",
               "--json", str(out), "--per-type", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| always-KEEP | 2 |" in text and "| tiny | 2 |" in text
    doc = json.loads(out.read_text())
    assert [d["walker"] for d in doc] == ["always-KEEP", "tiny"]
    assert all(0.0 <= d["micro_f1"] <= 1.0 and d["n_beats"] > 0 for d in doc)
    assert main(["--data-dir", str(data), "--quiet"]) == 2
    assert main(["--data-dir", str(tmp_path / "missing"), "--baseline", "keep", "--quiet"]) == 2


def _label_doc(types: list[int], sections: list[tuple[str, int, int]]) -> dict:
    from editorbot.training.data.pairs import LABEL_SCHEMA

    return {
        "schema": LABEL_SCHEMA,
        "beat_labels": {"type": types, "size": [0] * len(types), "amount": [2] * len(types)},
        "sections": [{"name": n, "start_beat": a, "n_beats": b, "energy": 0.5} for n, a, b in sections],
    }


def test_structure_majority_by_hand(tmp_path: Path) -> None:
    from editorbot.training.evaluate import evaluate_structure_majority

    sections = [("intro", 0, 2), ("verse", 2, 2), ("outro", 4, 2)]
    train = {
        "a": [CUT, CUT, KEEP, KEEP, KEEP, CUT],
        "b": [CUT, KEEP, KEEP, KEEP, KEEP, CUT],
        "c": [CUT, CUT, KEEP, GAIN, KEEP, KEEP],
    }
    # majority per place: CUT CUT KEEP KEEP KEEP CUT
    test = {"t": [CUT, KEEP, KEEP, GAIN, KEEP, CUT]}
    for folder, docs in (("train", train), ("test", test)):
        (tmp_path / folder / "labels").mkdir(parents=True)
        for name, types in docs.items():
            (tmp_path / folder / "labels" / f"{name}.json").write_text(json.dumps(_label_doc(types, sections)))
    ev = evaluate_structure_majority(tmp_path / "train", tmp_path / "test")
    assert ev.n_songs == 1 and ev.report.n_beats == 6
    assert ev.report.micro_f1 == pytest.approx(4 / 6)
    rows = {r.type: r for r in ev.report.per_type}
    assert rows["GAIN"].predicted == 0 and rows["GAIN"].support == 1
    with pytest.raises(ValueError, match="no label files"):
        evaluate_structure_majority(tmp_path / "missing", tmp_path / "test")


def test_structure_majority_knows_length_and_next_section() -> None:
    """Two layouts share their first sections; the place tells them apart by what comes next and by length."""
    from editorbot.training.evaluate import keep_on_true_grid, structure_majority

    a = [("verse", 0, 2), ("chorus", 2, 2)]  # the verse leads into a chorus: its last beat LOOPs
    b = [("verse", 0, 2), ("outro", 2, 2)]  # into an outro: kept
    c = [("verse", 0, 3), ("chorus", 3, 1)]  # a longer verse: its second beat is kept
    train = [_label_doc([KEEP, LOOP, KEEP, KEEP], a), _label_doc([KEEP, KEEP, CUT, CUT], b),
             _label_doc([KEEP, KEEP, LOOP, GAIN], c)]
    test = [_label_doc([KEEP, LOOP, KEEP, KEEP], a), _label_doc([KEEP, KEEP, CUT, CUT], b),
            _label_doc([KEEP, KEEP, LOOP, GAIN], c)]
    ev = structure_majority(train, test)
    assert ev.report.micro_f1 == 1.0 and ev.extra["unseen_place_beats"] == 0
    keep = keep_on_true_grid(test)
    assert keep.report.micro_f1 == pytest.approx(7 / 12)
    assert keep.report.type_amount_accuracy == pytest.approx(7 / 12)  # KEEP's amount is NEUTRAL (2)
    with pytest.raises(ValueError, match="no training"):
        structure_majority([], test)
