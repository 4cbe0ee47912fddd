"""Label-smoothed cross-entropy of the final decoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from legonn.nn.loss import IGNORE, label_smoothed_ce


def example(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 5, 11, generator=g) * 2
    gold = torch.randint(0, 11, (3, 5), generator=g)
    gold[0, 4] = IGNORE
    gold[1, 2:] = IGNORE
    gold[2, :] = IGNORE
    return logits, gold


def test_no_smoothing_equals_cross_entropy_sum():
    logits, gold = example()
    out = label_smoothed_ce(logits, gold, 0.0)
    want = F.cross_entropy(logits.reshape(-1, 11), gold.reshape(-1), ignore_index=IGNORE, reduction="sum")
    torch.testing.assert_close(out.total, want)
    torch.testing.assert_close(out.nll, want)
    assert out.tokens == 4 + 2 + 0


def test_smoothing_formula():
    logits, gold = example(1)
    eps = 0.1
    out = label_smoothed_ce(logits, gold, eps)
    real = gold != IGNORE
    lp = F.log_softmax(logits, -1)[real]
    g = gold[real]
    nll = -lp.gather(1, g.unsqueeze(1)).squeeze(1)
    want = ((1 - eps) * nll - eps * lp.mean(-1)).sum()
    torch.testing.assert_close(out.total, want)
    torch.testing.assert_close(out.nll, nll.sum())
    # Equals torch's own label smoothing (which also spreads eps uniformly over all V classes).
    ref = F.cross_entropy(logits.reshape(-1, 11), gold.reshape(-1), ignore_index=IGNORE, reduction="sum", label_smoothing=eps)
    torch.testing.assert_close(out.total, ref)


def test_correct_counts_only_real_tokens():
    logits = torch.full((1, 4, 5), -5.0)
    for t, k in enumerate([1, 2, 3, 4]):
        logits[0, t, k] = 5.0
    gold = torch.tensor([[1, 0, 3, IGNORE]])  # positions 0 and 2 right, 1 wrong, 3 ignored (argmax 4)
    out = label_smoothed_ce(logits, gold, 0.1)
    assert out.correct == 2 and out.tokens == 3


def test_gradient_only_from_real_tokens():
    logits, gold = example(2)
    logits.requires_grad_()
    label_smoothed_ce(logits, gold, 0.1).total.backward()
    assert not logits.grad[2].any()  # every position of row 2 is ignored
    assert not logits.grad[1, 2:].any()
    assert logits.grad[0, :4].abs().sum() > 0


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_all_ignored_is_zero(eps):
    out = label_smoothed_ce(torch.randn(2, 3, 5), torch.full((2, 3), IGNORE), eps)
    assert out.tokens == 0 and out.correct == 0 and out.total.item() == 0.0
