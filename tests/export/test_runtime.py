"""export.runtime: model checks on load, provider fallback, batched log-probs
against torch, masks in walks, the fixed-point walk against a step-by-step
walk, and observations equal to the training environment's."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from editorbot.engine.actions import AMOUNT_MASK, SIZE_BEATS, TYPES, FactoredAction, action_masks
from editorbot.engine.errors import BadInput
from editorbot.engine.observation import DONE_LAYOUT
from editorbot.export import runtime
from editorbot.export.onnx import TorchPolicy
from editorbot.export.runtime import (
    OnnxPolicy,
    SongInputs,
    WalkHistory,
    decide,
    evaluate,
    load_policy,
    policy_inputs,
    song_logprobs,
)
from editorbot.export.walk import policy_walk
from tests.export import scratch, song_analysis, tiny_agent, tiny_model

logger = logging.getLogger(__name__)


def _copy_model(name: str, edit) -> str:
    """Copy the tiny model and its sidecar, letting ``edit(doc)`` change the sidecar."""
    model, _ = tiny_model()
    folder = scratch(name)
    out = folder / "model.onnx"
    shutil.copy(model, out)
    doc = json.loads(model.with_suffix(".json").read_text())
    edit(doc)
    out.with_suffix(".json").write_text(json.dumps(doc))
    return str(out)


def test_loads_and_names_its_provider(caplog: pytest.LogCaptureFixture) -> None:
    model, _ = tiny_model()
    with caplog.at_level(logging.INFO, logger="editorbot.export.runtime"):
        policy = OnnxPolicy(model, device="cpu")
    assert policy.provider == "CPUExecutionProvider"
    assert any("runs on CPUExecutionProvider" in r.getMessage() for r in caplog.records)


def test_other_feature_spec_is_refused() -> None:
    path = _copy_model("hash", lambda d: d["features"].update(spec_hash="0" * 64))
    with pytest.raises(BadInput) as err:
        OnnxPolicy(path)
    assert path in str(err.value) and "feature spec hash 000000000000 does not match" in str(err.value)


def test_unknown_version_and_changed_file_are_refused() -> None:
    path = _copy_model("version", lambda d: d.update(version=99))
    with pytest.raises(BadInput, match="model format version 99"):
        OnnxPolicy(path)
    path = _copy_model("sha", lambda d: d.update(sha256="f" * 64))
    with pytest.raises(BadInput, match="sha256 differs"):
        OnnxPolicy(path)
    path = _copy_model("layout", lambda d: d["observation"].update(done=list(reversed(DONE_LAYOUT))))
    with pytest.raises(BadInput, match="observation layout"):
        OnnxPolicy(path)


def test_bundled_default_model_runs() -> None:
    """models/default/policy.onnx is one this runtime reads (retrain it when the format changes)."""
    policy = load_policy(None, device="cpu")
    song = SongInputs.of(song_analysis(11, 20.0), policy.spec)
    lp = song_logprobs(policy, song)
    assert np.isfinite(lp.value).all() and lp.type.shape == (song.n_beats, len(TYPES))


def test_missing_default_model_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "DEFAULT_MODEL", scratch("nodefault") / "policy.onnx")
    with pytest.raises(BadInput, match="no model found.*export-model"):
        load_policy(None)


def test_cuda_request_falls_back_to_cpu(caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the fallback cannot be provoked")
    model, _ = tiny_model()
    with caplog.at_level(logging.INFO, logger="editorbot.export.runtime"):
        policy = OnnxPolicy(model, device="cuda")
    assert policy.provider == "CPUExecutionProvider"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "CUDA was asked for" in errors[0].getMessage()
    assert "running on CPUExecutionProvider" in errors[0].getMessage()
    # and it runs
    song = SongInputs.of(song_analysis(11, 20.0))
    assert np.isfinite(song_logprobs(policy, song).value).all()


def test_song_logprobs_match_torch_and_masks() -> None:
    model, ckpt = tiny_model()
    song = SongInputs.of(song_analysis(11, 20.0))
    onnx_lp = song_logprobs(OnnxPolicy(model, device="cpu"), song)
    torch_lp = song_logprobs(TorchPolicy(ckpt), song)
    for name in ("type", "size", "amount", "value"):
        got, want = getattr(onnx_lp, name), getattr(torch_lp, name)
        assert np.array_equal(np.isinf(got), np.isinf(want)), name
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], atol=1e-4, err_msg=name)
    n = song.n_beats
    for c in range(n):
        t, s, a = action_masks(c, n)
        assert np.array_equal(np.isfinite(onnx_lp.size[c]), s)
        assert np.array_equal(np.isfinite(onnx_lp.amount[c]), a)
        np.testing.assert_allclose(np.exp(onnx_lp.type[c]).sum(), 1.0, rtol=1e-6)


def _stepwise_walk(policy, song: SongInputs, *, seed: int | None, protected=None) -> tuple[list[FactoredAction], list[float]]:
    """Reference: one batch-1 evaluation per step, with the walk's own history; the walk and the
    probability the policy gave each step's (type, size, amount)."""
    n = song.n_beats
    uniforms = None if seed is None else np.random.default_rng(seed).random((n, 3))
    steps: list[tuple[int, FactoredAction]] = []
    probs: list[float] = []
    cursor = 0
    while cursor < n:
        lp = evaluate(policy, policy_inputs(song, np.array([cursor]), WalkHistory.of(steps, n), policy.spec), n)
        a = decide(lp.type[0], lp.size[0], lp.amount[0], cursor, n, protected=protected, u=None if uniforms is None else uniforms[cursor])
        p_type = np.exp(lp.type[0][a.type_idx])
        p_size = np.exp(lp.size[0][a.size_idx])
        p_amount = np.exp(lp.amount[0][a.type_idx, a.amount_idx])
        probs.append(float(p_type * p_size * p_amount))
        steps.append((cursor, a))
        cursor = min(cursor + a.beats, n)
    return [a for _, a in steps], probs


@pytest.mark.parametrize("seed", [None, 5])
def test_batched_walk_equals_stepwise_walk(seed: int | None) -> None:
    model, _ = tiny_model()
    policy = OnnxPolicy(model, device="cpu")
    song = SongInputs.of(song_analysis(11, 20.0))
    result = policy_walk(policy, song, seed=seed)
    walk, probs = _stepwise_walk(policy, song, seed=seed)
    assert result.walk == walk
    # each step's confidence is the policy's probability of its choice under the walk's own history
    np.testing.assert_allclose(result.confidence, probs, rtol=1e-5)
    assert all(0.0 < p <= 1.0 for p in result.confidence) and len(set(np.round(probs, 3))) > 1
    assert len({a.type for a in result.walk}) > 1  # a walk of some variety, not all KEEP
    assert result.rounds < len(result.walk) + 2


@pytest.mark.parametrize("target", [None, 14.0])
def test_plans_carry_the_policys_confidence_into_actions_and_markers(target: float | None) -> None:
    """The walk's (no target) or the search's (target) choice probabilities reach the plan:
    every action's confidence, and each marker's name ends with its action's as a percentage."""
    from editorbot.engine.actions import action_label
    from editorbot.engine.plan import marker_name
    from editorbot.export.walk import plan_analysis, walk_confidence

    model, _ = tiny_model()
    policy = OnnxPolicy(model, device="cpu")
    analysis = song_analysis(11, 20.0)
    decision = plan_analysis(analysis, policy, target_duration_s=target, baseline=False)
    plan = decision.plan
    confidence = [a.confidence for a in plan.actions]
    assert len(confidence) == len(decision.walk) and all(c is not None and 0.0 < c <= 1.0 for c in confidence)
    if target is not None:  # the search scores moves with the "all kept" log-probs; so does its confidence
        from editorbot.export.retime import SongSpans

        spans = SongSpans.of(analysis)
        song = SongInputs.of(analysis)
        song.features = song.features[: len(spans.starts_s)]
        lp = song_logprobs(policy, song, target_beats=spans.target_beats(target))
        np.testing.assert_allclose(confidence, walk_confidence(lp, decision.walk), rtol=1e-9)
    named = [a for a in plan.actions if a.type != "KEEP"]
    assert named, "the tiny policy edits something"
    names = {m.name for m in plan.markers}
    for a in named:
        label = action_label(a.type, a.amount)
        if a.type != "CUT":  # a run of cuts is one marker showing the lowest of them
            assert marker_name(label, a.confidence) in names, (label, a.confidence, names)
    assert all(m.name.endswith("%)") for m in plan.markers)


def test_sampling_respects_masks_and_protected_beats() -> None:
    model, _ = tiny_model()
    policy = OnnxPolicy(model, device="cpu")
    song = SongInputs.of(song_analysis(11, 20.0))
    n = song.n_beats
    protected = np.zeros(n, dtype=bool)
    protected[10:18] = True
    walks = set()
    for seed in range(12):
        result = policy_walk(policy, song, seed=seed, protected=protected)
        walks.add(tuple(result.walk))
        assert sum(min(SIZE_BEATS[a.size_idx], n - c) for a, c in zip(result.walk, result.cursors)) == n
        for a, c in zip(result.walk, result.cursors):
            t_mask, s_mask, a_mask = action_masks(c, n)
            assert t_mask[a.type_idx] and s_mask[a.size_idx] and a_mask[a.type_idx, a.amount_idx]
            assert AMOUNT_MASK[a.type_idx, a.amount_idx]
            if protected[c : min(c + a.beats, n)].any():
                assert a.type == "KEEP", (c, a)
    assert len(walks) > 6  # seeds matter
    assert policy_walk(policy, song, seed=3).walk == policy_walk(policy, song, seed=3).walk


def test_inputs_equal_the_training_env() -> None:
    """The runtime's inputs at each cursor hold exactly training.env.EditEnv's observation."""
    from editorbot.training.dataset import Episode
    from editorbot.training.env import EditEnv

    model, _ = tiny_model()
    spec = OnnxPolicy(model, device="cpu").spec
    analysis = song_analysis(11, 20.0)
    song = SongInputs.of(analysis)
    cfg = tiny_agent().config
    episode = Episode(
        name="song",
        features=song.features,
        downbeats=np.asarray(analysis.grid.downbeats),
        phrase_starts=song.phrase_starts,
        tempo_bpm=float(analysis.grid.tempo_bpm),
        target_beats=40.0,
    )
    env = EditEnv([episode], cfg)
    obs, _ = env.reset(options={"song": 0})
    rng = np.random.default_rng(0)
    steps: list[tuple[int, FactoredAction]] = []
    cursor = 0
    n = song.n_beats
    window = np.arange(cfg.window) - cfg.window // 2
    while cursor < n:
        mine = policy_inputs(song, np.array([cursor]), WalkHistory.of(steps, n), spec, target_beats=40.0)
        rows = mine.cursors[0] + window  # the window of the padded song around the cursor
        np.testing.assert_array_equal(mine.features[0, rows], obs["features"], err_msg=f"features at {cursor}")
        np.testing.assert_allclose(mine.position[0, rows], obs["position"], atol=1e-6, err_msg=f"position at {cursor}")
        assert np.array_equal(mine.padding_mask[0, rows], obs["padding_mask"].astype(bool))
        np.testing.assert_array_equal(mine.summary[0], obs["summary"])
        np.testing.assert_array_equal(mine.done[0], obs["done"], err_msg=f"done at {cursor}")
        assert mine.output_ratio[0] == pytest.approx(float(obs["output_ratio"]), abs=1e-6)
        t = int(rng.choice([TYPES.index(x) for x in ("KEEP", "CUT", "LOOP", "SPEED", "GAIN")]))
        allowed_sizes = np.flatnonzero(action_masks(cursor, n)[1])
        a = FactoredAction(t, int(rng.choice(allowed_sizes)), int(rng.choice(np.flatnonzero(AMOUNT_MASK[t]))))
        obs, _, terminated, _, info = env.step(np.array(a))
        assert not info["invalid_action"]
        steps.append((cursor, a))
        cursor = min(cursor + a.beats, n)
    assert terminated


def test_bundled_model_reads_the_context_columns() -> None:
    """The bundled model names the whole-song context columns after the audio ones (models/default/MODEL_CARD.md):
    the runtime appends them to its songs, as the trainer did."""
    from editorbot.engine.context import CONTEXT_NAMES, with_context

    policy = load_policy(None, device="cpu")
    assert policy.spec.reads_context and tuple(policy.spec.feature_names[-len(CONTEXT_NAMES):]) == CONTEXT_NAMES
    analysis = song_analysis(11, 20.0)
    song = SongInputs.of(analysis, policy.spec)
    assert song.features.shape == (analysis.features.shape[0], analysis.features.shape[1] + len(CONTEXT_NAMES))
    np.testing.assert_array_equal(song.features, with_context(analysis.features, analysis.feature_names,
                                                              analysis.grid.downbeats))


def test_a_context_model_exports_loads_and_edits() -> None:
    """A model trained with AgentConfig.context names the context columns in its sidecar; the runtime
    appends them (what training.dataset.with_context_columns shows the trainer) and the walk runs."""
    import dataclasses

    import torch

    from editorbot.engine.context import CONTEXT_NAMES, with_context
    from editorbot.export.onnx import export_policy
    from editorbot.export.walk import plan_analysis
    from editorbot.training.dataset import Episode, with_context_columns
    from editorbot.training.env import EditEnv
    from editorbot.training.models.agent import EditAgent
    from tests.export import tiny_config

    cfg = dataclasses.replace(tiny_config(), context=True, in_dim=109 + len(CONTEXT_NAMES))
    torch.manual_seed(0)
    agent = EditAgent(cfg).eval()
    torch.nn.init.normal_(agent.policy_head.weight, std=0.3)
    out = scratch("context") / "ctx.onnx"
    export_policy(agent, out)
    policy = OnnxPolicy(out, device="cpu")
    assert policy.spec.reads_context and tuple(policy.spec.feature_names[-len(CONTEXT_NAMES):]) == CONTEXT_NAMES
    analysis = song_analysis(11, 20.0)
    song = SongInputs.of(analysis, policy.spec)
    expected = with_context(analysis.features, analysis.feature_names, analysis.grid.downbeats)
    np.testing.assert_array_equal(song.features, expected)
    # the trainer's episode of the same song sees the same columns
    episode = Episode(name="song", features=np.asarray(analysis.features, np.float32),
                      downbeats=np.asarray(analysis.grid.downbeats), phrase_starts=song.phrase_starts)
    (wide,) = with_context_columns([episode])
    np.testing.assert_array_equal(wide.features, song.features)
    obs, _ = EditEnv([wide], cfg).reset(options={"song": 0})
    mine = policy_inputs(song, np.array([0]), WalkHistory.empty(song.n_beats), policy.spec)
    np.testing.assert_array_equal(mine.summary[0], obs["summary"])
    lp = song_logprobs(policy, song)
    assert np.isfinite(lp.value).all()
    decision = plan_analysis(analysis, policy)
    assert decision.plan.actions
    # a 109-column song given to it is refused, not misread
    with pytest.raises(ValueError, match="features must be"):
        song_logprobs(policy, SongInputs.of(analysis))
