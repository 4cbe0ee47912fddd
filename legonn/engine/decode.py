"""Decoding a data directory with a trained chain: beam search at the final decoder and CTC
best-path outputs at any module (the paper's per-module interface scores, Appendix D)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

from legonn.data.batching import load_batches, make_batches
from legonn.data.dataset import ChainDataset, StreamSpec
from legonn.data.vocab import Vocabulary
from legonn.engine.experiment import data_vocabs, load_trained, trained_chain
from legonn.errors import LegonnError
from legonn.fileio import exclusive, write_atomic
from legonn.modules.artifact import assemble, input_spec
from legonn.nn.beam_search import beam_search
from legonn.nn.chain import Chain
from legonn.nn.ctc import greedy_decode

log = logging.getLogger(__name__)


@torch.no_grad()
def decode_dataset(
    model: Chain,
    dataset: ChainDataset,
    out_dir: str | Path,
    output_vocab: Optional[Vocabulary],
    ctc_vocabs: dict[str, Vocabulary],
    beam: int = 5,
    nbest: int = 1,
    length_penalty: float = 1.0,
    max_len_a: float = 1.0,
    max_len_b: int = 10,
    max_tokens: int = 4000,
    device: torch.device = torch.device("cpu"),
) -> list[Path]:
    """Write ``text`` (best hypothesis, detokenised, Kaldi format), ``nbest`` (id rank score text)
    and ``ctc_<module>.text`` for every module named in ``ctc_vocabs``.

    A chain without a decoder (a CTC-only encoder) writes its last module's best path as ``text``.
    An utterance whose input is empty is written as an empty hypothesis, with one warning line.
    """
    model.eval().to(device)
    decoder = model.decoder
    if decoder is None and output_vocab is None:
        raise LegonnError("a chain without a decoder needs the vocabulary of its last module")
    batches = make_batches(dataset.input_lengths, dataset.target_lengths, max_tokens, shuffle=False)
    results: dict[str, dict[str, str]] = {}
    for batch in tqdm(load_batches(dataset, batches, pin_memory=device.type == "cuda"), total=len(batches), desc="decode", unit="batch"):
        batch = batch.to(device)
        outputs = model.encode(batch.inputs, batch.input_lengths)
        for spec, output in zip(model.specs, outputs):
            if spec.name in ctc_vocabs:
                for utt, ids in zip(batch.utt_ids, greedy_decode(output.log_probs, output.lengths)):
                    results.setdefault(f"ctc_{spec.name}.text", {})[utt] = ctc_vocabs[spec.name].decode(ids)
        if decoder is None:
            for utt, ids in zip(batch.utt_ids, greedy_decode(outputs[-1].log_probs, outputs[-1].lengths)):
                results.setdefault("text", {})[utt] = output_vocab.decode(ids)
            continue
        memory, memory_padding = decoder.ingest(outputs[-1])
        hyps = beam_search(
            decoder, memory, memory_padding, beam=beam, nbest=nbest,
            length_penalty=length_penalty, max_len_a=max_len_a, max_len_b=max_len_b,
        )
        for utt, sentence in zip(batch.utt_ids, hyps):
            results.setdefault("text", {})[utt] = output_vocab.decode(sentence[0].tokens)
            results.setdefault("nbest", {})[utt] = "\n".join(
                f"{utt} {rank} {h.score:.4f} {output_vocab.decode(h.tokens)}".rstrip()
                for rank, h in enumerate(sentence, 1)
            )
    if dataset.empty_inputs:  # nothing to decode: an empty hypothesis (of log-probability 0) in every table
        log.warning("%s: %d utterance(s) with an empty input (%s%s): written as empty hypotheses", dataset.dir,
                    len(dataset.empty_inputs), ", ".join(dataset.empty_inputs[:3]), ", …" if len(dataset.empty_inputs) > 3 else "")
        for name, table in results.items():
            table.update((utt, f"{utt} 1 0.0000" if name == "nbest" else "") for utt in dataset.empty_inputs)
    written = []  # only once every utterance is decoded: an interrupted run leaves no partial file
    for name, table in results.items():
        lines = [table[utt] if name == "nbest" else f"{utt} {table[utt]}".rstrip() for utt in sorted(table)]
        write_atomic(Path(out_dir) / name, "".join(line + "\n" for line in lines))
        written.append(Path(out_dir) / name)
    return written


@dataclass
class Decodable:
    """A chain ready to decode a data dir: how its first module reads the data and, per module
    name, the vocabulary of its output and the data-dir file its target was read from."""

    model: Chain
    input_spec: StreamSpec
    vocabs: dict[str, Vocabulary]
    target_files: dict[str, str]


def from_experiment(exp_dir: str | Path, checkpoint: Optional[str | Path] = None, input_file: Optional[str] = None) -> Decodable:
    exp = load_trained(exp_dir, checkpoint)
    data = exp.config["data"]
    targets = data.get("targets") or {}
    vocabs = data_vocabs(exp.config)
    specs = [s for s in exp.model.specs if s.target in targets]
    return Decodable(
        trained_chain(exp, exp_dir),
        StreamSpec(input_file or data["input"]["file"], data["input"].get("vocab"), data["input"].get("cmvn")),
        {s.name: vocabs[s.target] for s in specs if s.target in vocabs},
        {s.name: targets[s.target]["file"] for s in specs},
    )


def from_modules(directories: list[str | Path], input_file: Optional[str] = None) -> Decodable:
    model, loaded = assemble(directories)
    pairs = list(zip(model.specs, loaded))
    return Decodable(
        model,
        input_spec(loaded, input_file),
        {s.name: m.output_vocab for s, m in pairs if m.output_vocab is not None},
        {s.name: m.target_file for s, m in pairs if m.target_file},
    )


def decode_data_dir(
    source: Decodable, data_dir: str | Path, out_dir: str | Path, ctc_modules: Optional[list[str]] = None, **search: Any
) -> tuple[int, list[Path]]:
    """``legonn decode``: (utterances, files written) of decoding ``data_dir`` into ``out_dir``.

    ``ctc_modules`` (default: every encoder module with a CTC head and a vocabulary) also get their
    best path and a ``ctc_<module>.ref`` naming the data-dir file to score it against (a phoneme
    module's is text.phn, not the decoder's words); ``search``: :func:`decode_dataset`'s options."""
    model = source.model
    ctc_vocabs = {}
    for name in ctc_modules if ctc_modules is not None else model.encoder_names:
        if name not in model.blocks:
            raise LegonnError(f"--ctc_modules: no module '{name}' (modules: {', '.join(model.names)})")
        if name in source.vocabs and getattr(model.blocks[name], "ctc", None) is not None:
            ctc_vocabs[name] = source.vocabs[name]
    dataset = ChainDataset(data_dir, source.input_spec, {}, require_targets=False)
    with exclusive(out_dir, "legonn decode"):
        files = decode_dataset(model, dataset, out_dir, source.vocabs.get(model.specs[-1].name), ctc_vocabs, **search)
        for name in ctc_vocabs:
            if name in source.target_files:
                ref = Path(out_dir) / f"ctc_{name}.ref"
                write_atomic(ref, source.target_files[name] + "\n")
                files.append(ref)
    return len(dataset) + len(dataset.empty_inputs), files
