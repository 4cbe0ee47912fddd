"""Full disks and read-only places (issue 19): a write that fails leaves the previous file or
folder as it was, no temporary file behind, and one line naming the place and the cause."""
from __future__ import annotations

import errno

import pytest
import torch

from fixtures import corpus, one_thread, resolved  # noqa: F401  (corpus is a fixture)
from legonn.engine import checkpoint
from legonn.engine.trainer import train
from legonn.errors import LegonnError
from legonn.fileio import atomic_dir, write_atomic


def failing(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, {errno.ENOSPC: "No space left on device", errno.EACCES: "Permission denied"}[code])
    return fail


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")])
def test_a_failed_file_write_keeps_the_old_file(tmp_path, monkeypatch, code, cause):
    target = tmp_path / "RESULTS.md"
    write_atomic(target, "old\n")
    monkeypatch.setattr("legonn.fileio._fsync", failing(code))
    with pytest.raises(LegonnError, match=rf"RESULTS.md: cannot write \({cause}\); the previous RESULTS.md is kept"):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["RESULTS.md"]


def test_a_failed_folder_write_keeps_the_old_folder(tmp_path, monkeypatch):
    with atomic_dir(tmp_path / "module") as tmp:
        (tmp / "a").write_text("old")
    monkeypatch.setattr("legonn.fileio._fsync", failing(errno.ENOSPC))
    with pytest.raises(LegonnError, match="module: cannot write"):
        with atomic_dir(tmp_path / "module") as tmp:
            (tmp / "a").write_text("new")
    assert (tmp_path / "module" / "a").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["module"]


def test_a_checkpoint_that_cannot_be_written_stops_training_and_keeps_the_last(corpus, tmp_path, monkeypatch):
    config = resolved(corpus, tmp_path, edit={"trainer": {"max_epochs": 2}})
    with one_thread():
        train(config, tmp_path / "exp")
    ckpt = tmp_path / "exp" / "checkpoints"
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    real_save = torch.save

    def full_disk(obj, f, *a, **kw):
        real_save(obj, f, *a, **kw)
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 512 vs 448")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    config["trainer"]["max_epochs"] = 3
    with one_thread(), pytest.raises(LegonnError, match=r"checkpoint_step\d+.pt: cannot write \(\[enforce fail"):
        train(config, tmp_path / "exp")
    after = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    assert after == before  # no new or half-written checkpoint, the last one untouched


def test_a_feature_ark_that_cannot_be_written_keeps_the_previous_features(tmp_path, monkeypatch):
    import kaldiio
    import numpy as np
    import soundfile as sf

    from legonn.speech.fbank import compute_features

    d = tmp_path / "data"
    d.mkdir()
    rng = np.random.default_rng(0)
    for u in ("u1", "u2"):
        sf.write(tmp_path / f"{u}.wav", (rng.standard_normal(8000) * 3000).astype(np.int16), 16000)
    (d / "wav.scp").write_text("".join(f"{u} {tmp_path / u}.wav\n" for u in ("u1", "u2")))
    compute_features(d, progress=False)
    before = {p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file()}
    monkeypatch.setattr(kaldiio, "save_ark", failing(errno.ENOSPC))
    with pytest.raises(LegonnError, match=r"feature job 1: utterance 'u1': OSError: \[Errno 28\] No space left on device"):
        compute_features(d, progress=False)
    assert {p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
