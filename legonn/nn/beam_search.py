"""Autoregressive search over a decoder module: batched beam search and greedy search.

Semantics follow fairseq's ``SequenceGenerator``:

* Output length limit per sentence: ``min(floor(max_len_a * source_len + max_len_b), max_len_cap)``
  tokens, <eos> not counted; ``source_len`` defaults to the memory's valid length. At that step
  <eos> is forced (the hypothesis keeps <eos>'s real log-probability). Unlike fairseq, which
  takes the batch's longest source, each sentence has its own limit, so a sentence's result
  does not depend on what else is in the batch.
* ``min_len``: <eos> is forbidden while fewer than ``min_len`` tokens have been produced.
* ``suppress_eos``: <eos> is forbidden until the length limit, so every output has exactly the
  limit's number of tokens.
* Pad/blank (id 0) is never produced; <unk> may be.
* A finished hypothesis scores ``log_prob / len ** length_penalty`` where ``log_prob`` sums the
  token log-probabilities, <eos> included, and ``len`` counts the tokens plus <eos>.
* Each step takes the top ``2 * beam`` extensions of a sentence's ``beam`` live hypotheses (one
  ``topk`` over beam x vocabulary); <eos> extensions among the first ``beam`` are finished, the
  first ``beam`` other extensions go on. A sentence stops once it has ``beam`` finished
  hypotheses or reaches its length limit; finished sentences leave the batch. (As in fairseq,
  with a length penalty this early stop can miss a longer, better normalised hypothesis.)

Decoders provide ``step`` (incremental, key/value cache; ``memory`` has one row per sentence,
the tokens ``beam`` consecutive rows per sentence), ``decode`` (full teacher-forced pass, one
memory row per token row), ``new_cache(max_len)`` and ``reorder_cache(cache, rows, memory_rows)``
(in place; ``memory_rows``, None when unchanged, are the memory rows, i.e. sentences, that
stay), as ``legonn.nn.decoder.LegoDecoder`` does.
Put the decoder in eval mode first.
CTC best-path decoding is ``legonn.nn.ctc.greedy_decode``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch

from legonn.data.vocab import EOS, PAD, SOS

MAX_LEN_CAP = 1024  # hard limit on output tokens, whatever max_len_a / max_len_b say
GPU_SYNC_EVERY = 8  # steps between the host's looks at a search on a GPU
NEG_INF = float("-inf")

Lengths = Union[torch.Tensor, Sequence[int], None]

__all__ = ["Hypothesis", "beam_search", "greedy_search", "output_limits"]


def _sync_every(device: torch.device) -> int:
    """On CPU a look costs nothing; on a GPU each one waits for the device."""
    return 1 if device.type == "cpu" else GPU_SYNC_EVERY


@dataclass
class Hypothesis:
    tokens: list[int]  # output token ids, without <sos> and <eos>
    score: float  # log_prob / (len(tokens) + 1) ** length_penalty
    log_prob: float  # summed token log-probabilities, <eos> included
    positional_scores: list[float] = field(default_factory=list)  # one per token, then <eos>'s


def output_limits(
    memory: torch.Tensor,
    memory_padding: Optional[torch.Tensor],
    source_lengths: Lengths,
    max_len_a: float,
    max_len_b: int,
    max_len_cap: int,
) -> torch.Tensor:
    """(B,) largest number of output tokens (<eos> not counted) of each sentence."""
    if source_lengths is not None:
        src = torch.as_tensor(source_lengths, device=memory.device)
    elif memory_padding is not None:
        src = (~memory_padding).sum(1)
    else:
        src = torch.full((memory.size(0),), memory.size(1), device=memory.device)
    if src.shape != (memory.size(0),):
        raise ValueError(f"source_lengths has shape {tuple(src.shape)}, expected ({memory.size(0)},)")
    limit = torch.floor(max_len_a * src.double() + max_len_b).long()
    return limit.clamp(min=0, max=max_len_cap)


def _next_log_probs(
    decoder, tokens: torch.Tensor, memory: torch.Tensor, memory_padding: Optional[torch.Tensor], cache
) -> torch.Tensor:
    """Float32 log-probabilities (rows, V) of the token following each row of ``tokens``; a
    memory row serves tokens.size(0) // memory.size(0) consecutive rows (a sentence's beams)."""
    if cache is not None:
        logits = decoder.step(tokens[:, -1], memory, memory_padding, cache)
    else:  # the full pass wants a memory row per token row
        group = tokens.size(0) // memory.size(0)
        if memory_padding is not None:
            memory_padding = memory_padding.repeat_interleave(group, 0)
        logits = decoder.decode(tokens, memory.repeat_interleave(group, 0), memory_padding)[:, -1]
    return torch.log_softmax(logits.float(), dim=-1)


def _constrain(
    lprobs: torch.Tensor, step: int, limit: torch.Tensor, first_limit: int, min_len: int, suppress_eos: bool
) -> torch.Tensor:
    """Apply the vocabulary rules; ``limit`` (rows,) is each row's length limit, ``first_limit``
    the smallest of them (before it no row needs looking at)."""
    eos_lp = lprobs[:, EOS].clone() if step >= first_limit else None
    lprobs[:, PAD] = NEG_INF
    if step < min_len or suppress_eos:
        lprobs[:, EOS] = NEG_INF
    if eos_lp is not None:  # rows at their limit: only <eos> is left; it wins over min_len and suppress_eos
        only_eos = torch.full_like(lprobs, NEG_INF)
        only_eos[:, EOS] = eos_lp
        lprobs = torch.where((limit <= step).unsqueeze(1), only_eos, lprobs)
    return lprobs


def _collect_finished(finished: list[list[Hypothesis]], pending: list[tuple], beam: int, length_penalty: float) -> None:
    """Turn the recorded <eos> extensions into hypotheses, in step order and, within a step, each
    sentence's best first; a sentence takes at most ``beam``."""
    for step, to_finish, cand_beam, cand_scores, cand_lp, tokens, token_lps, sent in pending:
        which = to_finish.nonzero()[:, 0]
        if which.numel() == 0:
            continue
        src = which * beam + cand_beam[to_finish]
        prefixes = tokens.index_select(0, src)[:, 1:].tolist()
        prefix_lps = token_lps.index_select(0, src).tolist()
        totals, last = cand_scores[to_finish].tolist(), cand_lp[to_finish].tolist()
        norm = float(step + 1) ** length_penalty
        for owner, toks, lps, total, eos_lp in zip(sent.index_select(0, which).tolist(), prefixes, prefix_lps, totals, last):
            if len(finished[owner]) < beam:
                finished[owner].append(Hypothesis(toks, total / norm, total, lps + [eos_lp]))
    pending.clear()


def _check_decoder(decoder) -> None:
    if getattr(decoder, "training", False):
        warnings.warn("searching with a decoder in training mode (dropout on); call .eval() first", stacklevel=3)


@torch.no_grad()
def beam_search(
    decoder,
    memory: torch.Tensor,
    memory_padding: Optional[torch.Tensor],
    beam: int = 5,
    max_len_a: float = 0.0,
    max_len_b: int = 200,
    min_len: int = 1,
    length_penalty: float = 1.0,
    source_lengths: Lengths = None,
    nbest: int = 1,
    suppress_eos: bool = False,
    use_cache: bool = True,
    max_len_cap: int = MAX_LEN_CAP,
) -> list[list[Hypothesis]]:
    """Beam search for every sentence of ``memory`` (B, K, D) at once.

    Returns, for each sentence, its ``nbest`` best finished hypotheses, best first (fewer only
    when the vocabulary leaves fewer than ``nbest`` possible outputs).
    ``use_cache=False`` re-runs ``decoder.decode`` over the whole prefix at every step.
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be between 1 and the beam size {beam}, got {nbest}")
    _check_decoder(decoder)
    bsz, k, device = memory.size(0), beam, memory.device
    if bsz == 0:
        return []
    limit = output_limits(memory, memory_padding, source_lengths, max_len_a, max_len_b, max_len_cap)
    finished: list[list[Hypothesis]] = [[] for _ in range(bsz)]

    # On CPU, looking at device values costs nothing: finished sentences leave the batch at once.
    # On GPUs every look waits for the device, so the loop runs ``GPU_SYNC_EVERY`` steps
    # unobserved: finished sentences stay in the batch with -inf scores (they can then extend
    # and finish nothing) and <eos> extensions are recorded, to be collected at the next look.
    sync_every = _sync_every(device)
    # The memory keeps one row per sentence, read for all `beam` rows of the sentence at once.
    sent = torch.arange(bsz, device=device)  # original index of each sentence in the batch
    steps, first_limit = int(limit.max()) + 1, int(limit.min())
    cache = decoder.new_cache(steps) if use_cache else None
    tokens = torch.full((bsz * k, 1), SOS, dtype=torch.long, device=device)
    token_lps = torch.zeros(bsz * k, 0, device=device)  # log-probability of each token so far
    scores = torch.zeros(bsz, k, device=device)
    scores[:, 1:] = NEG_INF  # all beams start identical: expand only the first one
    counts = torch.zeros(bsz, dtype=torch.long, device=device)  # finished hypotheses per sentence
    slot_range = torch.arange(2 * k, device=device)
    pending: list[tuple] = []  # <eos> extensions not yet collected into `finished`

    for step in range(steps):
        n = sent.numel()
        lprobs = _next_log_probs(decoder, tokens, memory, memory_padding, cache)
        lprobs = _constrain(lprobs, step, limit.repeat_interleave(k), first_limit, min_len, suppress_eos)
        vocab = lprobs.size(1)
        flat = (scores.view(-1, 1) + lprobs).view(n, k * vocab)
        cand_scores, cand_idx = flat.topk(2 * k, dim=1)  # (n, 2k), best first
        cand_beam = torch.div(cand_idx, vocab, rounding_mode="floor")
        cand_tok = cand_idx % vocab
        cand_lp = lprobs.view(n, k * vocab).gather(1, cand_idx)
        cand_is_eos = cand_tok == EOS

        # The <eos> extensions ranked within the first `beam` candidates finish.
        if step >= first_limit or not (step < min_len or suppress_eos):
            to_finish = cand_is_eos[:, :k] & torch.isfinite(cand_scores[:, :k])
            counts = counts + to_finish.sum(1)  # may pass `beam`: only `beam` are collected
            pending.append((step, to_finish, cand_beam[:, :k], cand_scores[:, :k], cand_lp[:, :k], tokens, token_lps, sent))

        # The first `beam` non-<eos> candidates live on (there are at least `beam` of the 2 * beam).
        rank = cand_is_eos.long() * (2 * k) + slot_range
        keep_slot = rank.topk(k, dim=1, largest=False).indices  # ascending rank: still best first
        new_beam = cand_beam.gather(1, keep_slot)
        new_tok = cand_tok.gather(1, keep_slot)
        new_scores = cand_scores.gather(1, keep_slot)
        new_lp = cand_lp.gather(1, keep_slot)
        done = (counts >= k) | (limit <= step) | ~torch.isfinite(new_scores).any(1)

        kept = torch.arange(n, device=device)
        kept_memory = None
        if step == steps - 1 or (step + 1) % sync_every == 0:
            _collect_finished(finished, pending, k, length_penalty)
            if bool(done.all()):
                break
            keep = (~done).nonzero().squeeze(1)
            if keep.numel() < n:
                kept = kept_memory = keep
                new_beam, new_tok, new_scores, new_lp = (t.index_select(0, keep) for t in (new_beam, new_tok, new_scores, new_lp))
                memory = memory.index_select(0, keep)
                if memory_padding is not None:
                    memory_padding = memory_padding.index_select(0, keep)
                sent, limit, counts = sent.index_select(0, keep), limit.index_select(0, keep), counts.index_select(0, keep)
        else:
            new_scores = new_scores.masked_fill(done.unsqueeze(1), NEG_INF)
        src_rows = ((kept * k).unsqueeze(1) + new_beam).view(-1)  # the row each new hypothesis extends
        tokens = torch.cat([tokens.index_select(0, src_rows), new_tok.view(-1, 1)], dim=1)
        token_lps = torch.cat([token_lps.index_select(0, src_rows), new_lp.view(-1, 1)], dim=1)
        scores = new_scores
        if cache is not None:
            decoder.reorder_cache(cache, src_rows, kept_memory)

    return [sorted(hyps, key=lambda h: -h.score)[:nbest] for hyps in finished]


@torch.no_grad()
def greedy_search(
    decoder,
    memory: torch.Tensor,
    memory_padding: Optional[torch.Tensor],
    max_len_a: float = 0.0,
    max_len_b: int = 200,
    min_len: int = 1,
    length_penalty: float = 1.0,
    source_lengths: Lengths = None,
    suppress_eos: bool = False,
    use_cache: bool = True,
    max_len_cap: int = MAX_LEN_CAP,
) -> list[Hypothesis]:
    """Batched argmax decoding: one hypothesis per sentence, scored as ``beam_search`` scores.

    Same length and vocabulary rules as ``beam_search``; equal to it with ``beam=1``.
    """
    _check_decoder(decoder)
    bsz, device = memory.size(0), memory.device
    if bsz == 0:
        return []
    limit = output_limits(memory, memory_padding, source_lengths, max_len_a, max_len_b, max_len_cap)
    steps, first_limit = int(limit.max()) + 1, int(limit.min())
    cache = decoder.new_cache(steps) if use_cache else None
    tokens = torch.full((bsz, 1), SOS, dtype=torch.long, device=device)
    token_lps = torch.zeros(bsz, 0, device=device)
    total = torch.zeros(bsz, device=device)  # summed in float32 step by step, as beam_search does
    done = torch.zeros(bsz, dtype=torch.bool, device=device)
    out_len = limit.clone()  # tokens before <eos>

    for step in range(steps):
        lprobs = _next_log_probs(decoder, tokens, memory, memory_padding, cache)
        lprobs = _constrain(lprobs, step, limit, first_limit, min_len, suppress_eos)
        best_lp, best_tok = lprobs.max(dim=1)
        best_tok = best_tok.masked_fill(done, PAD)  # finished rows only carry padding
        best_lp = best_lp.masked_fill(done, 0.0)
        tokens = torch.cat([tokens, best_tok.unsqueeze(1)], dim=1)
        token_lps = torch.cat([token_lps, best_lp.unsqueeze(1)], dim=1)
        total = total + best_lp
        ended = ~done & (best_tok == EOS)
        out_len = torch.where(ended, torch.full_like(out_len, step), out_len)
        done |= ended
        if bool(done.all()):
            break

    hyps = []
    for toks, lps, n, log_prob in zip(tokens[:, 1:].tolist(), token_lps.tolist(), out_len.tolist(), total.tolist()):
        hyps.append(Hypothesis(toks[:n], log_prob / float(n + 1) ** length_penalty, log_prob, lps[: n + 1]))
    return hyps
