"""Kaldi-style data directories -> token/feature streams -> padded batches of utterances.

A data directory holds Kaldi "table" files, one ``utt_id value`` per line: ``text``-like files
for token streams (MT source, BPE or phoneme targets) and ``feats.scp`` for speech features
(read with kaldiio). Which file feeds which stream is the config's choice, so one directory
serves every module of a chain.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from legonn.data.batching import Batch, pad
from legonn.data.vocab import Vocabulary
from legonn.errors import LegonnError
from legonn.fileio import read_table

log = logging.getLogger(__name__)


class GlobalCMVN:
    """Global mean/variance normalisation from Kaldi-format stats (2 x (D+1): sums, squares, count)."""

    def __init__(self, stats_path: str | os.PathLike):
        import kaldiio

        try:
            stats = np.asarray(kaldiio.load_mat(str(stats_path)), dtype=np.float64)
        except Exception as exc:
            raise LegonnError(f"{stats_path}: cannot read CMVN stats ({exc})") from None
        if stats.ndim != 2 or stats.shape[0] != 2:
            raise LegonnError(f"{stats_path}: CMVN stats must be a 2 x (dim+1) matrix, got {stats.shape}")
        count = stats[0, -1]
        mean = stats[0, :-1] / count
        var = np.maximum(stats[1, :-1] / count - mean**2, 1e-10)
        self.mean = mean.astype(np.float32)
        self.inv_std = (1.0 / np.sqrt(var)).astype(np.float32)

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        return (feats - self.mean) * self.inv_std


@dataclass
class StreamSpec:
    """One stream of a data dir: token text read through a vocabulary, or features."""

    file: str
    vocab: Optional[str] = None  # token list or sentencepiece .model; None: features (kaldiio scp)
    cmvn: Optional[str] = None


class FeatureStream:
    def __init__(self, data_dir: Path, spec: StreamSpec):
        import kaldiio

        self.scp = data_dir / spec.file
        self.table = read_table(self.scp, allow_empty_value=False)
        self.loader = kaldiio.load_scp(str(self.scp))
        self.cmvn = GlobalCMVN(spec.cmvn) if spec.cmvn else None
        self.lengths = self._lengths(data_dir)

    def _lengths(self, data_dir: Path) -> dict[str, int]:
        frames_file = data_dir / "utt2num_frames"
        if frames_file.is_file():
            return {k: int(v) for k, v in read_table(frames_file).items()}
        log.info("%s: no utt2num_frames; reading every matrix once to learn lengths", data_dir)
        return {k: int(self.loader[k].shape[0]) for k in self.table}

    def dim(self) -> int:
        return int(self.load(next(iter(self.table))).shape[1])

    def load(self, utt: str) -> np.ndarray:
        try:
            feats = np.asarray(self.loader[utt], dtype=np.float32)
        except Exception as exc:
            raise LegonnError(f"{self.scp}: cannot read features of '{utt}' ({exc})") from None
        return self.cmvn(feats) if self.cmvn is not None else feats


class TokenStream:
    def __init__(self, data_dir: Path, spec: StreamSpec):
        if spec.vocab is None:
            raise LegonnError(f"{data_dir / spec.file}: a text stream needs a 'vocab'")
        self.path = data_dir / spec.file
        self.vocab = Vocabulary.load(spec.vocab)
        self.ids = {utt: np.asarray(self.vocab.encode(text), dtype=np.int64) for utt, text in read_table(self.path).items()}
        self.lengths = {utt: len(ids) for utt, ids in self.ids.items()}
        unk = sum(int((ids == 1).sum()) for ids in self.ids.values())
        total = sum(self.lengths.values())
        if total and unk / total > 0.01:
            log.warning("%s: %.1f%% of tokens are <unk> under %s", self.path, 100 * unk / total, spec.vocab)

    def load(self, utt: str) -> np.ndarray:
        return self.ids[utt]


def open_stream(data_dir: Path, spec: StreamSpec):
    return FeatureStream(data_dir, spec) if spec.vocab is None else TokenStream(data_dir, spec)


class ChainDataset:
    """The utterances of one data dir that have an input and every target stream."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        input_spec: StreamSpec,
        target_specs: dict[str, StreamSpec],
        max_input_length: Optional[int] = None,
        max_target_length: Optional[int] = None,
        require_targets: bool = True,
        augment: Optional[Callable[[np.ndarray, Optional[torch.Generator]], np.ndarray]] = None,  # specaug: applied in collate (training only)
    ):
        self.dir = Path(data_dir)
        if not self.dir.is_dir():
            raise LegonnError(f"{self.dir}: data directory not found")
        self.input = open_stream(self.dir, input_spec)
        # --- specaug (legonn/data/specaug.py): augment the CMVN-normalised input features of the training set
        if augment is not None and not isinstance(self.input, FeatureStream):
            raise LegonnError(f"{self.dir}: data.specaug needs a feature input (feats.scp), not a token stream")
        self.augment = augment
        # --- end specaug
        self.targets = {name: open_stream(self.dir, spec) for name, spec in target_specs.items()} if require_targets else {}
        utts = set(self.input.lengths)
        for name, stream in self.targets.items():
            missing = utts - set(stream.lengths)
            if missing:
                log.warning("%s: %d utterance(s) of the input have no '%s' target; dropped", self.dir, len(missing), name)
            utts &= set(stream.lengths)
        dropped = 0
        keep = []
        self.empty_inputs = [u for u in sorted(utts) if self.input.lengths[u] == 0]  # left out; decoding writes them empty
        for utt in sorted(utts):
            too_long = max_input_length is not None and self.input.lengths[utt] > max_input_length
            too_long |= max_target_length is not None and any(s.lengths[utt] > max_target_length for s in self.targets.values())
            empty = self.input.lengths[utt] == 0 or any(s.lengths[utt] == 0 for s in self.targets.values())
            if too_long or empty:
                dropped += 1
            else:
                keep.append(utt)
        if dropped:
            log.info("%s: %d utterance(s) left out as empty or over the length limits", self.dir, dropped)
        if not keep:
            raise LegonnError(f"{self.dir}: no usable utterances (check the stream files and length limits)")
        self.utts = keep
        self.input_lengths = np.array([self.input.lengths[u] for u in keep], dtype=np.int64)
        self.target_lengths = np.array(
            [max((s.lengths[u] for s in self.targets.values()), default=0) for u in keep], dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self.utts)

    def collate(self, indices: list[int], generator: Optional[torch.Generator] = None) -> Batch:
        """The utterances ``indices`` padded into a batch; ``generator`` draws the SpecAugment masks."""
        utts = [self.utts[i] for i in indices]
        arrays = [self.input.load(u) for u in utts]
        if self.augment is not None:  # specaug (training set only; after CMVN)
            arrays = [self.augment(a, generator) for a in arrays]
        inputs, input_lengths = pad(arrays)
        targets = {name: pad([s.load(u) for u in utts]) for name, s in self.targets.items()}
        return Batch(utts, inputs, input_lengths, targets)


def stream_spec(raw: Any, where: str) -> StreamSpec:
    if not isinstance(raw, dict) or "file" not in raw:
        raise LegonnError(f"{where}: expected a mapping with 'file' (and 'vocab' for text, 'cmvn' for features)")
    unknown = set(raw) - {"file", "vocab", "cmvn"}
    if unknown:
        raise LegonnError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: file, vocab, cmvn)")
    return StreamSpec(raw["file"], raw.get("vocab"), raw.get("cmvn"))
