"""kill -9 anywhere, then run again: the outcome equals an uninterrupted run's (issue 19).

Each command is first run uninterrupted (the reference); then, for every kill point, it is started,
SIGKILLed after a random delay inside its working time (after start-up: when its first output
appears), checked for half-written output (no visible file is a partial one), and run again to the
end (a training resumes from its last checkpoint; the others start over); the final result must
equal the reference bit for bit: training weights, optimiser and RNG state and every logged
training loss; features, exported and composed module folders, decodes, averaged weights.

``make test`` runs a short sweep (a few kill points); the ``slow`` sweep runs >= 20 random kill
points over train, features, export, compose, decode and average. Both print their counts.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
import torch

from fixtures import ROOT, make_corpus, resolved, state_equal, subprocess_env, write_config

TRAIN_LOSS = re.compile(r"step (\d+) epoch \d+ loss ([0-9.]+)")


def legonn(*args) -> list[str]:
    return [sys.executable, "-m", "legonn", *map(str, args)]


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


Marker = Path | Callable[[], bool]


def started(marker: Marker, proc: subprocess.Popen, timeout: float = 120) -> bool:
    """Wait until ``marker`` exists or says so (the command is past its start-up); False if it ended first."""
    end = time.time() + timeout
    while time.time() < end:
        if marker() if callable(marker) else marker.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise TimeoutError(f"{marker} never appeared")


def kill_at_random(cmd: list[str], marker: Marker, working_seconds: float, rng: random.Random) -> bool:
    """Start ``cmd``, SIGKILL it a random moment into its work; True if it was killed mid-way."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not started(marker, proc):
            return False
        time.sleep(rng.uniform(0, working_seconds))
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def timed(cmd: list[str], marker: Marker) -> float:
    """Seconds from ``marker`` appearing to the command's end (its working time), running it to the end."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert started(marker, proc) or proc.returncode == 0
    begin = time.time()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return max(time.time() - begin, 0.05)


def visible_files(folder: Path) -> list[Path]:
    """Files a user would read: temporaries of atomic writes are hidden (``.name.*.tmp``) and skipped."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def losses(log: Path) -> dict[int, set[str]]:
    """Every training loss train.log shows, by step (a step redone after a resume appears twice)."""
    out: dict[int, set[str]] = {}
    for step, loss in TRAIN_LOSS.findall(log.read_text()):
        out.setdefault(int(step), set()).add(loss)
    return out


class Sweep:
    """Kill points tried and their outcomes, reported at the end."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.tried: dict[str, int] = {}

    def count(self, command: str) -> None:
        self.tried[command] = self.tried.get(command, 0) + 1

    def report(self) -> str:
        total = sum(self.tried.values())
        return f"kill -9 sweep: {total} kill points ({', '.join(f'{k} {v}' for k, v in self.tried.items())}), all identical"


# --- the commands ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A corpus, a training config whose run validates (and checkpoints) often, and a reference run."""
    root = tmp_path_factory.mktemp("kill9")
    data = make_corpus(root / "corpus", n_train=200, n_valid=20)
    config = resolved(data, root, edit={"trainer": {"max_steps": 40, "max_epochs": 100, "valid_every_steps": 5,
                                                   "keep_best": 2, "log_every_steps": 1}})
    conf = write_config(root / "train.yaml", config)
    reference = root / "reference"
    working = timed(legonn("train", "--config", conf, "--exp_dir", reference), reference / "train.log")
    run(legonn("export", "--exp_dir", reference))
    return {"root": root, "data": data, "conf": conf, "reference": reference, "train_seconds": working}


def check_training(exp: Path, reference: Path) -> None:
    a = torch.load(exp / "checkpoints" / "checkpoint_last.pt", weights_only=True)
    b = torch.load(reference / "checkpoints" / "checkpoint_last.pt", weights_only=True)
    assert state_equal(a["model"], b["model"]) == []
    assert a["progress"] == b["progress"] and torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    got, want = losses(exp / "train.log"), losses(reference / "train.log")
    assert set(got) == set(want) and all(got[s] == want[s] for s in want), "a logged training loss differs"


def sweep_training(setup, sweep: Sweep, kills: int, tmp: Path) -> None:
    """One experiment killed ``kills`` times at random points, resumed after each, then finished."""
    exp = tmp / "train"
    cmd = legonn("train", "--config", setup["conf"], "--exp_dir", exp)
    for _ in range(kills):
        if kill_at_random(cmd, exp / "train.log", setup["train_seconds"], sweep.rng):
            sweep.count("train")
            for path in visible_files(exp / "checkpoints") if (exp / "checkpoints").is_dir() else []:
                if path.suffix == ".pt":
                    torch.load(path, weights_only=True)  # every visible checkpoint is whole
    run(cmd)
    check_training(exp, setup["reference"])


def sweep_outputs(name: str, cmd: list[str], out: Path, marker: Marker, compare: Callable[[Path], None], sweep: Sweep,
                  kills: int, seconds: float) -> None:
    """A command writing ``out``: killed ``kills`` times, then run to the end; ``compare`` checks the result."""
    for _ in range(kills):
        if kill_at_random(cmd, marker, seconds, sweep.rng):
            sweep.count(name)
    run(cmd)
    compare(out)


def same_tree(reference: Path, ignore: tuple[str, ...] = ()) -> Callable[[Path], None]:
    def compare(out: Path) -> None:
        want = {p.relative_to(reference): p.read_bytes() for p in visible_files(reference) if p.name not in ignore}
        got = {p.relative_to(out): p.read_bytes() for p in visible_files(out) if p.name not in ignore}
        assert got.keys() == want.keys() and all(got[k] == want[k] for k in want), f"{out} differs from {reference}"
    return compare


def speech_dir(root: Path, n: int = 12) -> Path:
    d = root / "speech"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        wav = root / f"w{i}.wav"
        sf.write(wav, (rng.standard_normal(16000 * 2) * 3000).astype(np.int16), 16000)
        lines.append(f"u{i:02d} {wav}")
    (d / "wav.scp").write_text("\n".join(lines) + "\n")
    (d / "utt2spk").write_text("".join(f"u{i:02d} s\n" for i in range(n)))
    (d / "spk2utt").write_text("s " + " ".join(f"u{i:02d}" for i in range(n)) + "\n")
    return d


def features_cmd(d: Path) -> list[str]:
    return legonn("features", "--data_dir", d, "--out_dir", d / "ark", "--nj", "1", "--progress", "false")


def features_equal(reference: Path) -> Callable[[Path], None]:
    import kaldiio

    def compare(d: Path) -> None:
        want, got = kaldiio.load_scp(str(reference / "feats.scp")), kaldiio.load_scp(str(d / "feats.scp"))
        assert list(got) == list(want) and all(np.array_equal(got[u], want[u]) for u in want)
        assert (d / "cmvn.ark").read_bytes() == (reference / "cmvn.ark").read_bytes()
    return compare


def other_commands(setup, sweep: Sweep, kills: int, tmp: Path) -> None:
    ref, modules = setup["reference"], setup["reference"] / "modules"
    # features: a speech data dir, its reference computed in a copy
    import shutil

    ref_dir = speech_dir(tmp / "features_ref")
    seconds = timed(features_cmd(ref_dir), ref_dir / "ark")
    d = speech_dir(tmp / "features")
    sweep_outputs("features", features_cmd(d), d, d / "ark", features_equal(ref_dir), sweep, kills, seconds)
    # export (into a new folder, against the reference's own export)
    out = tmp / "export"
    cmd = legonn("export", "--exp_dir", ref, "--out_dir", out)
    writing = lambda folder, pattern: (lambda: any(folder.glob(pattern)))  # noqa: E731  (an atomic write's temporary)
    sweep_outputs("export", cmd, out, writing(out, ".*.tmp"), same_tree(modules), sweep, kills, 0.3)
    # compose
    # (the same folder name in both: composed.json and the card name the model after it)
    composed_ref = tmp / "ref" / "composed"
    run(legonn("compose", "--modules", modules / "encoder", modules / "decoder", "--out", composed_ref))
    out = tmp / "composed"
    cmd = legonn("compose", "--modules", modules / "encoder", modules / "decoder", "--out", out)
    # finetune.yaml holds absolute paths to its own folder, by design
    sweep_outputs("compose", cmd, out, writing(tmp, ".composed.*.tmp"), same_tree(composed_ref, ignore=("finetune.yaml",)),
                  sweep, kills, 0.3)
    # decode
    decode_ref = tmp / "decode_ref"
    args = ("decode", "--modules", modules / "encoder", modules / "decoder", "--data_dir", setup["data"] / "valid",
            "--beam", "2")
    seconds = timed(legonn(*args, "--out_dir", decode_ref), decode_ref)
    out = tmp / "decode"
    sweep_outputs("decode", legonn(*args, "--out_dir", out), out, out, same_tree(decode_ref), sweep, kills, seconds)
    # average
    out = tmp / "averaged.pt"
    cmd = legonn("average", "--exp_dir", ref, "--num", "2", "--out", out)
    run(legonn("average", "--exp_dir", ref, "--num", "2", "--out", tmp / "averaged_ref.pt"))

    def same_average(path: Path) -> None:
        assert state_equal(torch.load(path, weights_only=True)["model"],
                           torch.load(tmp / "averaged_ref.pt", weights_only=True)["model"]) == []
    sweep_outputs("average", cmd, out, writing(tmp, ".averaged.pt.*.tmp"), same_average, sweep, kills, 0.1)
    shutil.rmtree(tmp / "features_ref")


def test_kill9_short_sweep(setup, tmp_path):
    sweep = Sweep(seed=1)
    sweep_training(setup, sweep, kills=3, tmp=tmp_path)
    print("\n" + sweep.report())


@pytest.mark.slow
def test_kill9_full_sweep(setup, tmp_path):
    sweep = Sweep(seed=int(os.environ.get("LEGONN_KILL9_SEED", "7")))
    sweep_training(setup, sweep, kills=8, tmp=tmp_path)
    other_commands(setup, sweep, kills=3, tmp=tmp_path)
    print("\n" + sweep.report())
    assert sum(sweep.tried.values()) >= 20, sweep.report()
