"""Tests of checkpoints (legonn/engine/checkpoint.py): exact resumption of an interrupted run,
keep-best-N bookkeeping, ``legonn average`` and safe loading."""
from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch
import yaml

from fixtures import corpus, resolved, single_thread, state_equal, trained  # noqa: F401  (fixtures)
from legonn import cli
from legonn.engine.checkpoint import INDEX, LAST, CheckpointKeeper, average, load, save_atomic, select
from legonn.errors import LegonnError
from legonn.engine.trainer import train

pytestmark = pytest.mark.usefixtures("single_thread")


# --- resumption --------------------------------------------------------------------------

# An epoch of the corpus is 5 batches: 5 updates, or 3 with accum_grad 2 (the last one of 1 batch).


def _resume_config(corpus, tmp_path, accum, valid_every, max_steps):
    return resolved(corpus, tmp_path, dropout=0.1, edit={
        "optim": {"accum_grad": accum},
        "trainer": {"max_steps": max_steps, "valid_every_steps": valid_every, "keep_best": 10, "log_every_steps": 2},
    })


def _final(exp_dir):
    return load(exp_dir / "checkpoints" / LAST)


@pytest.mark.parametrize(
    "accum,valid_every,k",
    [
        (1, 2, 6),  # interrupted at step 3 (epoch 1) between two validations; ends in epoch 2
        (2, 3, 8),  # 2 batches per update: interrupted at step 4, mid-epoch 2; ends in epoch 3
        (1, 3, 6),  # interrupted right after the validation of step 3
    ],
)
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(corpus, tmp_path, accum, valid_every, k):
    config = _resume_config(corpus, tmp_path, accum, valid_every, k)
    a, b = tmp_path / "a", tmp_path / "b"
    progress_a = train(config, a)
    assert progress_a["step"] == k

    stopped = train(config, b, stop_at_step=k // 2)
    assert stopped["step"] == k // 2
    assert _final(b)["progress"]["step"] == k // 2
    assert stopped["epoch"] < progress_a["epoch"]  # the run is resumed in another epoch than it ends in
    progress_b = train(config, b)
    assert progress_b == progress_a
    assert "resumed from" in (b / "train.log").read_text()

    final_a, final_b = _final(a), _final(b)
    assert state_equal(final_a["model"], final_b["model"]) == []
    assert final_a["progress"] == final_b["progress"]
    # the optimiser moments too
    moments_a = final_a["optimizer"]["state"]
    moments_b = final_b["optimizer"]["state"]
    assert moments_a.keys() == moments_b.keys()
    for key in moments_a:
        assert state_equal(moments_a[key], moments_b[key]) == []
    # the same validations, kept under the same names
    index_a = json.loads((a / "checkpoints" / INDEX).read_text())
    index_b = json.loads((b / "checkpoints" / INDEX).read_text())
    assert [e["step"] for e in index_a] == [e["step"] for e in index_b]
    assert index_a == index_b
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == sorted(p.name for p in (b / "checkpoints").iterdir())


def test_without_the_rng_state_the_resumed_run_would_differ(corpus, tmp_path, monkeypatch):
    """The dropout RNG matters: the equality above is not a coincidence."""
    import legonn.engine.trainer

    config = _resume_config(corpus, tmp_path, 1, 2, 6)
    train(config, tmp_path / "a")
    train(config, tmp_path / "b", stop_at_step=3)
    monkeypatch.setattr(legonn.engine.trainer, "set_rng_state", lambda state: None)
    train(config, tmp_path / "b")
    assert state_equal(_final(tmp_path / "a")["model"], _final(tmp_path / "b")["model"]) != []


def test_an_experiment_from_before_the_new_config_keys_resumes(corpus, tmp_path):
    """config.yaml and checkpoints written before criterion, trainer.precision, trainer.callbacks,
    batching.num_workers existed: the run resumes (missing keys are their defaults) as before."""
    config = _resume_config(corpus, tmp_path, 1, 2, 6)
    train(config, tmp_path / "a")
    b = tmp_path / "b"
    train(config, b, stop_at_step=3)
    old = copy.deepcopy(config)
    del old["criterion"], old["trainer"]["precision"], old["trainer"]["callbacks"], old["batching"]["num_workers"]
    (b / "config.yaml").write_text(yaml.safe_dump(old))
    state = _final(b)
    for key in ("criterion", "scaler", "callbacks"):
        del state[key]
    save_atomic(state, b / "checkpoints" / LAST)
    train(config, b)
    assert state_equal(_final(tmp_path / "a")["model"], _final(b)["model"]) == []
    assert yaml.safe_load((b / "config.yaml").read_text()) == old  # not rewritten


# --- keep-best-N bookkeeping --------------------------------------------------------------


def test_keeper_keeps_the_best_n_and_the_last(tmp_path):
    keeper = CheckpointKeeper(tmp_path, 2, "loss")
    for step, loss in [(1, 5.0), (2, 3.0), (3, 4.0), (4, 6.0)]:
        keeper.save({"model": {"w": torch.full((2,), float(step))}}, step, {"loss": loss})
    assert sorted(e["step"] for e in keeper.entries) == [2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint_step2.pt", "checkpoint_step3.pt", LAST, INDEX])
    assert torch.equal(load(tmp_path / LAST)["model"]["w"], torch.full((2,), 4.0))
    assert keeper.best()["step"] == 2
    # the index survives a restart
    assert CheckpointKeeper(tmp_path, 2, "loss").entries == keeper.entries


def test_keeper_also_keeps_the_latest_n_for_averaging_the_last(tmp_path):
    keeper = CheckpointKeeper(tmp_path, 1, "loss", keep_last=2)
    for step, loss in [(1, 5.0), (2, 3.0), (3, 4.0), (4, 6.0), (5, 7.0)]:
        keeper.save({"model": {"w": torch.full((2,), float(step))}}, step, {"loss": loss})
    assert sorted(e["step"] for e in keeper.entries) == [2, 4, 5]
    assert [p.name for p in select(tmp_path, 2, "last")] == ["checkpoint_step5.pt", "checkpoint_step4.pt"]
    assert [p.name for p in select(tmp_path, 1, "best", "loss")] == ["checkpoint_step2.pt"]


def test_keeper_accuracy_is_higher_is_better(tmp_path):
    keeper = CheckpointKeeper(tmp_path, 1, "acc")
    for step, acc in [(1, 0.5), (2, 0.9), (3, 0.7)]:
        keeper.save({"model": {}}, step, {"acc": acc, "loss": 1.0})
    assert [e["step"] for e in keeper.entries] == [2]


# --- legonn average ---------------------------------------------------------------------------

STEPS = {10: 3.0, 20: 1.0, 30: 2.0, 40: 4.0}  # step -> validation loss: best are 20, 30; last are 40, 30


@pytest.fixture
def fake_exp(tmp_path):
    """An experiment directory with four hand-made checkpoints."""
    exp = tmp_path / "exp"
    ckpt = exp / "checkpoints"
    ckpt.mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump({"trainer": {"best_metric": "loss"}}))
    gen = torch.Generator().manual_seed(0)
    entries, states = [], {}
    for step, loss in STEPS.items():
        states[step] = {
            "w": torch.randn(3, 4, generator=gen),
            "b": torch.randn(4, generator=gen).half(),
            "count": torch.tensor([step], dtype=torch.long),
        }
        save_atomic({"model": states[step], "progress": {"step": step}}, ckpt / f"checkpoint_step{step}.pt")
        entries.append({"file": f"checkpoint_step{step}.pt", "step": step, "metrics": {"loss": loss, "acc": 1 / loss}})
    (ckpt / INDEX).write_text(json.dumps(entries))
    return exp, states


def manual_mean(states):
    mean = {}
    for key in states[0]:
        if states[0][key].is_floating_point():
            mean[key] = (sum(s[key].double() for s in states) / len(states)).float()
    return mean


@pytest.mark.parametrize("mode,chosen", [("last", [40, 30]), ("best", [20, 30])])
def test_average_cli_is_the_mean_of_the_chosen_checkpoints(fake_exp, capsys, mode, chosen):
    exp, states = fake_exp
    assert cli.main(["average", "--exp_dir", str(exp), "--mode", mode, "--num", "2"]) == 0
    out = capsys.readouterr().out
    averaged = load(exp / f"averaged_{mode}2.pt")
    assert sorted(averaged["averaged_from"]) == sorted(f"checkpoint_step{s}.pt" for s in chosen)
    assert all(f"checkpoint_step{s}.pt" in out for s in chosen)
    expected = manual_mean([states[s] for s in chosen])
    for key, value in expected.items():
        assert averaged["model"][key].dtype == torch.float32
        assert torch.equal(averaged["model"][key], value), key
    assert torch.allclose(averaged["model"]["w"], (states[chosen[0]]["w"] + states[chosen[1]]["w"]) / 2)
    # integer buffers are copied, not averaged
    assert averaged["model"]["count"].dtype == torch.long


def test_average_best_by_another_metric(fake_exp):
    exp, _ = fake_exp
    paths = select(exp / "checkpoints", 2, "best", "acc")  # higher is better: 1/loss -> steps 20, 30
    assert [p.name for p in paths] == ["checkpoint_step20.pt", "checkpoint_step30.pt"]
    with pytest.raises(LegonnError, match="no checkpoint has metric 'bleu'"):
        select(exp / "checkpoints", 2, "best", "bleu")


@pytest.mark.parametrize("mode", ["last", "best"])
def test_average_more_than_kept_is_a_one_line_error(fake_exp, capsys, mode):
    exp, _ = fake_exp
    assert cli.main(["average", "--exp_dir", str(exp), "--mode", mode, "--num", "5"]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("legonn average: error: ")
    assert "asked to average 5 checkpoints, only 4 are kept" in lines[0]
    assert not list(exp.glob("averaged_*"))


def test_average_of_a_trained_experiment(trained, tmp_path, capsys):
    exp_dir, config = trained
    out = tmp_path / "avg.pt"
    assert cli.main(["average", "--exp_dir", str(exp_dir), "--mode", "last", "--num", "2", "--out", str(out)]) == 0
    entries = json.loads((exp_dir / "checkpoints" / INDEX).read_text())
    latest = sorted(entries, key=lambda e: e["step"])[-2:]
    states = [load(exp_dir / "checkpoints" / e["file"])["model"] for e in latest]
    averaged = load(out)["model"]
    assert averaged.keys() == states[0].keys()
    for key, value in manual_mean(states).items():
        assert torch.equal(averaged[key], value), key
    assert average([exp_dir / "checkpoints" / e["file"] for e in latest]).keys() == averaged.keys()
    # the averaged file decodes like any checkpoint of the experiment
    from legonn.engine.experiment import load_trained

    assert load_trained(exp_dir, out).checkpoint == out


def test_average_outside_an_experiment(tmp_path, capsys):
    assert cli.main(["average", "--exp_dir", str(tmp_path), "--num", "2"]) == 1
    assert "no config.yaml" in capsys.readouterr().err


# --- loading is weights_only ---------------------------------------------------------------


class Payload:
    """Unpickling this would call os.system: a checkpoint must never run code."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


class Custom:
    def __init__(self):
        self.x = 1


@pytest.mark.parametrize("obj", [Payload(), Custom()], ids=["reduce", "custom_class"])
def test_load_refuses_pickled_objects(tmp_path, obj):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": obj}, path)
    with pytest.raises(LegonnError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: cannot read checkpoint")
    assert "\n" not in str(err.value)


def test_load_plain_checkpoint_and_missing_file(tmp_path):
    path = tmp_path / "ok.pt"
    save_atomic({"model": {"w": torch.ones(2)}, "progress": {"step": 3}, "metrics": {"loss": 1.5}, "rng": [{"python": (3, (1, 2), None)}]}, path)
    state = load(path)
    assert torch.equal(state["model"]["w"], torch.ones(2)) and state["progress"] == {"step": 3}
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(LegonnError, match="checkpoint not found"):
        load(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(pickle.dumps([1, 2], protocol=2) + b"junk")
    with pytest.raises(LegonnError, match="cannot read checkpoint"):
        load(garbage)


def test_trained_checkpoints_load_weights_only(trained):
    """Everything train() saves (model, optimiser, scheduler, RNG states, progress) passes weights_only."""
    exp_dir, _ = trained
    state = load(exp_dir / "checkpoints" / LAST)
    assert {"model", "optimizer", "scheduler", "rng", "progress", "metrics"} <= set(state)
    assert isinstance(state["rng"][0]["python"], tuple)
