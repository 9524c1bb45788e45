"""HybridNATTENEncoder: 1-D neighbourhood attention plus a global pooled summary.

Shapes: ``B`` batch, ``L`` sequence length (beats), ``C`` channels, ``H``
attention heads, ``D = C // H`` head width.

Neighbourhood rule (NATTEN's, non-dilated, odd ``kernel``): query ``i``
attends to keys ``[s_i, s_i + kernel)`` with
``s_i = clamp(i - kernel // 2, 0, L - kernel)``, i.e. always exactly
``kernel`` keys, the window sliding inwards at the edges; when
``L < kernel`` every query attends to all ``L`` keys. Padded positions (a
key padding mask, True = padding, as in ``nn.MultiheadAttention``) are never
attended to and are left out of the pooled summary; the encoder's output is
zero at padded positions, so what a caller puts there cannot leak into the
valid ones. Windows are placed on the full (padded) length and padded keys
are then dropped from them, so a query next to padding sees fewer than
``kernel`` keys; both backends do exactly this.

Two interchangeable backends compute the same function:

- ``"torch"``: on short sequences (training windows) a banded boolean mask
  built from the rule above, fed to ``F.scaled_dot_product_attention``; on
  long ones (a song) blocks of ``QUERY_BLOCK`` queries, each one matrix
  product with the keys its windows span and an additive mask
  (``BlockedNeighborhood``, built once per forward and shared by the layers).
  No Python control flow on tensor values and no data-dependent shapes, so
  it works for any batch and length, on any device, with autograd, and
  traces with ``torch.onnx.export(dynamo=True)`` with dynamic batch and
  sequence axes (the blocked path: lengths that are a multiple of
  ``QUERY_BLOCK``).
- ``"natten"``: ``natten.functional.na1d`` (heads-last layout
  ``(B, L, H, D)``). natten has no key padding mask; padding is applied as an
  additive key bias carried by one extra head channel (query 1, key -1e4 at
  padded positions, value 0), which is exact up to ``exp(-1e4) == 0``.
  natten is optional and has no backward pass on CPU.

``"auto"`` uses natten for CUDA tensors when it is installed, the pure-torch
backend otherwise (and always while tracing for export).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

logger = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("auto", "torch", "natten")

# Key bias for padded positions in the natten path: far below any real logit,
# and finite in fp16 / bf16.
_NATTEN_PAD_BIAS = -1.0e4
#: Sequences longer than this many kernels use the blocked pure-torch path
#: (a song); shorter ones (training windows) the banded mask.
BLOCKED_FROM = 4
#: Queries per block on the blocked path; an exported graph takes song
#: lengths that are a multiple of it (``export.onnx``).
QUERY_BLOCK = 32
# Extra head channels used to carry that bias; a multiple of 8 keeps the head
# width one that natten's fused kernels accept.
_NATTEN_EXTRA_CHANNELS = 8


def load_na1d() -> Callable[..., Tensor] | None:
    """natten's 1-D neighbourhood attention function, or None if unavailable.

    ``natten.functional.na1d(query, key, value, kernel_size, ..., scale=...)``
    takes and returns heads-last tensors ``(B, L, H, D)`` (natten >= 0.17;
    newer releases also export it as ``natten.na1d``).
    """
    try:
        from natten.functional import na1d
    except (ImportError, OSError) as err:
        logger.debug("natten not available: %s", err)
        return None
    return na1d


def window_starts(length: int, kernel: int, *, device: torch.device | None = None) -> Tensor:
    """First key index of each query's neighbourhood.

    Parameters
    ----------
    length:
        Sequence length ``L`` (>= 1); may be a symbolic size while tracing.
    kernel:
        Neighbourhood size (keys per query).

    Returns
    -------
    ``(L,)`` int64: ``clamp(i - kernel // 2, 0, max(L - kernel, 0))``.
    """
    idx = torch.arange(length, device=device)
    upper = torch.clamp(idx.max() + 1 - kernel, min=0)  # max(L - kernel, 0) as a tensor
    return torch.minimum(torch.clamp(idx - kernel // 2, min=0), upper)


def neighborhood_mask(length: int, kernel: int, *, device: torch.device | None = None) -> Tensor:
    """Banded neighbourhood mask.

    Returns
    -------
    ``(L, L)`` bool, True where query ``i`` (row) may attend to key ``j``
    (column): ``s_i <= j < s_i + kernel``.
    """
    starts = window_starts(length, kernel, device=device)[:, None]
    keys = torch.arange(length, device=device)[None, :]
    return (keys >= starts) & (keys < starts + kernel)


def attention_mask(
    length: int,
    kernel: int,
    padding_mask: Tensor | None = None,
    *,
    device: torch.device | None = None,
) -> Tensor:
    """Boolean mask for ``F.scaled_dot_product_attention``.

    Parameters
    ----------
    length, kernel:
        As in ``neighborhood_mask``.
    padding_mask:
        ``(B, L)`` bool, True at padded positions, or None.

    Returns
    -------
    ``(B, 1, L, L)`` bool (``(1, 1, L, L)`` without padding), True where a
    query may attend to a key. A padded query attends to itself only, so no
    row is empty (an empty row would give NaN); padded outputs are discarded.
    """
    band = neighborhood_mask(length, kernel, device=device)[None, None]
    if padding_mask is None:
        return band
    valid_keys = ~padding_mask[:, None, None, :]
    valid_queries = ~padding_mask[:, None, :, None]
    eye = torch.eye(length, dtype=torch.bool, device=device)[None, None]
    return (band & valid_keys & valid_queries) | eye


def neighborhood_attention_torch(
    q: Tensor, k: Tensor, v: Tensor, kernel: int, padding_mask: Tensor | None = None
) -> Tensor:
    """Neighbourhood attention with a banded mask (pure torch).

    Parameters
    ----------
    q, k, v:
        ``(B, H, L, D)``.
    kernel:
        Neighbourhood size.
    padding_mask:
        ``(B, L)`` bool, True at padded positions, or None.

    Returns
    -------
    ``(B, H, L, D)``, scaled by ``D ** -0.5`` as usual.
    """
    mask = attention_mask(q.shape[2], kernel, padding_mask, device=q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@dataclass(frozen=True)
class BlockedNeighborhood:
    """Where each block of queries reads its keys, built once per batch and shared by every layer.

    Queries are taken ``block`` at a time (the sequence is padded at the end
    to ``nb`` whole blocks). The windows of a block's queries all lie in
    ``span = block + kernel - 1`` consecutive keys starting at its first
    query's window, since window starts rise by at most one per query.

    Attributes
    ----------
    key_index:
        ``(nb * span,)`` int64: rows ``[b * span, (b + 1) * span)`` are the
        keys of block ``b`` (clamped to ``L - 1``; clamped repeats are masked).
    bias:
        ``(B, 1, nb, block, span)`` float32 added to the scores: 0 where the
        query may attend to the key, ``-inf`` elsewhere (the rule of
        ``attention_mask``: valid queries see valid keys in their window, a
        padded query sees itself only).
    """

    key_index: Tensor
    bias: Tensor

    @staticmethod
    def build(
        length: int, kernel: int, padding_mask: Tensor | None = None, *, block: int = QUERY_BLOCK,
        device: torch.device | None = None,
    ) -> BlockedNeighborhood:
        """The plan for sequences of ``length`` with ``padding_mask (B, L)`` bool (True = padding) or None."""
        pad = (-length) % block
        starts = window_starts(length, kernel, device=device)  # (L,)
        nb = (length + pad) // block
        queries = torch.arange(nb * block, device=device).view(nb, block)
        span = block + kernel - 1
        keys = starts.index_select(0, queries[:, 0])[:, None] + torch.arange(span, device=device)  # (nb, span)
        key_index = keys.clamp(max=length - 1).reshape(-1)
        offset = keys[:, None, :] - F.pad(starts, (0, pad)).view(nb, block)[:, :, None]  # (nb, block, span)
        allowed = ((offset >= 0) & (offset < kernel) & (keys < length)[:, None, :])[None]
        if padding_mask is not None:
            key_pad = padding_mask.index_select(1, key_index).view(-1, nb, 1, span)
            query_pad = F.pad(padding_mask, (0, pad), value=True).view(-1, nb, block, 1)
            allowed = allowed & ~key_pad & ~query_pad
        allowed = allowed | (keys[:, None, :] == queries[:, :, None])[None]  # (B, nb, block, span)
        bias = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, float("-inf"))
        return BlockedNeighborhood(key_index, bias[:, None])


def neighborhood_attention_blocked(q: Tensor, k: Tensor, v: Tensor, plan: BlockedNeighborhood) -> Tensor:
    """The same function as ``neighborhood_attention_torch``, in ``O(L * (block + kernel))``.

    Each block of queries is one small matrix product with its span of keys
    (``plan``), instead of masking an ``L x L`` score matrix; this pays off on
    long sequences (a whole song).

    Parameters
    ----------
    q, k, v:
        ``(B, H, L, D)``.
    plan:
        ``BlockedNeighborhood.build(L, kernel, padding_mask)``.

    Returns
    -------
    ``(B, H, L, D)``.
    """
    batch, heads, length, dim = q.shape
    _, _, nb, block, span = plan.bias.shape
    qb = F.pad(q, (0, 0, 0, nb * block - length)).view(batch, heads, nb, block, dim)
    kb = k.index_select(2, plan.key_index).view(batch, heads, nb, span, dim)
    vb = v.index_select(2, plan.key_index).view(batch, heads, nb, span, dim)
    scores = torch.matmul(qb, kb.transpose(-1, -2)) * dim**-0.5 + plan.bias.to(q.dtype)  # (B, H, nb, block, span)
    out = torch.matmul(scores.softmax(dim=-1), vb)  # (B, H, nb, block, D)
    return out.reshape(batch, heads, nb * block, dim)[:, :, :length]


def neighborhood_attention_natten(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    kernel: int,
    padding_mask: Tensor | None = None,
    *,
    na1d: Callable[..., Tensor] | None = None,
) -> Tensor:
    """Neighbourhood attention through ``natten.functional.na1d``.

    Same arguments, shapes and result as ``neighborhood_attention_torch`` at
    valid positions. When ``L <= kernel`` the neighbourhood is the whole
    sequence, natten is not needed (it also requires ``kernel_size <= L``)
    and the pure-torch path runs.
    """
    length = q.shape[2]
    if length <= kernel:
        return neighborhood_attention_torch(q, k, v, kernel, padding_mask)
    na1d = na1d or load_na1d()
    if na1d is None:
        raise ImportError(
            "natten is not installed: pip install natten --no-build-isolation "
            "(after torch), or use backend='torch'"
        )
    head_dim = q.shape[-1]
    # natten takes heads-last (B, L, H, D).
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))
    qh = qh * head_dim**-0.5
    if padding_mask is not None:
        extra_shape = (*qh.shape[:-1], _NATTEN_EXTRA_CHANNELS)
        q_extra = qh.new_zeros(extra_shape)
        q_extra[..., 0] = 1.0
        k_extra = kh.new_zeros(extra_shape)
        k_extra[..., 0] = padding_mask.to(kh.dtype)[:, :, None] * _NATTEN_PAD_BIAS
        qh = torch.cat([qh, q_extra], dim=-1)
        kh = torch.cat([kh, k_extra], dim=-1)
        vh = torch.cat([vh, vh.new_zeros(extra_shape)], dim=-1)
    out = na1d(
        query=qh.contiguous(),
        key=kh.contiguous(),
        value=vh.contiguous(),
        kernel_size=kernel,
        scale=1.0,
    )
    return out[..., :head_dim].transpose(1, 2)


def masked_mean(x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
    """Mean over valid positions.

    Parameters
    ----------
    x:
        ``(B, L, C)``.
    padding_mask:
        ``(B, L)`` bool, True at padded positions, or None (all valid).

    Returns
    -------
    ``(B, C)``; zeros for a sequence with no valid position.
    """
    if padding_mask is None:
        return x.mean(dim=1)
    valid = (~padding_mask).to(x.dtype)[..., None]
    return (x * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)


class NeighborhoodSelfAttention(nn.Module):
    """Multi-head 1-D neighbourhood self-attention with two backends.

    Parameters
    ----------
    dim:
        Channels ``C``.
    heads:
        Attention heads (``dim % heads == 0``).
    kernel:
        Neighbourhood size (odd).
    backend:
        ``"auto"``, ``"torch"`` or ``"natten"``.
    """

    def __init__(self, dim: int, heads: int, kernel: int, backend: str = "auto") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be a positive odd number, got {kernel}")
        self.heads = heads
        self.kernel = kernel
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self._na1d: Callable[..., Tensor] | None = None
        self.backend = "torch"
        self.set_backend(backend, log=False)
        #: Pure-torch path: blocks of queries (True), banded mask (False) or
        #: choose by length (None: blocks when ``L > BLOCKED_FROM * kernel``).
        self.blocked: bool | None = None

    def set_backend(self, backend: str, *, log: bool = True) -> None:
        """Choose the backend (e.g. ``"torch"`` before ONNX export)."""
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        na1d = load_na1d() if backend in ("auto", "natten") else None
        if backend == "natten" and na1d is None:
            raise ImportError(
                "backend='natten' but natten is not installed: "
                "pip install natten --no-build-isolation (after torch)"
            )
        self.backend, self._na1d = backend, na1d
        if log:
            logger.info("neighbourhood attention: %s", describe_backend(backend, na1d is not None))

    def uses_natten(self, x: Tensor) -> bool:
        """Whether a forward pass on ``x`` runs natten (else the banded mask)."""
        if self._na1d is None or torch.compiler.is_compiling():
            return False
        return self.backend == "natten" or x.is_cuda

    def plan(self, x: Tensor, padding_mask: Tensor | None = None) -> BlockedNeighborhood | None:
        """The blocked path's plan when a forward pass on ``x (B, L, C)`` takes that path, else None."""
        length = x.shape[1]
        if self.uses_natten(x) or not (self.blocked or (self.blocked is None and length > BLOCKED_FROM * self.kernel)):
            return None
        return BlockedNeighborhood.build(length, self.kernel, padding_mask, device=x.device)

    def forward(
        self, x: Tensor, padding_mask: Tensor | None = None, plan: BlockedNeighborhood | None = None
    ) -> Tensor:
        """``x (B, L, C)``, ``padding_mask (B, L)`` bool -> ``(B, L, C)``.

        ``plan``: ``self.plan(x, padding_mask)``, when the caller shares one
        between layers (it is built here otherwise).
        """
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, D)
        plan = plan or self.plan(x, padding_mask)
        if self.uses_natten(x):
            y = neighborhood_attention_natten(
                q, k, v, self.kernel, padding_mask, na1d=self._na1d
            )
        elif plan is not None:
            y = neighborhood_attention_blocked(q, k, v, plan)
        else:
            y = neighborhood_attention_torch(q, k, v, self.kernel, padding_mask)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


def describe_backend(backend: str, natten_installed: bool) -> str:
    """One log line saying which implementation ``backend`` will run."""
    if backend == "torch":
        return "pure torch (banded mask)"
    if backend == "natten":
        return "natten (na1d)"
    if natten_installed:
        return "auto: natten on CUDA tensors, pure torch (banded mask) elsewhere"
    return "auto: pure torch (banded mask); natten is not installed"


class HybridBlock(nn.Module):
    """Pre-norm block: neighbourhood attention, global summary, feed-forward.

    ``x = x + NA(LN(x))``; ``x = x + W_g · g`` where ``g`` is the global
    summary: the given one (``summary``, e.g. the whole song's, the same
    for every window of it) or else ``masked_mean(LN(x))`` over the
    sequence; projected and *added* to every position, so the width stays
    ``dim``; ``x = x + MLP(LN(x))``; padded positions are then zeroed.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        kernel: int,
        *,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = NeighborhoodSelfAttention(dim, heads, kernel, backend)
        self.norm_global = nn.LayerNorm(dim)
        self.global_proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * dim, dim),
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        summary: Tensor | None = None,
        plan: BlockedNeighborhood | None = None,
    ) -> Tensor:
        """``x (B, L, C)``, ``padding_mask (B, L)`` bool, ``summary (B, C)`` or None -> ``(B, L, C)``.

        ``plan``: the attention's shared ``BlockedNeighborhood``, if any.
        """
        x = x + self.drop(self.attn(self.norm_attn(x), padding_mask, plan))
        if summary is None:
            summary = masked_mean(self.norm_global(x), padding_mask)  # (B, C)
        else:
            summary = self.norm_global(summary)
        x = x + self.global_proj(summary)[:, None, :]
        x = x + self.drop(self.mlp(self.norm_mlp(x)))
        if padding_mask is not None:
            # a product, not masked_fill: padded rows are finite here (the
            # encoder zeroed them on entry) and onnxruntime's Where is slow
            x = x * (~padding_mask)[..., None].to(x.dtype)
        return x


class HybridNATTENEncoder(nn.Module):
    """Per-beat encoder: input projection, ``layers`` hybrid blocks, final norm.

    The encoder has no positional encoding of its own: neighbourhood
    attention is local by construction and callers put position columns in
    the input (the agent's observation has them).

    Parameters
    ----------
    in_dim:
        Input columns per position.
    hidden:
        Width ``C``.
    heads:
        Attention heads.
    layers:
        Number of ``HybridBlock``.
    kernel:
        Neighbourhood size (odd).
    backend:
        ``"auto"``, ``"torch"`` or ``"natten"`` (see the module docstring).
    mlp_ratio, dropout:
        Feed-forward width multiple and dropout of each block.
    summary_dim:
        Columns of a per-sequence summary vector given to ``forward`` (e.g.
        a song's mean features); 0: the blocks pool the sequence instead.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int = 512,
        heads: int = 8,
        layers: int = 3,
        kernel: int = 33,
        backend: str = "auto",
        *,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        summary_dim: int = 0,
    ) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.kernel = in_dim, hidden, kernel
        self.input_proj = nn.Linear(in_dim, hidden)
        self.summary_proj = nn.Linear(summary_dim, hidden) if summary_dim else None
        self.blocks = nn.ModuleList(
            HybridBlock(
                hidden, heads, kernel, mlp_ratio=mlp_ratio, dropout=dropout, backend=backend
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(hidden)
        self.backend = backend
        installed = bool(self.blocks) and self._attention(0)._na1d is not None
        logger.info(
            "HybridNATTENEncoder(hidden=%d, heads=%d, layers=%d, kernel=%d): %s",
            hidden,
            heads,
            layers,
            kernel,
            describe_backend(backend, installed),
        )

    def _attention(self, k: int) -> NeighborhoodSelfAttention:
        """Block ``k``'s attention (``nn.ModuleList`` items are typed as plain modules)."""
        return cast(HybridBlock, self.blocks[k]).attn

    def set_backend(self, backend: str) -> None:
        """Switch every block's attention backend (e.g. to "torch" for export)."""
        for k in range(len(self.blocks)):
            self._attention(k).set_backend(backend, log=False)
        self.backend = backend
        installed = bool(self.blocks) and self._attention(0)._na1d is not None
        logger.info("HybridNATTENEncoder backend: %s", describe_backend(backend, installed))

    def set_blocked(self, blocked: bool | None) -> None:
        """Pure-torch attention path of every block (``NeighborhoodSelfAttention.blocked``)."""
        for k in range(len(self.blocks)):
            self._attention(k).blocked = blocked

    def plan(self, x: Tensor, padding_mask: Tensor | None = None) -> BlockedNeighborhood | None:
        """The blocks' shared attention plan for ``x (B, L, ·)``, or None off the blocked path."""
        return self._attention(0).plan(x, padding_mask) if self.blocks else None

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        summary: Tensor | None = None,
        plan: BlockedNeighborhood | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Encode a batch of sequences.

        Parameters
        ----------
        x:
            ``(B, L, in_dim)``.
        padding_mask:
            ``(B, L)`` bool, True at padded positions, or None.
        summary:
            ``(B, summary_dim)`` per-sequence summary (required when the
            encoder was built with ``summary_dim``; ignored otherwise).
        plan:
            ``self.plan(x, padding_mask)`` when the caller shares one with
            another encoder of the same kernel (built here otherwise).

        Returns
        -------
        ``(h, pooled)``: ``h (B, L, hidden)`` per position (zero where
        padded) and ``pooled (B, hidden)``: the projected summary when one
        is given, else the mean of ``h`` over valid positions. With a
        summary, position ``i`` of ``h`` depends only on the inputs within
        ``layers * (kernel // 2)`` positions of it (and on the summary).
        """
        h = self.input_proj(x)
        if padding_mask is not None:
            h = h.masked_fill(padding_mask[..., None], 0.0)
        g = None
        if self.summary_proj is not None:
            if summary is None:
                raise ValueError("this encoder reads a summary vector; pass summary=")
            g = self.summary_proj(summary)
        plan = plan or self.plan(x, padding_mask)  # one for every layer
        for block in self.blocks:
            h = block(h, padding_mask, g, plan)
        h = self.norm(h)
        if padding_mask is not None:
            h = h * (~padding_mask)[..., None].to(h.dtype)
        return h, (self.norm(g) if g is not None else masked_mean(h, padding_mask))
