"""One experiment, one writer (issue 19): a second job on an experiment or decode folder in use is
refused in one line naming the holder; a lock left by a killed job is taken over with a warning."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from fixtures import corpus, resolved, run_legonn, write_config  # noqa: F401  (corpus is a fixture)
from legonn.errors import LegonnError
from legonn.fileio import LOCK, exclusive


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_live_holder_is_named_and_a_dead_one_taken_over(tmp_path, caplog):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "what": "legonn train",
                                                 "command": "legonn train --exp_dir x"}))
        with pytest.raises(LegonnError, match=rf"in use by legonn train \(pid {sleeper.pid}: legonn train --exp_dir x\)"):
            with exclusive(tmp_path, "legonn decode"):
                pass
    finally:
        sleeper.kill()
        sleeper.wait()
    (tmp_path / LOCK).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    with exclusive(tmp_path, "legonn decode"):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert "no longer running" in caplog.text and not (tmp_path / LOCK).exists()
    (tmp_path / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(LegonnError, match="pid 1 on host elsewhere.example"):
        with exclusive(tmp_path, "legonn decode"):
            pass


def test_a_second_training_of_one_experiment_is_refused(corpus, tmp_path):
    config = resolved(corpus, tmp_path, edit={"trainer": {"max_epochs": 50}})
    conf = write_config(tmp_path / "c.yaml", config)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    first = subprocess.Popen([sys.executable, "-m", "legonn", "train", "--config", conf, "--exp_dir", tmp_path / "exp"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # until the first holds the lock
            if (tmp_path / "exp" / LOCK).is_file():
                break
            time.sleep(0.1)
        second = run_legonn("train", "--config", conf, "--exp_dir", tmp_path / "exp")
        assert second.returncode == 1 and len(second.stderr.strip().splitlines()) == 1, second.stderr
        assert f"in use by legonn train (pid {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()
