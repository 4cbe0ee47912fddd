"""Output length controller: K = min(max_len, ceil(factor * T)) per batch item, exactly."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from legonn.nn.chain import build_module
from legonn.nn.olc import OutputLengthController, parse_factor

D = 16


def exact(factor) -> Fraction:
    """The factor as the exact rational the user meant (no float arithmetic)."""
    if isinstance(factor, str) and "/" in factor:
        num, den = factor.split("/")
        return Fraction(num) / Fraction(den)
    if isinstance(factor, float):
        return Fraction(str(factor)).limit_denominator(1000)  # 1/3 as a float means one third
    return Fraction(factor)


def expected_k(factor, lengths: list[int], cap: int) -> list[int]:
    f = exact(factor)
    return [min(cap, math.ceil(f * t)) for t in lengths]


def olc(factor, max_len: int) -> OutputLengthController:
    torch.manual_seed(0)
    return OutputLengthController(D, factor, max_len, heads=2, d_ff=32, layers=1, dropout=0.0).eval()


CASES = [
    # up-sampling
    (2, [1, 3, 7, 10], 100),
    ("2", [5, 4], 100),
    # down-sampling
    (0.5, [1, 2, 3, 7, 8], 100),
    ("1/1.5", [1, 2, 3, 4, 5, 6, 7, 9, 10], 100),  # T=3 -> 2, T=6 -> 4, T=9 -> 6: exactly integral
    (1 / 3, [1, 2, 3, 4, 6, 7, 9], 100),
    ("1/3", [3, 6, 10], 100),
    ("2/3", [3, 4, 30], 100),
    # factors whose float products land just above an integer (float64 or float32)
    (1.1, [50, 90, 100, 10], 200),  # 1.1 * 50 = 55.000000000000007 in float64
    (0.6, [25, 45, 50], 100),  # 0.6 * 25 = 15.000001 in float32
    ("0.3", [50, 90, 100], 100),  # 0.3 * 50 = 15.000001 in float32
    # the cap binds for some items only, and for all
    (2, [2, 3, 10], 5),
    ("1/1.5", [3, 30, 60], 12),
    (3, [4, 9], 6),
]


@pytest.mark.parametrize("factor,lengths,cap", CASES)
def test_output_lengths_and_time_dim(factor, lengths, cap):
    controller = olc(factor, cap)
    lens = torch.tensor(lengths)
    want = expected_k(factor, lengths, cap)
    assert controller.output_lengths(lens).tolist() == want
    x = torch.randn(len(lengths), max(lengths), D)
    h, out_lengths = controller(x, lens)
    assert out_lengths.tolist() == want
    assert h.shape == (len(lengths), max(want), D)


@pytest.mark.parametrize("factor,lengths,cap", CASES[:6])
def test_each_item_alone_gets_its_own_length(factor, lengths, cap):
    controller = olc(factor, cap)
    for t, k in zip(lengths, expected_k(factor, lengths, cap)):
        h, out_lengths = controller(torch.randn(1, t, D), torch.tensor([t]))
        assert out_lengths.tolist() == [k]
        assert h.size(1) == k


def test_cap_binds_for_every_item():
    controller = olc(2, 4)
    h, out_lengths = controller(torch.randn(3, 9, D), torch.tensor([9, 5, 3]))
    assert out_lengths.tolist() == [4, 4, 4]
    assert h.size(1) == 4


@pytest.mark.parametrize(
    "spec,value",
    [(2, Fraction(2)), (0.5, Fraction(1, 2)), ("1/1.5", Fraction(2, 3)), ("2/3", Fraction(2, 3)), (1 / 3, Fraction(1, 3)), ("1.5", Fraction(3, 2))],
)
def test_parse_factor_is_exact(spec, value):
    assert parse_factor(spec) == value


@pytest.mark.parametrize("bad", ["abc", "1/0", "0", -2, "1/x"])
def test_parse_factor_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        parse_factor(bad)


@pytest.mark.parametrize(
    "input_spec,t,factor,cap",
    [
        ({"type": "conv2d", "input_dim": 8, "channels": [4, 4]}, [41, 23, 17], "1/1.5", 100),
        ({"type": "conv2d", "input_dim": 8, "channels": [4, 4]}, [41, 23, 17], 2, 12),
        ({"type": "embedding", "vocab_size": 10}, [7, 3, 5], 2, 100),
        ({"type": "embedding", "vocab_size": 10}, [9, 6, 3], 1 / 3, 100),
    ],
)
def test_encoder_module_lengths_follow_the_olc(input_spec, t, factor, cap):
    torch.manual_seed(0)
    enc = build_module(
        "lego_encoder",
        {"input": input_spec, "d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0,
         "olc": {"factor": factor, "max_len": cap, "layers": 1}, "ctc_vocab_size": 7},
    ).eval()
    lengths = torch.tensor(t)
    if input_spec["type"] == "conv2d":
        x = torch.randn(len(t), max(t), 8)
        frames = [n // 4 for n in t]
    else:
        x = torch.randint(3, 10, (len(t), max(t)))
        frames = t
    want = expected_k(factor, frames, cap)
    out = enc(x, lengths)
    assert out.lengths.tolist() == want
    assert out.hidden.shape[:2] == (len(t), max(want))
    assert out.log_probs.shape == (len(t), max(want), 7)
    assert enc.output_lengths(lengths).tolist() == want


def test_alignment_prior_peaks_on_the_proportional_place():
    olc = OutputLengthController(16, "1/2", 50, heads=2, d_ff=32, layers=1, dropout=0.0, prior_width=1.0)
    lengths = torch.tensor([8, 6])
    out_lengths = olc.output_lengths(lengths)
    bias = olc.alignment_prior(lengths, out_lengths, 8, int(out_lengths.max()))
    assert bias.shape == (2, 1, 4, 8)
    assert bias.max() == pytest.approx(-0.5 * (0.5 / 2) ** 2)  # centres fall between two frames, sigma 2
    # output k of an 8-frame input is centred at 2k+0.5: frames 2k and 2k+1 tie, both the best.
    best = bias[0, 0].argmax(dim=-1)
    assert best.tolist() == [0, 2, 4, 6]
    # the 6-frame item has 3 outputs centred at 0.5, 2.5, 4.5: nothing prefers its padding.
    assert bias[1, 0, :3].argmax(dim=-1).tolist() == [0, 2, 4]
    # the width follows the ratio: two frames per output -> sigma 2 frames.
    assert (bias[0, 0, 0, 0] - bias[0, 0, 0, 4]).item() == pytest.approx(0.5 * ((3.5 / 2) ** 2 - (0.5 / 2) ** 2))


def test_alignment_prior_keeps_items_independent_of_padding():
    torch.manual_seed(0)
    olc = OutputLengthController(16, "1/1.5", 50, heads=2, d_ff=32, layers=2, dropout=0.0, prior_width=2.0).eval()
    x = torch.randn(2, 11, 16)
    lengths = torch.tensor([11, 7])
    h, out_lengths = olc(x, lengths)
    alone, alone_lengths = olc(x[1:, :7], lengths[1:])
    assert out_lengths[1] == alone_lengths[0]
    torch.testing.assert_close(h[1, : int(out_lengths[1])], alone[0, : int(alone_lengths[0])], atol=1e-5, rtol=1e-5)


def test_alignment_prior_makes_each_output_read_its_own_stretch_at_initialisation():
    """Without the prior, content-free queries read every input alike; with it, output k depends
    mostly on the inputs around its proportional place (gradient mass of h[k] w.r.t. the inputs)."""
    x = torch.randn(1, 40, 16, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([40])
    probe = torch.randn(16, generator=torch.Generator().manual_seed(2))
    local = {}
    for width in (None, 1.0):
        torch.manual_seed(1)
        olc = OutputLengthController(16, "1/4", 50, heads=2, d_ff=32, layers=1, dropout=0.0, prior_width=width).eval()
        fractions = []
        for k in range(10):
            xi = x.clone().requires_grad_(True)
            h, _ = olc(xi, lengths)
            (h[0, k] * probe).sum().backward()  # a plain sum of a LayerNorm output is constant
            mass = xi.grad[0].norm(dim=-1)
            lo, hi = max(0, 4 * k - 4), min(40, 4 * k + 8)  # its own 4 frames and 4 on each side
            fractions.append((mass[lo:hi].sum() / mass.sum()).item())
        local[width] = sum(fractions) / len(fractions)
    assert local[None] < 0.45 and local[1.0] > 0.8, local


def test_upsampled_queries_start_from_the_input_at_each_proportional_place():
    x = torch.arange(2 * 5 * D, dtype=torch.float32).view(2, 5, D)
    lengths = torch.tensor([5, 3])
    olc = OutputLengthController(D, 2, 50, heads=2, d_ff=32, layers=1, dropout=0.0, queries="upsampled")
    out_lengths = olc.output_lengths(lengths)
    states = olc.proportional_states(x, lengths, out_lengths, int(out_lengths.max()))
    # x2: outputs 2t and 2t+1 both read input t; the 3-frame item's padded outputs stay in range.
    assert (states[0, :, 0] / D).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert (states[1, :6, 0] / D - 5).tolist() == [0, 0, 1, 1, 2, 2]
    assert int(states[1, 6:, 0].max() / D - 5) <= 2
    # down-sampling by 3 picks the middle frame of each group
    lengths = torch.tensor([9])
    down = OutputLengthController(D, "1/3", 50, heads=2, d_ff=32, layers=1, dropout=0.0, queries="upsampled")
    x = torch.arange(9 * D, dtype=torch.float32).view(1, 9, D)
    picked = down.proportional_states(x, lengths, down.output_lengths(lengths), 3)
    assert (picked[0, :, 0] / D).tolist() == [1, 4, 7]


def test_upsampled_queries_make_outputs_depend_on_their_own_input():
    """At initialisation, output k of an x2 OLC with upsampled queries is mostly driven by input k/2."""
    x = torch.randn(1, 20, D, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([20])
    probe = torch.randn(D, generator=torch.Generator().manual_seed(2))
    share = {}
    for kind in ("positional", "upsampled"):
        torch.manual_seed(1)
        olc = OutputLengthController(D, 2, 50, heads=2, d_ff=32, layers=1, dropout=0.0, queries=kind).eval()
        own = []
        for k in range(0, 40, 4):
            xi = x.clone().requires_grad_(True)
            h, _ = olc(xi, lengths)
            (h[0, k] * probe).sum().backward()
            mass = xi.grad[0].norm(dim=-1)
            own.append((mass[k // 2] / mass.sum()).item())
        share[kind] = sum(own) / len(own)
    assert share["positional"] < 0.15 and share["upsampled"] > 0.5, share


def test_unknown_query_kind_is_refused():
    with pytest.raises(ValueError, match="queries must be one of positional, upsampled"):
        OutputLengthController(D, 2, 50, queries="copy")
