"""Padding invariance: an item's outputs do not depend on what else is in its batch.

Each test runs one item alone, then batched with a longer item so that it is padded, with
garbage (large, non-zero) values in its padded region, and compares its valid positions.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from legonn.nn.chain import Chain, build_module
from legonn.nn.interface import ModuleOutput

ATOL = 1e-5
TINY = {"d_model": 32, "heads": 2, "d_ff": 64, "layers": 2, "dropout": 0.0}


def tiny(type_name: str, **conf) -> torch.nn.Module:
    torch.manual_seed(0)
    module = build_module(type_name, {**TINY, **conf})
    return module.eval()


def features(t: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t, dim, generator=g)


def pad_batch(short: torch.Tensor, long: torch.Tensor, garbage: torch.Tensor, short_first: bool):
    """Batch ``short`` with ``long``; ``garbage`` fills the short item's padded region."""
    padded = torch.cat([short, garbage[: long.size(0) - short.size(0)]], dim=0)
    rows = [padded, long] if short_first else [long, padded]
    lengths = [short.size(0), long.size(0)] if short_first else [long.size(0), short.size(0)]
    return torch.stack(rows), torch.tensor(lengths), (0 if short_first else 1)


def assert_encoder_invariant(module, short, long, garbage, short_first):
    alone = module(short.unsqueeze(0), torch.tensor([short.size(0)]))
    x, lengths, row = pad_batch(short, long, garbage, short_first)
    batched = module(x, lengths)
    k = int(alone.lengths[0])
    assert int(batched.lengths[row]) == k
    assert alone.hidden.size(1) == k  # alone, nothing is padded
    assert batched.hidden.size(1) >= k
    torch.testing.assert_close(batched.hidden[row, :k], alone.hidden[0], atol=ATOL, rtol=0)
    if alone.log_probs is not None:
        torch.testing.assert_close(batched.log_probs[row, :k], alone.log_probs[0], atol=ATOL, rtol=0)
    return alone, batched


def speech_garbage(dim: int = 16) -> torch.Tensor:
    return torch.randn(200, dim, generator=torch.Generator().manual_seed(99)) * 10 + 3


@pytest.mark.parametrize("short_first", [True, False])
@pytest.mark.parametrize("t_short", [20, 23, 25])  # 20 and 25: a leak through the first pooling would show
@pytest.mark.parametrize(
    "olc", [None, {"factor": "1/1.5", "max_len": 50, "layers": 1}, {"factor": 2, "max_len": 50, "layers": 1}]
)
def test_conv2d_encoder(olc, t_short, short_first):
    module = tiny("lego_encoder", input={"type": "conv2d", "input_dim": 16, "channels": [4, 8]}, olc=olc, ctc_vocab_size=11)
    short, long = features(t_short, seed=1), features(41, seed=2)
    alone, _ = assert_encoder_invariant(module, short, long, speech_garbage(), short_first)
    frames = t_short // 4
    factor = Fraction(1) if olc is None else Fraction(1) / Fraction("1.5") if olc["factor"] == "1/1.5" else Fraction(2)
    assert int(alone.lengths[0]) == math.ceil(factor * frames)


@pytest.mark.parametrize("short_first", [True, False])
def test_token_embedding_encoder_with_olc(short_first):
    module = tiny("lego_encoder", input={"type": "embedding", "vocab_size": 20}, olc={"factor": 2, "max_len": 40, "layers": 1}, ctc_vocab_size=9)
    g = torch.Generator().manual_seed(3)
    short, long = torch.randint(3, 20, (5,), generator=g), torch.randint(3, 20, (9,), generator=g)
    garbage = torch.randint(3, 20, (20,), generator=g)  # real token ids, not padding id 0
    alone, _ = assert_encoder_invariant(module, short, long, garbage, short_first)
    assert int(alone.lengths[0]) == 10


def log_marginals(t: int, v: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(t, v, generator=g) * 3, dim=-1)


def marginal_garbage(v: int) -> torch.Tensor:
    # Not log-probabilities at all: large values that would dominate any leak.
    return torch.randn(50, v, generator=torch.Generator().manual_seed(98)) * 5 + 4


@pytest.mark.parametrize("short_first", [True, False])
@pytest.mark.parametrize("olc", [None, {"factor": "1/1.5", "max_len": 30, "layers": 1}])
def test_wemb_encoder_rf3(olc, short_first):
    module = tiny("lego_encoder", input={"type": "wemb", "vocab_size": 12, "rf": 3, "layers": 1}, olc=olc, ctc_vocab_size=8)
    short, long = log_marginals(7, 12, 4), log_marginals(13, 12, 5)
    assert_encoder_invariant(module, short, long, marginal_garbage(12), short_first)


@pytest.mark.parametrize("short_first", [True, False])
@pytest.mark.parametrize("rf", [1, 3])
def test_beamconv_encoder(rf, short_first):
    module = tiny(
        "lego_encoder", input={"type": "beamconv", "vocab_size": 12, "beam": 3, "embed_dim": 6, "rf": rf, "layers": 1}, ctc_vocab_size=8
    )
    short, long = log_marginals(7, 12, 6), log_marginals(13, 12, 7)
    assert_encoder_invariant(module, short, long, marginal_garbage(12), short_first)


@pytest.mark.parametrize("short_first", [True, False])
@pytest.mark.parametrize("ingestor", ["wemb", "beamconv"])
def test_beamconv_and_wemb_ingestor_layers(ingestor, short_first):
    """The ingestor alone (as a decoder uses it): its memory over valid positions."""
    conf = {"type": ingestor, "vocab_size": 12, "rf": 3, "layers": 1}
    if ingestor == "beamconv":
        conf.update(beam=4, embed_dim=5)
    decoder = tiny("lego_decoder", vocab_size=10, ingestor=conf)
    short, long = log_marginals(6, 12, 8), log_marginals(11, 12, 9)
    mem_alone, pad_alone = decoder.ingest(ModuleOutput(short.unsqueeze(0), torch.tensor([6]), short.unsqueeze(0)))
    x, lengths, row = pad_batch(short, long, marginal_garbage(12), short_first)
    mem, pad = decoder.ingest(ModuleOutput(x, lengths, x))
    assert not pad_alone.any()
    assert pad[row].tolist() == [False] * 6 + [True] * 5
    torch.testing.assert_close(mem[row, :6], mem_alone[0], atol=ATOL, rtol=0)


def decoder_case(decoder, previous_short, batched_previous, short_first):
    """Teacher-forced logits; both the memory and the previous tokens are padded."""
    g = torch.Generator().manual_seed(11)
    v = decoder.output_vocab_size
    toks_short = torch.cat([torch.tensor([2]), torch.randint(3, v, (4,), generator=g)])
    toks_long = torch.cat([torch.tensor([2]), torch.randint(3, v, (8,), generator=g)])
    logits_alone = decoder(previous_short, toks_short.unsqueeze(0))
    garbage_toks = torch.randint(1, v, (10,), generator=g)
    prev, _, row = pad_batch(toks_short, toks_long, garbage_toks, short_first)
    prev_out = ModuleOutput(*batched_previous(short_first))
    logits = decoder(prev_out, prev)
    torch.testing.assert_close(logits[row, : toks_short.numel()], logits_alone[0], atol=ATOL, rtol=0)


def _marginal_pair(short_first):
    short, long = log_marginals(6, 12, 12), log_marginals(11, 12, 13)
    x, lengths, _ = pad_batch(short, long, marginal_garbage(12), short_first)
    return x, lengths, x


@pytest.mark.parametrize("short_first", [True, False])
@pytest.mark.parametrize("ingestor", ["wemb", "beamconv"])
def test_lego_decoder_teacher_forced(ingestor, short_first):
    conf = {"type": ingestor, "vocab_size": 12, "rf": 3, "layers": 1}
    if ingestor == "beamconv":
        conf.update(beam=4, embed_dim=5)
    decoder = tiny("lego_decoder", vocab_size=10, ingestor=conf)
    short = log_marginals(6, 12, 12).unsqueeze(0)
    decoder_case(decoder, ModuleOutput(short, torch.tensor([6]), short), _marginal_pair, short_first)


@pytest.mark.parametrize("short_first", [True, False])
def test_transformer_encoder(short_first):
    module = tiny("transformer_encoder", input={"type": "conv2d", "input_dim": 16, "channels": [4, 8]})
    short, long = features(20, seed=14), features(37, seed=15)
    alone, _ = assert_encoder_invariant(module, short, long, speech_garbage(), short_first)
    assert alone.log_probs is None


@pytest.mark.parametrize("short_first", [True, False])
def test_transformer_decoder_teacher_forced(short_first):
    decoder = tiny("transformer_decoder", vocab_size=10, input_dim=24)
    g = torch.Generator().manual_seed(16)
    short, long = torch.randn(5, 24, generator=g), torch.randn(9, 24, generator=g)
    garbage = torch.randn(20, 24, generator=g) * 10

    def hidden_pair(first):
        x, lengths, _ = pad_batch(short, long, garbage, first)
        return x, lengths

    decoder_case(decoder, ModuleOutput(short.unsqueeze(0), torch.tensor([5])), hidden_pair, short_first)


@pytest.mark.parametrize("short_first", [True, False])
def test_whole_three_module_chain(short_first):
    """Speech -> phoneme marginals -> word marginals -> text logits, end to end."""
    torch.manual_seed(0)
    chain = Chain.from_specs(
        [
            {"name": "phones", "type": "lego_encoder",
             "conf": {**TINY, "input": {"type": "conv2d", "input_dim": 16, "channels": [4, 8]},
                      "olc": {"factor": 2, "max_len": 40, "layers": 1}, "ctc_vocab_size": 10}},
            {"name": "pron", "type": "lego_encoder",
             "conf": {**TINY, "input": {"type": "wemb", "vocab_size": 10, "rf": 3, "layers": 1},
                      "olc": {"factor": "1/1.5", "max_len": 40, "layers": 1}, "ctc_vocab_size": 9}},
            {"name": "dec", "type": "lego_decoder",
             "conf": {**TINY, "vocab_size": 8, "ingestor": {"type": "beamconv", "vocab_size": 9, "beam": 3, "embed_dim": 4, "rf": 3, "layers": 1}}},
        ]
    ).eval()
    short, long = features(25, seed=20), features(45, seed=21)
    prev_short = torch.tensor([2, 3, 4, 5])
    with torch.no_grad():
        outs = chain.encode(short.unsqueeze(0), torch.tensor([25]))
        alone = chain.decoder(outs[-1], prev_short.unsqueeze(0))
        x, lengths, row = pad_batch(short, long, speech_garbage(), short_first)
        prev, _, _ = pad_batch(prev_short, torch.tensor([2, 6, 7, 3, 4, 5, 6]), torch.tensor([7, 7, 7]), short_first)
        outs_b = chain.encode(x, lengths)
        batched = chain.decoder(outs_b[-1], prev)
    for a, b in zip(outs, outs_b):
        k = int(a.lengths[0])
        assert int(b.lengths[row]) == k
        torch.testing.assert_close(b.log_probs[row, :k], a.log_probs[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(batched[row, :4], alone[0], atol=ATOL, rtol=0)
