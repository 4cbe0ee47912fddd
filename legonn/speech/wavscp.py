"""The syntax of Kaldi ``wav.scp`` values: a path, an ``ark:offset`` entry or a ``command |``,
with Kaldi's ``sox ... speed F |`` perturbation suffixes (``legonn datadir speed_perturb`` writes them,
:mod:`legonn.speech.audio` reads them)."""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Optional

AUDIO_EXTENSIONS = (".wav", ".flac", ".sph", ".nist", ".ogg", ".aif", ".aiff", ".au", ".w64", ".wv")

_SPEED = r"(?P<speed>\d*\.?\d+(?:[eE][-+]?\d+)?)"
# "... | sox -t wav - -t wav - speed F |"  (the perturbed copy of a pipe entry)
_SOX_SPEED_PIPE = re.compile(r"^(?P<inner>.*\|)\s*sox\s+-t\s+wav\s+-\s+-t\s+wav\s+-\s+speed\s+" + _SPEED + r"\s*\|\s*$")
# "sox [-t TYPE] PATH -t wav - speed F |"  (the perturbed copy of a plain path)
_SOX_SPEED_FILE = re.compile(r"^sox\s+(?:-t\s+\S+\s+)?(?P<src>.+?)\s+-t\s+wav\s+-\s+speed\s+" + _SPEED + r"\s*\|\s*$")
_ARK_OFFSET = re.compile(r"^(?P<path>.+):(?P<offset>\d+)$")


@dataclass(frozen=True)
class WavEntry:
    """A parsed ``wav.scp`` value: ``kind`` is 'file', 'pipe' or 'ark'; ``speed`` from a sox suffix."""

    kind: str
    source: str  # path (file/ark) or shell command without the trailing '|'
    speed: float = 1.0
    offset: Optional[int] = None  # ark only


def is_pipe(value: str) -> bool:
    return value.rstrip().endswith("|")


def parse_wav_entry(value: str) -> WavEntry:
    """Parse a ``wav.scp`` value, peeling off Kaldi's ``sox ... speed F |`` perturbation suffixes."""
    value = value.strip()
    speed = 1.0
    while True:
        m = _SOX_SPEED_PIPE.match(value)
        if m:
            speed *= float(m.group("speed"))
            value = m.group("inner").strip()
            continue
        m = _SOX_SPEED_FILE.match(value)
        if m:
            try:
                src = shlex.split(m.group("src"))
            except ValueError:
                src = []
            if len(src) == 1 and src[0] != "-":
                speed *= float(m.group("speed"))
                value = src[0]
                continue
        break
    if is_pipe(value):
        return WavEntry("pipe", value.rstrip()[:-1].strip(), speed)
    m = _ARK_OFFSET.match(value)
    if m and not os.path.exists(value) and m.group("path").endswith(".ark"):
        return WavEntry("ark", m.group("path"), speed, int(m.group("offset")))
    return WavEntry("file", value, speed)


def speed_entry(value: str, factor: float) -> str:
    """The ``wav.scp`` value of ``value`` sped up by ``factor``, in Kaldi's sox form."""
    factor_s = format_factor(factor)
    value = value.strip()
    if is_pipe(value):
        return f"{value} sox -t wav - -t wav - speed {factor_s} |"
    typ = "-t wav " if value.lower().endswith(".wav") else ""
    return f"sox {typ}{shlex.quote(value)} -t wav - speed {factor_s} |"


def format_factor(factor: float) -> str:
    """0.9 -> '0.9', 1.1 -> '1.1', 1.0 -> '1.0' (the spelling used in ids and sox commands)."""
    s = f"{float(factor):g}"
    return s if ("." in s or "e" in s) else s + ".0"


def entry_files(value: str) -> list[str]:
    """Audio files a ``wav.scp`` value refers to: the path, or audio-looking arguments of a command."""
    entry = parse_wav_entry(value)
    if entry.kind in ("file", "ark"):
        return [entry.source]
    try:
        words = shlex.split(entry.source.replace("|", " "))
    except ValueError:
        return []
    return [w for w in words if w.lower().endswith(AUDIO_EXTENSIONS) and not w.startswith("-")]
