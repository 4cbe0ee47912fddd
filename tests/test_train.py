"""Tests of ``legonn train`` (legonn/engine/trainer.py, legonn/engine/experiment.py, legonn/engine/scheduler.py) on a
synthetic word-for-word translation corpus: the experiment directory, keep-best-N, re-runs,
multi-process training, freezing and initialising modules, learning-rate schedules."""
from __future__ import annotations

import copy
import importlib.util
import json
import logging
import math
import re
import subprocess
import sys

import pytest
import torch
import yaml

from fixtures import (  # noqa: F401  (corpus and trained are fixtures)
    ROOT,
    SHARED_EPOCHS,
    base_config,
    corpus,
    make_corpus,
    LEXICON,
    free_port,
    read_scalars,
    resolved,
    single_thread,
    state_equal,
    subprocess_env,
    trained,
    write_config,
)
from legonn.engine.checkpoint import INDEX, LAST, load
from legonn.config import resolve
from legonn.data.batching import make_batches, shard
from legonn.errors import LegonnError
from legonn.engine.experiment import build_experiment
from legonn.engine.scheduler import build_scheduler
from legonn.engine.trainer import train


pytestmark = pytest.mark.usefixtures("single_thread")


def snapshot(exp_dir, skip=("train.log",)):
    """Every file under exp_dir -> (size, mtime_ns)."""
    return {
        str(p.relative_to(exp_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(exp_dir.rglob("*"))
        if p.is_file() and p.name not in skip
    }


# --- the trained experiment ------------------------------------------------------


def test_validation_loss_drops(trained):
    exp_dir, _ = trained
    losses = read_scalars(exp_dir, "valid/loss")
    assert len(losses) == SHARED_EPOCHS  # validation once an epoch
    first, last = losses[0][1], losses[-1][1]
    assert last < 0.7 * first, losses
    # the decoder learns something: token accuracy well above chance (1/15)
    acc = read_scalars(exp_dir, "valid/acc")
    assert acc[-1][1] > acc[0][1]
    # train.log carries the same validations
    log = (exp_dir / "train.log").read_text()
    assert log.count("validation at step") == SHARED_EPOCHS
    assert "finished at step" in log


def test_experiment_directory_layout(trained):
    exp_dir, config = trained
    assert yaml.safe_load((exp_dir / "config.yaml").read_text()) == config
    assert (exp_dir / "train.log").stat().st_size > 0
    events = list((exp_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    assert read_scalars(exp_dir, "train/loss"), "training loss is logged every log_every_steps"
    assert (exp_dir / "checkpoints" / INDEX).is_file()
    assert (exp_dir / "checkpoints" / LAST).is_file()
    assert not list(exp_dir.rglob(".*.tmp")), "no temporary files are left behind"


def test_resolved_config_and_training_lengths(trained):
    """resolved.yaml: config.yaml with the data's sizes filled in; train_lengths.npz: what
    ``legonn export`` measures over the training set, without re-reading it."""
    import numpy as np

    from legonn.config import fill_placeholders
    from legonn.engine.experiment import LENGTHS as TRAIN_LENGTHS
    from legonn.engine.experiment import RESOLVED, open_dataset, stream_sizes
    from legonn.modules.export import length_stats

    exp_dir, config = trained
    train_set = open_dataset(config, "train")
    resolved_config = yaml.safe_load((exp_dir / RESOLVED).read_text())
    assert resolved_config == {**config, "model": fill_placeholders(config["model"], stream_sizes(train_set))}
    assert resolved_config["model"][0]["conf"]["input"]["vocab_size"] == 15
    assert "vocab:en" not in (exp_dir / RESOLVED).read_text()
    with np.load(exp_dir / TRAIN_LENGTHS) as lengths:
        assert sorted(lengths.files) == ["input", "target.en", "utts"]
        assert lengths["input"].dtype == lengths["target.en"].dtype == np.int64
        assert lengths["utts"].tolist() == train_set.utts
        assert np.array_equal(lengths["input"], train_set.input_lengths)
        en = np.array([train_set.targets["en"].lengths[u] for u in train_set.utts])
        assert length_stats(lengths["target.en"]) == length_stats(en)


def test_keep_best_n(trained):
    exp_dir, config = trained
    keep = config["trainer"]["keep_best"]
    ckpt_dir = exp_dir / "checkpoints"
    entries = json.loads((ckpt_dir / INDEX).read_text())
    assert len(entries) == keep == 3
    files = {p.name for p in ckpt_dir.iterdir()}
    assert files == {e["file"] for e in entries} | {LAST, INDEX}
    # the kept ones are the N lowest validation losses among all validations
    losses = read_scalars(exp_dir, "valid/loss")
    best_steps = sorted(step for step, _ in sorted(losses, key=lambda sv: sv[1])[:keep])
    assert sorted(e["step"] for e in entries) == best_steps
    for e in entries:
        assert e["file"] == f"checkpoint_step{e['step']}.pt"
        assert e["metrics"]["loss"] == pytest.approx(dict(losses)[e["step"]], rel=1e-5)
        assert load(ckpt_dir / e["file"])["progress"]["step"] == e["step"]
    # checkpoint_last.pt is the final state
    last = load(ckpt_dir / LAST)
    assert last["progress"]["step"] == losses[-1][0]
    assert last["progress"]["epoch"] == SHARED_EPOCHS


def test_rerun_of_a_finished_experiment_is_a_no_op(trained):
    exp_dir, config = trained
    before = snapshot(exp_dir)
    log_before = (exp_dir / "train.log").read_text()
    progress = train(config, exp_dir)
    assert progress["epoch"] == SHARED_EPOCHS
    assert snapshot(exp_dir) == before
    added = (exp_dir / "train.log").read_text()[len(log_before):]
    assert "already finished" in added
    assert "validation at step" not in added


def test_rerun_with_another_config_is_refused(trained):
    exp_dir, config = trained
    before = snapshot(exp_dir)
    other = copy.deepcopy(config)
    other["optim"]["lr"] = 0.01
    other["model"][0]["conf"]["d_model"] = 16
    with pytest.raises(LegonnError) as err:
        train(other, exp_dir)
    msg = str(err.value)
    assert "another config (model.encoder.conf.d_model: 32 -> 16; optim.lr: 0.003 -> 0.01)" in msg
    assert str(exp_dir / "config.yaml") in msg and len(msg) < 400  # the changed keys, not the configs
    assert snapshot(exp_dir) == before


def test_a_finished_experiment_continues_with_a_larger_step_budget(corpus, tmp_path):
    """Raising trainer.max_steps resumes from the last checkpoint instead of being refused."""
    config = resolved(corpus, tmp_path, edit={"trainer": {"max_steps": 3, "valid_every_steps": 3}})
    exp_dir = tmp_path / "exp"
    assert train(config, exp_dir)["step"] == 3
    longer = copy.deepcopy(config)
    longer["trainer"]["max_steps"] = 6
    assert train(longer, exp_dir)["step"] == 6
    log = (exp_dir / "train.log").read_text()
    assert "resumed from" in log and "trainer.max_steps: 3 -> 6" in log
    assert yaml.safe_load((exp_dir / "config.yaml").read_text())["trainer"]["max_steps"] == 6
    steps = [e["step"] for e in json.loads((exp_dir / "checkpoints" / "checkpoints.json").read_text())]
    assert 6 in steps


def test_logs_of_one_experiment_stay_in_its_train_log(corpus, tmp_path):
    """train() called twice in one process must not write the second run's log into the first's train.log."""
    config = resolved(corpus, tmp_path, edit={"trainer": {"max_steps": 1, "valid_every_steps": 1}})
    train(config, tmp_path / "one")
    train(config, tmp_path / "two")
    for name in ("one", "two"):
        log = (tmp_path / name / "train.log").read_text()
        assert log.count("model: encoder -> decoder") == 1, log
        assert log.count("finished at step 1") == 1, log


def test_a_failed_start_does_not_lock_the_experiment_directory(corpus, tmp_path):
    """A typo'd data dir stops training before it starts; the corrected re-run must not be refused."""
    good = resolved(corpus, tmp_path, edit={"trainer": {"max_steps": 1, "valid_every_steps": 1}})
    bad = copy.deepcopy(good)
    bad["data"]["train"] = str(corpus / "trian")
    with pytest.raises(LegonnError, match="data directory not found"):
        train(bad, tmp_path / "exp")
    progress = train(good, tmp_path / "exp")
    assert progress["step"] == 1
    assert yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text()) == good


def test_ctc_skips_are_counted_and_logged_once_per_validation(tmp_path, caplog):
    """Targets 3x their source cannot fit the encoder's OLC output (factor 2): the CTC term leaves
    them out, and training reports how many once per validation (validation its own), never per batch."""
    data = make_corpus(tmp_path / "data", n_train=40, n_valid=10, seed=1)
    long_ids = set()
    for split, every in (("train", 4), ("valid", 3)):  # 10 of 40 training, 4 of 10 validation utterances
        de = (data / split / "text.de").read_text().splitlines()
        en = []
        for i, line in enumerate(de):
            utt, *words = line.split()
            if i % every == 0:
                long_ids.add(utt)
                en.append(" ".join([utt] + [t for w in words for t in (LEXICON[w], "bird", "tree")]))
            else:
                en.append(" ".join([utt] + [LEXICON[w] for w in words]))
        (data / split / "text.en").write_text("\n".join(en) + "\n", encoding="utf-8")
    config = resolved(data, tmp_path, edit={"batching": {"max_tokens": 60},
                                            "trainer": {"max_epochs": 2, "valid_every_steps": 0, "log_every_steps": 1}})
    caplog.set_level(logging.INFO, logger="legonn")
    steps = train(config, tmp_path / "exp")["step"]
    assert steps >= 6 and len(long_ids) == 14  # several batches an epoch
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("legonn")]
    assert not any(r.name == "legonn.nn.ctc" for r in caplog.records)
    skipped = [m for m in messages if m.startswith("CTC skipped")]
    why = ": targets longer than the module's output; raise the OLC factor or filter long targets"
    assert skipped == [f"CTC skipped 10 of 40 utterance(s) (module encoder) since step 0{why}",
                       f"CTC skipped 10 of 40 utterance(s) (module encoder) since step {steps // 2}{why}"], messages
    validations = [m for m in messages if m.startswith("validation at step")]
    assert len(validations) == 2 and all(m.endswith("; CTC skipped 4 of 10 utterance(s) (module encoder)")
                                         for m in validations), validations
    assert (tmp_path / "exp" / "train.log").read_text().count("CTC skipped 10 of 40") == 2
    # utils/plot_curves.py reads the metrics of those summary lines, not the counts after them
    spec = importlib.util.spec_from_file_location("plot_curves", ROOT / "utils" / "plot_curves.py")
    plot_curves = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot_curves)
    curves = plot_curves.read_curve(tmp_path / "exp" / "train.log")
    assert {"loss", "acc", "encoder/loss"} <= set(curves) and all(len(c) == 2 for c in curves.values()), curves


# --- several processes ---------------------------------------------------------------


def test_torchrun_two_processes_shard_the_batches(corpus, tmp_path):
    """2 processes on gloo: each runs half of an epoch's batches; early stopping stops both.

    ``trainer.patience 1`` on accuracy with a tiny learning rate: the accuracy of epoch 2 does not
    beat epoch 1's, so training stops after 2 of the 3 epochs, on both ranks at once.
    """
    conf = write_config(tmp_path / "conf.yaml", base_config(corpus, dropout=0.1))
    exp_dir = tmp_path / "exp"
    overrides = ["--trainer.max_epochs", "3", "--trainer.patience", "1", "--trainer.best_metric", "acc",
                 "--optim.lr", "1e-6"]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "legonn", "train", "--config", str(conf), "--exp_dir", str(exp_dir),
        *overrides,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = 2
    entries = json.loads((exp_dir / "checkpoints" / INDEX).read_text())
    config = resolve(conf, overrides)
    train_set = build_experiment(config).train_set
    expected, step = [], 0
    for epoch in range(epochs):
        batches = make_batches(train_set.input_lengths, train_set.target_lengths, config["batching"]["max_tokens"],
                               seed=config["batching"]["seed"], epoch=epoch)
        assert len(batches) >= 4
        step += math.ceil(len(batches) / 2)  # each of the 2 ranks runs half of the epoch's batches
        expected.append(step)
    assert sorted(e["step"] for e in entries) == expected
    last = load(exp_dir / "checkpoints" / LAST)
    assert last["progress"] == {"step": expected[-1], "epoch": epochs, "batch": 0, "since_best": 1}
    assert len(last["rng"]) == 2  # one RNG state per rank
    assert not torch.equal(last["rng"][0]["torch"], last["rng"][1]["torch"])
    log = (exp_dir / "train.log").read_text()
    assert log.count("validation at step") == epochs
    assert "no improvement in 1 validations: stopping" in log
    assert log.count("model: encoder -> decoder") == 1  # only rank 0 writes the log


def test_shard_gives_each_rank_different_batches():
    batches = [[i] for i in range(7)]
    ranks = [shard(batches, r, 2) for r in range(2)]
    assert [len(b) for b in ranks] == [4, 4]
    assert ranks[0] == [[0], [2], [4], [6]] and ranks[1] == [[1], [3], [5], [0]]
    assert shard(batches, 0, 1) == batches


# --- freezing and initialising modules --------------------------------------------------


def _initial_state(config):
    """The chain train() starts from: it seeds with trainer.seed (+ rank 0), then builds the model."""
    import random

    torch.manual_seed(config["trainer"]["seed"])
    random.seed(config["trainer"]["seed"])
    return {k: v.clone() for k, v in build_experiment(config).model.state_dict().items()}


def _part(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_frozen_module_keeps_its_weights(corpus, tmp_path):
    config = resolved(corpus, tmp_path, ["--trainer.freeze", "[encoder]"],
                      edit={"trainer": {"max_steps": 6, "valid_every_steps": 3}})
    initial = _initial_state(config)
    train(config, tmp_path / "exp")
    final = load(tmp_path / "exp" / "checkpoints" / LAST)["model"]
    assert state_equal(_part(initial, "blocks.encoder."), _part(final, "blocks.encoder.")) == []
    changed = state_equal(_part(initial, "blocks.decoder."), _part(final, "blocks.decoder."))
    assert "blocks.decoder.embed.weight" in changed
    assert len(changed) > 10
    log = (tmp_path / "exp" / "train.log").read_text()
    total, trained_params = map(float, re.search(r"([0-9.]+)M parameters \(([0-9.]+)M trained\)", log).groups())
    assert 0 < trained_params < total


def test_freeze_unknown_module_is_an_error(corpus, tmp_path):
    config = resolved(corpus, tmp_path, ["--trainer.freeze", "[encodr]"])
    with pytest.raises(LegonnError, match=r"trainer.freeze: no module named 'encodr' \(modules: encoder, decoder\)"):
        train(config, tmp_path / "exp")


def test_freezing_everything_is_an_error(corpus, tmp_path):
    config = resolved(corpus, tmp_path, ["--trainer.freeze", "[encoder, decoder]"])
    with pytest.raises(LegonnError, match="nothing to train"):
        train(config, tmp_path / "exp")


@pytest.fixture
def exported_encoder(trained, tmp_path):
    from legonn.engine.experiment import export_experiment, load_trained

    exp_dir, _ = trained
    exp = load_trained(exp_dir)
    [folder] = export_experiment(exp_dir, out_dir=tmp_path / "modules", names=["encoder"])
    assert sorted(p.name for p in folder.parent.iterdir()) == ["encoder"]
    return folder, {k: v.clone() for k, v in exp.model.blocks["encoder"].state_dict().items()}


def test_init_modules_starts_from_exported_weights(corpus, tmp_path, trained, exported_encoder):
    from legonn.engine.experiment import load_trained

    folder, weights = exported_encoder
    config = resolved(corpus, tmp_path, edit={"trainer": {"init_modules": {"encoder": str(folder)}}})
    model = build_experiment(config).model
    assert state_equal(model.blocks["encoder"].state_dict(), weights) == []
    # ... and only the named module: the decoder is not the trained one
    trained_decoder = load_trained(trained[0]).model.blocks["decoder"].state_dict()
    assert "embed.weight" in state_equal(model.blocks["decoder"].state_dict(), trained_decoder)


def test_init_modules_then_freeze_trains_the_decoder_on_a_fixed_encoder(corpus, tmp_path, exported_encoder):
    folder, weights = exported_encoder
    config = resolved(corpus, tmp_path, ["--trainer.freeze", "[encoder]"],
                      edit={"trainer": {"init_modules": {"encoder": str(folder)}, "max_steps": 3, "valid_every_steps": 3}})
    train(config, tmp_path / "exp")
    final = load(tmp_path / "exp" / "checkpoints" / LAST)["model"]
    assert state_equal({f"blocks.encoder.{k}": v for k, v in weights.items()}, _part(final, "blocks.encoder.")) == []


def test_init_modules_errors(corpus, tmp_path, exported_encoder):
    folder, _ = exported_encoder
    config = resolved(corpus, tmp_path, edit={"trainer": {"init_modules": {"decoder": str(folder)}}})
    with pytest.raises(LegonnError, match="another architecture"):
        build_experiment(config)
    config = resolved(corpus, tmp_path, edit={"trainer": {"init_modules": {"enc": str(folder)}}})
    with pytest.raises(LegonnError, match="no module named 'enc'"):
        build_experiment(config)


@pytest.mark.parametrize("side", ["input", "output"])
def test_init_modules_refuses_a_module_whose_vocabulary_is_not_the_datas(corpus, tmp_path, exported_encoder, side):
    """Same number of symbols, two of them swapped: the architecture check passes, the
    vocabulary check does not (the encoder would read or emit the wrong pieces)."""
    folder, _ = exported_encoder
    name = {"input": "de.txt", "output": "en.txt"}[side]
    tokens = (corpus / name).read_text(encoding="utf-8").split("\n")
    tokens[-2], tokens[-3] = tokens[-3], tokens[-2]
    shuffled = tmp_path / name
    shuffled.write_text("\n".join(tokens), encoding="utf-8")
    data = base_config(corpus)["data"]
    if side == "input":
        data["input"]["vocab"] = str(shuffled)
    else:
        data["targets"]["en"]["vocab"] = str(shuffled)
    config = resolved(corpus, tmp_path, edit={"data": data, "trainer": {"init_modules": {"encoder": str(folder)}}})
    with pytest.raises(LegonnError, match=f"init_modules.encoder: .* has another {side} vocabulary .* than the data's .*{name}"):
        build_experiment(config)


# --- learning-rate schedules ---------------------------------------------------------------


def lrs(conf, peak, steps):
    """The LR of every update step 0..steps-1 as the trainer sees it (LambdaLR after N scheduler.step())."""
    from legonn.config import DEFAULTS

    full = copy.deepcopy(DEFAULTS["scheduler"])
    full.update(conf)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=123.0)
    scheduler = build_scheduler(optimizer, full, peak)
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        assert optimizer.param_groups[0]["lr"] == out[-1]
        optimizer.step()
        scheduler.step()
    return out


def test_inverse_sqrt_peaks_at_warmup_and_decays_as_sqrt():
    peak, warmup, init = 1e-3, 40, 1e-7
    lr = lrs({"type": "inverse_sqrt", "warmup_steps": warmup, "warmup_init_lr": init}, peak, 4 * warmup + 1)
    assert lr[0] == pytest.approx(init)
    assert max(range(len(lr)), key=lr.__getitem__) == warmup
    assert lr[warmup] == pytest.approx(peak)
    assert lr[warmup // 2] == pytest.approx((init + peak) / 2)  # linear warm-up
    assert all(a < b for a, b in zip(lr[:warmup], lr[1:warmup + 1]))
    assert lr[4 * warmup] == pytest.approx(peak / 2)  # peak * sqrt(warmup / step)
    for step in (warmup + 1, 2 * warmup, 3 * warmup + 7):
        assert lr[step] == pytest.approx(peak * math.sqrt(warmup / step))


def test_tristage_stages():
    peak, warmup, hold, decay = 2e-3, 10, 5, 20
    conf = {"type": "tristage", "warmup_steps": warmup, "hold_steps": hold, "decay_steps": decay,
            "init_lr_scale": 0.01, "final_lr_scale": 0.05}
    lr = lrs(conf, peak, warmup + hold + decay + 10)
    assert lr[0] == pytest.approx(0.01 * peak)
    assert lr[warmup // 2] == pytest.approx(peak * (0.01 + 0.99 / 2))
    assert lr[warmup] == pytest.approx(peak)
    assert all(v == pytest.approx(peak) for v in lr[warmup:warmup + hold])
    start = warmup + hold
    assert lr[start + decay // 2] == pytest.approx(peak * math.sqrt(0.05))  # exponential decay
    assert all(a > b for a, b in zip(lr[start:start + decay], lr[start + 1:start + decay + 1]))
    assert lr[start + decay] == pytest.approx(0.05 * peak)
    assert all(v == pytest.approx(0.05 * peak) for v in lr[start + decay:])
    assert max(lr) == pytest.approx(peak)


def test_constant_and_unknown_schedules():
    assert lrs({"type": "constant"}, 5e-4, 5) == pytest.approx([5e-4] * 5)
    with pytest.raises(LegonnError, match="scheduler.type 'cosine'"):
        lrs({"type": "cosine"}, 5e-4, 1)


def test_trainer_follows_the_schedule(trained):
    """The LR the trainer logged equals the schedule at that step."""
    exp_dir, config = trained
    logged = read_scalars(exp_dir, "train/lr")
    assert logged
    sched = lrs(config["scheduler"], config["optim"]["lr"], logged[-1][0] + 1)
    for step, value in logged:
        assert value == pytest.approx(sched[step], rel=1e-5)
