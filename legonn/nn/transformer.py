"""Pre-LN transformer blocks (paper Eq. 10-11, 13-16) with key/value caching for decoding.

Every block normalises before its residual branch; every stack ends in a final LayerNorm.
Masks follow one convention: ``*_padding`` tensors are (B, T) bool with True at padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from legonn.nn.dropout import Dropout, dropout

Cache = dict[str, torch.Tensor]


class KVCache:
    """Self-attention keys/values of the steps decoded so far, for incremental decoding.

    They live in (rows, heads, capacity, d_head) buffers that each step writes into in place:
    concatenating instead copies the whole prefix into a fresh tensor at every step, and at
    decoding sizes those allocations (over glibc's mmap threshold) cost more than the attention.
    ``reorder`` copies the filled prefix into a second buffer pair and swaps, so beam search
    allocates nothing per step either. Without ``capacity`` the buffers double when full.
    """

    def __init__(self, capacity: int = 0):
        self.capacity, self.length, self.rows = capacity, 0, 0
        self._buffers: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self._spare: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    @property
    def k(self) -> torch.Tensor:
        return self._buffers[0][: self.rows, :, : self.length]

    @property
    def v(self) -> torch.Tensor:
        return self._buffers[1][: self.rows, :, : self.length]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the newest steps' k, v (rows, heads, t, d_head); returns all keys and values so far."""
        end = self.length + k.size(2)
        if self._buffers is None or end > self._buffers[0].size(2):
            self._grow(k, max(end, self.capacity, 2 * self.length))
        self.rows = k.size(0)
        for buffer, new in zip(self._buffers, (k, v)):
            buffer[: self.rows, :, self.length : end] = new
        self.length = end
        return self.k, self.v

    def _grow(self, like: torch.Tensor, capacity: int) -> None:
        shape = (max(like.size(0), self.rows), like.size(1), capacity, like.size(3))
        old, self._spare = self._buffers, None
        self._buffers = (like.new_empty(shape), like.new_empty(shape))
        if old is not None:
            for buffer, previous in zip(self._buffers, old):
                buffer[: self.rows, :, : self.length] = previous[: self.rows, :, : self.length]

    def reorder(self, order: torch.Tensor) -> None:
        """Keep rows ``order`` (any rows, repeats allowed, at most as many as the buffers hold)."""
        if self._buffers is None:
            return
        rows = order.numel()
        if self._spare is None or rows > self._spare[0].size(0):
            self._spare = tuple(b.new_empty((rows,) + b.shape[1:]) for b in self._buffers)
        for buffer, spare in zip(self._buffers, self._spare):
            torch.index_select(buffer[: self.rows, :, : self.length], 0, order, out=spare[:rows, :, : self.length])
        self._buffers, self._spare = self._spare, self._buffers
        self.rows = rows


@dataclass
class Route:
    """How one forward pass runs a stack: ``layers`` in place of its own (an assembly of modular
    layers, legonn/nn/modular.py) and, when ``states`` is a list, every layer's output appended to
    it at the real positions only, as (N, D) rows in batch order, so that two passes over one batch
    line up row for row whatever layers they ran and whether or not the stack packed them."""

    layers: Optional[Sequence[nn.Module]] = None
    states: Optional[list[torch.Tensor]] = None

    def record(self, x: torch.Tensor, padding: Optional[torch.Tensor], packed: bool) -> None:
        if self.states is not None:
            self.states.append(x if packed else x.flatten(0, 1) if padding is None else x[~padding])


class Packing:
    """The real positions of a padded (B, T) batch, so that token-wise work (projections, FFNs,
    layer norms, dropout) runs on (N, D) real tokens and only attention sees the padded layout.
    At the bench's MT shapes a third of the padded positions are padding."""

    def __init__(self, padding: torch.Tensor):
        self.b, self.t = padding.shape
        self.index = (~padding).flatten().nonzero().squeeze(1)

    @classmethod
    def of(cls, padding: Optional[torch.Tensor], device: torch.device) -> Optional["Packing"]:
        """A packing when it pays: on CPU, with padding present. On GPUs these model sizes are
        bound by kernel launches, not arithmetic, and finding the real positions waits for the
        device, so there the padded layout stays."""
        if padding is None or device.type != "cpu" or not bool(padding.any()):
            return None
        return cls(padding)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...) real positions, in batch order."""
        return x.flatten(0, 1).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, T, ...), zeros at padding."""
        out = x.new_zeros((self.b * self.t,) + x.shape[1:])
        return out.index_copy(0, self.index, x).view(self.b, self.t, *x.shape[1:])


class MultiHeadAttention(nn.Module):
    """Multi-head attention through ``scaled_dot_product_attention``.

    Self-attention projects q, k, v with one fused matrix; cross-attention projects k, v of the
    memory once, which the decoding cache keeps for every later step.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.0, cross: bool = False):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        self.heads, self.d_head, self.cross, self.dropout = heads, d_model // heads, cross, dropout
        if cross:
            self.q_proj = nn.Linear(d_model, d_model)
            self.kv_proj = nn.Linear(d_model, 2 * d_model)
        else:
            self.qkv_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.d_head).transpose(1, 2)

    def project_memory(self, memory: torch.Tensor, packing: Optional[Packing] = None) -> tuple[torch.Tensor, torch.Tensor]:
        kv = self.kv_proj(memory)
        k, v = (packing.unpack(kv) if packing is not None else kv).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(
        self,
        x: torch.Tensor,
        memory: Optional[torch.Tensor] = None,
        key_padding: Optional[torch.Tensor] = None,
        causal: bool = False,
        cache: Union[Cache, KVCache, None] = None,
        bias: Optional[torch.Tensor] = None,
        packing: Optional[Packing] = None,
        memory_packing: Optional[Packing] = None,
    ) -> torch.Tensor:
        """x: (B, Tq, D), or (N, D) real positions with ``packing`` (and the memory likewise with
        ``memory_packing``); the output has x's layout. With ``cache`` (a ``KVCache`` for
        self-attention, a dict for the memory's projections), x holds only the newest step(s),
        and a memory of B / g rows serves g consecutive rows of x each (beam search's beams).
        ``bias`` (B, 1, Tq, Tk) is added to the attention logits (e.g. an alignment prior)."""
        unpack = packing.unpack if packing is not None else (lambda t: t)
        if self.cross:
            q = self._split(unpack(self.q_proj(x)))
            if cache is not None and "k" in cache:
                k, v = cache["k"], cache["v"]
            else:
                k, v = self.project_memory(memory, memory_packing)
                if cache is not None:  # contiguous once, rather than copied by every step's matmul
                    k, v = cache["k"], cache["v"] = k.contiguous(), v.contiguous()
        else:
            q, k, v = (self._split(t) for t in unpack(self.qkv_proj(x)).chunk(3, dim=-1))
            if cache is not None:
                k, v = cache.append(k, v)
        # Incremental beam search keeps one memory row per sentence and `group` beams' queries
        # for it: the beams become one sentence's query positions (one product instead of `group`).
        rows = q.size(0)
        group = rows // k.size(0) if rows > k.size(0) else 1
        if group > 1:
            q = q.reshape(k.size(0), group, self.heads, self.d_head).transpose(1, 2)
        blocked = None  # True where a query may not look
        if key_padding is not None:
            blocked = key_padding[:, None, None, :]
        if causal and q.size(2) > 1:
            tq, tk = q.size(2), k.size(2)
            future = torch.ones(tq, tk, dtype=torch.bool, device=x.device).triu(tk - tq + 1)
            blocked = future if blocked is None else blocked | future
        out = attention(q, k, v, blocked, bias, self.dropout if self.training else 0.0)
        tq = out.size(2) // group
        out = out.transpose(1, 2).reshape(rows, tq, self.heads * self.d_head)
        return self.out_proj(packing.pack(out) if packing is not None else out)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: Optional[torch.Tensor],
    bias: Optional[torch.Tensor] = None, dropout_p: float = 0.0,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v over (B, H, T, d_head), ``blocked`` (broadcast to
    (B, H, Tq, Tk)) True where a query may not look.

    On CUDA, ``scaled_dot_product_attention`` picks a fused kernel. On CPU its flash kernel's
    backward pass is slow for the short sequences of speech and text batches (in bf16 about 5x
    the plain matrix products at 64 x 30 tokens, bench/README.md), so the scores are computed
    explicitly there; a fully blocked row averages its values instead of turning NaN.
    """
    if q.device.type != "cpu":
        mask = None if blocked is None else ~blocked
        if bias is not None:
            mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    scores = torch.matmul(q, k.transpose(-2, -1)).mul_(q.size(-1) ** -0.5)
    if bias is not None:
        scores = scores + bias
    if blocked is not None:
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    probs = dropout(torch.softmax(scores, dim=-1), dropout_p)
    return torch.matmul(probs.to(v.dtype), v)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    """x = x + MHA(LN x); x = x + FFN(LN x)   (Eq. 10-11)."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float = 0.1, attention_dropout: float = 0.0):
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, padding: Optional[torch.Tensor], packing: Optional[Packing] = None) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.self_norm(x), key_padding=padding, packing=packing))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class CrossAttentionLayer(nn.Module):
    """Self-attention, cross-attention to a memory, FFN (Eq. 13-16; the decoder's layer when causal)."""

    def __init__(self, d_model: int, heads: int, d_ff: int, dropout: float = 0.1, attention_dropout: float = 0.0):
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, heads, attention_dropout)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, heads, attention_dropout, cross=True)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, dropout)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        padding: Optional[torch.Tensor],
        memory: torch.Tensor,
        memory_padding: Optional[torch.Tensor],
        causal: bool = False,
        cache: Optional[dict] = None,
        memory_bias: Optional[torch.Tensor] = None,
        packing: Optional[Packing] = None,
        memory_packing: Optional[Packing] = None,
    ) -> torch.Tensor:
        """``cache``: one entry of ``TransformerCrossStack.new_cache``."""
        self_cache = cross_cache = None
        if cache is not None:
            self_cache, cross_cache = cache["self"], cache["cross"]
        x = x + self.dropout(
            self.self_attn(self.self_norm(x), key_padding=padding, causal=causal, cache=self_cache, packing=packing)
        )
        x = x + self.dropout(
            self.cross_attn(self.cross_norm(x), memory=memory, key_padding=memory_padding, cache=cross_cache,
                            bias=memory_bias, packing=packing, memory_packing=memory_packing)
        )
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class TransformerEncoder(nn.Module):
    """A stack of pre-LN self-attention blocks and a final LayerNorm."""

    def __init__(self, d_model: int, heads: int, d_ff: int, layers: int, dropout: float = 0.1, attention_dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, heads, d_ff, dropout, attention_dropout) for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, padding: Optional[torch.Tensor], route: Optional[Route] = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); padded positions come out as zeros when packed."""
        packing = Packing.of(padding, x.device)
        if packing is not None:
            x = packing.pack(x)
        for layer in self.layers if route is None or route.layers is None else route.layers:
            x = layer(x, padding, packing)
            if route is not None:
                route.record(x, padding, packing is not None)
        x = self.final_norm(x)
        return packing.unpack(x) if packing is not None else x


class TransformerCrossStack(nn.Module):
    """A stack of self+cross-attention blocks and a final LayerNorm: the OLC and the decoder."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        d_ff: int,
        layers: int,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        causal: bool = False,
    ):
        super().__init__()
        self.causal = causal
        self.layers = nn.ModuleList(
            CrossAttentionLayer(d_model, heads, d_ff, dropout, attention_dropout) for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        padding: Optional[torch.Tensor],
        memory: torch.Tensor,
        memory_padding: Optional[torch.Tensor],
        cache: Optional[list[dict]] = None,
        memory_bias: Optional[torch.Tensor] = None,
        route: Optional[Route] = None,
    ) -> torch.Tensor:
        packing = memory_packing = None
        if cache is None:  # incremental decoding has one real position per row
            packing, memory_packing = Packing.of(padding, x.device), Packing.of(memory_padding, x.device)
        if packing is not None:
            x = packing.pack(x)
        if memory_packing is not None:
            memory = memory_packing.pack(memory)
        for i, layer in enumerate(self.layers if route is None or route.layers is None else route.layers):
            layer_cache = None if cache is None else cache[i]
            x = layer(x, padding, memory, memory_padding, causal=self.causal, cache=layer_cache, memory_bias=memory_bias,
                      packing=packing, memory_packing=memory_packing)
            if route is not None:
                route.record(x, padding, packing is not None)
        x = self.final_norm(x)
        return packing.unpack(x) if packing is not None else x

    def new_cache(self, max_len: int = 0) -> list[dict]:
        """Per layer: the self-attention ``KVCache`` (sized for ``max_len`` steps when given) and
        the cross-attention keys/values of the memory."""
        return [{"self": KVCache(max_len), "cross": {}} for _ in self.layers]


def reorder_cache(cache: list[dict], order: torch.Tensor, memory_rows: Optional[torch.Tensor] = None) -> None:
    """Keep batch rows ``order`` of every layer's self-attention cache, in place (beam search
    follows the surviving hypotheses). The cross-attention keys/values depend on the memory
    alone: they follow ``memory_rows`` when given and stay as they are otherwise (all beams of a
    sentence share them, so reordering beams need not copy them)."""
    for layer in cache:
        layer["self"].reorder(order)
        if memory_rows is not None and layer["cross"]:
            layer["cross"] = {name: t.index_select(0, memory_rows) for name, t in layer["cross"].items()}
