"""Export the modules of a trained chain as artifact folders (``legonn export``).

Besides weights, vocabularies and architecture, each module records the lengths it saw in
training: what it read and what it produced (positions per utterance, computed from the training
set's input lengths through each module's length arithmetic). ``legonn compose`` compares a new
encoder's output lengths with the input lengths a decoder was trained on. The training lengths
come from the experiment's ``train_lengths.npz`` (:class:`TrainLengths`), so an export does not
read the training data again.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from legonn.data.dataset import ChainDataset
from legonn.data.vocab import Vocabulary
from legonn.errors import LegonnError
from legonn.fileio import atomic_path
from legonn.modules.artifact import save_module
from legonn.nn.chain import Chain, build_module


@dataclass
class TrainLengths:
    """Lengths of the training utterances, in dataset order: all export needs of the training set."""

    utts: np.ndarray  # ids
    input: np.ndarray  # int64 input lengths
    targets: dict[str, np.ndarray]  # stream name -> int64 target lengths

    @classmethod
    def of(cls, dataset: ChainDataset) -> "TrainLengths":
        return cls(
            np.array(dataset.utts),
            dataset.input_lengths.astype(np.int64),
            {name: np.array([s.lengths[u] for u in dataset.utts], dtype=np.int64) for name, s in dataset.targets.items()},
        )

    def same_as(self, other: "TrainLengths") -> bool:
        return (np.array_equal(self.utts, other.utts) and np.array_equal(self.input, other.input)
                and self.targets.keys() == other.targets.keys()
                and all(np.array_equal(a, other.targets[k]) for k, a in self.targets.items()))

    def save(self, path: str | os.PathLike) -> None:
        """An ``.npz`` of ``input``, ``target.<stream>`` and ``utts``."""
        arrays = {"utts": self.utts, "input": self.input, **{f"target.{n}": a for n, a in self.targets.items()}}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to a name
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainLengths":
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            lengths = cls(arrays.pop("utts"), arrays.pop("input"),
                          {k[len("target."):]: a for k, a in arrays.items() if k.startswith("target.")})
        except (OSError, ValueError, KeyError) as exc:
            raise LegonnError(f"{path}: not a training-lengths file ({str(exc).splitlines()[0]})") from None
        if any(len(a) != len(lengths.utts) for a in [lengths.input, *lengths.targets.values()]):
            raise LegonnError(f"{path}: its arrays have different lengths")
        return lengths


def length_stats(lengths: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(lengths.mean()),
        "p5": float(np.percentile(lengths, 5)),
        "p95": float(np.percentile(lengths, 95)),
        "max": int(lengths.max()),
    }


def interface_lengths(model: Chain, input_lengths: np.ndarray) -> list[np.ndarray]:
    """Positions at the output of every encoder module, from each module's length arithmetic."""
    lengths = torch.from_numpy(input_lengths)
    out = []
    for name in model.encoder_names:
        lengths = model.blocks[name].output_lengths(lengths)
        out.append(lengths.numpy())
    return out


def export_modules(
    model: Chain,
    config: dict[str, Any],
    lengths: TrainLengths,
    vocabs: dict[str, Vocabulary],
    out_dir: str | Path,
    names: Optional[list[str]] = None,
    provenance: str = "",
) -> list[Path]:
    """Write a module folder per module of ``model`` (or of those in ``names``) under ``out_dir``.

    ``vocabs``: the data's vocabularies, 'input' for a text input and one per target stream."""
    lengths_at = [lengths.input] + interface_lengths(model, lengths.input)
    written = []
    previous_vocab = vocabs.get("input")
    data_input = config["data"]["input"]
    # The first module records how it reads a data dir; speech CMVN statistics travel with it.
    input_record: dict[str, Any] = {"file": data_input["file"]}
    input_files = {}
    if data_input.get("cmvn"):
        input_record["cmvn"] = "cmvn.ark"
        input_files["cmvn.ark"] = Path(data_input["cmvn"])
    for i, spec in enumerate(model.specs):
        module = model.blocks[spec.name]
        out_vocab = vocabs.get(spec.target) if spec.target else None
        if out_vocab is None and _passes_vocabulary_through(module, previous_vocab):
            out_vocab = previous_vocab  # an interface module (ctc_compress) learns no symbols of its own
        if getattr(module, "output_vocab_size", None) is not None and out_vocab is None:
            raise LegonnError(f"module '{spec.name}' has no target stream with a vocabulary: cannot record its interface")
        stats: dict[str, Any] = {"target": spec.target, "input_length": length_stats(lengths_at[i])}
        target_spec = (config["data"].get("targets") or {}).get(spec.target) or {}
        if target_spec.get("file"):  # the data-dir file its output was trained on: the reference to score it with
            stats["target_file"] = target_spec["file"]
        ratio = None
        if i + 1 < len(lengths_at):
            stats["output_length"] = length_stats(lengths_at[i + 1])
            ratio = float((lengths_at[i + 1] / np.maximum(lengths_at[i], 1)).mean())
        if spec.target in lengths.targets:
            stats["target_length"] = length_stats(lengths.targets[spec.target])
        in_vocab = previous_vocab if getattr(module, "input_vocab_size", None) is not None else None
        if i == 0:
            stats["input"] = input_record
        elif in_vocab is not None:  # marginals over the stream the module before it learnt
            stats["input_stream"] = model.specs[i - 1].target
        if names is None or spec.name in names:
            written.append(
                save_module(
                    module,
                    Path(out_dir) / spec.name,
                    spec.name,
                    input_vocab=in_vocab,
                    output_vocab=out_vocab,
                    trained_on=provenance,
                    length_ratio=ratio,
                    extra=stats,
                    files=input_files if i == 0 else None,
                )
            )
        previous_vocab = out_vocab
    return written


def _has_weights(module: torch.nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _maps_vocabulary_to_itself(module: torch.nn.Module, vocab: Vocabulary) -> bool:
    return getattr(module, "input_vocab_size", None) == getattr(module, "output_vocab_size", None) == len(vocab)


def _passes_vocabulary_through(module: torch.nn.Module, previous_vocab: Optional[Vocabulary]) -> bool:
    """A weightless module over its input's vocabulary: its output is over the same symbols."""
    return previous_vocab is not None and not _has_weights(module) and _maps_vocabulary_to_itself(module, previous_vocab)


def export_weightless(module_type: str, vocab_file: str | os.PathLike, out_dir: str | Path,
                      conf: Optional[dict[str, Any]] = None) -> Path:
    """A module folder for an interface module that has no weights and needs no training (e.g.
    ``ctc_compress``): marginals over the vocabulary in ``vocab_file`` in and out."""
    vocab = Vocabulary.load(vocab_file)
    module = build_module(module_type, {"vocab_size": len(vocab), **(conf or {})})
    if _has_weights(module):
        raise LegonnError(f"module type '{module_type}' has weights: export it from the experiment that trained it")
    if not _maps_vocabulary_to_itself(module, vocab):
        raise LegonnError(f"module type '{module_type}' does not map marginals over one vocabulary to the same")
    return save_module(module, out_dir, module_type, input_vocab=vocab, output_vocab=vocab,
                       trained_on=f"no training (weightless), vocabulary {Path(vocab_file).name}")
