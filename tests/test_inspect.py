"""``legonn inspect``: greedy CTC outputs per module (equal to ``legonn.nn.ctc.greedy_decode``), the
decoder's hypothesis, marginal heatmaps as PNG files, and a report."""
from __future__ import annotations

import re
import struct

import numpy as np
import pytest
import torch

from fixtures import shared_experiment, single_thread  # noqa: F401  (fixture)
from legonn import cli
from legonn.modules.artifact import assemble, load_module, save_module
from legonn.nn.ctc import greedy_decode
from legonn.data.dataset import ChainDataset, StreamSpec
from legonn.errors import LegonnError
from legonn.engine.experiment import export_experiment
from legonn.modules.inspector import ModuleView, plot_marginals, top_symbols

pytestmark = pytest.mark.usefixtures("single_thread")

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG, path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    exp_dir, config = shared_experiment(tmp_path_factory)
    out = tmp_path_factory.mktemp("inspect_modules")
    enc, dec = export_experiment(exp_dir, out_dir=out)
    # The briefly trained encoder still puts blank first everywhere: lower the blank's logit so
    # that its best paths have words in them (and comparing them means something).
    loaded = load_module(enc)
    with torch.no_grad():
        loaded.module.ctc.proj.bias[0] -= 3.0
    enc = save_module(loaded.module, out / "encoder_less_blank", "encoder", input_vocab=loaded.input_vocab,
                      output_vocab=loaded.output_vocab, extra=loaded.meta["extra"])
    return enc, dec, config["data"]["valid"]


def expected_greedy(enc, dec, valid, utts):
    chain, loaded = assemble([enc, dec])
    dataset = ChainDataset(valid, StreamSpec("text.de", str(enc / "input.tokens.txt")), {}, require_targets=False)
    out = {}
    with torch.no_grad():
        for utt in utts:
            batch = dataset.collate([dataset.utts.index(utt)])
            (first,) = chain.encode(batch.inputs, batch.input_lengths)
            out[utt] = loaded[0].output_vocab.decode(greedy_decode(first.log_probs, first.lengths)[0])
    return out


def test_inspect_prints_greedy_outputs_and_writes_heatmaps(setup, tmp_path, capsys):
    enc, dec, valid = setup
    out = tmp_path / "plots"
    status = cli.main(["inspect", "--modules", str(enc), str(dec), "--data_dir", valid, "--input_file", "text.de",
                       "--first", "2", "--ref_file", "text.en", "--beam", "2", "--out_dir", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    header = printed.split("\n\n")[0].splitlines()
    assert header == [
        f"input: {valid}/text.de",
        "module encoder (lego_encoder): tokens from the data file `text.de` (e.g. `apfel` `auto` `baum` `brot` `buch` "
        "`haus` …) -> marginals of stream `en`, learnt from the data file `text.en` (e.g. `apple` `bird` `book` `bread` "
        "`car` `cat` …)",  # this encoder was saved again without a length ratio
        "module decoder (lego_decoder): marginals from stream `en`, the output of the module before it (e.g. `apple` "
        "`bird` `book` `bread` `car` `cat` …) -> tokens of stream `en`, learnt from the data file `text.en` (e.g. "
        "`apple` `bird` `book` `bread` `car` `cat` …)",
    ]
    utts = re.findall(r"^== (\S+)$", printed, re.M)
    assert utts == ["va0000", "va0001"]
    greedy = dict(zip(utts, re.findall(r"^  encoder +CTC greedy +(.*)$", printed, re.M)))
    want = expected_greedy(enc, dec, valid, utts)
    assert all(want.values()), want
    assert greedy == want
    assert len(re.findall(r"^  decoder +beam 2 +\S", printed, re.M)) == 2
    assert len(re.findall(r"^  reference +\S", printed, re.M)) == 2
    assert len(re.findall(r"^  input +\S", printed, re.M)) == 2
    for utt in utts:
        png = out / f"{utt}_encoder.png"
        width, height = png_size(png)
        assert width > 300 and height > 200
    assert sorted(p.name for p in out.iterdir()) == ["report.txt", "va0000_encoder.png", "va0001_encoder.png"]
    report = (out / "report.txt").read_text()
    assert report.strip() in printed


def test_inspect_a_composed_folder_and_chosen_utterances(setup, tmp_path, capsys):
    from legonn.modules.compose import compose

    enc, dec, valid = setup
    composed = compose([enc, dec], tmp_path / "composed").directory
    args = ["--data_dir", valid, "--input_file", "text.de", "--utt", "va0007", "va0003", "--beam", "0"]
    assert cli.main(["inspect", "--modules", str(composed), *args]) == 0
    by_composed = capsys.readouterr().out
    assert cli.main(["inspect", "--modules", str(enc), str(dec), *args]) == 0
    assert capsys.readouterr().out == by_composed
    assert re.findall(r"^== (\S+)$", by_composed, re.M) == ["va0007", "va0003"]
    greedy = re.findall(r"^  encoder +CTC greedy +(.*)$", by_composed, re.M)
    want = expected_greedy(enc, dec, valid, ["va0007", "va0003"])
    assert greedy == list(want.values()) and all(greedy)
    assert "(not decoded: --beam 0)" in by_composed

    status = cli.main(["inspect", "--modules", str(composed), "--data_dir", valid, "--input_file", "text.de", "--utt", "nope"])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("legonn inspect: error: --utt: nope")


def test_heatmap_of_a_hundred_positions(tmp_path):
    from legonn.data.vocab import Vocabulary

    rng = np.random.default_rng(0)
    vocab = Vocabulary.from_symbols(f"▁word{i}" for i in range(40))
    logits = rng.normal(size=(120, len(vocab)))
    logits[:, 0] += 3
    logits[::4, 5] += 8
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    view = ModuleView("enc", "marginals", log_probs, [5], "▁word2", vocab)
    path = plot_marginals(view, "u1", tmp_path / "u1_enc.png", top=10)
    width, height = png_size(path)
    assert 1000 < width < 3200 and 250 < height < 1000  # wide enough to tell positions apart, not huge
    rows = top_symbols(np.exp(log_probs), 10)
    assert len(rows) == 10 and rows[0] == 0 and 5 in rows
    assert top_symbols(np.exp(log_probs), 1) == [0]
    assert [p.name for p in tmp_path.iterdir()] == ["u1_enc.png"]


def test_inspect_refuses_bad_options(setup):
    from legonn.modules.inspector import run

    enc, dec, valid = setup
    with pytest.raises(LegonnError, match="--top"):
        run([str(enc), str(dec)], valid, "text.de", top=0)
    with pytest.raises(LegonnError, match="--first"):
        run([str(enc), str(dec)], valid, "text.de", first=0)


def test_a_baseline_encoder_has_no_interface_to_show(setup, tmp_path, capsys):
    """Hidden states cannot be read (paper §V-B): no greedy line, no heatmap for that module."""
    from legonn.nn.chain import build_module

    enc, dec, valid = setup
    de, en = load_module(enc).input_vocab, load_module(dec).output_vocab
    tiny = {"d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0}
    torch.manual_seed(0)
    base_enc = build_module("transformer_encoder", {**tiny, "input": {"type": "embedding", "vocab_size": len(de)}}).eval()
    base_dec = build_module("transformer_decoder", {**tiny, "vocab_size": len(en)}).eval()
    folders = [save_module(base_enc, tmp_path / "be", "base_encoder", input_vocab=de),
               save_module(base_dec, tmp_path / "bd", "base_decoder", output_vocab=en)]
    out = tmp_path / "plots"
    assert cli.main(["inspect", "--modules", *map(str, folders), "--data_dir", valid, "--input_file", "text.de",
                     "--first", "1", "--beam", "1", "--max_len_b", "3", "--out_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^  base_encoder +hidden +\(no CTC head: its interface cannot be read\)$", printed, re.M)
    assert re.search(r"^  base_decoder +beam 1 +", printed, re.M)
    assert [p.name for p in out.iterdir()] == ["report.txt"]


def test_inspect_help_names_the_real_input_default(capsys):
    with pytest.raises(SystemExit):
        cli.main(["inspect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: the file the first module was trained on, recorded at export;" in text
    assert "text for a text module" not in text
    assert "(default: 10)" in text and "(default: 5)" in text and "(default: 3)" in text
