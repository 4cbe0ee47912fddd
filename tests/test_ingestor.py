"""Ingestors: WEmb passes gradients back into the previous module, BeamConv isolates it."""

from __future__ import annotations

import pytest
import torch

from fixtures import joint_loss
from legonn.nn.chain import Chain, build_module, decoder_io
from legonn.nn.interface import ModuleOutput
from legonn.nn.loss import label_smoothed_ce

TINY = {"d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0}
V_MID, V_OUT = 9, 11


def two_module_chain(ingestor: dict, encoder_loss_weight: float = 0.0) -> Chain:
    torch.manual_seed(0)
    return Chain.from_specs(
        [
            {
                "name": "enc",
                "type": "lego_encoder",
                "conf": {**TINY, "input": {"type": "conv2d", "input_dim": 8, "channels": [4, 4]},
                         "olc": {"factor": 2, "max_len": 40, "layers": 1}, "ctc_vocab_size": V_MID},
                "target": "mid",
                "loss_weight": encoder_loss_weight,
            },
            {"name": "dec", "type": "lego_decoder", "conf": {**TINY, "vocab_size": V_OUT, "ingestor": ingestor}, "target": "out"},
        ]
    )


def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 24, 8, generator=g)
    lengths = torch.tensor([24, 19])
    out = torch.randint(3, V_OUT, (2, 4), generator=g)
    targets = {"out": (out, torch.tensor([4, 3]))}
    return x, lengths, targets


def grads(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in module.named_parameters()}


def test_wemb_gradients_reach_the_previous_module():
    chain = two_module_chain({"type": "wemb", "vocab_size": V_MID, "rf": 3, "layers": 1})
    x, lengths, targets = batch()
    loss = joint_loss(chain, x, lengths, targets)
    assert set(loss.terms) == {"dec"}  # loss_weight 0: only the decoder's CE is back-propagated
    loss.total.backward()
    encoder_grads = grads(chain.blocks["enc"])
    assert encoder_grads
    for name, g in encoder_grads.items():
        assert g is not None, f"encoder parameter {name} got no gradient through WEmb"
        assert g.abs().sum() > 0, f"encoder parameter {name} got an all-zero gradient through WEmb"


def test_wemb_gradient_with_manual_ce():
    """Same, computing the decoder CE by hand from chain.encode + the decoder."""
    chain = two_module_chain({"type": "wemb", "vocab_size": V_MID, "layers": 1})
    x, lengths, targets = batch()
    prev, gold = decoder_io(*targets["out"])
    outputs = chain.encode(x, lengths)
    ce = label_smoothed_ce(chain.decoder(outputs[-1], prev), gold, 0.0)
    ce.total.backward()
    ctc_weight = chain.blocks["enc"].ctc.proj.weight.grad
    conv_weight = chain.blocks["enc"].input_layer.conv1.weight.grad
    assert ctc_weight is not None and ctc_weight.abs().sum() > 0
    assert conv_weight is not None and conv_weight.abs().sum() > 0


@pytest.mark.parametrize("rf", [1, 3])
def test_beamconv_isolates_the_previous_module(rf):
    chain = two_module_chain({"type": "beamconv", "vocab_size": V_MID, "beam": 4, "embed_dim": 6, "rf": rf, "layers": 1})
    x, lengths, targets = batch()
    loss = joint_loss(chain, x, lengths, targets)
    assert loss.total.requires_grad
    loss.total.backward()
    for name, g in grads(chain.blocks["enc"]).items():
        assert g is None or not g.any(), f"encoder parameter {name} got a gradient through BeamConv"
    ingestor = chain.decoder.ingestor
    ingestor_grads = grads(ingestor)
    assert {"embed.weight", "conv.weight", "conv.bias"} <= set(ingestor_grads)
    for name, g in ingestor_grads.items():
        assert g is not None and g.abs().sum() > 0, f"BeamConv's own parameter {name} got no gradient"


def test_beamconv_still_trains_the_encoder_through_its_own_ctc():
    """Gradient isolation concerns the decoder's loss only: the encoder's CTC term trains it."""
    chain = two_module_chain({"type": "beamconv", "vocab_size": V_MID, "beam": 4, "embed_dim": 6, "layers": 1}, 1.0)
    x, lengths, targets = batch()
    targets["mid"] = (torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2]))
    joint_loss(chain, x, lengths, targets).total.backward()
    assert chain.blocks["enc"].ctc.proj.weight.grad.abs().sum() > 0


def test_beamconv_uses_the_top_k_indices_only():
    """Rescaling the marginals without changing their ranking does not change the memory."""
    torch.manual_seed(0)
    ing = build_module("lego_decoder", {**TINY, "vocab_size": V_OUT,
                                        "ingestor": {"type": "beamconv", "vocab_size": V_MID, "beam": 3, "embed_dim": 4, "layers": 1}}).eval()
    lp = torch.log_softmax(torch.randn(1, 6, V_MID), -1)
    lengths = torch.tensor([6])
    a, _ = ing.ingest(ModuleOutput(lp, lengths, lp))
    b, _ = ing.ingest(ModuleOutput(lp, lengths, lp * 2.0 - 1.0))
    torch.testing.assert_close(a, b)


def test_wemb_rf1_is_expected_embedding():
    """RF=1: the ingestor's first projection is P @ W_emb at every position."""
    torch.manual_seed(0)
    ing = build_module("lego_decoder", {**TINY, "vocab_size": V_OUT, "ingestor": {"type": "wemb", "vocab_size": V_MID, "layers": 0}}).ingestor
    lp = torch.log_softmax(torch.randn(2, 5, V_MID), -1)
    w = ing.conv.weight.squeeze(-1)  # (d_model, V)
    h, lengths = ing(lp, torch.tensor([5, 5]))  # no transformer layers: embedding * sqrt(d) + positions
    want = (lp.exp() @ w.t()) * TINY["d_model"] ** 0.5 + ing.pe(5)
    torch.testing.assert_close(h, want)
    assert lengths.tolist() == [5, 5]


@pytest.mark.parametrize("rf", [0, 2, -1])
def test_even_or_nonpositive_receptive_field_is_refused(rf):
    from legonn.errors import LegonnError

    with pytest.raises(LegonnError, match="receptive field"):
        build_module("lego_decoder", {**TINY, "vocab_size": V_OUT, "ingestor": {"type": "wemb", "vocab_size": V_MID, "rf": rf}})


@pytest.mark.parametrize("kind", ["wemb", "beamconv"])
def test_ingestor_attention_dropout_follows_the_decoder_unless_set(kind):
    """Paper Table XII trains the ingestors with attention dropout 0.15: the decoder's own
    attention_dropout reaches its ingestor's layers, and the ingestor may set another."""
    extra = {"beam": 3, "embed_dim": 4} if kind == "beamconv" else {}

    def ingestor_rates(decoder_conf: dict, ingestor_conf: dict) -> set[float]:
        dec = build_module("lego_decoder", {**TINY, **decoder_conf, "vocab_size": V_OUT,
                                            "ingestor": {"type": kind, "vocab_size": V_MID, **extra, **ingestor_conf}})
        return {m.dropout for m in dec.ingestor.modules() if type(m).__name__ == "MultiHeadAttention"}

    assert ingestor_rates({}, {}) == {0.0}
    assert ingestor_rates({"attention_dropout": 0.15}, {}) == {0.15}
    assert ingestor_rates({"attention_dropout": 0.15}, {"attention_dropout": 0.3}) == {0.3}
    # ... and it acts: two training-mode passes differ, evaluation passes agree
    dec = build_module("lego_decoder", {**TINY, "vocab_size": V_OUT, "ingestor": {
        "type": kind, "vocab_size": V_MID, "attention_dropout": 0.5, **extra}})
    log_probs = torch.randn(2, 6, V_MID).log_softmax(-1)
    lengths = torch.tensor([6, 4])
    dec.train()
    assert not torch.equal(dec.ingestor(log_probs, lengths)[0], dec.ingestor(log_probs, lengths)[0])
    dec.eval()
    assert torch.equal(dec.ingestor(log_probs, lengths)[0], dec.ingestor(log_probs, lengths)[0])
