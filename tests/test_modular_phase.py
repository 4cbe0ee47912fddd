"""Modular Transformers end to end on the tiny corpus: a 4+4-layer teacher, its modular phase
(module_replacing callback + modular_kd criterion), assemblies written as module folders."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from fixtures import make_corpus, one_thread, resolved, run_legonn, state_equal
from legonn.data.batching import Batch, load_batches
from legonn.engine.assembly import assembled_module, assemble_experiment, spread_layers
from legonn.engine.checkpoint import load
from legonn.engine.criteria import ModularDistillation
from legonn.engine.experiment import build_experiment, export_experiment, load_trained
from legonn.engine.trainer import train
from legonn.errors import LegonnError
from legonn.modules.artifact import assemble, load_module
from legonn.nn.modular import Block, ModularStudent, teacher_plan
from legonn.nn.transformer import Route

LAYERS = 4


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """(config, module folders) of a trained 4+4-layer teacher."""
    root = tmp_path_factory.mktemp("modular")
    data = make_corpus(root / "corpus", n_train=200, n_valid=20)
    config = resolved(data, root, edit={"trainer": {"max_epochs": 3}})
    for module in config["model"]:
        module["conf"]["layers"] = LAYERS
    with one_thread():
        train(config, root / "teacher")
    export_experiment(root / "teacher")
    return config, {name: root / "teacher" / "modules" / name for name in ("encoder", "decoder")}


def modular_config(teacher, **trainer) -> dict:
    config, folders = teacher
    config = copy.deepcopy(config)
    config["trainer"].update(init_modules={k: str(v) for k, v in folders.items()}, max_epochs=2, **trainer)
    config["trainer"]["callbacks"] = [{"type": "module_replacing", "conf": {"start": 0.5, "full_at_step": 10}}]
    config["modular"] = {"decoder": [2, 4], "encoder": [2, 4]}
    config["criterion"] = {"type": "modular_kd", "conf": {}}
    return config


@pytest.fixture(scope="module")
def phase(teacher, tmp_path_factory):
    exp_dir = tmp_path_factory.mktemp("phase") / "exp"
    config = modular_config(teacher)
    with one_thread():
        train(config, exp_dir)
    return exp_dir, config


def a_batch(config) -> tuple[ModularStudent, Batch]:
    """The model of ``config`` and the first six validation utterances."""
    exp = build_experiment(config)
    return exp.model, next(iter(load_batches(exp.valid_set, [list(range(6))])))


def test_with_every_teacher_layer_kept_the_student_is_the_teacher(teacher):
    model, batch = a_batch(modular_config(teacher))
    model.train()  # dropout is 0 in the fixture: train mode only selects model.plans
    model.plans = {name: teacher_plan(LAYERS) for name in model.granularities}
    out = model(batch.inputs, batch.input_lengths, batch.targets)
    assert torch.equal(out.logits, out.teacher.logits) and out.hidden_pairs == []
    loss = ModularDistillation(model)(batch, out)
    assert float(loss.terms["kd/decoder"].loss) == pytest.approx(0.0, abs=1e-6)
    assert not loss.total.requires_grad  # nothing trainable took part: the trainer skips the backward


def test_a_replaced_block_is_distilled_at_its_boundaries(teacher):
    model, batch = a_batch(modular_config(teacher))
    model.train()
    model.plans = {"decoder": (Block(0, 2), Block(2, 1), Block(3, 1)), "encoder": teacher_plan(LAYERS)}
    out = model(batch.inputs, batch.input_lengths, batch.targets)
    assert len(out.hidden_pairs) == 3  # after g2_0, t2, t3
    real = int((batch.targets["en"][1] + 1).sum())
    assert all(s.shape == t.shape == (real, 32) for s, t in out.hidden_pairs)
    loss = ModularDistillation(model)(batch, out)
    assert loss.total.requires_grad and float(loss.terms["kd/hidden"].loss.detach()) > 0
    loss.total.backward()
    assert model.modular["decoder"]["g2_0"].ffn.fc1.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())


def test_the_phase_trains_only_modular_layers_and_validates_without_distillation_accuracies(phase, teacher):
    exp_dir, _ = phase
    state = load(exp_dir / "checkpoints" / "checkpoint_last.pt")
    for name, folder in teacher[1].items():
        original = load_module(folder).module.state_dict()
        moved = state_equal({k: state["model"][f"teacher.blocks.{name}.{k}"] for k in original}, original)
        assert moved == []
    log = (exp_dir / "train.log").read_text()
    assert "kd/hidden/loss=" in log and "kd/decoder/acc" not in log and "kd/hidden/acc" not in log


def test_the_phase_resumes_exactly(teacher, tmp_path):
    config = modular_config(teacher)
    with one_thread():
        train(config, tmp_path / "a")
        train(config, tmp_path / "b", stop_at_step=4)
        train(config, tmp_path / "b")
    a, b = (load(tmp_path / x / "checkpoints" / "checkpoint_last.pt") for x in "ab")
    assert state_equal(a["model"], b["model"]) == []


def test_an_assembly_is_a_module_folder_that_composes_like_the_teacher(phase, teacher, tmp_path):
    exp_dir, _ = phase
    result = assemble_experiment(exp_dir, "decoder", tmp_path / "dec2x", ratio=2)
    assert len(result.chosen.plan) == 2
    loaded, original = load_module(tmp_path / "dec2x"), load_module(teacher[1]["decoder"])
    assert loaded.meta["conf"]["layers"] == 2 and len(loaded.module.decoder.layers) == 2
    for side in ("input", "output"):
        assert loaded.meta[side]["vocab"]["sha256"] == original.meta[side]["vocab"]["sha256"]
    assert loaded.extra["assembled"]["plan"] == [b.name for b in result.chosen.plan]
    assert "Assembled by `legonn assemble`" in (tmp_path / "dec2x" / "README.md").read_text()
    # The folder computes what the phase's student computes with that assembly.
    exp = load_trained(exp_dir)
    chain, _ = assemble([teacher[1]["encoder"], tmp_path / "dec2x"])
    _, batch = a_batch(modular_config(teacher))
    route = {"decoder": Route(exp.model.assembled("decoder", result.chosen.plan))}
    with torch.no_grad():
        want = exp.model.teacher(batch.inputs, batch.input_lengths, batch.targets, route).logits
        got = chain(batch.inputs, batch.input_lengths, batch.targets).logits
    torch.testing.assert_close(got, want)
    composed = run_legonn("compose", "--modules", teacher[1]["encoder"], tmp_path / "dec2x", "--out", tmp_path / "composed")
    assert composed.returncode == 0, composed.stderr


def test_size_first_ties_go_to_the_lowest_validation_loss(phase, tmp_path):
    exp_dir, _ = phase
    result = assemble_experiment(exp_dir, "encoder", tmp_path / "enc", depth=3)
    assert {tuple(b.name for b in c.plan) for c in result.candidates} == {("g2_0", "t2", "t3"), ("t0", "t1", "g2_1")}
    assert result.chosen.valid_loss == min(c.valid_loss for c in result.candidates)
    assert json.loads((tmp_path / "enc" / "module.json").read_text())["extra"]["assembled"]["depth"] == 3


def test_assembled_module_keeps_every_other_teacher_weight(teacher):
    original = load_module(teacher[1]["encoder"]).module
    module = assembled_module(original, [original.encoder.layers[0]])
    assert len(module.encoder.layers) == 1
    kept = {k: v for k, v in original.state_dict().items() if not k.startswith("encoder.layers.")}
    assert state_equal(kept, {k: module.state_dict()[k] for k in kept}) == []


def test_impossible_requests_are_refused_in_one_line(phase, teacher, tmp_path):
    exp_dir, _ = phase
    bad = run_legonn("assemble", "--exp_dir", exp_dir, "--module", "decoder", "--ratio", "8", "--out", tmp_path / "x")
    assert bad.returncode == 1 and "not reachable" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    with pytest.raises(LegonnError, match="not a Modular Transformers phase"):
        assemble_experiment(teacher[1]["decoder"].parent.parent, "decoder", tmp_path / "y", ratio=2)
    with pytest.raises(LegonnError, match="legonn assemble"):
        export_experiment(exp_dir)
    with pytest.raises(LegonnError, match="depth 5 is not reachable"):
        assemble_experiment(exp_dir, "decoder", tmp_path / "z", depth=5)


def test_modular_config_errors_name_the_problem(teacher):
    config = modular_config(teacher)
    config["modular"] = {"decoderr": [2]}
    with pytest.raises(LegonnError, match="no module named 'decoderr'"):
        build_experiment(config)
    config["modular"] = {"decoder": [3, 5]}
    with pytest.raises(LegonnError, match="between 2 and the stack's 4 layers"):
        build_experiment(config)
    plain = modular_config(teacher)
    plain["modular"] = {}
    with pytest.raises(LegonnError, match="needs a 'modular' section"):
        ModularDistillation(build_experiment(plain).model)
    assert isinstance(build_experiment(modular_config(teacher)).model, ModularStudent)


def test_shrinking_keeps_spread_teacher_layers(teacher, tmp_path):
    assert spread_layers(6, 3) == [0, 2, 5] and spread_layers(12, 6) == [0, 2, 4, 7, 9, 11] and spread_layers(6, 1) == [0]
    done = run_legonn("assemble", "--teacher", teacher[1]["decoder"], "--ratio", "2", "--out", tmp_path / "d")
    assert done.returncode == 0, done.stderr
    original, shrunk = load_module(teacher[1]["decoder"]).module, load_module(tmp_path / "d")
    assert shrunk.extra["shrunk"]["kept_layers"] == [0, 3]
    want = original.decoder.layers[3].state_dict()
    assert state_equal(shrunk.module.decoder.layers[1].state_dict(), want) == []
    bad = run_legonn("assemble", "--teacher", teacher[1]["decoder"], "--depth", "9", "--out", tmp_path / "e")
    assert bad.returncode == 1 and "can keep 1 to 4 of them, not 9" in bad.stderr


def test_random_init_is_a_student_from_scratch(teacher):
    config = modular_config(teacher)
    config["modular"] = {"decoder": {"granularities": [2], "init": "random"}, "encoder": [4]}
    model = build_experiment(config).model
    copied = model.stack("decoder").layers[0].ffn.fc1.weight
    assert not torch.equal(model.modular["decoder"]["g2_0"].ffn.fc1.weight, copied)
    assert torch.equal(model.modular["encoder"]["g4_0"].ffn.fc1.weight, model.stack("encoder").layers[0].ffn.fc1.weight)
    config["modular"] = {"decoder": {"granularities": [2], "init": "zeros"}}
    with pytest.raises(LegonnError, match="init must be one of copy, random"):
        build_experiment(config)
    config["modular"] = {"decoder": {"grans": [2]}}
    with pytest.raises(LegonnError, match="modular.decoder: expected a list of granularities"):
        build_experiment(config)


def test_speed_first_times_every_candidate_and_keeps_the_fastest_band(phase, tmp_path):
    exp_dir, _ = phase
    result = assemble_experiment(exp_dir, "decoder", tmp_path / "fast", depth=3, strategy="speed-first")
    assert all(c.latency_ms > 0 for c in result.candidates)
    fastest = min(c.latency_ms for c in result.candidates)
    assert result.chosen.latency_ms <= fastest * 1.1
    assert json.loads((tmp_path / "fast" / "module.json").read_text())["extra"]["assembled"]["strategy"] == "speed-first"
