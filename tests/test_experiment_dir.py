"""A self-contained experiment directory: resolved.yaml and train_lengths.npz let decoding and
export rebuild the model and its length statistics without opening the data again, with the
same results as the older experiment directories that lack them."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

import legonn.engine.experiment as experiment
from fixtures import shared_experiment, single_thread  # noqa: F401  (fixture)
from legonn.engine.decode import decode_data_dir, from_experiment
from legonn.errors import LegonnError
from legonn.modules.export import TrainLengths

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def exp_copy(tmp_path_factory, tmp_path):
    """A copy of the shared experiment as trained before resolved.yaml and train_lengths.npz."""
    exp_dir, config = shared_experiment(tmp_path_factory)
    copy = tmp_path / "exp"
    shutil.copytree(exp_dir, copy, ignore=shutil.ignore_patterns(experiment.RESOLVED, experiment.LENGTHS, "modules"))
    return copy, config


def no_data(*args, **kwargs):
    raise AssertionError("the data was opened")


def test_record_experiment_writes_the_sizes_and_lengths(exp_copy):
    exp_dir, config = exp_copy
    exp = experiment.build_experiment(config)
    experiment.record_experiment(exp, exp_dir)
    resolved = yaml.safe_load((exp_dir / experiment.RESOLVED).read_text(encoding="utf-8"))
    assert resolved["model"][0]["conf"]["input"]["vocab_size"] == len(exp.train_set.input.vocab)
    assert resolved["model"][1]["conf"]["vocab_size"] == len(exp.train_set.targets["en"].vocab)
    assert {k: v for k, v in resolved.items() if k != "model"} == {k: v for k, v in config.items() if k != "model"}
    with np.load(exp_dir / experiment.LENGTHS, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["input", "target.en", "utts"]
        assert npz["input"].dtype == np.int64 and npz["target.en"].dtype == np.int64
        assert list(npz["utts"]) == exp.train_set.utts
        assert npz["input"].tolist() == exp.train_set.input_lengths.tolist()
        assert npz["target.en"].tolist() == [exp.train_set.targets["en"].lengths[u] for u in exp.train_set.utts]


def test_export_reads_the_recorded_lengths_and_exports_the_same(exp_copy, monkeypatch):
    exp_dir, config = exp_copy
    before = experiment.export_experiment(exp_dir, out_dir=exp_dir / "before")  # measured on the training data
    experiment.record_experiment(experiment.build_experiment(config), exp_dir)
    with monkeypatch.context() as m:
        m.setattr(experiment, "open_dataset", no_data)
        after = experiment.export_experiment(exp_dir, out_dir=exp_dir / "after")
    for a, b in zip(before, after):
        assert json.loads((a / "module.json").read_text()) == json.loads((b / "module.json").read_text())
        assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())


def test_load_trained_and_decode_from_resolved_yaml_alone(exp_copy, monkeypatch, tmp_path):
    exp_dir, config = exp_copy
    old = experiment.load_trained(exp_dir)  # sizes measured on the validation data
    decode_data_dir(from_experiment(exp_dir), config["data"]["valid"], tmp_path / "old", beam=2, max_tokens=200)
    experiment.record_experiment(experiment.build_experiment(config), exp_dir)
    monkeypatch.setattr(experiment, "open_dataset", no_data)
    new = experiment.load_trained(exp_dir)
    assert new.resolved == old.resolved and new.checkpoint == old.checkpoint
    for key, value in old.model.state_dict().items():
        assert torch.equal(new.model.state_dict()[key], value), key
    monkeypatch.undo()  # the data dir being decoded is opened, of course
    n, files = decode_data_dir(from_experiment(exp_dir), config["data"]["valid"], tmp_path / "new", beam=2, max_tokens=200)
    assert n == 30 and [f.name for f in files] == ["ctc_encoder.text", "text", "nbest", "ctc_encoder.ref"]
    for f in files:
        assert f.read_text() == (tmp_path / "old" / f.name).read_text(), f.name


def test_a_damaged_lengths_file_is_one_error(tmp_path):
    lengths = TrainLengths(np.array(["a", "b"]), np.array([3, 4]), {"en": np.array([1, 2])})
    lengths.save(tmp_path / "l.npz")
    back = TrainLengths.load(tmp_path / "l.npz")
    assert back.utts.tolist() == ["a", "b"] and back.targets["en"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["l.npz"]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(LegonnError, match="bad.npz: not a training-lengths file"):
        TrainLengths.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "short.npz", utts=np.array(["a"]), input=np.array([1, 2]))
    with pytest.raises(LegonnError, match="short.npz: its arrays have different lengths"):
        TrainLengths.load(tmp_path / "short.npz")
