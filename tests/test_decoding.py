"""Incremental decoding: cached step-by-step logits equal the teacher-forced forward pass."""

from __future__ import annotations

import pytest
import torch

from legonn.nn.chain import build_module
from legonn.nn.interface import ModuleOutput
from legonn.nn.transformer import KVCache, reorder_cache

ATOL = 1e-5
TINY = {"d_model": 32, "heads": 4, "d_ff": 64, "layers": 2, "dropout": 0.0}
V = 13


def lego_decoder():
    torch.manual_seed(0)
    dec = build_module("lego_decoder", {**TINY, "vocab_size": V, "ingestor": {"type": "wemb", "vocab_size": 9, "rf": 3, "layers": 1}})
    g = torch.Generator().manual_seed(1)
    lp = torch.log_softmax(torch.randn(3, 7, 9, generator=g), -1)
    return dec.eval(), ModuleOutput(lp, torch.tensor([7, 4, 6]), lp)


def transformer_decoder():
    torch.manual_seed(0)
    dec = build_module("transformer_decoder", {**TINY, "vocab_size": V, "input_dim": 20})
    g = torch.Generator().manual_seed(2)
    return dec.eval(), ModuleOutput(torch.randn(3, 8, 20, generator=g), torch.tensor([5, 8, 3]))


DECODERS = {"lego_decoder": lego_decoder, "transformer_decoder": transformer_decoder}


def prefixes(batch: int, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(3, V, (batch, steps), generator=g)
    tokens[:, 0] = 2  # <sos>
    return tokens


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_cached_steps_equal_full_forward(kind):
    dec, previous = DECODERS[kind]()
    prev = prefixes(3, 6)
    with torch.no_grad():
        memory, memory_padding = dec.ingest(previous)
        full = dec.decode(prev, memory, memory_padding)
        assert torch.equal(full, dec(previous, prev))
        cache = dec.new_cache()
        for t in range(prev.size(1)):
            step = dec.step(prev[:, t], memory, memory_padding, cache)
            assert step.shape == (3, V)
            torch.testing.assert_close(step, full[:, t], atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", sorted(DECODERS))
@pytest.mark.parametrize("order", [[2, 0, 0], [1, 2, 0], [0, 0, 0, 1]])
def test_reorder_cache_then_step_equals_full_forward_of_reordered_batch(kind, order):
    dec, previous = DECODERS[kind]()
    prev = prefixes(3, 7)
    split = 3
    order_t = torch.tensor(order)
    with torch.no_grad():
        memory, memory_padding = dec.ingest(previous)
        cache = dec.new_cache()
        for t in range(split):
            dec.step(prev[:, t], memory, memory_padding, cache)
        reorder_cache(cache, order_t, order_t)
        memory, memory_padding = memory[order_t], memory_padding[order_t]
        # After reordering, the hypotheses diverge: continue with different tokens.
        g = torch.Generator().manual_seed(4)
        cont = torch.randint(3, V, (len(order), prev.size(1) - split), generator=g)
        new_prev = torch.cat([prev[order_t, :split], cont], dim=1)
        full = dec.decode(new_prev, memory, memory_padding)
        for t in range(split, new_prev.size(1)):
            step = dec.step(new_prev[:, t], memory, memory_padding, cache)
            torch.testing.assert_close(step, full[:, t], atol=ATOL, rtol=0)


def test_reorder_cache_selects_rows_in_place():
    dec, previous = lego_decoder()
    with torch.no_grad():
        memory, memory_padding = dec.ingest(previous)
        cache = dec.new_cache()
        dec.step(torch.full((3,), 2), memory, memory_padding, cache)
        dec.step(torch.tensor([3, 4, 5]), memory, memory_padding, cache)
    before = [{name: getattr(layer["self"], name).clone() for name in ("k", "v")} | {"cross": dict(layer["cross"])} for layer in cache]
    order = torch.tensor([2, 2, 0, 1])
    reorder_cache(cache, order)
    assert len(cache) == TINY["layers"]
    for old, layer in zip(before, cache):
        for name in ("k", "v"):
            assert torch.equal(getattr(layer["self"], name), old[name][order])
            assert layer["cross"][name] is old["cross"][name]  # beams share the memory: not copied
    reorder_cache(cache, torch.tensor([3, 0]), memory_rows=torch.tensor([1, 0]))
    for old, layer in zip(before, cache):
        for name in ("k", "v"):
            assert torch.equal(getattr(layer["self"], name), old[name][[1, 2]])
            assert torch.equal(layer["cross"][name], old["cross"][name][[1, 0]])


@pytest.mark.parametrize("capacity", [0, 2, 16])
def test_kv_cache_equals_concatenation(capacity):
    """Writing into (growing) buffers and reordering between steps gives what concatenating and
    selecting rows gives."""
    g = torch.Generator().manual_seed(5)
    cache = KVCache(capacity)
    k_ref = v_ref = None
    orders = [None, [0, 0, 2, 1], None, [3, 1, 1, 0], [2, 0], None, [1, 1]]
    rows = 4
    for t, order in enumerate(orders):
        if order is not None and k_ref is not None:
            cache.reorder(torch.tensor(order))
            k_ref, v_ref = k_ref[order], v_ref[order]
            rows = len(order)
        k_new, v_new = (torch.randn(rows, 2, 1 + t % 2, 3, generator=g) for _ in range(2))
        k_ref = k_new if k_ref is None else torch.cat([k_ref, k_new], dim=2)
        v_ref = v_new if v_ref is None else torch.cat([v_ref, v_new], dim=2)
        k, v = cache.append(k_new, v_new)
        assert torch.equal(k, k_ref) and torch.equal(v, v_ref)
        assert cache.length == k_ref.size(2)


def test_cache_sized_for_max_len_allocates_no_buffers_per_step():
    dec, previous = lego_decoder()
    with torch.no_grad():
        memory, memory_padding = dec.ingest(previous)
        cache = dec.new_cache(max_len=4)
        storages = set()
        for t in range(4):
            dec.step(torch.tensor([2, 3, 4]), memory, memory_padding, cache)
            reorder_cache(cache, torch.tensor([2, 0, 1]))
            storages |= {cache[0]["self"].k.untyped_storage().data_ptr()}
    assert cache[0]["self"].k.size(2) == 4
    assert len(storages) == 2  # the two buffers that reordering alternates between
