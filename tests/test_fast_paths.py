"""The CPU fast paths compute what the plain ones do: cheap dropout masks (legonn/nn/dropout.py),
explicit attention instead of the flash kernel, packed token-wise work (transformer.Packing) and
the channels-last speech front-end."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch.nn.attention import SDPBackend, sdpa_kernel

from legonn.nn.dropout import Dropout, dropout
from legonn.nn.frontend import Conv2dFrontend
from legonn.nn.mask import padding_mask
from legonn.nn.transformer import MultiHeadAttention, Packing, TransformerCrossStack, TransformerEncoder, attention


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_dropout_rate_scale_and_gradient(p):
    torch.manual_seed(0)
    x = torch.ones(200_003, requires_grad=True)  # not a multiple of 4: the last word is cut
    y = dropout(x, p)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - p) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d y / d x is the multiplier itself


def test_dropout_follows_the_seed_and_is_off_in_eval():
    layer = Dropout(0.1)
    x = torch.randn(4, 7, 33)
    torch.manual_seed(5)
    a = layer(x)
    torch.manual_seed(5)
    assert torch.equal(a, layer(x))
    assert not torch.equal(a, layer(x))  # the next draw differs
    layer.eval()
    assert layer(x) is x
    assert isinstance(layer, torch.nn.Dropout) and layer.p == 0.1


def test_dropout_masks_are_not_patterned():
    """Each of the four 16-bit lanes of a 64-bit draw drops at the same rate (a draw limited to
    63 bits would never drop in the top lane)."""
    torch.manual_seed(1)
    y = dropout(torch.ones(400_000), 0.25).view(-1, 4)
    for lane in (y == 0).float().mean(0).tolist():
        assert abs(lane - 0.25) < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_matches_sdpa(dtype):
    torch.manual_seed(0)
    b, h, tq, tk, d = 3, 2, 5, 7, 8
    q, k, v = (torch.randn(b, h, t, d, dtype=dtype) for t in (tq, tk, tk))
    key_padding = padding_mask(torch.tensor([7, 4, 1]), tk)[:, None, None, :]
    bias = torch.randn(b, 1, tq, tk, dtype=dtype)
    with sdpa_kernel(SDPBackend.MATH):
        want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(key_padding, float("-inf")))
    got = attention(q, k, v, key_padding, bias)
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert torch.allclose(got.float(), want.float(), atol=tol, rtol=tol)


def test_fully_blocked_rows_average_instead_of_nan():
    q, k, v = torch.randn(1, 1, 2, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)
    out = attention(q, k, v, torch.ones(1, 1, 1, 3, dtype=torch.bool))
    assert torch.allclose(out, v.mean(2, keepdim=True).expand_as(out), atol=1e-6)


def test_packing_round_trip():
    padding = padding_mask(torch.tensor([3, 1, 2]), 3)
    packing = Packing(padding)
    x = torch.arange(9.0).view(3, 3, 1)
    packed = packing.pack(x)
    assert packed.flatten().tolist() == [0, 1, 2, 3, 6, 7]
    assert packing.unpack(packed).flatten().tolist() == [0, 1, 2, 3, 0, 0, 6, 7, 0]
    assert Packing.of(padding_mask(torch.tensor([3, 3]), 3), torch.device("cpu")) is None  # nothing to skip


def _each_alone(stack, xs, memories=None):
    """Every sequence through the stack on its own: no padding, so no packing."""
    outs = []
    for i, x in enumerate(xs):
        if memories is None:
            outs.append(stack(x[None], None)[0])
        else:
            outs.append(stack(x[None], None, memories[i][None], None)[0])
    return outs


def test_packed_encoder_stack_equals_each_sequence_alone():
    torch.manual_seed(0)
    stack = TransformerEncoder(16, 2, 32, 2, dropout=0.0).eval()
    lengths = torch.tensor([5, 2, 4])
    xs = [torch.randn(int(n), 16) for n in lengths]
    batch = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
    out = stack(batch, padding_mask(lengths))
    for i, alone in enumerate(_each_alone(stack, xs)):
        assert torch.allclose(out[i, : lengths[i]], alone, atol=1e-5)
        assert not out[i, lengths[i]:].any()  # padded positions come out as zeros


@pytest.mark.parametrize("causal", [False, True])
def test_packed_cross_stack_and_its_gradients_equal_each_sequence_alone(causal):
    torch.manual_seed(0)
    stack = TransformerCrossStack(16, 2, 32, 2, dropout=0.0, causal=causal).eval()
    lengths, mem_lengths = torch.tensor([3, 5, 1]), torch.tensor([4, 2, 6])
    xs = [torch.randn(int(n), 16, requires_grad=True) for n in lengths]
    mems = [torch.randn(int(n), 16, requires_grad=True) for n in mem_lengths]
    pad = torch.nn.utils.rnn.pad_sequence
    out = stack(pad(xs, batch_first=True), padding_mask(lengths), pad(mems, batch_first=True), padding_mask(mem_lengths))
    weights = torch.randn_like(out)
    batched = torch.autograd.grad((out * weights).sum(), xs + mems + [stack.layers[0].ffn.fc1.weight])
    alone = _each_alone(stack, xs, mems)
    loss = sum((a * weights[i, : len(a)]).sum() for i, a in enumerate(alone))
    single = torch.autograd.grad(loss, xs + mems + [stack.layers[0].ffn.fc1.weight])
    for i, a in enumerate(alone):
        assert torch.allclose(out[i, : lengths[i]], a, atol=1e-5)
    for g_batched, g_single in zip(batched, single):
        assert torch.allclose(g_batched, g_single, atol=1e-4)


def test_conv2d_frontend_channels_last_equals_the_plain_computation_and_saves_dense(tmp_path):
    torch.manual_seed(0)
    frontend = Conv2dFrontend(16, 32, dropout=0.0).eval()
    assert frontend.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    x, lengths = torch.randn(2, 12, 16), torch.tensor([12, 12])
    h = x.unsqueeze(1)
    for conv in (frontend.conv1, frontend.conv2):  # the textbook order and layout
        h = F.max_pool2d(torch.relu(F.conv2d(h, conv.weight.contiguous(), conv.bias, padding=1)), 2)
    want = frontend.proj(h.transpose(1, 2).flatten(2)) + frontend.pe(h.size(2))
    got, out_lengths = frontend(x, lengths)
    assert out_lengths.tolist() == [3, 3] and torch.allclose(got, want, atol=1e-5)
    assert all(t.is_contiguous() for t in frontend.state_dict().values())
    save_model(frontend, str(tmp_path / "model.safetensors"))  # refuses non-dense tensors
    copy = Conv2dFrontend(16, 32, dropout=0.0).eval()
    load_model(copy, str(tmp_path / "model.safetensors"))
    assert torch.equal(copy(x, lengths)[0], got)


def test_beams_share_one_memory_row_per_sentence():
    """Incremental cross-attention with one memory row per sentence serving its beams equals the
    memory repeated for every beam."""
    torch.manual_seed(0)
    layer = MultiHeadAttention(16, 2, cross=True).eval()
    memory, padding = torch.randn(2, 5, 16), padding_mask(torch.tensor([5, 3]), 5)
    x = torch.randn(6, 1, 16)  # 2 sentences x 3 beams, one new step each
    shared = layer(x, memory=memory, key_padding=padding, cache={})
    repeated = layer(x, memory=memory.repeat_interleave(3, 0), key_padding=padding.repeat_interleave(3, 0), cache={})
    assert torch.allclose(shared, repeated, atol=1e-6)
