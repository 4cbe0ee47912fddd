"""CTC interface: minimum lengths, skipping utterances that cannot fit, greedy decoding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fixtures import joint_loss
from legonn.nn.chain import Chain
from legonn.nn.ctc import BLANK, CTCInterface, greedy_decode, min_ctc_length


@pytest.mark.parametrize(
    "target,length,need",
    [
        ([5, 5, 5], 3, 5),  # a blank between each repeat
        ([1, 2, 3], 3, 3),
        ([1, 1, 2, 2], 4, 6),
        ([7], 1, 1),
        ([4, 4, 0, 0], 2, 3),
        ([3, 0, 0, 0], 1, 1),  # padding 0 0 is not a repeat
        ([3, 3, 3, 3], 2, 3),  # repeats past the length do not count
        ([3, 4, 3, 4], 4, 4),  # non-adjacent equal tokens need no blank
    ],
)
def test_min_ctc_length(target, length, need):
    assert min_ctc_length(torch.tensor([target]), torch.tensor([length])).tolist() == [need]


def test_min_ctc_length_batched():
    targets = torch.tensor([[5, 5, 5, 0], [1, 2, 2, 2], [6, 6, 0, 0]])
    assert min_ctc_length(targets, torch.tensor([3, 4, 1])).tolist() == [5, 6, 1]


def random_log_probs(b, t, v, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(b, t, v, generator=g), -1).requires_grad_()


def reference(log_probs, lengths, targets, target_lengths) -> torch.Tensor:
    return F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths, blank=BLANK, reduction="sum")


def test_utterance_that_cannot_fit_is_skipped_and_the_rest_counts():
    log_probs = random_log_probs(3, 5, 8)
    lengths = torch.tensor([5, 4, 5])
    targets = torch.tensor([[5, 5, 5], [5, 5, 5], [3, 4, 0]])
    target_lengths = torch.tensor([3, 3, 2])  # item 1 needs 5 frames, has 4
    out = CTCInterface.loss(log_probs, lengths, targets, target_lengths)
    assert out.skipped == 1
    assert out.tokens == 5
    assert torch.isfinite(out.total)
    keep = torch.tensor([0, 2])
    want = reference(log_probs[keep], lengths[keep], targets[keep], target_lengths[keep])
    torch.testing.assert_close(out.total, want)
    out.total.backward()
    assert log_probs.grad[1].abs().sum() == 0  # the skipped utterance has no influence
    assert log_probs.grad[0].abs().sum() > 0 and log_probs.grad[2].abs().sum() > 0


def test_target_exactly_fitting_with_repeats_is_kept():
    log_probs = random_log_probs(2, 5, 8, seed=1)
    targets = torch.tensor([[5, 5, 5], [1, 2, 3]])
    out = CTCInterface.loss(log_probs, torch.tensor([5, 3]), targets, torch.tensor([3, 3]))
    assert out.skipped == 0 and out.tokens == 6
    torch.testing.assert_close(out.total, reference(log_probs, torch.tensor([5, 3]), targets, torch.tensor([3, 3])))


def test_target_longer_than_output_is_skipped():
    log_probs = random_log_probs(2, 4, 8, seed=2)
    targets = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 0, 0, 0]])
    out = CTCInterface.loss(log_probs, torch.tensor([4, 4]), targets, torch.tensor([5, 2]))
    assert out.skipped == 1 and out.tokens == 2
    assert math.isfinite(out.total.item())


def test_all_skipped_gives_zero_finite_loss_with_a_graph():
    log_probs = random_log_probs(2, 3, 8, seed=3)
    out = CTCInterface.loss(log_probs, torch.tensor([3, 2]), torch.tensor([[5, 5, 5], [1, 2, 3]]), torch.tensor([3, 3]))
    assert out.skipped == 2 and out.tokens == 0
    assert out.total.item() == 0.0
    out.total.backward()  # a step on such a batch must not crash the training loop
    assert not log_probs.grad.any()


def test_skipped_counted_in_chain_term_report():
    """An encoder-only (CTC) chain: the term reports skips; its loss equals the fitting items' alone."""
    torch.manual_seed(0)
    chain = Chain.from_specs(
        [{"name": "enc", "type": "lego_encoder",
          "conf": {"input": {"type": "embedding", "vocab_size": 12}, "d_model": 16, "heads": 2, "d_ff": 32, "layers": 1,
                   "dropout": 0.0, "ctc_vocab_size": 9},
          "target": "tgt"}]
    ).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(3, 12, (3, 6), generator=g)
    lengths = torch.tensor([6, 4, 5])
    targets = torch.tensor([[3, 4, 5], [5, 5, 5], [6, 6, 0]])
    tgt_lengths = torch.tensor([3, 3, 2])  # item 1: [5,5,5] needs 5 frames, has 4
    loss = joint_loss(chain, x, lengths, {"tgt": (targets, tgt_lengths)})
    term = loss.terms["enc"]
    assert term.skipped == 1
    assert term.tokens == 5
    assert torch.isfinite(loss.total)
    keep = torch.tensor([0, 2])
    alone = joint_loss(chain, x[keep], lengths[keep], {"tgt": (targets[keep], tgt_lengths[keep])})
    assert alone.terms["enc"].skipped == 0
    torch.testing.assert_close(loss.total, alone.total, atol=1e-5, rtol=1e-5)
    # Per-token normalisation: total CTC over the 5 kept target tokens.
    out = chain.encode(x, lengths)[0]
    want = reference(out.log_probs[keep], out.lengths[keep], targets[keep], tgt_lengths[keep]) / 5
    torch.testing.assert_close(loss.total, want, atol=1e-5, rtol=1e-5)


def one_hot_log_probs(paths: list[list[int]], v: int = 6) -> torch.Tensor:
    t = max(len(p) for p in paths)
    lp = torch.full((len(paths), t, v), -10.0)
    for b, path in enumerate(paths):
        for i, s in enumerate(path):
            lp[b, i, s] = 0.0
    return lp


def test_greedy_decode_merges_repeats_and_drops_blanks():
    lp = one_hot_log_probs([[1, 1, 0, 1, 2, 2, 0, 0, 3], [0, 0, 4, 4, 4, 0, 5, 5, 5]])
    assert greedy_decode(lp, torch.tensor([9, 9])) == [[1, 1, 2, 3], [4, 5]]


def test_greedy_decode_respects_lengths():
    lp = one_hot_log_probs([[3, 3, 0, 4, 5, 5], [2, 0, 2, 2, 1, 1]])
    # Past its length, item 0's 5 5 and item 1's 1 1 are padding.
    assert greedy_decode(lp, torch.tensor([4, 4])) == [[3, 4], [2, 2]]
    assert greedy_decode(lp, torch.tensor([0, 1])) == [[], [2]]


def test_greedy_decode_all_blank():
    assert greedy_decode(one_hot_log_probs([[0, 0, 0]]), torch.tensor([3])) == [[]]
