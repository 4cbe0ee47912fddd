"""text_marginals (issue 20): text as the marginals a recogniser would give, so that a module
reading marginals can be trained on text and composed behind a speech recogniser."""
from __future__ import annotations

import math

import pytest
import torch

from legonn.data.vocab import SPECIALS, Vocabulary
from legonn.errors import LegonnError
from legonn.modules.artifact import assemble, load_module, save_module
from legonn.nn.chain import Chain, build_module
from legonn.nn.ctc import greedy_decode

V = 9
TOKENS = torch.tensor([[3, 4, 4, 5, 0], [6, 7, 0, 0, 0]])
LENGTHS = torch.tensor([4, 2])


def test_at_evaluation_each_token_is_one_position():
    module = build_module("text_marginals", {"vocab_size": V, "smoothing": 0.1, "ctc_frames": True}).eval()
    out = module(TOKENS, LENGTHS)
    assert torch.equal(out.lengths, LENGTHS) and out.log_probs.shape == (2, 5, V)
    assert torch.equal(out.log_probs.argmax(-1)[0, :4], TOKENS[0, :4])
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(2, 5))
    assert out.log_probs[0, 0, 3].exp().item() == pytest.approx(1 - 0.1 + 0.1 / V)
    assert torch.equal(module.output_lengths(LENGTHS), LENGTHS)


def test_in_training_ctc_shaped_frames_collapse_back_to_the_tokens():
    module = build_module("text_marginals", {"vocab_size": V, "ctc_frames": True, "blank_rate": 0.5, "max_repeat": 3})
    torch.manual_seed(0)
    lengths_seen = set()
    for _ in range(20):
        out = module.train()(TOKENS, LENGTHS)
        assert greedy_decode(out.log_probs, out.lengths) == [[3, 4, 4, 5], [6, 7]]  # blanks and repeats collapse
        assert (out.lengths >= LENGTHS).all() and (out.lengths <= LENGTHS * 7).all()
        lengths_seen.add(tuple(out.lengths.tolist()))
    assert len(lengths_seen) > 5  # frames are drawn anew each time
    torch.manual_seed(3)
    a = module(TOKENS, LENGTHS).log_probs
    torch.manual_seed(3)
    assert torch.equal(a, module(TOKENS, LENGTHS).log_probs)  # from torch's RNG: a resumed run draws the same


@pytest.mark.parametrize("conf", [{"smoothing": 1.0}, {"blank_rate": 1.0}, {"max_repeat": 0}, {"distractors": 2},
                                  {"smoothing": 0.1, "distractors": V}])
def test_bad_settings_are_refused(conf):
    with pytest.raises(LegonnError, match="text_marginals"):
        build_module("text_marginals", {"vocab_size": V, **conf})


def test_a_marginal_reading_encoder_trains_on_text_and_composes_behind_a_recogniser(tmp_path):
    """text_marginals -> MT encoder (WEmb over the German pieces) -> decoder trains; the MT encoder's
    folder then composes behind any module whose output is over the very German vocabulary, and
    refuses one over another."""
    size = {"d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0}
    chain = Chain.from_specs([
        {"name": "text", "type": "text_marginals", "target": "de", "loss_weight": 0.0,
         "conf": {"vocab_size": V, "smoothing": 0.1, "ctc_frames": True}},
        {"name": "encoder", "type": "lego_encoder", "target": "en",
         "conf": {"input": {"type": "wemb", "vocab_size": V, "layers": 1}, **size,
                  "olc": {"factor": 2, "max_len": 64, "layers": 1}, "ctc_vocab_size": V}},
        {"name": "decoder", "type": "lego_decoder", "target": "en",
         "conf": {"vocab_size": V, "ingestor": {"type": "wemb", "vocab_size": V}, **size}},
    ])
    targets = {"de": (TOKENS[:, :4], LENGTHS), "en": (TOKENS[:, :4], LENGTHS)}
    out = chain.train()(TOKENS, LENGTHS, targets)
    out.logits.sum().backward()
    assert chain.blocks["encoder"].input_layer.conv.weight.grad is not None
    german = Vocabulary(list(SPECIALS) + [f"de{i}" for i in range(V - len(SPECIALS))])
    other = Vocabulary(list(SPECIALS) + [f"xx{i}" for i in range(V - len(SPECIALS))])
    english = Vocabulary(list(SPECIALS) + [f"en{i}" for i in range(V - len(SPECIALS))])
    save_module(chain.blocks["encoder"], tmp_path / "mt_encoder", "encoder", german, english)
    save_module(chain.blocks["decoder"], tmp_path / "decoder", "decoder", english, english)
    recogniser = build_module("lego_encoder", {"input": {"type": "conv2d", "input_dim": 80}, **size, "ctc_vocab_size": V})
    save_module(recogniser, tmp_path / "asr_de", "asr", None, german)
    save_module(recogniser, tmp_path / "asr_other", "asr", None, other)
    composed, _ = assemble([tmp_path / "asr_de", tmp_path / "mt_encoder", tmp_path / "decoder"])
    feats = torch.randn(2, 40, 80)
    with torch.no_grad():
        enc = composed.encode(feats, torch.tensor([40, 30]))
    assert enc[-1].log_probs.shape[-1] == V and not math.isnan(float(enc[-1].log_probs.sum()))
    with pytest.raises(LegonnError, match="output vocabulary .* differs from input vocabulary"):
        assemble([tmp_path / "asr_other", tmp_path / "mt_encoder", tmp_path / "decoder"])


def test_the_module_is_a_folder_like_any_other(tmp_path):
    german = Vocabulary(list(SPECIALS) + [f"de{i}" for i in range(V - len(SPECIALS))])
    module = build_module("text_marginals", {"vocab_size": V, "smoothing": 0.05})
    save_module(module, tmp_path / "text", "text", german, german)
    loaded = load_module(tmp_path / "text")
    assert loaded.meta["input"]["kind"] == "tokens" and loaded.meta["output"]["kind"] == "marginals"
    assert loaded.meta["output"]["vocab"]["sha256"] == german.checksum
    assert torch.equal(loaded.module(TOKENS, LENGTHS).log_probs, module.eval()(TOKENS, LENGTHS).log_probs)


def test_distractors_give_the_ranks_below_the_best_random_tokens_in_random_order():
    module = build_module("text_marginals", {"vocab_size": V, "smoothing": 0.2, "distractors": 3})
    torch.manual_seed(0)
    out = module.train()(TOKENS, LENGTHS)
    probs = out.log_probs.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(2, 5))
    assert torch.equal(probs.argmax(-1)[0, :4], TOKENS[0, :4])
    assert ((probs > 1e-6).sum(-1) <= 4).all()  # the token and at most 3 others (a draw may repeat)
    second = [probs.topk(2, -1).indices[..., 1]]
    second += [module(TOKENS, LENGTHS).log_probs.topk(2, -1).indices[..., 1] for _ in range(3)]
    assert any(not torch.equal(second[0], s) for s in second[1:])  # drawn anew in training
    evaluation = module.eval()
    assert torch.equal(evaluation(TOKENS, LENGTHS).log_probs, evaluation(TOKENS, LENGTHS).log_probs)
    torch.manual_seed(5)
    before = torch.rand(())
    torch.manual_seed(5)
    evaluation(TOKENS, LENGTHS)
    assert torch.rand(()) == before  # validation leaves training's random stream alone
