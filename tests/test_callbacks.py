"""Training callbacks (legonn/engine/callbacks.py): hooks chosen from YAML by name, their order,
and their state in the checkpoint: an interrupted and resumed run with a stateful callback ends
exactly as an uninterrupted one."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from fixtures import corpus, read_scalars, resolved, single_thread, state_equal  # noqa: F401  (fixtures)
from legonn.engine.callbacks import Callback
from legonn.engine.checkpoint import INDEX, LAST, load
from legonn.engine.trainer import train
from legonn.errors import LegonnError
from legonn.registry import CALLBACKS

pytestmark = pytest.mark.usefixtures("single_thread")


@CALLBACKS.register("test_random_dropout")
class RandomDropout(Callback):
    """Before every update, the decoder's dropout probability drawn from this callback's own RNG."""

    def __init__(self, seed: int = 0, high: float = 0.5):
        self.generator = torch.Generator().manual_seed(seed)
        self.high, self.updates = high, 0

    def on_step_start(self, trainer):
        p = float(torch.rand((), generator=self.generator)) * self.high
        for module in trainer.model.blocks["decoder"].modules():
            if isinstance(module, nn.Dropout):
                module.p = p
        self.updates += 1

    def state_dict(self):
        return {"generator": self.generator.get_state(), "updates": self.updates}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
        self.updates = state["updates"]


EVENTS: list[str] = []


@CALLBACKS.register("test_recorder")
class Recorder(Callback):
    """Records the hooks it sees; asks to stop after ``stop_after`` updates."""

    def __init__(self, stop_after: int = 0):
        self.stop_after = stop_after

    def on_train_start(self, trainer):
        EVENTS.append("train_start")

    def on_step_start(self, trainer):
        EVENTS.append(f"step_start {trainer.step}")

    def on_step_end(self, trainer, loss):
        EVENTS.append(f"step_end {trainer.step} {sorted(loss.terms)}")
        trainer.should_stop = trainer.step == self.stop_after

    def on_validation_end(self, trainer, metrics):
        EVENTS.append(f"validation {trainer.step} {'loss' in metrics}")

    def on_train_end(self, trainer):
        EVENTS.append("train_end")


def _config(corpus, tmp_path, callbacks, **trainer):
    return resolved(corpus, tmp_path, dropout=0.1, edit={
        "trainer": {"max_steps": 6, "valid_every_steps": 2, "keep_best": 10, "log_every_steps": 1, "callbacks": callbacks, **trainer},
    })


def _scalars(exp_dir):
    return {tag: read_scalars(exp_dir, tag) for tag in ("train/loss", "train/encoder_loss", "train/decoder_loss", "valid/loss")}


def test_a_stateful_callback_resumes_exactly(corpus, tmp_path):
    config = _config(corpus, tmp_path, [{"type": "test_random_dropout", "conf": {"seed": 3}}])
    a, b = tmp_path / "a", tmp_path / "b"
    train(config, a)
    train(config, b, stop_at_step=3)
    assert load(b / "checkpoints" / LAST)["callbacks"][0][0]["updates"] == 3
    train(config, b)
    final_a, final_b = load(a / "checkpoints" / LAST), load(b / "checkpoints" / LAST)
    assert state_equal(final_a["model"], final_b["model"]) == []
    [[state_a]], [[state_b]] = final_a["callbacks"], final_b["callbacks"]  # one rank, one callback
    assert state_a["updates"] == state_b["updates"] == 6
    assert torch.equal(state_a["generator"], state_b["generator"])
    assert _scalars(a) == _scalars(b)  # every logged loss (logged every update), bit for bit
    assert json.loads((a / "checkpoints" / INDEX).read_text()) == json.loads((b / "checkpoints" / INDEX).read_text())


def test_without_the_callback_state_the_resumed_run_would_differ(corpus, tmp_path, monkeypatch):
    config = _config(corpus, tmp_path, [{"type": "test_random_dropout", "conf": {"seed": 3}}])
    train(config, tmp_path / "a")
    train(config, tmp_path / "b", stop_at_step=3)
    monkeypatch.setattr(RandomDropout, "load_state_dict", lambda self, state: None)
    train(config, tmp_path / "b")
    assert state_equal(load(tmp_path / "a" / "checkpoints" / LAST)["model"], load(tmp_path / "b" / "checkpoints" / LAST)["model"]) != []


def test_the_callback_changes_training(corpus, tmp_path):
    train(_config(corpus, tmp_path, []), tmp_path / "plain")
    train(_config(corpus, tmp_path, [{"type": "test_random_dropout"}]), tmp_path / "random")
    plain, random = (read_scalars(tmp_path / n, "train/decoder_loss") for n in ("plain", "random"))
    assert plain[0] != random[0]


def test_hook_order_with_accumulation_and_a_requested_stop(corpus, tmp_path):
    EVENTS.clear()
    config = _config(corpus, tmp_path, [{"type": "test_recorder", "conf": {"stop_after": 3}}])
    config["optim"]["accum_grad"] = 2
    progress = train(config, tmp_path / "exp")
    assert progress["step"] == 3
    terms = "['decoder', 'encoder']"
    assert EVENTS == [
        "train_start",
        "step_start 0", f"step_end 1 {terms}",  # one on_step_start per update, not per batch
        "step_start 1", f"step_end 2 {terms}", "validation 2 True",
        "step_start 2", f"step_end 3 {terms}",
        "validation 3 True",  # the final validation of a run that ends between two
        "train_end",
    ]


def test_callback_config_errors(corpus, tmp_path):
    with pytest.raises(LegonnError, match=r"unknown callback type 'test_recordr' \(known: .*test_recorder.*\); did you mean 'test_recorder'"):
        train(_config(corpus, tmp_path, [{"type": "test_recordr"}]), tmp_path / "exp")
    with pytest.raises(LegonnError, match=r"trainer.callbacks: expected a list of \{type: name, conf: \{...\}\}"):
        train(_config(corpus, tmp_path, ["test_recorder"]), tmp_path / "exp")
    with pytest.raises(LegonnError, match=r"trainer.callbacks: unknown key\(s\) cnf"):
        train(_config(corpus, tmp_path, [{"type": "test_recorder", "cnf": {}}]), tmp_path / "exp")
    with pytest.raises(LegonnError, match=r"callback 'test_recorder' has no argument\(s\) stop \(allowed: stop_after\)"):
        train(_config(corpus, tmp_path, [{"type": "test_recorder", "conf": {"stop": 1}}]), tmp_path / "exp")
    assert not (tmp_path / "exp" / "config.yaml").exists()
