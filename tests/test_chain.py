"""Chains: interface checks between adjacent modules, decoder inputs/outputs, target streams."""

from __future__ import annotations

import pytest
import torch

from fixtures import joint_loss
from legonn.nn.chain import Chain, decoder_io
from legonn.errors import LegonnError
from legonn.nn.loss import IGNORE
from legonn.data.vocab import EOS, PAD, SOS

TINY = {"d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0}


def encoder(name="enc", ctc=9, **conf):
    return {"name": name, "type": "lego_encoder", "target": "mid",
            "conf": {**TINY, "input": {"type": "embedding", "vocab_size": 12}, "ctc_vocab_size": ctc, **conf}}


def wemb_decoder(vocab_in=9, name="dec"):
    return {"name": name, "type": "lego_decoder", "target": "out",
            "conf": {**TINY, "vocab_size": 7, "ingestor": {"type": "wemb", "vocab_size": vocab_in, "layers": 1}}}


def test_ctc_vocab_differs_from_ingestor_vocab():
    with pytest.raises(LegonnError) as exc:
        Chain.from_specs([encoder(ctc=9), wemb_decoder(vocab_in=10)])
    message = str(exc.value)
    assert "'enc'" in message and "'dec'" in message and "9" in message and "10" in message


def test_ctc_vocab_differs_between_two_encoders():
    second = {"name": "enc2", "type": "lego_encoder",
              "conf": {**TINY, "input": {"type": "beamconv", "vocab_size": 8, "beam": 2, "embed_dim": 4}, "ctc_vocab_size": 9}}
    with pytest.raises(LegonnError, match="'enc' -> 'enc2'"):
        Chain.from_specs([encoder(ctc=9), second, wemb_decoder()])


def test_hidden_output_encoder_cannot_feed_a_marginals_decoder():
    with pytest.raises(LegonnError) as exc:
        Chain.from_specs([encoder(ctc=None), wemb_decoder()])
    assert "hidden" in str(exc.value) and "marginals" in str(exc.value)


def test_baseline_encoder_cannot_feed_a_lego_decoder():
    enc = {"name": "enc", "type": "transformer_encoder", "conf": {**TINY, "input": {"type": "embedding", "vocab_size": 12}}}
    with pytest.raises(LegonnError, match="cannot chain 'enc' -> 'dec'"):
        Chain.from_specs([enc, wemb_decoder()])


def test_marginals_encoder_cannot_feed_a_hidden_decoder():
    dec = {"name": "dec", "type": "transformer_decoder", "conf": {**TINY, "vocab_size": 7}}
    with pytest.raises(LegonnError, match="cannot chain"):
        Chain.from_specs([encoder(ctc=9), dec])


def test_matching_chain_builds_and_runs():
    torch.manual_seed(0)
    chain = Chain.from_specs([encoder(), wemb_decoder()]).eval()
    assert chain.names == ["enc", "dec"]
    assert chain.encoder_names == ["enc"]
    assert chain.decoder is chain.blocks["dec"]
    x = torch.randint(3, 12, (2, 5))
    lengths = torch.tensor([5, 3])
    targets = {"mid": (torch.tensor([[3, 4], [5, 0]]), torch.tensor([2, 1])), "out": (torch.tensor([[3, 4, 5], [6, 0, 0]]), torch.tensor([3, 1]))}
    loss = joint_loss(chain, x, lengths, targets)
    assert set(loss.terms) == {"enc", "dec"}
    assert loss.terms["dec"].tokens == 4 + 2
    assert torch.isfinite(loss.total)


def test_encoder_only_chain_has_no_decoder():
    chain = Chain.from_specs([encoder()])
    assert chain.decoder is None and chain.encoder_names == ["enc"]


def test_missing_target_stream_is_a_legonn_error():
    chain = Chain.from_specs([encoder(), wemb_decoder()])
    x, lengths = torch.randint(3, 12, (1, 4)), torch.tensor([4])
    with pytest.raises(LegonnError, match="'out'"):
        chain(x, lengths, {"mid": (torch.tensor([[3]]), torch.tensor([1]))})


def test_decoder_io_places_sos_and_eos():
    targets = torch.tensor([[5, 6, 7], [8, 9, 0], [4, 0, 0]])
    lengths = torch.tensor([3, 2, 1])
    prev, gold = decoder_io(targets, lengths)
    assert prev.tolist() == [[SOS, 5, 6, 7], [SOS, 8, 9, PAD], [SOS, 4, PAD, PAD]]
    I = IGNORE
    assert gold.tolist() == [[5, 6, 7, EOS], [8, 9, EOS, I], [4, EOS, I, I]]
    assert prev.dtype == targets.dtype and gold.dtype == targets.dtype


def test_decoder_io_ignores_garbage_past_the_length():
    """Whatever sits in the padded part of the targets never becomes a gold label."""
    targets = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    prev, gold = decoder_io(targets, torch.tensor([4, 1]))
    assert gold.tolist() == [[5, 6, 7, 8, EOS], [9, EOS, IGNORE, IGNORE, IGNORE]]
    assert prev[:, 0].tolist() == [SOS, SOS]
    assert prev[0, 1:].tolist() == [5, 6, 7, 8]
    assert (gold != IGNORE).sum().item() == 4 + 1 + 1 + 1  # tokens + one <eos> each


def test_decoder_io_empty_target():
    prev, gold = decoder_io(torch.tensor([[0, 0], [3, 4]]), torch.tensor([0, 2]))
    assert gold.tolist() == [[EOS, IGNORE, IGNORE], [3, 4, EOS]]
    assert prev.tolist()[1] == [SOS, 3, 4]
