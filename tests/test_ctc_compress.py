"""ctc_compress: a recogniser's frame marginals shortened to one position per recognised token,
the bridge between a speech recogniser and a module that learnt to read text-length marginals."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from legonn.data.vocab import SPECIALS, Vocabulary
from legonn.errors import LegonnError
from legonn.modules.artifact import assemble, load_module, save_module
from legonn.modules.export import export_weightless
from legonn.nn.chain import build_module

V = 7


def frames(rows: list[list[int]], peak: float = 0.9) -> torch.Tensor:
    """Log-marginals whose best symbol at each frame is the given one."""
    x = torch.full((len(rows), max(map(len, rows)), V), math.log((1 - peak) / (V - 1)))
    for i, row in enumerate(rows):
        for t, s in enumerate(row):
            x[i, t, s] = math.log(peak)
    return x


def test_blanks_go_and_runs_become_one_averaged_position():
    module = build_module("ctc_compress", {"vocab_size": V})
    # blank a a blank a b b blank | (padding) ; "a a" separated by a blank stays two tokens
    x = frames([[0, 3, 3, 0, 3, 4, 4, 0], [5, 5, 0, 6, 0, 0, 0, 0]])
    x[0, 2] = torch.log_softmax(torch.tensor([0.0, 0, 0, 2.0, 1.0, 0, 0]), -1)  # a less sure 'a'
    out = module(x, torch.tensor([8, 4]))
    assert out.lengths.tolist() == [3, 2]
    assert out.log_probs[0, :3].argmax(-1).tolist() == [3, 3, 4] and out.log_probs[1, :2].argmax(-1).tolist() == [5, 6]
    probs = out.log_probs.exp()
    expected = (x[0, 1].exp() + x[0, 2].exp()) / 2  # the run's average, blank share removed
    expected[0] = 0
    assert torch.allclose(probs[0, 0], expected / expected.sum(), atol=1e-6)
    assert torch.allclose(probs[0, :3].sum(-1), torch.ones(3)) and (probs[0, :3, 0] < 1e-9).all()
    keep = build_module("ctc_compress", {"vocab_size": V, "drop_blank": False})(x, torch.tensor([8, 4]))
    assert (keep.log_probs[0, :3, 0].exp() > 0).all()


def test_an_utterance_heard_as_silence_keeps_one_position_and_gradients_flow():
    module = build_module("ctc_compress", {"vocab_size": V})
    x = frames([[0, 0, 0, 0], [0, 0, 2, 0]])
    x[0, 2] = torch.log_softmax(torch.tensor([1.0, 0, 0, 0, 0.9, 0, 0]), -1)  # least blank frame
    x.requires_grad_(True)
    out = module(x, torch.tensor([4, 4]))
    assert out.lengths.tolist() == [1, 1] and out.log_probs[0, 0].argmax().item() == 4
    out.log_probs[:, 0].sum().backward()
    assert x.grad.abs().sum() > 0


def test_weightless_export_composes_between_a_recogniser_and_a_reader(tmp_path):
    german = Vocabulary(list(SPECIALS) + [f"de{i}" for i in range(V - len(SPECIALS))])
    other = Vocabulary(list(SPECIALS) + [f"xx{i}" for i in range(V - len(SPECIALS))])
    german.save(tmp_path, "de")
    folder = export_weightless("ctc_compress", tmp_path / "de.tokens.txt", tmp_path / "compress")
    loaded = load_module(folder)
    assert loaded.meta["input"]["vocab"]["sha256"] == loaded.meta["output"]["vocab"]["sha256"] == german.checksum
    size = {"d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0}
    recogniser = build_module("lego_encoder", {"input": {"type": "conv2d", "input_dim": 80}, **size, "ctc_vocab_size": V})
    reader = build_module("lego_encoder", {"input": {"type": "wemb", "vocab_size": V}, **size, "ctc_vocab_size": V})
    save_module(recogniser, tmp_path / "asr", "asr", None, german)
    save_module(recogniser, tmp_path / "asr_other", "asr", None, other)
    save_module(reader, tmp_path / "mt", "mt", german, german)
    chain, _ = assemble([tmp_path / "asr", folder, tmp_path / "mt"])
    with torch.no_grad():
        outs = chain.encode(torch.randn(2, 64, 80), torch.tensor([64, 40]))
    assert (outs[1].lengths <= outs[0].lengths).all() and outs[2].log_probs.shape[-1] == V
    with pytest.raises(LegonnError, match="differs from input vocabulary"):
        assemble([tmp_path / "asr_other", folder, tmp_path / "mt"])
    with pytest.raises(LegonnError, match="has weights"):
        export_weightless("lego_decoder", tmp_path / "de.tokens.txt", tmp_path / "nope",
                          {"ingestor": {"type": "wemb", "vocab_size": V}, **size})


def test_export_command_line(tmp_path):
    (tmp_path / "v.txt").write_text("".join(f"{s}\n" for s in list(SPECIALS) + ["a", "b", "c"]))
    run = [sys.executable, "-m", "legonn", "export", "--weightless", "ctc_compress", "--vocab", str(tmp_path / "v.txt")]
    out = subprocess.run(run + ["--out_dir", str(tmp_path / "c"), "--conf", '{"drop_blank": false}'],
                         capture_output=True, text=True)
    assert out.returncode == 0 and (tmp_path / "c" / "module.json").is_file(), out.stderr
    assert load_module(tmp_path / "c").module.drop_blank is False
    bad = subprocess.run(run + ["--out_dir", str(tmp_path / "d"), "--exp_dir", "x"], capture_output=True, text=True)
    assert bad.returncode != 0 and "no --exp_dir" in bad.stderr
