"""A module folder exported by legonn before the package redesign (tests/data/old_module, made at
commit be393f1) loads and decodes identically with today's code: same hypotheses, n-best scores,
CTC best paths and encoder marginals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fixtures import run_legonn
from legonn.data.dataset import ChainDataset, StreamSpec
from legonn.modules.artifact import assemble, load_module
from legonn.modules.card import module_card
from legonn.modules.inspector import format_header

OLD = Path(__file__).resolve().parent / "data" / "old_module"
MODULES = [OLD / "modules" / "encoder", OLD / "modules" / "decoder"]


def test_old_module_decodes_identically(tmp_path):
    out = tmp_path / "dec"
    result = run_legonn("decode", "--modules", *MODULES, "--data_dir", OLD / "data", "--out_dir", out, "--beam", "3")
    assert result.returncode == 0, result.stderr
    for name in ("text", "nbest", "ctc_encoder.text", "ctc_encoder.ref"):
        assert (out / name).read_text() == (OLD / "expected" / name).read_text(), name


def test_old_module_marginals_unchanged():
    chain, loaded = assemble(MODULES)
    chain.eval()
    expected = np.load(OLD / "expected" / "encoder_log_probs.npz")
    dataset = ChainDataset(OLD / "data", StreamSpec("text.de", str(MODULES[0] / "input.tokens.txt")), {}, require_targets=False)
    batch = dataset.collate(list(range(len(expected["utts"]))))
    assert batch.utt_ids == list(expected["utts"])
    with torch.no_grad():
        enc = chain.encode(batch.inputs, batch.input_lengths)[0]
    assert enc.lengths.tolist() == expected["lengths"].tolist()
    # Padded positions carry no meaning (every reader masks them) and are skipped when packed.
    for i, n in enumerate(expected["lengths"]):
        np.testing.assert_allclose(enc.log_probs[i, :n].numpy(), expected["log_probs"][i, :n], atol=1e-5, rtol=0)
    assert [m.meta["name"] for m in loaded] == ["encoder", "decoder"]


def test_old_module_card_and_inspect_header_without_the_new_fields():
    """Folders exported before input_stream was recorded still get a card and an inspect header."""
    loaded = [load_module(m) for m in MODULES]
    assert "input_stream" not in loaded[1].extra
    card = module_card(loaded[1].meta, loaded[1].input_vocab, loaded[1].output_vocab)
    assert "- input: marginals over 15 symbols" in card and "  - e.g. `apple` `bird`" in card
    assert "  - stream `en`, learnt from the data file `text.en`; e.g. `apple`" in card
    header = format_header(["encoder", "decoder"], loaded, OLD / "data" / "text.de").splitlines()
    assert header[2].startswith("module decoder (lego_decoder): marginals (e.g. `apple` `bird`")
