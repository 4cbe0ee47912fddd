"""Helpers for the real-corpus recipe tests (test_swbd_recipe, test_tedlium_recipe): NIST SPHERE
files written from numpy, tone "speech", and a temporary recipe tree that runs like the repo's.

SPHERE (what LDC corpora ship): a 1024-byte ASCII header ("NIST_1A", its size, then
"name -type value" fields up to "end_head"), then interleaved samples: 16-bit PCM or 8-bit
G.711 mu-law. LDC's own files are further shorten-compressed; ``coding_label`` lets a test
write that label to check the recipes refuse such files without sph2pipe.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HEADER_BYTES = 1024


def ulaw_encode(x: np.ndarray) -> np.ndarray:
    """int16 samples -> G.711 mu-law bytes (sign, 3-bit exponent, 4-bit mantissa, inverted)."""
    bias, clip = 0x84, 32635
    x = x.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), clip) + bias
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def write_sph(path: Path, samples: np.ndarray, rate: int, coding: str = "pcm", coding_label: Optional[str] = None) -> Path:
    """Write int16 ``samples`` ((T,) mono or (T, C)) as a SPHERE file, 16-bit PCM or mu-law."""
    samples = samples if samples.ndim == 2 else samples[:, None]
    frames, channels = samples.shape
    if coding == "pcm":
        body, width, fmt = samples.astype("<i2").tobytes(), 2, "-s2 01"
    elif coding == "ulaw":
        body, width, fmt = ulaw_encode(samples).tobytes(), 1, "-s1 1"
    else:
        raise ValueError(f"coding {coding!r}: pcm or ulaw")
    label = coding_label or coding
    fields = [
        ("sample_count", f"-i {frames}"),
        ("channel_count", f"-i {channels}"),
        ("sample_n_bytes", f"-i {width}"),
        ("sample_rate", f"-i {rate}"),
        ("sample_coding", f"-s{len(label)} {label}"),
        ("sample_byte_format", fmt),
        ("sample_sig_bits", f"-i {8 * width}"),
    ]
    text = f"NIST_1A\n   {HEADER_BYTES}\n" + "".join(f"{k} {v}\n" for k, v in fields) + "end_head\n"
    header = text.encode("ascii").ljust(HEADER_BYTES, b" ")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)
    return path


def tone_speech(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
    """int16 (T,) or (T, C): gliding tones with noise, different per channel and seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for c in range(channels):
        f0 = 120 + 40 * c + 30 * rng.random()
        glide = f0 * (1 + 0.2 * np.sin(2 * np.pi * (0.5 + rng.random()) * t))
        phase = 2 * np.pi * np.cumsum(glide) / rate
        wave = sum(np.sin(k * phase) / k for k in (1, 2, 3)) + 0.05 * rng.standard_normal(t.size)
        out.append((3000 * wave).astype(np.int16))
    stacked = np.stack(out, axis=1)
    return stacked[:, 0] if channels == 1 else stacked


def recipe_tree(tmp: Path, recipe: str) -> Path:
    """A copy of egs/<recipe> under ``tmp`` beside symlinks to utils/ and egs/TEMPLATE/."""
    (tmp / "egs").mkdir(parents=True, exist_ok=True)
    os.symlink(ROOT / "utils", tmp / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", tmp / "egs" / "TEMPLATE")
    dst = tmp / "egs" / recipe
    shutil.copytree(ROOT / "egs" / recipe, dst, ignore=shutil.ignore_patterns("data", "exp", "__pycache__"))
    return dst


def recipe_env(**extra: str) -> dict:
    """The environment a recipe runs in: the venv first on PATH, one torch thread."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def read_table(path: Path) -> dict[str, str]:
    """A Kaldi table as {key: value}."""
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(" ")
        rows[key] = value
    return rows


def recipe_variables(recipe: Path, *names: str) -> dict[str, str]:
    """run.sh's variables as bash sets them, without sourcing the stage script (no stage runs)."""
    script = "\n".join(line for line in (recipe / "run.sh").read_text().splitlines()
                       if "TEMPLATE/legonn.sh" not in line and not line.startswith("cd "))
    script += "".join(f'\nprintf "%s\\0" "${{{n}:-}}"' for n in names)
    out = subprocess.run(["bash", "-c", script], cwd=recipe, capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.split("\0")))
