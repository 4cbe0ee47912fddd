"""Training criteria (legonn/engine/criteria.py): the default legonn_joint criterion computes
today's paper Eq. 9 bit for bit, the model hands a criterion every module's output, and a
criterion registered by name is chosen from the YAML ``criterion:`` section."""
from __future__ import annotations

import pytest
import torch

from fixtures import corpus, joint_loss, read_scalars, resolved, single_thread  # noqa: F401  (fixtures)
from legonn.config import resolve
from legonn.data.batching import Batch
from legonn.engine.checkpoint import LAST, load
from legonn.engine.criteria import Criterion, JointLoss, build_criterion
from legonn.engine.trainer import train
from legonn.errors import LegonnError
from legonn.nn.chain import decoder_io
from legonn.nn.ctc import CTCInterface
from legonn.nn.loss import label_smoothed_ce
from legonn.registry import CRITERIA
from test_joint_loss import one_batch, three_module_chain


def eq9_as_before(chain, x, lengths, targets, smoothing):
    """The loss exactly as Chain.forward computed it before criteria existed (same ops, same order)."""
    outputs = chain.encode(x, lengths)
    total = x.new_zeros((), dtype=torch.float32)
    terms = {}
    for spec, out in zip(chain.specs, outputs):
        if spec.target is None or spec.loss_weight == 0 or out.log_probs is None:
            continue
        ctc = CTCInterface.loss(out.log_probs, out.lengths, *targets[spec.target])
        terms[spec.name] = ctc.total / max(ctc.tokens, 1)
        total = total + spec.loss_weight * terms[spec.name]
    spec = chain.specs[-1]
    prev, gold = decoder_io(*targets[spec.target])
    ce = label_smoothed_ce(chain.decoder(outputs[-1], prev), gold, smoothing)
    terms[spec.name] = ce.total / max(ce.tokens, 1)
    return total + spec.loss_weight * terms[spec.name], terms


@pytest.mark.parametrize("smoothing,weights", [(0.1, (1.0, 1.0, 1.0)), (0.0, (0.3, 0.0, 0.7))])
def test_legonn_joint_is_bit_identical_to_the_old_chain_loss(smoothing, weights):
    torch.manual_seed(0)
    chain = three_module_chain().eval()
    for spec, weight in zip(chain.specs, weights):
        spec.loss_weight = weight
    x, lengths, targets = one_batch()
    want_total, want_terms = eq9_as_before(chain, x, lengths, targets, smoothing)
    want_total.backward()
    want_grads = {n: p.grad.clone() for n, p in chain.named_parameters() if p.grad is not None}
    chain.zero_grad(set_to_none=True)

    got = joint_loss(chain, x, lengths, targets, smoothing)
    got.total.backward()
    assert torch.equal(got.total, want_total)
    assert set(got.terms) == set(want_terms)
    for name, term in got.terms.items():
        assert torch.equal(term.loss, want_terms[name]), name
    assert {n: t.weight for n, t in got.terms.items()} == {s.name: w for s, w in zip(chain.specs, weights) if s.name in got.terms}
    grads = {n: p.grad for n, p in chain.named_parameters() if p.grad is not None}
    assert grads.keys() == want_grads.keys()
    assert [n for n in grads if not torch.equal(grads[n], want_grads[n])] == []


def test_the_chain_returns_every_modules_output_and_the_decoder_logits():
    torch.manual_seed(0)
    chain = three_module_chain().eval()
    x, lengths, targets = one_batch()
    out = chain(x, lengths, targets)
    assert len(out.outputs) == len(chain.specs) == 3
    phones, pron, dec = out.outputs
    assert phones.log_probs.shape[-1] == 10 and pron.log_probs.shape[-1] == 9
    assert dec.log_probs is None and dec.hidden.shape == (2, 4, 32)  # U + 1 decoder states
    assert torch.equal(dec.lengths, targets["text"][1] + 1)
    assert out.logits.shape == (2, 4, 8)
    assert torch.equal(out.gold, decoder_io(*targets["text"])[1])
    assert torch.equal(out.logits, chain.decoder(out.outputs[1], decoder_io(*targets["text"])[0]))


def test_label_smoothing_defaults_to_the_optim_key(corpus, tmp_path):
    from legonn.engine.experiment import build_experiment

    config = resolved(corpus, tmp_path, ["--optim.label_smoothing", "0.2"])
    chain = build_experiment(config).model
    assert build_criterion(config, chain).label_smoothing == 0.2
    config["criterion"]["conf"] = {"label_smoothing": 0.05}
    assert build_criterion(config, chain).label_smoothing == 0.05


# --- a criterion registered by a test ---------------------------------------------------


@CRITERIA.register("test_scaled_joint")
class ScaledJoint(Criterion):
    """Eq. 9 times ``scale``, counting its training calls in a buffer (state saved in checkpoints)."""

    def __init__(self, chain, scale: float = 1.0):
        super().__init__(chain)
        self.joint = JointLoss(chain, label_smoothing=0.1)
        self.scale = scale
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, batch: Batch, output):
        report = self.joint(batch, output)
        if self.training:
            self.calls += 1
        report.total = report.total * self.scale
        return report


def _config(corpus, tmp_path, criterion=None):
    edit = {"trainer": {"max_steps": 3, "valid_every_steps": 3, "log_every_steps": 1}}
    if criterion is not None:
        edit["criterion"] = criterion
    return resolved(corpus, tmp_path, edit=edit)


@pytest.mark.usefixtures("single_thread")
def test_a_registered_criterion_is_chosen_from_yaml(corpus, tmp_path):
    train(_config(corpus, tmp_path), tmp_path / "joint")
    train(_config(corpus, tmp_path, {"type": "test_scaled_joint", "conf": {"scale": 2.0}}), tmp_path / "scaled")
    joint, scaled = (read_scalars(tmp_path / name, "train/loss") for name in ("joint", "scaled"))
    assert [s for s, _ in joint] == [s for s, _ in scaled] == [1, 2, 3]
    assert scaled[0][1] == 2.0 * joint[0][1]  # same weights, same batch: exactly twice the loss
    # the per-term logs are the unscaled terms; the criterion's state travels in the checkpoint
    assert read_scalars(tmp_path / "scaled", "train/decoder_loss")[0] == read_scalars(tmp_path / "joint", "train/decoder_loss")[0]
    assert int(load(tmp_path / "scaled" / "checkpoints" / LAST)["criterion"]["calls"]) == 3  # one batch per update


def test_an_unknown_criterion_is_one_line_listing_the_known_ones(corpus, tmp_path):
    config = _config(corpus, tmp_path, {"type": "legonn_jiont"})
    with pytest.raises(LegonnError) as err:
        train(config, tmp_path / "exp")
    msg = str(err.value)
    assert "\n" not in msg
    assert "unknown criterion type 'legonn_jiont'" in msg and "legonn_joint" in msg and "test_scaled_joint" in msg
    assert not (tmp_path / "exp" / "config.yaml").exists()  # a failed start does not lock exp_dir
    with pytest.raises(LegonnError, match=r"criterion 'legonn_joint' has no argument\(s\) smoothing \(allowed: label_smoothing\)"):
        train(_config(corpus, tmp_path, {"conf": {"smoothing": 0.1}}), tmp_path / "exp")


def test_the_criterion_section_is_checked_like_any_other(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("criterion: {typ: legonn_joint}\n")
    with pytest.raises(LegonnError, match=r"unknown config key 'criterion.typ'; did you mean 'type'"):
        resolve(path)
