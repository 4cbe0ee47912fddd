"""Shared helpers for the training / checkpoint / decoding tests: a synthetic word-for-word
"translation" corpus (German words -> English words), tiny model configs, and a way to run
the ``legonn`` command in a subprocess.

Import the helpers from the test files (``from fixtures import ...``); importing a pytest fixture
(``corpus``, ``trained``, ``single_thread``) into a test module makes it available there. The
trained experiment is cached for the whole session (``shared_experiment``) and reused by
test_train, test_checkpoint and test_decode_cli.

In-process training runs with one torch thread (``one_thread``): with the suite's 2 threads on a
busy 2-core machine, the tiny models spend most of their time waiting for each other's threads.
Subprocesses get ``OMP_NUM_THREADS=1``.
"""
from __future__ import annotations

import contextlib
import copy
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

LEXICON = {
    "haus": "house", "katze": "cat", "hund": "dog", "baum": "tree", "auto": "car", "buch": "book",
    "tisch": "table", "stuhl": "chair", "wasser": "water", "brot": "bread", "apfel": "apple", "vogel": "bird",
}
SPECIALS = ["<blank>", "<unk>", "<sos/eos>"]


def _write_split(directory: Path, n: int, rng: random.Random, prefix: str, min_len: int = 2, max_len: int = 6) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    words = sorted(LEXICON)
    de_lines, en_lines = [], []
    for i in range(n):
        sent = [rng.choice(words) for _ in range(rng.randint(min_len, max_len))]
        utt = f"{prefix}{i:04d}"
        de_lines.append(f"{utt} {' '.join(sent)}")
        en_lines.append(f"{utt} {' '.join(LEXICON[w] for w in sent)}")
    (directory / "text.de").write_text("\n".join(de_lines) + "\n", encoding="utf-8")
    (directory / "text.en").write_text("\n".join(en_lines) + "\n", encoding="utf-8")


def make_corpus(root: Path, n_train: int = 300, n_valid: int = 30, seed: int = 0) -> Path:
    """``root/{train,valid}/text.{de,en}`` and ``root/{de,en}.txt`` token lists; returns root."""
    rng = random.Random(seed)
    _write_split(root / "train", n_train, rng, "tr")
    _write_split(root / "valid", n_valid, rng, "va")
    (root / "de.txt").write_text("\n".join(SPECIALS + sorted(LEXICON)) + "\n", encoding="utf-8")
    (root / "en.txt").write_text("\n".join(SPECIALS + sorted(LEXICON.values())) + "\n", encoding="utf-8")
    return root


def base_config(data: Path, dropout: float = 0.0) -> dict[str, Any]:
    """The YAML-level config (before defaults): a 2-module chain encoder -> decoder."""
    return {
        "model": [
            {"name": "encoder", "type": "lego_encoder", "target": "en", "conf": {
                "input": {"type": "embedding", "vocab_size": "vocab:input"},
                "d_model": 32, "heads": 2, "d_ff": 64, "layers": 2, "dropout": dropout,
                "olc": {"factor": 2, "max_len": 64, "layers": 1}, "ctc_vocab_size": "vocab:en"}},
            {"name": "decoder", "type": "lego_decoder", "target": "en", "conf": {
                "vocab_size": "vocab:en", "ingestor": {"type": "wemb", "vocab_size": "vocab:en", "layers": 1},
                "d_model": 32, "heads": 2, "d_ff": 64, "layers": 2, "dropout": dropout}},
        ],
        "data": {
            "train": str(data / "train"), "valid": str(data / "valid"),
            "input": {"file": "text.de", "vocab": str(data / "de.txt")},
            "targets": {"en": {"file": "text.en", "vocab": str(data / "en.txt")}},
        },
        "batching": {"max_tokens": 300},
        "optim": {"lr": 0.003},
        "scheduler": {"warmup_steps": 50},
        "trainer": {"max_epochs": 8, "log_every_steps": 20, "keep_best": 3},
    }


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def resolved(data: Path, tmp: Path, overrides: Optional[list[str]] = None, dropout: float = 0.0,
             edit: Optional[dict[str, dict[str, Any]]] = None) -> dict[str, Any]:
    """Write base_config (with per-section ``edit``s) to ``tmp/conf_*.yaml`` and resolve it."""
    from legonn.config import resolve

    raw = copy.deepcopy(base_config(data, dropout))
    for section, values in (edit or {}).items():
        raw.setdefault(section, {}).update(values)
    tmp.mkdir(parents=True, exist_ok=True)
    n = len(list(tmp.glob("conf_*.yaml")))
    return resolve(write_config(tmp / f"conf_{n}.yaml", raw), overrides or [])


@contextlib.contextmanager
def one_thread():
    """Train with one intra-op thread: on a small busy machine, more threads only spin and wait."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def single_thread():
    with one_thread():
        yield


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    # torchrun sets these for its workers; never inherit them from a parent run.
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def run_legonn(*args: str, timeout: float = 300, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "legonn", *map(str, args)],
        cwd=cwd or ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout,
    )


def run_legonn_parallel(*commands: list, timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Run several ``legonn`` commands at once (their start-up, mostly importing torch, overlaps)."""
    procs = [
        subprocess.Popen([sys.executable, "-m", "legonn", *map(str, args)], cwd=ROOT, env=subprocess_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in commands
    ]
    done = []
    for proc, args in zip(procs, commands):
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def joint_loss(chain, x, lengths, targets, label_smoothing: float = 0.1):
    """The default criterion (paper Eq. 9, legonn_joint) of one forward pass, as the trainer computes it."""
    from legonn.data.batching import Batch
    from legonn.engine.criteria import JointLoss

    return JointLoss(chain, label_smoothing)(Batch([], x, lengths, targets), chain(x, lengths, targets))


def state_equal(a: dict, b: dict) -> list[str]:
    """Keys whose tensors differ (or are missing on one side)."""
    import torch

    diff = sorted(set(a) ^ set(b))
    diff += [k for k in sorted(set(a) & set(b)) if not torch.equal(a[k], b[k])]
    return diff


def read_scalars(exp_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of a scalar in the experiment's tensorboard event files, by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[int, float] = {}
    for events in sorted((exp_dir / "tensorboard").glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            points.update({e.step: e.value for e in acc.Scalars(tag)})
    return sorted(points.items())


# One corpus and one trained experiment per test session, shared by every test file (a plain
# module-level cache: a pytest fixture imported into several modules would run once per module).
_SHARED: dict[str, Any] = {}


def shared_corpus(tmp_path_factory) -> Path:
    if "corpus" not in _SHARED:
        _SHARED["corpus"] = make_corpus(tmp_path_factory.mktemp("corpus"))
    return _SHARED["corpus"]


SHARED_EPOCHS = 8


def shared_experiment(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """The worked example trained end to end: 8 epochs, validation once an epoch, keep_best 3."""
    if "exp" not in _SHARED:
        from legonn.engine.trainer import train

        data = shared_corpus(tmp_path_factory)
        root = tmp_path_factory.mktemp("shared_exp")
        config = resolved(data, root, edit={"trainer": {"max_epochs": SHARED_EPOCHS}})
        with one_thread():
            progress = train(config, root / "exp")
        _SHARED["exp"] = (root / "exp", config, progress)
    exp_dir, config, _ = _SHARED["exp"]
    return exp_dir, copy.deepcopy(config)


@pytest.fixture
def corpus(tmp_path_factory) -> Path:
    return shared_corpus(tmp_path_factory)


@pytest.fixture
def trained(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """(exp_dir, resolved config) of the shared trained experiment. Do not modify it."""
    return shared_experiment(tmp_path_factory)
