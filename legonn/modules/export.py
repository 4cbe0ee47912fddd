"""Export the modules of a trained chain as artifact folders (``legonn export``).

Besides weights, vocabularies and architecture, each module records the lengths it saw in
training: what it read and what it produced (positions per utterance, measured over the
training set through each module's length arithmetic). ``legonn compose`` compares a new
encoder's output lengths with the input lengths a decoder was trained on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from legonn.data.dataset import ChainDataset, TokenStream
from legonn.data.vocab import Vocabulary
from legonn.errors import LegonnError
from legonn.modules.artifact import save_module
from legonn.nn.chain import Chain


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
    dataset: ChainDataset,
    config: dict[str, Any],
    out_dir: str | Path,
    names: Optional[list[str]] = None,
    provenance: str = "",
) -> list[Path]:
    vocabs: dict[str, Vocabulary] = {n: s.vocab for n, s in dataset.targets.items() if isinstance(s, TokenStream)}
    input_vocab = dataset.input.vocab if isinstance(dataset.input, TokenStream) else None
    lengths = [dataset.input_lengths] + interface_lengths(model, dataset.input_lengths)
    written = []
    previous_vocab = input_vocab
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
        if getattr(module, "output_vocab_size", None) is not None and out_vocab is None:
            raise LegonnError(f"module '{spec.name}' has no target stream with a vocabulary: cannot record its interface")
        stats: dict[str, Any] = {"target": spec.target, "input_length": length_stats(lengths[i])}
        target_spec = (config["data"].get("targets") or {}).get(spec.target) or {}
        if target_spec.get("file"):  # the data-dir file its output was trained on: the reference to score it with
            stats["target_file"] = target_spec["file"]
        ratio = None
        if i + 1 < len(lengths):
            stats["output_length"] = length_stats(lengths[i + 1])
            ratio = float((lengths[i + 1] / np.maximum(lengths[i], 1)).mean())
        if spec.target in dataset.targets:
            target_lengths = np.array([dataset.targets[spec.target].lengths[u] for u in dataset.utts])
            stats["target_length"] = length_stats(target_lengths)
        if i == 0:
            stats["input"] = input_record
        in_vocab = previous_vocab if getattr(module, "input_vocab_size", None) is not None else None
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
