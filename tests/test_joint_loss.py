"""The joint loss (paper Eq. 9) of a three-module ASR chain falls when overfitting one batch.

phoneme encoder (conv2d + OLC, CTC over phonemes) -> pronunciation encoder (WEmb over the
phoneme marginals + OLC, CTC over words) -> decoder (WEmb over the word marginals, CE).
"""

from __future__ import annotations

import math

import pytest
import torch

from fixtures import joint_loss
from legonn.nn.chain import Chain

TINY = {"d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0}
V_PHONE, V_WORD, V_TEXT = 10, 9, 8


def three_module_chain() -> Chain:
    return Chain.from_specs(
        [
            {
                "name": "phones",
                "type": "lego_encoder",
                "conf": {**TINY, "input": {"type": "conv2d", "input_dim": 8, "channels": [4, 8]},
                         "olc": {"factor": 2, "max_len": 32, "layers": 1}, "ctc_vocab_size": V_PHONE},
                "target": "phone",
            },
            {
                "name": "pron",
                "type": "lego_encoder",
                "conf": {**TINY, "input": {"type": "wemb", "vocab_size": V_PHONE, "rf": 3, "layers": 1},
                         "olc": {"factor": "1/1.5", "max_len": 32, "layers": 1}, "ctc_vocab_size": V_WORD},
                "target": "word",
            },
            {
                "name": "dec",
                "type": "lego_decoder",
                "conf": {**TINY, "vocab_size": V_TEXT, "ingestor": {"type": "wemb", "vocab_size": V_WORD, "layers": 1}},
                "target": "text",
                "loss_weight": 1.0,
            },
        ],
    )


def one_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 32, 8, generator=g)
    lengths = torch.tensor([32, 28])  # 8 and 7 frames -> OLC x2: 16 and 14 -> x2/3: 11 and 10
    targets = {
        "phone": (torch.tensor([[3, 4, 4, 5, 6, 7], [8, 9, 3, 4, 0, 0]]), torch.tensor([6, 4])),
        "word": (torch.tensor([[3, 5, 6, 7], [4, 8, 0, 0]]), torch.tensor([4, 2])),
        "text": (torch.tensor([[3, 4, 5], [6, 7, 0]]), torch.tensor([3, 2])),
    }
    return x, lengths, targets


@pytest.fixture
def one_thread():
    """A tiny model trains fastest on one intra-op thread (and does not spin on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_joint_loss_decreases_when_overfitting_one_batch(one_thread):
    torch.manual_seed(0)
    chain = three_module_chain()
    chain.train()  # dropout is 0, so train mode is deterministic too
    x, lengths, targets = one_batch()
    opt = torch.optim.Adam(chain.parameters(), lr=3e-3)

    first = joint_loss(chain, x, lengths, targets)
    assert set(first.terms) == {"phones", "pron", "dec"}
    initial_total = first.total.item()
    initial_terms = {name: t.loss.item() for name, t in first.terms.items()}
    assert all(math.isfinite(v) and v > 0 for v in initial_terms.values())
    # The total is the weighted sum of the per-token terms.
    assert initial_total == pytest.approx(sum(initial_terms.values()), rel=1e-5)
    assert first.terms["phones"].tokens == 10 and first.terms["pron"].tokens == 6
    assert first.terms["dec"].tokens == 5 + 2  # target tokens plus one <eos> each
    assert all(t.skipped == 0 for t in first.terms.values())

    for _ in range(150):
        opt.zero_grad()
        loss = joint_loss(chain, x, lengths, targets)
        loss.total.backward()
        opt.step()

    final = joint_loss(chain, x, lengths, targets)
    final_terms = {name: t.loss.item() for name, t in final.terms.items()}
    assert final.total.item() < 0.3 * initial_total, (initial_total, final.total.item())
    for name in initial_terms:
        assert final_terms[name] < initial_terms[name], (name, initial_terms[name], final_terms[name])
    assert final.terms["dec"].correct == final.terms["dec"].tokens  # it has memorised the batch


def test_loss_weights_scale_the_terms(one_thread):
    torch.manual_seed(0)
    chain = three_module_chain().eval()
    x, lengths, targets = one_batch()
    base = joint_loss(chain, x, lengths, targets)
    chain.specs[0].loss_weight = 0.25
    chain.specs[2].loss_weight = 2.0
    weighted = joint_loss(chain, x, lengths, targets)
    want = 0.25 * base.terms["phones"].loss + base.terms["pron"].loss + 2.0 * base.terms["dec"].loss
    torch.testing.assert_close(weighted.total, want)
    chain.specs[1].loss_weight = 0.0
    assert "pron" not in joint_loss(chain, x, lengths, targets).terms
