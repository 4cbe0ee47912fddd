"""Tests of legonn/nn/beam_search.py: batched beam search and greedy search over decoder modules."""

from __future__ import annotations

import math

import pytest
import torch

from fixtures import joint_loss
import legonn.nn.beam_search as beam_search_module
from legonn.nn.beam_search import Hypothesis, beam_search, greedy_search, output_limits
from legonn.nn.chain import Chain
from legonn.data.vocab import EOS, PAD, SOS, UNK

SRC, INTER, OUT, D = 17, 13, 19, 32
N = 8
SMALL = dict(d_model=D, heads=4, d_ff=64, layers=2, dropout=0.0)


def lego_specs():
    return [
        {
            "name": "enc",
            "type": "lego_encoder",
            "target": "inter",
            "conf": {
                "input": {"type": "embedding", "vocab_size": SRC},
                **SMALL,
                "olc": {"factor": 2, "max_len": 64, "layers": 1},
                "ctc_vocab_size": INTER,
            },
        },
        {
            "name": "dec",
            "type": "lego_decoder",
            "target": "out",
            "conf": {"vocab_size": OUT, "ingestor": {"type": "wemb", "vocab_size": INTER, "layers": 1}, **SMALL},
        },
    ]


def baseline_specs():
    return [
        {"name": "enc", "type": "transformer_encoder", "conf": {"input": {"type": "embedding", "vocab_size": SRC}, **SMALL}},
        {"name": "dec", "type": "transformer_decoder", "target": "out", "conf": {"vocab_size": OUT, **SMALL}},
    ]


def pad(seqs):
    lengths = torch.tensor([len(s) for s in seqs])
    x = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s)
    return x, lengths


def random_pairs():
    g = torch.Generator().manual_seed(1)

    def seq(vocab, lo, hi):
        n = int(torch.randint(lo, hi, (1,), generator=g))
        return torch.randint(3, vocab, (n,), generator=g).tolist()

    src = [seq(SRC, 3, 9) for _ in range(N)]
    out = [seq(OUT, 2, 7) for _ in range(N)]
    inter = [torch.randint(3, INTER, (len(s),), generator=g).tolist() for s in src]
    return src, inter, out


class Trained:
    """A small chain briefly overfit on random pairs, so its decoder is peaked but not certain."""

    def __init__(self, specs):
        torch.manual_seed(0)
        self.chain = Chain.from_specs(specs)
        self.src, inter, out = random_pairs()
        x, xl = pad(self.src)
        targets = {"inter": pad(inter), "out": pad(out)}
        opt = torch.optim.Adam(self.chain.parameters(), lr=3e-3)
        for _ in range(40):
            loss = joint_loss(self.chain, x, xl, targets).total
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.chain.eval()
        self.decoder = self.chain.decoder
        self.memory, self.padding = self.memory_of(self.src)

    @torch.no_grad()
    def memory_of(self, sources):
        x, xl = pad(sources)
        return self.decoder.ingest(self.chain.encode(x, xl)[-1])


@pytest.fixture(scope="module")
def models():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is fastest and makes training reproducible
    try:
        yield {"lego": Trained(lego_specs()), "baseline": Trained(baseline_specs())}
    finally:
        torch.set_num_threads(threads)


BOTH = pytest.mark.parametrize("kind", ["lego", "baseline"])
LEN = dict(max_len_a=0.0, max_len_b=10)


def toks(results):
    return [[h.tokens for h in hyps] for hyps in results]


def assert_same(a: list[Hypothesis], b: list[Hypothesis], tol=1e-4):
    assert [h.tokens for h in a] == [h.tokens for h in b]
    for x, y in zip(a, b):
        assert x.score == pytest.approx(y.score, abs=tol)
        assert x.log_prob == pytest.approx(y.log_prob, abs=tol)


# --- the trained chains ------------------------------------------------------


@BOTH
def test_beam_one_equals_greedy(models, kind):
    m = models[kind]
    greedy = greedy_search(m.decoder, m.memory, m.padding, **LEN)
    beam1 = beam_search(m.decoder, m.memory, m.padding, beam=1, **LEN)
    assert_same([hyps[0] for hyps in beam1], greedy, tol=1e-5)


@BOTH
def test_beam_differs_from_greedy_and_scores_at_least_as_well(models, kind):
    # Compared on total log-probability (length_penalty 0). Even so it is not a theorem: beam
    # pruning can drop the greedy path. With length_penalty 1, fairseq's stopping rule (stop at
    # `beam` finished hypotheses) loses to greedy on 1 of the 8 sentences of either model: the
    # short hypotheses finish first, and a longer, better normalised one is never completed.
    m = models[kind]
    kw = dict(LEN, length_penalty=0.0)
    greedy = greedy_search(m.decoder, m.memory, m.padding, **kw)
    best = [hyps[0] for hyps in beam_search(m.decoder, m.memory, m.padding, beam=5, **kw)]
    assert any(b.tokens != g.tokens for b, g in zip(best, greedy))
    for b, g in zip(best, greedy):
        assert b.score >= g.score - 1e-5


@BOTH
def test_batched_equals_one_at_a_time(models, kind):
    m = models[kind]
    assert len({len(s) for s in m.src}) > 1  # sentences of different lengths share the batch
    batched = beam_search(m.decoder, m.memory, m.padding, beam=4, nbest=4, **LEN)
    batched_greedy = greedy_search(m.decoder, m.memory, m.padding, **LEN)
    for i, src in enumerate(m.src):
        memory, padding = m.memory_of([src])
        assert_same(batched[i], beam_search(m.decoder, memory, padding, beam=4, nbest=4, **LEN)[0])
        assert_same(batched_greedy[i : i + 1], greedy_search(m.decoder, memory, padding, **LEN))


@BOTH
def test_cached_equals_uncached(models, kind):
    m = models[kind]
    kw = dict(LEN, beam=5, nbest=5, length_penalty=0.7)
    cached = beam_search(m.decoder, m.memory, m.padding, use_cache=True, **kw)
    uncached = beam_search(m.decoder, m.memory, m.padding, use_cache=False, **kw)
    for a, b in zip(cached, uncached):
        assert_same(a, b)
    assert_same(
        greedy_search(m.decoder, m.memory, m.padding, use_cache=True, **LEN),
        greedy_search(m.decoder, m.memory, m.padding, use_cache=False, **LEN),
    )


def reference_beam_search(decoder, memory, beam, limit, min_len=1, length_penalty=1.0):
    """fairseq's rule written plainly for one sentence (memory (1, K, D), no padding)."""
    live, finished = [([], 0.0)], []
    for step in range(limit + 1):
        prefixes = torch.tensor([[SOS] + t for t, _ in live])
        with torch.no_grad():
            logits = decoder.decode(prefixes, memory.expand(len(live), -1, -1), None)[:, -1]
        lprobs = torch.log_softmax(logits.float(), dim=-1).tolist()
        cands = []
        for (t, s), row in zip(live, lprobs):
            for v, lp in enumerate(row):
                if v == PAD or (v == EOS and step < min_len) or (step >= limit and v != EOS):
                    continue
                cands.append((s + lp, t, v))
        cands.sort(key=lambda c: -c[0])
        nxt = []
        for rank, (s, t, v) in enumerate(cands[: 2 * beam]):
            if v == EOS:
                if rank < beam and len(finished) < beam:
                    finished.append((t, s / (step + 1) ** length_penalty, s))
            elif len(nxt) < beam:
                nxt.append((t + [v], s))
        if len(finished) >= beam or step >= limit:
            break
        live = nxt
    return sorted(finished, key=lambda f: -f[1])


@pytest.mark.parametrize("kind,length_penalty", [("lego", 1.0), ("baseline", 0.5)])
def test_matches_a_plain_reference_implementation(models, kind, length_penalty):
    m = models[kind]
    got = beam_search(m.decoder, m.memory, m.padding, beam=3, nbest=3, length_penalty=length_penalty, **LEN)
    for i in range(N):
        valid = int((~m.padding[i]).sum())
        ref = reference_beam_search(m.decoder, m.memory[i : i + 1, :valid], 3, 10, length_penalty=length_penalty)
        assert [h.tokens for h in got[i]] == [t for t, _, _ in ref]
        assert [h.score for h in got[i]] == pytest.approx([s for _, s, _ in ref], abs=1e-4)


@BOTH
def test_scores_agree_with_teacher_forcing(models, kind):
    m = models[kind]
    lp = 0.8
    results = beam_search(m.decoder, m.memory, m.padding, beam=3, nbest=3, length_penalty=lp, **LEN)
    for i, hyps in enumerate(results):
        for h in hyps:
            prev = torch.tensor([[SOS] + h.tokens])
            with torch.no_grad():
                logits = m.decoder.decode(prev, m.memory[i : i + 1], m.padding[i : i + 1])
            lprobs = torch.log_softmax(logits.float(), -1)[0]
            gold = torch.tensor(h.tokens + [EOS])
            per_token = lprobs.gather(1, gold.unsqueeze(1)).squeeze(1)
            assert h.positional_scores == pytest.approx(per_token.tolist(), abs=1e-4)
            assert h.log_prob == pytest.approx(float(per_token.sum()), abs=1e-4)
            assert h.score == pytest.approx(h.log_prob / (len(h.tokens) + 1) ** lp, abs=1e-6)


@BOTH
def test_max_length_is_respected(models, kind):
    m = models[kind]
    src_len = (~m.padding).sum(1)
    limits = torch.floor(0.5 * src_len.double() + 1).long()
    assert len(set(limits.tolist())) > 1
    kw = dict(max_len_a=0.5, max_len_b=1, min_len=0)
    for results in (
        beam_search(m.decoder, m.memory, m.padding, beam=4, nbest=4, **kw),
        [[h] for h in greedy_search(m.decoder, m.memory, m.padding, **kw)],
    ):
        for hyps, limit in zip(results, limits.tolist()):
            assert hyps and all(len(h.tokens) <= limit for h in hyps)
    # Explicit source lengths and the hard cap.
    src = [len(s) for s in m.src]
    results = beam_search(m.decoder, m.memory, m.padding, beam=3, max_len_a=1.0, max_len_b=0, source_lengths=src)
    assert all(len(hyps[0].tokens) <= n for hyps, n in zip(results, src))
    results = beam_search(m.decoder, m.memory, m.padding, beam=3, max_len_b=50, max_len_cap=2, suppress_eos=True)
    assert all(len(hyps[0].tokens) == 2 for hyps in results)


@BOTH
def test_suppress_eos_gives_exactly_the_limit(models, kind):
    m = models[kind]
    kw = dict(max_len_a=1.0, max_len_b=2, suppress_eos=True)
    limits = output_limits(m.memory, m.padding, None, 1.0, 2, 1024).tolist()
    beams = beam_search(m.decoder, m.memory, m.padding, beam=3, nbest=3, **kw)
    greedy = greedy_search(m.decoder, m.memory, m.padding, **kw)
    for hyps, g, limit in zip(beams, greedy, limits):
        assert len(hyps) == 3 and all(len(h.tokens) == limit for h in hyps)
        assert len(g.tokens) == limit
        assert EOS not in g.tokens and all(EOS not in h.tokens for h in hyps)


@BOTH
def test_nbest_is_sorted_and_distinct(models, kind):
    m = models[kind]
    for hyps in beam_search(m.decoder, m.memory, m.padding, beam=5, nbest=5, **LEN):
        assert len(hyps) == 5
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 5
        for h in hyps:
            assert PAD not in h.tokens and EOS not in h.tokens and SOS not in h.tokens
            assert len(h.positional_scores) == len(h.tokens) + 1
            assert h.log_prob == pytest.approx(sum(h.positional_scores), abs=1e-4)
    top2 = beam_search(m.decoder, m.memory, m.padding, beam=5, nbest=2, **LEN)
    assert all(len(hyps) == 2 for hyps in top2)


def test_min_len(models):
    m = models["lego"]
    for hyps in beam_search(m.decoder, m.memory, m.padding, beam=3, nbest=3, min_len=4, **LEN):
        assert all(len(h.tokens) >= 4 for h in hyps)
    assert all(len(g.tokens) >= 4 for g in greedy_search(m.decoder, m.memory, m.padding, min_len=4, **LEN))


# --- scripted decoders: exact expectations -----------------------------------


class ScriptedDecoder:
    """Next-token distribution looked up by prefix (without <sos>); a fixed default elsewhere.

    Implements the decoder search protocol; the cache holds the prefix, batch in dim 0.
    """

    training = False

    def __init__(self, vocab, table, default=None):
        self.vocab, self.table = vocab, table
        self.default = default if default is not None else [1.0] * vocab

    def _logits(self, prefix):
        probs = torch.tensor(self.table.get(tuple(prefix), self.default), dtype=torch.float64)
        return (probs / probs.sum()).clamp_min(1e-12).log().float()

    def decode(self, prev_tokens, memory, memory_padding):
        rows = prev_tokens.tolist()
        return torch.stack([torch.stack([self._logits(r[1 : t + 1]) for t in range(len(r))]) for r in rows])

    def new_cache(self, max_len=0):
        return [{}]

    def reorder_cache(self, cache, rows, memory_rows=None):
        cache[0]["self"]["k"] = cache[0]["self"]["k"].index_select(0, rows)

    def step(self, last_tokens, memory, memory_padding, cache):
        part = cache[0].setdefault("self", {})
        new = last_tokens.view(-1, 1)
        part["k"] = new if "k" not in part else torch.cat([part["k"], new], dim=1)
        return torch.stack([self._logits(r[1:]) for r in part["k"].tolist()])


def one_hot_probs(vocab, weights):
    row = [1e-6] * vocab
    for tok, w in weights.items():
        row[tok] = w
    return row


def test_beam_finds_what_greedy_misses():
    # Greedy takes 3 (0.55) then a flat distribution; beam takes 4 (0.45) then <eos> (0.9).
    v = 12
    table = {
        (): one_hot_probs(v, {3: 0.55, 4: 0.45}),
        (4,): one_hot_probs(v, {EOS: 0.9, 5: 0.1}),
        (3,): [0.0, 0.0] + [0.1] * 10,
    }
    dec = ScriptedDecoder(v, table)
    memory = torch.zeros(1, 2, 4)
    greedy = greedy_search(dec, memory, None, max_len_b=5, length_penalty=0.0)
    best = beam_search(dec, memory, None, beam=3, max_len_b=5, length_penalty=0.0)[0][0]
    assert greedy[0].tokens[0] == 3 and best.tokens == [4]
    assert best.log_prob == pytest.approx(math.log(0.45 * 0.9), abs=1e-4)
    assert best.score > greedy[0].score


def test_pad_is_never_produced_but_unk_is():
    v = 6
    dec = ScriptedDecoder(v, {(): one_hot_probs(v, {PAD: 0.9, UNK: 0.09, EOS: 0.01})},
                          default=one_hot_probs(v, {PAD: 0.9, EOS: 0.1}))  # fmt: skip
    memory = torch.zeros(2, 3, 4)
    for hyps in beam_search(dec, memory, None, beam=2, nbest=2, max_len_b=4):
        assert hyps[0].tokens == [UNK]
        assert all(PAD not in h.tokens for h in hyps)
    assert [g.tokens for g in greedy_search(dec, memory, None, max_len_b=4)] == [[UNK], [UNK]]


def test_tiny_vocabulary_with_fewer_outputs_than_the_beam():
    # Only <unk> and <eos> can be produced: the beam has fewer live candidates than slots.
    dec = ScriptedDecoder(3, {}, default=[0.0, 0.5, 0.5])
    results = beam_search(dec, torch.zeros(2, 3, 4), None, beam=4, nbest=4, max_len_b=3, min_len=0)
    for hyps in results:
        assert sorted(len(h.tokens) for h in hyps) == [0, 1, 2, 3]
        assert all(set(h.tokens) <= {UNK} for h in hyps)


def test_forced_eos_and_fairseq_length_normalisation():
    # <eos> is unlikely everywhere: every hypothesis ends at the limit with its real <eos> log-prob.
    v = 5
    dec = ScriptedDecoder(v, {}, default=[0.0, 0.0, 0.01, 0.5, 0.49])
    hyps = beam_search(dec, torch.zeros(1, 3, 4), None, beam=2, nbest=2, max_len_b=3, length_penalty=1.0)[0]
    lp = [math.log(p / 1.0) for p in (0.5, 0.5, 0.5, 0.01)]
    assert hyps[0].tokens == [3, 3, 3]
    assert hyps[0].log_prob == pytest.approx(sum(lp), abs=1e-4)
    assert hyps[0].score == pytest.approx(sum(lp) / 4, abs=1e-4)  # length counts <eos>


def test_arguments_are_checked_and_empty_batches_work():
    dec = ScriptedDecoder(5, {})
    memory = torch.zeros(1, 2, 4)
    with pytest.raises(ValueError):
        beam_search(dec, memory, None, beam=0)
    with pytest.raises(ValueError):
        beam_search(dec, memory, None, beam=2, nbest=3)
    with pytest.raises(ValueError):
        beam_search(dec, memory, None, source_lengths=[1, 2])
    assert beam_search(dec, torch.zeros(0, 2, 4), None) == []
    assert greedy_search(dec, torch.zeros(0, 2, 4), None) == []


@BOTH
def test_search_looking_every_few_steps_equals_looking_every_step(models, kind, monkeypatch):
    """The GPU schedule (finished sentences kept with -inf scores, <eos> extensions collected
    later), run on CPU: the same hypotheses as leaving the batch at once."""
    m = models[kind]
    kw = dict(beam=3, nbest=3, max_len_a=0.0, max_len_b=9)
    every_step = beam_search(m.decoder, m.memory, m.padding, **kw)
    assert any(len(h.tokens) < 9 for hyps in every_step for h in hyps)  # hypotheses finish between looks
    monkeypatch.setattr(beam_search_module, "_sync_every", lambda device: 4)
    every_fourth = beam_search(m.decoder, m.memory, m.padding, **kw)
    for a, b in zip(every_step, every_fourth):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
