"""EditAgent: masked factored policy, separate value network, auxiliary heads,
whole-song evaluation; and the RL configs' defaults."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from editorbot.engine.actions import AMOUNT_MASK, SIZE_BEATS, action_masks
from editorbot.training.config import AgentConfig, PPOConfig
from editorbot.training.models.agent import (
    ACTION_DIMS,
    MAX_ENTROPY,
    N_AMOUNTS,
    N_SIZES,
    N_TYPES,
    ActionMasks,
    AuxBatch,
    EditAgent,
    Observation,
    count_parameters,
)
from editorbot.training.models.encoder import QUERY_BLOCK

logger = logging.getLogger(__name__)

TINY = AgentConfig(
    in_dim=10,
    n_done_feats=3,
    n_pos_feats=2,
    window=16,
    hidden=32,
    heads=4,
    layers=2,
    kernel=7,
    value_hidden=16,
    value_heads=2,
    value_layers=1,
    backend="torch",
)


def _obs(batch: int, window: int = TINY.window, seed: int = 0) -> Observation:
    """Random observation; the first rows are padded at the window's start."""
    gen = torch.Generator().manual_seed(seed)
    pad = torch.zeros(batch, window, dtype=torch.bool)
    pad[: batch // 2, : window // 4] = True
    return Observation(
        features=torch.randn(batch, window, TINY.in_dim, generator=gen) * 5 + 3,
        position=torch.rand(batch, window, TINY.n_pos_feats, generator=gen),
        padding_mask=pad,
        summary=torch.randn(batch, TINY.in_dim, generator=gen) + 3,
        done=torch.rand(batch, TINY.history, TINY.n_done_feats, generator=gen),
        output_ratio=torch.rand(batch, generator=gen),
    )


def _song(n_beats: int, seed: int = 0, multiple: int = 1) -> dict[str, torch.Tensor]:
    """A random song padded by ``window // 2`` beats each side (and at the end up to
    a multiple of ``multiple``), as ``song_outputs`` reads it."""
    gen = torch.Generator().manual_seed(seed)
    pad = TINY.window // 2
    length = n_beats + 2 * pad
    length += (-length) % multiple
    padding = torch.ones(1, length, dtype=torch.bool)
    padding[0, pad : pad + n_beats] = False
    return {
        "features": (torch.randn(1, length, TINY.in_dim, generator=gen) * 5 + 3).masked_fill(padding[..., None], 0.0),
        "position": torch.rand(1, length, TINY.n_pos_feats, generator=gen).masked_fill(padding[..., None], 0.0),
        "padding_mask": padding,
        "summary": torch.randn(1, TINY.in_dim, generator=gen) + 3,
    }


def _windows(song: dict[str, torch.Tensor], cursors: torch.Tensor, done: torch.Tensor, ratio: torch.Tensor) -> Observation:
    """The training observations (windows) at ``cursors`` (indices into the padded song)."""
    half = TINY.window // 2
    idx = cursors[:, None] + torch.arange(TINY.window) - half
    return Observation(
        song["features"][0, idx], song["position"][0, idx], song["padding_mask"][0, idx],
        song["summary"].expand(len(cursors), -1), done, ratio,
    )


def _masks(batch: int, seed: int = 0) -> ActionMasks:
    """Random masks with at least one allowed choice per factor and row."""
    gen = torch.Generator().manual_seed(seed)
    masks = []
    for shape in ((batch, N_TYPES), (batch, N_SIZES), (batch, N_TYPES, N_AMOUNTS)):
        m = torch.rand(shape, generator=gen) < 0.4
        first = torch.zeros(shape, dtype=torch.bool)
        first[..., 0] = True
        masks.append(torch.where(m.any(-1, keepdim=True), m, first))
    return ActionMasks(*masks)


def _agent(seed: int = 0, *, random_head: bool = True) -> EditAgent:
    torch.manual_seed(seed)
    agent = EditAgent(TINY)
    if random_head:  # a non-uniform policy, so that masks matter
        torch.nn.init.normal_(agent.policy_head.weight, std=0.1)
    return agent


def test_uniform_policy_has_max_entropy() -> None:
    agent = _agent(random_head=False)
    _, logprob, entropy, value = agent.get_action_and_value(_obs(6))
    assert MAX_ENTROPY == pytest.approx(math.log(20) + 2 * math.log(5))
    assert MAX_ENTROPY == pytest.approx(6.2, abs=0.02)
    torch.testing.assert_close(entropy, torch.full((6,), MAX_ENTROPY))
    torch.testing.assert_close(logprob, torch.full((6,), -MAX_ENTROPY))
    assert value.shape == (6,)


def test_uniform_policy_masked_entropy_counts_allowed_choices() -> None:
    agent = _agent(random_head=False)
    masks = _masks(8, seed=3)
    action, _, entropy, _ = agent.get_action_and_value(_obs(8), masks)
    rows = torch.arange(8)
    want = (
        masks.type.sum(-1).float().log()
        + masks.size.sum(-1).float().log()
        + masks.amount[rows, action[:, 0]].sum(-1).float().log()
    )
    torch.testing.assert_close(entropy, want)


def test_masked_actions_never_sampled() -> None:
    agent = _agent()
    n = 3000
    masks = _masks(1, seed=5)
    masks = ActionMasks(*(m.expand(n, *m.shape[1:]) for m in masks))
    obs = _obs(1, seed=2)[torch.zeros(n, dtype=torch.long)]
    with torch.no_grad():
        action, logprob, _, _ = agent.get_action_and_value(obs, masks)
    rows = torch.arange(n)
    assert bool(masks.type[rows, action[:, 0]].all())
    assert bool(masks.size[rows, action[:, 1]].all())
    assert bool(masks.amount[rows, action[:, 0], action[:, 2]].all())
    assert bool((logprob > -100).all())
    # Sampling is not degenerate: every allowed type shows up.
    allowed = set(torch.nonzero(masks.type[0]).flatten().tolist())
    assert set(action[:, 0].tolist()) == allowed


def test_engine_action_masks_respected() -> None:
    agent = _agent()
    n_beats, repeats = 40, 200
    cursors = np.repeat(np.arange(0, n_beats, 3), repeats)
    per_step = [action_masks(int(c), n_beats) for c in cursors]
    masks = ActionMasks(*(torch.from_numpy(np.stack(m)) for m in zip(*per_step)))
    obs = _obs(1)[torch.zeros(len(cursors), dtype=torch.long)]
    with torch.no_grad():
        action, *_ = agent.get_action_and_value(obs, masks)
    t, s, a = action.numpy().T
    beats = np.array(SIZE_BEATS)[s]
    assert np.all((beats <= n_beats - cursors) | (s == 0))
    assert np.all(AMOUNT_MASK[t, a])
    assert len(set(a.tolist())) == 5  # NEUTRAL-only and amount types both sampled


def test_logprob_and_entropy_are_sums_over_factors() -> None:
    agent = _agent()
    obs, masks = _obs(5), _masks(5, seed=1)
    with torch.no_grad():
        action, logprob, entropy, _ = agent.get_action_and_value(obs, masks)
        logits = agent.policy_logits(obs)
    type_l, size_l, amount_l = torch.split(logits, ACTION_DIMS, dim=-1)
    for b in range(5):
        t, s, a = action[b].tolist()
        lp, ent = 0.0, 0.0
        for head, allowed, choice in (
            (type_l[b], masks.type[b], t),
            (size_l[b], masks.size[b], s),
            (amount_l[b], masks.amount[b, t], a),
        ):
            idx = torch.nonzero(allowed).flatten()
            p = torch.softmax(head[idx], dim=0)
            lp += math.log(float(p[(idx == choice).nonzero().item()]))
            ent += float(-(p * p.log()).sum())
        assert float(logprob[b]) == pytest.approx(lp, abs=1e-4)
        assert float(entropy[b]) == pytest.approx(ent, abs=1e-4)


def test_given_action_is_scored_not_resampled() -> None:
    agent = _agent()
    obs, masks = _obs(4), _masks(4)
    action, logprob, entropy, value = agent.get_action_and_value(obs, masks)
    again, logprob2, entropy2, value2 = agent.get_action_and_value(obs, masks, action)
    assert torch.equal(again, action)
    torch.testing.assert_close(logprob2, logprob)
    torch.testing.assert_close(entropy2, entropy)
    torch.testing.assert_close(value2, value)


def test_deterministic_takes_the_most_likely_allowed_choice() -> None:
    agent = _agent()
    obs, masks = _obs(4), _masks(4, seed=7)
    with torch.no_grad():
        action, *_ = agent.get_action_and_value(obs, masks, deterministic=True)
        logits = agent.policy_logits(obs)
    type_l, size_l, amount_l = torch.split(logits, ACTION_DIMS, dim=-1)
    rows = torch.arange(4)
    assert torch.equal(action[:, 0], type_l.masked_fill(~masks.type, -1e9).argmax(-1))
    assert torch.equal(action[:, 1], size_l.masked_fill(~masks.size, -1e9).argmax(-1))
    assert torch.equal(action[:, 2], amount_l.masked_fill(~masks.amount[rows, action[:, 0]], -1e9).argmax(-1))


def test_mask_allowing_nothing_is_refused() -> None:
    agent = _agent()
    masks = _masks(2)
    empty = masks.size.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="size"):
        agent.get_action_and_value(_obs(2), ActionMasks(masks.type, empty, masks.amount))


@pytest.mark.parametrize("n_beats", [1, 5, 40])
def test_whole_song_equals_training_windows(n_beats: int) -> None:
    """One pass over the song gives, at every cursor, what the cursor's window gives."""
    agent = _agent().eval()
    song = _song(n_beats, seed=n_beats)
    pad = TINY.window // 2
    cursors = torch.arange(n_beats) + pad
    gen = torch.Generator().manual_seed(1)
    done = torch.rand(n_beats, TINY.history, TINY.n_done_feats, generator=gen)
    ratio = torch.rand(n_beats, generator=gen)
    obs = _windows(song, cursors, done, ratio)
    with torch.no_grad():
        logits, value, tempo, energy, phrase = agent.song_outputs(**song, cursors=cursors, done=done, output_ratio=ratio)
        torch.testing.assert_close(logits, agent.policy_logits(obs), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(value, agent.get_value(obs), atol=1e-5, rtol=1e-5)
        aux = agent.aux_outputs(obs)
    torch.testing.assert_close(energy, aux["energy"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tempo.expand(n_beats), aux["tempo"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(phrase[0, cursors], aux["phrase_boundary"][:, pad], atol=1e-5, rtol=1e-5)


def test_walk_context_reaches_only_the_heads() -> None:
    """The done rows and the output ratio change the policy, not the encoding."""
    agent = _agent()
    obs = _obs(3)
    other = Observation(obs.features, obs.position, obs.padding_mask, obs.summary, 1 - obs.done, obs.output_ratio + 1)
    with torch.no_grad():
        torch.testing.assert_close(agent.encode(obs)[0], agent.encode(other)[0])
        assert not torch.allclose(agent.policy_logits(obs), agent.policy_logits(other))


def test_value_network_is_separate() -> None:
    agent = _agent()
    policy = {id(p) for m in (agent.policy_encoder, agent.policy_mlp, agent.policy_head) for p in m.parameters()}
    value = {id(p) for m in (agent.value_encoder, agent.value_head) for p in m.parameters()}
    assert policy and value and not policy & value
    agent.get_value(_obs(3)).sum().backward()
    assert all(p.grad is None for p in agent.policy_encoder.parameters())
    assert all(p.grad is not None for p in agent.value_encoder.parameters())


def test_gradients_reach_policy_and_value() -> None:
    agent = _agent()
    obs, masks = _obs(4), _masks(4)
    _, logprob, entropy, value = agent.get_action_and_value(obs, masks)
    (logprob.mean() + 0.01 * entropy.mean() + value.square().mean()).backward()
    for module in (agent.policy_encoder, agent.policy_mlp, agent.policy_head, agent.value_encoder):
        for name, p in module.named_parameters():
            assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name


def test_aux_losses_finite_and_trainable() -> None:
    agent = _agent()
    obs = _obs(4)
    batch = AuxBatch(
        obs=obs,
        tempo=agent.tempo_target(torch.tensor([90.0, 120.0, 128.0, 174.0])),
        energy=torch.tensor([0, 1, 2, 1]),
        phrase_boundary=(torch.rand(4, TINY.window) < 0.1).float(),
    )
    losses = agent.aux_losses(batch)
    assert set(losses) == {"aux_tempo", "aux_energy", "aux_phrase"}
    for name, loss in losses.items():
        assert loss.ndim == 0 and bool(torch.isfinite(loss)), name
    sum(losses.values()).backward()
    for head in (agent.tempo_head, agent.energy_head, agent.phrase_head):
        assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) > 0
    assert set(agent.aux_losses(AuxBatch(obs=obs, energy=batch.energy))) == {"aux_energy"}
    torch.testing.assert_close(agent.tempo_bpm(batch.tempo), torch.tensor([90.0, 120, 128, 174]))


def test_phrase_loss_ignores_padded_beats() -> None:
    agent = _agent()
    obs = _obs(4)
    target = torch.zeros(4, TINY.window)
    flipped = target.masked_fill(obs.padding_mask, 1.0)
    a = agent.aux_losses(AuxBatch(obs=obs, phrase_boundary=target))["aux_phrase"]
    b = agent.aux_losses(AuxBatch(obs=obs, phrase_boundary=flipped))["aux_phrase"]
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("batch,window", [(1, 13), (3, 16), (2, 41)])
def test_dynamic_batch_and_window(batch: int, window: int) -> None:
    agent = _agent()
    action, logprob, entropy, value = agent.get_action_and_value(_obs(batch, window))
    assert action.shape == (batch, 3) and action.dtype == torch.int64
    assert logprob.shape == entropy.shape == value.shape == (batch,)


def test_feature_stats_normalise_inputs() -> None:
    agent = _agent()
    obs = _obs(3)
    before = agent.policy_logits(obs)
    agent.set_feature_stats(torch.full((TINY.in_dim,), 3.0), torch.full((TINY.in_dim,), 5.0))
    after = agent.policy_logits(obs)
    assert not torch.allclose(before, after)
    assert "feature_mean" in agent.state_dict()
    with pytest.raises(ValueError):
        agent.set_feature_stats(torch.zeros(3), torch.ones(3))


def test_parameter_counts() -> None:
    default = EditAgent(AgentConfig(backend="torch"))
    tiny = EditAgent(TINY)
    counts = {
        "default total": count_parameters(default),
        "default policy encoder": count_parameters(default.policy_encoder),
        "default value network": count_parameters(default.value_encoder)
        + count_parameters(default.value_head),
        "tiny total": count_parameters(tiny),
    }
    for name, n in counts.items():
        logger.info("%s: %d parameters", name, n)
    print(counts)  # shown with pytest -s: the sizes reviewers ask about
    # hidden 512, 3 blocks: ~3.4M per block (attention 1.05M, global 0.26M,
    # MLP 2.1M) plus the input and summary projections.
    assert 9_500_000 < counts["default policy encoder"] < 11_000_000
    assert counts["default value network"] < counts["default policy encoder"] // 20
    assert counts["tiny total"] < 100_000


def test_agent_config_defaults_and_checks() -> None:
    cfg = AgentConfig()
    assert (cfg.hidden, cfg.heads, cfg.layers, cfg.kernel) == (512, 8, 3, 33)
    assert (cfg.in_dim, cfg.backend) == (109, "auto")
    assert cfg.obs_dim == cfg.in_dim + cfg.n_pos_feats
    assert cfg.context_dim == 3 * cfg.n_done_feats + 1
    assert cfg.cursor_index == cfg.window // 2
    # the smallest window that holds the encoders' receptive field: 3 * 16 each side
    assert cfg.receptive_field == 48 and cfg.window == 97
    assert AgentConfig(layers=2, kernel=9).window == 17
    bad_configs = ({"kernel": 32}, {"hidden": 100, "heads": 8}, {"backend": "cuda"}, {"layers": 0},
                   {"window": 64}, {"n_pos_feats": 6})
    for bad in bad_configs:
        with pytest.raises(ValueError):
            AgentConfig(**bad)


def test_ppo_config_defaults_and_checks() -> None:
    cfg = PPOConfig()
    assert (cfg.lr, cfg.ent_coef, cfg.clip_coef, cfg.target_kl) == (1e-4, 0.02, 0.2, 0.02)
    assert (cfg.batch_size, cfg.grad_accum, cfg.mixed_precision) == (2048, 4, True)
    assert cfg.bc_weight == 0.3
    assert cfg.num_steps * cfg.num_envs == cfg.batch_size
    assert cfg.micro_batch_size * cfg.grad_accum * cfg.num_minibatches == cfg.batch_size
    assert cfg.autocast_dtype("cpu") == torch.bfloat16
    assert cfg.autocast_dtype("cuda") == torch.float16
    assert PPOConfig(mixed_precision=False).autocast_dtype("cpu") is None
    for bad in ({"batch_size": 1000, "num_envs": 3}, {"grad_accum": 3}, {"lr": 0.0}):
        with pytest.raises(ValueError):
            PPOConfig(**bad)


def test_song_outputs_export_with_dynamic_length_and_cursors() -> None:
    """The whole-song graph traces once and runs at other song lengths (whole blocks) and cursor counts."""
    agent = _agent().eval()
    for encoder in (agent.policy_encoder, agent.value_encoder):
        encoder.set_blocked(True)
    names = ("features", "position", "padding_mask", "summary", "cursors", "done", "output_ratio")
    batch, length = torch.export.Dim("batch"), QUERY_BLOCK * torch.export.Dim("blocks", min=2)

    def inputs(n_beats: int, b: int, seed: int) -> tuple[torch.Tensor, ...]:
        song = _song(n_beats, seed, multiple=QUERY_BLOCK)
        gen = torch.Generator().manual_seed(seed)
        cursors = torch.randint(0, n_beats, (b,), generator=gen) + TINY.window // 2
        done = torch.rand(b, TINY.history, TINY.n_done_feats, generator=gen)
        return (*song.values(), cursors, done, torch.rand(b, generator=gen))

    dynamic = {"features": {1: length}, "position": {1: length}, "padding_mask": {1: length}, "summary": None,
               "cursors": {0: batch}, "done": {0: batch}, "output_ratio": {0: batch}}

    class Graph(torch.nn.Module):
        def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return agent.song_outputs(*args)

    program = torch.export.export(Graph(), inputs(20, 3, 0), dynamic_shapes=(tuple(dynamic[n] for n in names),))
    for n_beats, b in ((50, 5), (17, 1), (33, 2), (100, 4)):
        args = inputs(n_beats, b, n_beats)
        with torch.no_grad():
            want = agent.song_outputs(*args)
            got = program.module()(*args)
        for g, x in zip(got, want):
            torch.testing.assert_close(g, x, atol=1e-5, rtol=1e-5)


def test_bf16_autocast_on_cpu() -> None:
    """Mixed precision (DESIGN section 9: bf16 on CPU) keeps the heads in float32."""
    agent = _agent()
    obs, masks = _obs(4), _masks(4)
    with torch.no_grad():
        action, logprob32, _, value32 = agent.get_action_and_value(obs, masks)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, logprob, entropy, value = agent.get_action_and_value(obs, masks, action)
    assert logprob.dtype == entropy.dtype == value.dtype == torch.float32
    torch.testing.assert_close(logprob, logprob32, atol=0.05, rtol=0)
    torch.testing.assert_close(value, value32, atol=0.05, rtol=0)
    (logprob.mean() + value.mean()).backward()
    assert all(
        p.grad is None or bool(torch.isfinite(p.grad).all()) for p in agent.parameters()
    )
