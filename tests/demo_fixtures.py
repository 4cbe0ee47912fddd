"""The tree `make demo`'s script (egs/mini/demo.sh) runs in for the tests, and how it is run.

The tree holds copies of egs/mini/{mt1,asr1,local} and demo.sh, symlinks to utils/ and
egs/TEMPLATE/, and the small fixture corpus of the ASR recipe test, so nothing is written into
the repository. conftest.py's session fixture ``tiny_demo`` runs the tiny mode once in such a
tree for test_demo and test_mt_recipe, started with the session (``DemoRun``).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from test_asr_recipe import make_fixture_corpus

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "egs" / "mini"
TIMEOUT = 900


def make_demo_tree(root: Path) -> Path:
    """``root/egs/mini`` ready for demo.sh; returns it."""
    mini = root / "egs" / "mini"
    mini.mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    make_fixture_corpus(mini / "corpus")
    ignore = shutil.ignore_patterns("data", "exp", "downloads", "RESULTS*", "__pycache__")
    for part in ("mt1", "asr1", "local"):
        shutil.copytree(MINI / part, mini / part, ignore=ignore)
    shutil.copy2(MINI / "demo.sh", mini / "demo.sh")
    return mini


class DemoRun:
    """demo.sh started now, its CompletedProcess collected by ``result()``.

    The output goes to temporary files, not pipes, so that a run nobody reads yet cannot stall
    on a full pipe; the run is a process group of its own, which ``stop()`` ends.
    """

    def __init__(self, mini: Path, *args: str):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        self._out, self._err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self._deadline = time.monotonic() + TIMEOUT
        self._proc = subprocess.Popen(["bash", "demo.sh", *args], cwd=mini, env=env, stdout=self._out,
                                      stderr=self._err, start_new_session=True)
        self._result: subprocess.CompletedProcess | None = None

    def result(self) -> subprocess.CompletedProcess:
        if self._result is None:
            try:
                self._proc.wait(timeout=max(0.0, self._deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop()
                raise
            outputs = []
            for f in (self._out, self._err):
                f.seek(0)
                outputs.append(f.read())
                f.close()
            self._result = subprocess.CompletedProcess(self._proc.args, self._proc.returncode, *outputs)
        return self._result

    def stop(self) -> None:
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            self._proc.wait()


def run_demo(mini: Path, *args: str) -> subprocess.CompletedProcess:
    return DemoRun(mini, *args).result()
