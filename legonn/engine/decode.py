"""Decoding a data directory with a trained chain: beam search at the final decoder and CTC
best-path outputs at any module (the paper's per-module interface scores, Appendix D)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from legonn.data.batching import iterate, make_batches
from legonn.data.dataset import ChainDataset
from legonn.data.vocab import Vocabulary
from legonn.errors import LegonnError
from legonn.fileio import write_atomic
from legonn.nn.beam_search import beam_search
from legonn.nn.chain import Chain
from legonn.nn.ctc import greedy_decode


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
    """
    model.eval().to(device)
    decoder = model.decoder
    if decoder is None and output_vocab is None:
        raise LegonnError("a chain without a decoder needs the vocabulary of its last module")
    batches = make_batches(dataset.input_lengths, dataset.target_lengths, max_tokens, shuffle=False)
    results: dict[str, dict[str, str]] = {}
    for batch in tqdm(iterate(dataset, batches), total=len(batches), desc="decode", unit="batch"):
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
    written = []  # only once every utterance is decoded: an interrupted run leaves no partial file
    for name, table in results.items():
        lines = [table[utt] if name == "nbest" else f"{utt} {table[utt]}".rstrip() for utt in sorted(table)]
        write_atomic(Path(out_dir) / name, "".join(line + "\n" for line in lines))
        written.append(Path(out_dir) / name)
    return written
