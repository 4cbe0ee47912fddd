"""trainer.precision (legonn/engine/precision.py): bf16 autocast trains on CPU and resumes
exactly; on a CPU without native bf16 it trains in fp32 and says so; fp16 is CUDA-only
(GradScaler state in the checkpoint); config errors are one line."""
from __future__ import annotations

import math

import pytest
import torch

from fixtures import corpus, read_scalars, resolved, single_thread, state_equal  # noqa: F401  (fixtures)
from legonn.engine.callbacks import Callback
from legonn.engine import precision as precision_module
from legonn.engine.checkpoint import LAST, load
from legonn.engine.trainer import train
from legonn.errors import LegonnError
from legonn.registry import CALLBACKS

pytestmark = pytest.mark.usefixtures("single_thread")


def _config(corpus, tmp_path, precision, **trainer):
    return resolved(corpus, tmp_path, dropout=0.1, edit={"trainer": {
        "max_steps": 12, "valid_every_steps": 4, "log_every_steps": 1, "keep_best": 10, "precision": precision, **trainer}})


def test_bf16_on_cpu_trains_and_resumes_exactly(corpus, tmp_path, monkeypatch):
    """On CPU, bf16 autocast is deterministic: the resumed run is bit-identical, as in fp32."""
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: True)  # emulated where it is not
    config = _config(corpus, tmp_path, "bf16")
    a, b = tmp_path / "a", tmp_path / "b"
    train(config, a)
    train(config, b, stop_at_step=6)
    train(config, b)
    valid = [v for _, v in read_scalars(a, "valid/loss")]
    assert len(valid) == 3 and all(math.isfinite(v) for v in valid)
    assert valid[0] > valid[1] > valid[2]
    final_a, final_b = load(a / "checkpoints" / LAST), load(b / "checkpoints" / LAST)
    assert state_equal(final_a["model"], final_b["model"]) == []
    assert all(v.dtype == torch.float32 for v in final_a["model"].values() if v.is_floating_point())  # autocast, not a cast model
    assert read_scalars(a, "train/loss") == read_scalars(b, "train/loss")
    assert "precision: bf16; data loading: 0 worker process(es)" in (a / "train.log").read_text()
    # and bf16 is in effect: fp32 gives other numbers
    train(_config(corpus, tmp_path, "fp32"), tmp_path / "fp32")
    assert read_scalars(tmp_path / "fp32", "train/loss")[0] != read_scalars(a, "train/loss")[0]


def test_bf16_on_a_cpu_without_native_bf16_trains_in_fp32(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: False)
    train(_config(corpus, tmp_path, "bf16", max_steps=4), tmp_path / "bf16")
    log = (tmp_path / "bf16" / "train.log").read_text()
    assert "trainer.precision bf16: this CPU has no native bf16 (avx512_bf16 or AMX)" in log
    assert "precision: fp32; data loading" in log
    train(_config(corpus, tmp_path, "fp32", max_steps=4), tmp_path / "fp32")
    assert read_scalars(tmp_path / "bf16", "train/loss") == read_scalars(tmp_path / "fp32", "train/loss")


@pytest.mark.parametrize("precision,message", [
    ("fp16", "trainer.precision fp16 needs a CUDA device (on cpu, use bf16 or fp32)"),
    ("half", "trainer.precision: 'half' is not one of fp32, bf16, fp16"),
])
def test_precision_errors_are_one_line(corpus, tmp_path, precision, message):
    with pytest.raises(LegonnError) as err:
        train(_config(corpus, tmp_path, precision), tmp_path / "exp")
    assert str(err.value) == message
    assert not (tmp_path / "exp" / "config.yaml").exists()


SCALES: list[float] = []


@CALLBACKS.register("test_scale_probe")
class ScaleProbe(Callback):
    def on_train_start(self, trainer):
        SCALES.append(trainer.precision.scaler.get_scale())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_on_cuda_saves_and_restores_the_grad_scaler(corpus, tmp_path):
    config = _config(corpus, tmp_path, "fp16", callbacks=[{"type": "test_scale_probe"}])
    exp = tmp_path / "exp"
    SCALES.clear()
    train(config, exp, "cuda", stop_at_step=6)
    saved = load(exp / "checkpoints" / LAST)["scaler"]
    assert saved["scale"] > 0 and "_growth_tracker" in saved
    assert all(math.isfinite(v) for _, v in read_scalars(exp, "train/loss"))
    assert train(config, exp, "cuda")["step"] == 12
    assert SCALES == [65536.0, saved["scale"]]  # the resumed run starts from the saved scale
    assert all(math.isfinite(v) for _, v in read_scalars(exp, "valid/loss"))
