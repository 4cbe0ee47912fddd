"""legonn: modular LegoNN encoder-decoder models for speech recognition and translation."""

from legonn.version import __version__
