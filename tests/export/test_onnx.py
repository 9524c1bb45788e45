"""export.onnx: the exported policy graph agrees with torch at several shapes;
the sidecar holds what the runtime checks; bad checkpoints are refused."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime as ort
import pytest
import torch

from editorbot.engine.actions import AMOUNTS, SIZES, TYPES
from editorbot.engine.errors import BadInput
from editorbot.engine.features import config_hash, feature_names
from editorbot.export.onnx import PolicyGraph, export_policy, load_checkpoint
from editorbot.export.runtime import INPUT_NAMES, MODEL_SCHEMA, OUTPUT_NAMES, sha256_of
from editorbot.training.models.encoder import QUERY_BLOCK
from tests.export import scratch, tiny_agent, tiny_config, tiny_model

logger = logging.getLogger(__name__)


def _inputs(n_beats: int, batch: int, seed: int) -> dict[str, np.ndarray]:
    """Graph inputs: a random song padded by ``window // 2`` beats (and at the end to whole
    blocks, as the sidecar's ``length_multiple`` asks), ``batch`` random cursors in it."""
    cfg = tiny_config()
    rng = np.random.default_rng(seed)
    pad = cfg.window // 2
    length = n_beats + 2 * pad
    length += (-length) % QUERY_BLOCK
    padding = np.ones((1, length), dtype=bool)
    padding[0, pad : pad + n_beats] = False
    return {
        "features": np.where(padding[..., None], 0, rng.normal(size=(1, length, cfg.in_dim)) * 3 + 1).astype(np.float32),
        "position": np.where(padding[..., None], 0, rng.random((1, length, cfg.n_pos_feats))).astype(np.float32),
        "padding_mask": padding,
        "summary": rng.normal(size=(1, cfg.in_dim)).astype(np.float32),
        "cursors": (rng.integers(0, n_beats, batch) + pad).astype(np.int64),
        "done": (rng.random((batch, cfg.history, cfg.n_done_feats)) < 0.3).astype(np.float32),
        "output_ratio": rng.random(batch).astype(np.float32),
    }


@pytest.mark.parametrize("batch", [1, 6])
@pytest.mark.parametrize("n_beats", [16, 200])
def test_onnx_matches_torch(batch: int, n_beats: int) -> None:
    """All five outputs agree to 1e-4 at two batch sizes and two song lengths."""
    model, _ = tiny_model()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = _inputs(n_beats, batch, seed=batch * 1000 + n_beats)
    got = session.run(list(OUTPUT_NAMES), feeds)
    graph = PolicyGraph(tiny_agent()).eval()
    with torch.no_grad():
        want = graph(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
    for name, g, w in zip(OUTPUT_NAMES, got, want):
        assert g.shape == tuple(w.shape), name
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0, err_msg=name)
    # the policy head really is random: rows differ, so agreement is not trivial
    assert np.ptp(got[0], axis=-1).min() > 0.1


def test_onnx_equals_the_training_windows() -> None:
    """The exported whole-song graph gives what the agent computes on the env's windows."""
    from editorbot.training.models.agent import Observation

    model, _ = tiny_model()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = _inputs(60, 12, seed=7)
    logits, value = session.run(["logits", "value"], feeds)[:2]
    cfg = tiny_config()
    idx = feeds["cursors"][:, None] + np.arange(cfg.window) - cfg.window // 2
    obs = Observation.from_numpy({
        "features": feeds["features"][0, idx], "position": feeds["position"][0, idx],
        "padding_mask": feeds["padding_mask"][0, idx], "summary": np.repeat(feeds["summary"], 12, axis=0),
        "done": feeds["done"], "output_ratio": feeds["output_ratio"],
    })
    agent = tiny_agent()
    with torch.no_grad():
        np.testing.assert_allclose(logits, agent.policy_logits(obs).numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(value, agent.get_value(obs).numpy(), atol=1e-4, rtol=0)


def test_sidecar_describes_the_model() -> None:
    model, ckpt = tiny_model()
    doc = json.loads(model.with_suffix(".json").read_text())
    assert doc["schema"] == MODEL_SCHEMA and doc["version"] == 2 and doc["kind"] == "policy"
    assert doc["name"] == "tiny" and doc["file"] == "tiny.onnx"
    assert doc["sha256"] == sha256_of(model)
    assert doc["vocabulary"]["types"] == list(TYPES)
    assert doc["vocabulary"]["sizes"] == list(SIZES)
    assert doc["vocabulary"]["amounts"] == list(AMOUNTS)
    assert doc["features"]["spec_hash"] == config_hash()
    assert doc["features"]["names"] == feature_names()
    assert doc["config"] == tiny_config().to_dict()
    assert [i["name"] for i in doc["inputs"]] == list(INPUT_NAMES)
    assert [o["name"] for o in doc["outputs"]] == list(OUTPUT_NAMES)
    assert doc["source"]["checkpoint"] == ckpt.name and doc["source"]["update"] == 3
    assert doc["observation"]["history"] == 8 and doc["observation"]["song_padding"] == 8
    assert doc["observation"]["length_multiple"] == QUERY_BLOCK
    # the song-length and cursor axes are named and dynamic
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert all(isinstance(shapes[n][1], str) for n in ("features", "position", "padding_mask"))
    assert all(isinstance(shapes[n][0], str) for n in ("cursors", "done", "output_ratio"))


def test_checkpoint_round_trip() -> None:
    _, ckpt = tiny_model()
    loaded = load_checkpoint(ckpt)
    saved = tiny_agent()
    assert loaded.agent.config == saved.config
    want, got = saved.state_dict(), loaded.agent.state_dict()
    assert list(got) == list(want)  # every tensor of the saved agent, none extra
    for k, v in want.items():
        assert torch.equal(got[k], v), k


def test_bad_checkpoints_are_refused() -> None:
    folder = scratch("badckpt")
    junk = folder / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(BadInput, match="junk.pt"):
        load_checkpoint(junk)
    with pytest.raises(BadInput, match="no such checkpoint"):
        load_checkpoint(folder / "missing.pt")
    foreign = folder / "foreign.pt"
    torch.save({"weights": {}}, foreign)
    with pytest.raises(BadInput, match="foreign.pt"):
        load_checkpoint(foreign)


def test_export_needs_onnx_suffix() -> None:
    folder = scratch("suffix")
    with pytest.raises(BadInput, match=r"\.onnx"):
        export_policy(tiny_agent(), folder / "model.bin")
    assert list(folder.iterdir()) == []


def test_an_exported_policy_is_rebuilt_exactly() -> None:
    """``agent_from_onnx``: the weights of the checkpoint an export came from, and the bundled model proven."""
    import torch

    from editorbot.export.onnx import agent_from_onnx, model_file
    from editorbot.export.runtime import DEFAULT_MODEL
    from tests.export import tiny_agent, tiny_model

    model, _ = tiny_model()
    rebuilt, original = agent_from_onnx(model).state_dict(), tiny_agent().state_dict()
    assert rebuilt.keys() == original.keys()
    for key in original:
        assert torch.equal(rebuilt[key], original[key]), key
    assert model_file(DEFAULT_MODEL.parent) == DEFAULT_MODEL
    agent_from_onnx(DEFAULT_MODEL.parent)  # the bundled model: outputs equal within MAX_OUTPUT_DIFF


def test_a_bc_only_checkpoint_exports_with_its_infinite_best_reward_as_null() -> None:
    """A BC-only run never scored a rollout: its best reward is -inf, which strict JSON cannot hold."""
    from editorbot.bridge.cli import main
    from editorbot.training.ppo import CHECKPOINT_FORMAT, save_checkpoint

    folder = scratch("bc_only")
    agent = tiny_agent()
    ckpt = folder / "last.pt"
    save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "agent": agent.state_dict(),
                           "agent_config": agent.config.to_dict(), "update": 0, "best_reward": float("-inf")})
    assert main(["export-model", str(ckpt), "-o", str(folder / "bc.onnx"), "--quiet"]) == 0
    doc = json.loads((folder / "bc.json").read_text())
    assert "best_reward" in doc["source"] and doc["source"]["best_reward"] is None


def test_a_checkpoint_with_the_label_head_exports_the_agent_alone() -> None:
    """The trainer's per-beat label head (``aux_label_weight``) is saved beside the agent, never in the graph."""
    from editorbot.bridge.cli import main
    from editorbot.export.onnx import agent_from_onnx
    from editorbot.training.models.agent import LabelHead
    from editorbot.training.ppo import CHECKPOINT_FORMAT, save_checkpoint

    folder = scratch("label_head")
    agent = tiny_agent()
    ckpt = folder / "last.pt"
    save_checkpoint(ckpt, {"format": CHECKPOINT_FORMAT, "agent": agent.state_dict(), "agent_config": agent.config.to_dict(),
                           "label_head": LabelHead(agent.config.hidden).state_dict(), "update": 0})
    assert main(["export-model", str(ckpt), "-o", str(folder / "head.onnx"), "--quiet"]) == 0
    session = ort.InferenceSession(str(folder / "head.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    rebuilt = agent_from_onnx(folder / "head.onnx").state_dict()
    assert rebuilt.keys() == agent.state_dict().keys()
    for key, value in agent.state_dict().items():
        assert torch.equal(rebuilt[key], value), key
