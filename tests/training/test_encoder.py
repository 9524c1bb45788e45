"""HybridNATTENEncoder: window rule, banded attention vs a per-query loop,
padding, gradients, shapes, and natten/torch agreement (when natten is here)."""

from __future__ import annotations

import math

import pytest
import torch

from editorbot.training.models.encoder import (
    BlockedNeighborhood,
    HybridNATTENEncoder,
    NeighborhoodSelfAttention,
    load_na1d,
    masked_mean,
    neighborhood_attention_blocked,
    neighborhood_attention_torch,
    neighborhood_mask,
    window_starts,
)


def _padding(batch: int, length: int) -> torch.Tensor:
    """Row 0: 3 padded beats at the start and 4 at the end; row 1 none; row 2
    the last third padded (each keeps at least one valid beat)."""
    pad = torch.zeros(batch, length, dtype=torch.bool)
    pad[0, : min(3, length - 1)] = True
    if length > 8:
        pad[0, -4:] = True
    if batch > 2:
        pad[2, length - length // 3 :] = True
    return pad


def _loop_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: int, pad: torch.Tensor | None
) -> torch.Tensor:
    """Neighbourhood attention one query at a time, from the rule in words."""
    batch, heads, length, dim = q.shape
    out = torch.zeros_like(q)
    for b in range(batch):
        for i in range(length):
            start = min(max(i - kernel // 2, 0), max(length - kernel, 0))
            keys = [j for j in range(start, min(start + kernel, length))]
            if pad is not None:
                keys = [i] if pad[b, i] else [j for j in keys if not pad[b, j]]
            idx = torch.tensor(keys)
            for h in range(heads):
                scores = (k[b, h, idx] @ q[b, h, i]) / math.sqrt(dim)
                out[b, h, i] = torch.softmax(scores, dim=0) @ v[b, h, idx]
    return out


@pytest.mark.parametrize("kernel", [7, 33])
@pytest.mark.parametrize("length", [1, 5, 33, 40, 100])
def test_window_rule(length: int, kernel: int) -> None:
    starts = window_starts(length, kernel)
    expected = [min(max(i - kernel // 2, 0), max(length - kernel, 0)) for i in range(length)]
    assert starts.tolist() == expected
    mask = neighborhood_mask(length, kernel)
    assert mask.sum(dim=1).tolist() == [min(kernel, length)] * length
    # Each window is contiguous and contains its query.
    assert bool(mask.diagonal().all())


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("kernel", [7, 33])
@pytest.mark.parametrize("length", [5, 33, 40, 100])
def test_banded_attention_matches_loop(length: int, kernel: int, padded: bool) -> None:
    gen = torch.Generator().manual_seed(length * 100 + kernel)
    q, k, v = (torch.randn(3, 2, length, 4, generator=gen) for _ in range(3))
    pad = _padding(3, length) if padded else None
    got = neighborhood_attention_torch(q, k, v, kernel, pad)
    want = _loop_attention(q, k, v, kernel, pad)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("block", [4, 32])
@pytest.mark.parametrize("kernel,length", [(7, 3), (7, 7), (7, 40), (33, 33), (33, 64), (33, 100)])
def test_blocked_attention_matches_banded(length: int, kernel: int, block: int, padded: bool) -> None:
    """The blocked path computes the banded mask's function, padded rows and partial blocks included."""
    gen = torch.Generator().manual_seed(length + kernel)
    q, k, v = (torch.randn(3, 2, length, 4, generator=gen) for _ in range(3))
    pad = _padding(3, length) if padded else None
    plan = BlockedNeighborhood.build(length, kernel, pad, block=block)
    assert plan.bias.shape == (3 if padded else 1, 1, -(-length // block), block, block + kernel - 1)
    got = neighborhood_attention_blocked(q, k, v, plan)
    torch.testing.assert_close(got, neighborhood_attention_torch(q, k, v, kernel, pad), atol=1e-5, rtol=1e-5)


def test_summary_replaces_pooling_and_keeps_encoding_local() -> None:
    """With a summary vector, a beat's encoding depends only on its receptive field."""
    torch.manual_seed(0)
    enc = HybridNATTENEncoder(6, hidden=16, heads=2, layers=2, kernel=5, backend="torch", summary_dim=3).eval()
    x, summary = torch.randn(1, 30, 6), torch.randn(1, 3)
    far = x.clone()
    far[0, 20:] += 5.0  # beats 20.. are more than 2 * (5 // 2) = 4 beats from beat 15
    with torch.no_grad():
        h, pooled = enc(x, None, summary)
        h_far, pooled_far = enc(far, None, summary)
    torch.testing.assert_close(h[0, :16], h_far[0, :16])
    assert not torch.allclose(h[0, 16:], h_far[0, 16:])
    torch.testing.assert_close(pooled, pooled_far)
    with pytest.raises(ValueError, match="summary"):
        enc(x)


def test_masked_mean_ignores_padding() -> None:
    x = torch.arange(12.0).view(2, 3, 2)
    pad = torch.tensor([[False, True, False], [True, True, False]])
    want = torch.stack([(x[0, 0] + x[0, 2]) / 2, x[1, 2]])
    torch.testing.assert_close(masked_mean(x, pad), want)
    torch.testing.assert_close(masked_mean(x, None), x.mean(dim=1))


def test_padding_cannot_leak() -> None:
    torch.manual_seed(0)
    enc = HybridNATTENEncoder(6, hidden=16, heads=2, layers=2, kernel=7, backend="torch").eval()
    x = torch.randn(3, 20, 6)
    pad = _padding(3, 20)
    h, pooled = enc(x, pad)
    noisy = torch.where(pad[..., None], torch.randn_like(x) * 100, x)
    h2, pooled2 = enc(noisy, pad)
    torch.testing.assert_close(h, h2)
    torch.testing.assert_close(pooled, pooled2)
    assert float(h.detach()[pad].abs().max()) == 0.0
    # The pooled summary is the mean over valid positions only.
    valid = (~pad).float()[..., None]
    torch.testing.assert_close(pooled, (h * valid).sum(1) / valid.sum(1))


def test_gradients_flow_torch_backend() -> None:
    torch.manual_seed(0)
    enc = HybridNATTENEncoder(6, hidden=16, heads=2, layers=2, kernel=7, backend="torch")
    x = torch.randn(2, 12, 6, requires_grad=True)
    h, pooled = enc(x, _padding(2, 12))
    (h.square().mean() + pooled.sum()).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    for name, p in enc.named_parameters():
        assert p.grad is not None, name
        assert bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("batch,length", [(1, 1), (1, 3), (2, 40), (5, 100)])
def test_dynamic_shapes(batch: int, length: int) -> None:
    torch.manual_seed(0)
    enc = HybridNATTENEncoder(6, hidden=16, heads=2, layers=1, kernel=7, backend="torch")
    h, pooled = enc(torch.randn(batch, length, 6))
    assert h.shape == (batch, length, 16)
    assert pooled.shape == (batch, 16)
    assert bool(torch.isfinite(h).all())


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        NeighborhoodSelfAttention(16, 2, kernel=8)
    with pytest.raises(ValueError):
        NeighborhoodSelfAttention(15, 2, kernel=7)
    with pytest.raises(ValueError):
        NeighborhoodSelfAttention(16, 2, kernel=7, backend="flash")


@pytest.mark.skipif(load_na1d() is not None, reason="natten is installed")
def test_without_natten() -> None:
    with pytest.raises(ImportError, match="natten"):
        NeighborhoodSelfAttention(16, 2, kernel=7, backend="natten")
    attn = NeighborhoodSelfAttention(16, 2, kernel=7, backend="auto")
    assert not attn.uses_natten(torch.zeros(1, 4, 16))


@pytest.mark.skipif(load_na1d() is None, reason="natten is not installed")
@pytest.mark.parametrize("length", [40, 100])
def test_backends_agree(length: int) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    ref = HybridNATTENEncoder(12, hidden=64, heads=4, layers=2, kernel=33, backend="torch")
    nat = HybridNATTENEncoder(12, hidden=64, heads=4, layers=2, kernel=33, backend="natten")
    nat.load_state_dict(ref.state_dict())
    ref, nat = ref.to(device).eval(), nat.to(device).eval()
    assert nat.blocks[0].attn.uses_natten(torch.zeros(1, device=device))
    x = torch.randn(3, length, 12, device=device)
    pad = _padding(3, length).to(device)
    with torch.no_grad():
        for mask in (None, pad):
            h_ref, p_ref = ref(x, mask)
            h_nat, p_nat = nat(x, mask)
            torch.testing.assert_close(h_nat, h_ref, atol=1e-4, rtol=0)
            torch.testing.assert_close(p_nat, p_ref, atol=1e-4, rtol=0)
