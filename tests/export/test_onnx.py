"""export.onnx: the exported policy graph agrees with torch at several shapes;
the sidecar holds what the runtime checks; bad checkpoints are refused."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnxruntime as ort
import pytest
import torch

from engine.actions import AMOUNTS, SIZES, TYPES
from engine.errors import BadInput
from engine.features import config_hash, feature_names
from export.onnx import PolicyGraph, export_policy, load_checkpoint
from export.runtime import INPUT_NAMES, OUTPUT_NAMES, MODEL_SCHEMA, sha256_of
from tests.export import scratch, tiny_agent, tiny_config, tiny_model

logger = logging.getLogger(__name__)


def _inputs(batch: int, window: int, seed: int) -> dict[str, np.ndarray]:
    """Random observation arrays; the first row is padded at the window's start."""
    cfg = tiny_config()
    rng = np.random.default_rng(seed)
    pad = np.zeros((batch, window), dtype=bool)
    pad[0, : window // 3] = True
    return {
        "features": (rng.normal(size=(batch, window, cfg.in_dim)) * 3 + 1).astype(np.float32),
        "done": (rng.random((batch, window, cfg.n_done_feats)) < 0.3).astype(np.float32),
        "position": rng.random((batch, window, cfg.n_pos_feats)).astype(np.float32),
        "padding_mask": pad,
    }


@pytest.mark.parametrize("batch", [1, 6])
@pytest.mark.parametrize("window", [16, 41])
def test_onnx_matches_torch(batch: int, window: int) -> None:
    """All five outputs agree to 1e-4 at two batch sizes and two window lengths."""
    model, _ = tiny_model()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = _inputs(batch, window, seed=batch * 100 + window)
    got = session.run(list(OUTPUT_NAMES), feeds)
    graph = PolicyGraph(tiny_agent()).eval()
    with torch.no_grad():
        want = graph(*(torch.from_numpy(feeds[n]) for n in INPUT_NAMES))
    for name, g, w in zip(OUTPUT_NAMES, got, want):
        assert g.shape == tuple(w.shape), name
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0, err_msg=name)
    # the policy head really is random: rows differ, so agreement is not trivial
    assert np.ptp(got[0], axis=-1).min() > 0.1


def test_sidecar_describes_the_model() -> None:
    model, ckpt = tiny_model()
    doc = json.loads(model.with_suffix(".json").read_text())
    assert doc["schema"] == MODEL_SCHEMA and doc["version"] == 1 and doc["kind"] == "policy"
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
    # the graph's axes are named and dynamic
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert all(isinstance(shapes[n][0], str) and isinstance(shapes[n][1], str) for n in INPUT_NAMES)


def test_checkpoint_round_trip() -> None:
    _, ckpt = tiny_model()
    loaded = load_checkpoint(ckpt)
    want = tiny_agent().state_dict()
    for k, v in loaded.agent.state_dict().items():
        torch.testing.assert_close(v, want[k])


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
