"""Batches through a torch DataLoader (legonn/data/batching.py load_batches, batching.num_workers):
worker processes collate the very batches the training process would, SpecAugment masks
included, and a resumed run reads the same batches as an uninterrupted one."""
from __future__ import annotations

import re

import pytest
import torch
import yaml

from fixtures import single_thread, state_equal  # noqa: F401  (fixtures)
from legonn.config import resolve
from legonn.data.batching import load_batches, make_batches
from legonn.engine.checkpoint import LAST, load
from legonn.engine.experiment import open_dataset
from legonn.engine.trainer import train
from legonn.errors import LegonnError
from test_specaug import _feature_corpus

pytestmark = pytest.mark.usefixtures("single_thread")

SPECAUG = {"freq_masks": 2, "freq_width": 5, "time_masks": 2, "time_width": 10}


def _config(root, tmp_path, **batching):
    raw = {
        "model": [{"name": "encoder", "type": "lego_encoder", "target": "tok", "conf": {
            "input": {"type": "conv2d", "input_dim": "dim:input", "channels": [4, 4]},
            "d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.1, "ctc_vocab_size": "vocab:tok"}}],
        "data": {"train": str(root / "train"), "valid": str(root / "valid"), "input": {"file": "feats.scp"},
                 "targets": {"tok": {"file": "text", "vocab": str(root / "tokens.txt")}}, "specaug": SPECAUG},
        "batching": {"max_tokens": 200, **batching},
        "scheduler": {"warmup_steps": 2},
        "trainer": {"max_steps": 6, "valid_every_steps": 3, "log_every_steps": 1, "keep_best": 10},
    }
    path = tmp_path / f"conf{len(list(tmp_path.glob('conf*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return resolve(path)


@pytest.fixture
def features(tmp_path):
    return _feature_corpus(tmp_path / "data")


def _inputs(loader):
    return [(b.utt_ids, b.inputs) for b in loader]


def test_worker_processes_collate_the_same_batches(features, tmp_path):
    train_set = open_dataset(_config(features, tmp_path), "train")
    batches = make_batches(train_set.input_lengths, train_set.target_lengths, 200, seed=1, epoch=0)
    assert len(batches) >= 3
    here = _inputs(load_batches(train_set, batches, key=(1, 0, 0)))
    workers = _inputs(load_batches(train_set, batches, key=(1, 0, 0), num_workers=2))
    assert [u for u, _ in here] == [u for u, _ in workers]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(here, workers))
    assert any((x == 0).any() for _, x in here)  # SpecAugment masked something
    # resuming at batch 2 collates batches 2.. exactly as before; another epoch masks otherwise
    tail = _inputs(load_batches(train_set, batches, start=2, key=(1, 0, 0), num_workers=1))
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(here[2:], tail)) and len(tail) == len(here) - 2
    other = _inputs(load_batches(train_set, batches, key=(1, 1, 0)))
    assert not all(torch.equal(a, b) for (_, a), (_, b) in zip(here, other))


def test_training_with_workers_equals_training_without(features, tmp_path):
    """SpecAugment and dropout: 0 or 1 worker, interrupted or not, the same final weights."""
    without, one = _config(features, tmp_path), _config(features, tmp_path, num_workers=1)
    train(without, tmp_path / "a")
    train(one, tmp_path / "b")
    train(one, tmp_path / "c", stop_at_step=2)
    train(one, tmp_path / "c")
    final = [load(tmp_path / n / "checkpoints" / LAST)["model"] for n in "abc"]
    assert state_equal(final[0], final[1]) == [] and state_equal(final[0], final[2]) == []
    assert "data loading: 1 worker process(es)" in (tmp_path / "b" / "train.log").read_text()


@pytest.mark.parametrize("value, message", [
    (-1, "batching.num_workers: expected a non-negative integer, got -1"),
    (1.5, "batching.num_workers must be a whole number (like its default 0), got 1.5"),  # refused by the config
    ("two", "batching.num_workers must be a whole number (like its default 0), got 'two'"),
    (True, "batching.num_workers must be a whole number (like its default 0), got True"),
])
def test_num_workers_must_be_a_count(features, tmp_path, value, message):
    with pytest.raises(LegonnError, match=re.escape(message)):
        train(_config(features, tmp_path, num_workers=value), tmp_path / "exp")
