"""``legonn export``, ``legonn decode`` and ``legonn score`` on a trained experiment, through real
processes: exported module folders decode exactly like the experiment they came from."""
from __future__ import annotations

import json

import pytest
import torch

from fixtures import run_legonn, run_legonn_parallel, shared_experiment, single_thread  # noqa: F401  (fixture)
from legonn.fileio import read_table

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(exp_dir, config, modules dir): ``legonn export`` of the shared experiment."""
    exp_dir, config = shared_experiment(tmp_path_factory)
    out = tmp_path_factory.mktemp("export") / "modules"
    proc = run_legonn("export", "--exp_dir", exp_dir, "--out_dir", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"exported {out / 'encoder'}", f"exported {out / 'decoder'}"]
    return exp_dir, config, out


def test_export_writes_module_folders(exported):
    exp_dir, config, out = exported
    assert sorted(p.name for p in out.iterdir()) == ["decoder", "encoder"]
    for name in ("encoder", "decoder"):
        folder = out / name
        for f in ("module.json", "model.safetensors", "README.md"):
            assert (folder / f).is_file() and (folder / f).stat().st_size > 0, (name, f)
        meta = json.loads((folder / "module.json").read_text())
        assert meta["name"] == name and meta["format"] == "legonn-module"
        assert f"`{config['data']['train']}`" in meta["trained_on"]  # default provenance line
        assert f"# {name}" in (folder / "README.md").read_text()
    enc = json.loads((out / "encoder" / "module.json").read_text())
    dec = json.loads((out / "decoder" / "module.json").read_text())
    assert enc["input"]["kind"] == "tokens" and enc["input"]["vocab"]["size"] == 15
    assert enc["output"]["vocab"]["sha256"] == dec["input"]["vocab"]["sha256"]
    assert enc["olc"] == {"factor": "2", "max_len": 64}  # the factor as written (it may be a ratio, "1/1.5")


def test_export_records_length_statistics(exported):
    from legonn.engine.experiment import open_dataset

    _, config, out = exported
    enc = json.loads((out / "encoder" / "module.json").read_text())["extra"]
    dec = json.loads((out / "decoder" / "module.json").read_text())["extra"]
    train_set = open_dataset(config, "train")
    lengths = train_set.input_lengths  # 2..6 German words
    assert enc["target"] == "en" and dec["target"] == "en"
    for stats in (enc["input_length"], enc["output_length"], enc["target_length"], dec["input_length"]):
        assert set(stats) == {"mean", "p5", "p95", "max"}
        assert stats["p5"] <= stats["mean"] <= stats["p95"] <= stats["max"]
    assert enc["input_length"]["mean"] == pytest.approx(float(lengths.mean()))
    assert enc["input_length"]["max"] == int(lengths.max()) == 6
    # OLC factor 2: twice the input positions; the decoder read what the encoder produced
    assert enc["output_length"]["mean"] == pytest.approx(2 * float(lengths.mean()))
    assert enc["output_length"]["max"] == 12
    assert dec["input_length"] == enc["output_length"]
    assert enc["target_length"] == enc["input_length"]  # word for word
    assert json.loads((out / "encoder" / "module.json").read_text())["length_ratio"] == pytest.approx(2.0)


def test_module_cards_name_streams_files_and_examples(exported):
    """A card says what language/stream a module reads and writes, from which data file, with a few
    symbols of each vocabulary and the length ratio."""
    _, _, out = exported
    enc = (out / "encoder" / "README.md").read_text()
    assert "  - reads the data file `text.de`; e.g. `apfel` `auto` `baum` `brot` `buch` `haus` …" in enc
    assert "  - stream `en`, learnt from the data file `text.en`; e.g. `apple` `bird` `book` `bread` `car` `cat` …" in enc
    assert "- expected output/input length ratio: 2.000" in enc
    dec = (out / "decoder" / "README.md").read_text()
    assert "  - reads stream `en`, the output of the module before it; e.g. `apple` `bird`" in dec
    assert "  - stream `en`, learnt from the data file `text.en`; e.g. `apple`" in dec
    assert json.loads((out / "decoder" / "module.json").read_text())["extra"]["input_stream"] == "en"


def test_decode_exp_dir_and_modules_agree_and_score(exported, tmp_path):
    exp_dir, config, modules = exported
    valid = config["data"]["valid"]
    by_exp, by_modules = tmp_path / "by_exp", tmp_path / "by_modules"
    procs = run_legonn_parallel(
        ["decode", "--exp_dir", exp_dir, "--data_dir", valid, "--out_dir", by_exp, "--beam", "3"],
        ["decode", "--modules", modules / "encoder", modules / "decoder", "--input_file", "text.de",
         "--data_dir", valid, "--out_dir", by_modules, "--beam", "3"],
    )
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
        assert "decoded 30 utterances" in proc.stdout

    text = (by_exp / "text").read_text()
    assert text == (by_modules / "text").read_text()
    hyps = read_table(by_exp / "text")
    assert sorted(hyps) == sorted(read_table(f"{valid}/text.en"))
    assert any(hyps.values()), "the model produces words"
    assert (by_exp / "nbest").read_text() == (by_modules / "nbest").read_text()
    # the encoder's CTC best path is written too, identically
    assert (by_exp / "ctc_encoder.text").read_text() == (by_modules / "ctc_encoder.text").read_text()
    # ... with the data file it is to be scored against: the encoder's training target
    assert (by_exp / "ctc_encoder.ref").read_text() == (by_modules / "ctc_encoder.ref").read_text() == "text.en\n"
    assert not [p.name for p in by_exp.iterdir() if p.name.startswith(".")], "no temporary files left"

    proc = run_legonn("score", "--ref", f"{valid}/text.en", "--hyp", by_exp / "text", "--metric", "wer")
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.splitlines()[0]
    assert summary.startswith("WER ") and summary.endswith("30 utts"), summary
    assert (by_exp / "score.json").is_file()


def test_decode_with_a_missing_input_file_writes_nothing(exported, tmp_path, capsys):
    from legonn import cli

    exp_dir, config, modules = exported
    data = tmp_path / "data"
    data.mkdir()
    (data / "text.en").write_text("u1 house\n")  # no text.de
    out = tmp_path / "out"
    status = cli.main(["decode", "--exp_dir", str(exp_dir), "--data_dir", str(data), "--out_dir", str(out)])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("legonn decode: error: "), err
    line = err[0]
    assert "text.de" in line and "not found" in line
    assert not (out / "text").exists()
    assert not out.exists() or not list(out.iterdir())

def test_decode_modules_reads_the_recorded_input_file(exported, tmp_path, capsys):
    """Module folders read the data file their first module was trained on (recorded at export);
    a named --input_file that is missing is one error line and no output."""
    from legonn import cli
    from legonn.modules.artifact import read_meta

    _, config, modules = exported
    assert read_meta(modules / "encoder")["extra"]["input"] == {"file": config["data"]["input"]["file"]}
    out = tmp_path / "out"
    assert cli.main(["decode", "--modules", str(modules / "encoder"), str(modules / "decoder"),
                     "--data_dir", config["data"]["valid"], "--out_dir", str(out)]) == 0
    assert (out / "text").is_file()
    capsys.readouterr()
    bad = tmp_path / "bad"
    status = cli.main(["decode", "--modules", str(modules / "encoder"), str(modules / "decoder"),
                       "--data_dir", config["data"]["valid"], "--out_dir", str(bad), "--input_file", "text.xx"])
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("legonn decode: error: ")
    assert f"{config['data']['valid']}/text.xx: file not found" in err[0]
    assert not bad.exists() or not list(bad.iterdir())


def test_decode_failing_midway_leaves_no_partial_files(exported, tmp_path, monkeypatch):
    """An error after some batches were decoded: nothing under the final names, no temporary files."""
    import legonn.engine.decode
    from legonn.engine.experiment import load_trained, open_dataset
    from legonn.data.vocab import Vocabulary

    exp_dir, config, _ = exported
    exp = load_trained(exp_dir)
    valid_set = open_dataset(exp.config, "valid")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("unrelated\n")
    real, calls = legonn.engine.decode.beam_search, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(legonn.engine.decode, "beam_search", failing)
    vocab = Vocabulary.load(config["data"]["targets"]["en"]["vocab"])
    with pytest.raises(RuntimeError, match="boom"):
        legonn.engine.decode.decode_dataset(exp.model, valid_set, out, vocab, {"encoder": vocab}, beam=2, max_tokens=40)
    assert len(calls) == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_decode_with_an_averaged_checkpoint(exported, tmp_path):
    exp_dir, config, _ = exported
    from legonn import cli

    avg = tmp_path / "avg.pt"
    assert cli.main(["average", "--exp_dir", str(exp_dir), "--mode", "best", "--num", "2", "--out", str(avg)]) == 0
    status = cli.main(["decode", "--exp_dir", str(exp_dir), "--checkpoint", str(avg), "--data_dir", config["data"]["valid"],
                       "--out_dir", str(tmp_path / "out"), "--beam", "2", "--ctc_modules"])
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["nbest", "text"]
    assert len(read_table(tmp_path / "out" / "text")) == 30
    assert torch.load(avg, weights_only=True)["averaged_from"]


@pytest.mark.parametrize("order,message", [
    (["decoder", "encoder"], "is a decoder: it generates tokens over 15 symbols"),
    (["decoder"], "cannot start a chain: it is a decoder"),
    (["encoder", "decoder", "decoder"], "a decoder can only be the last part of a chain"),
])
@pytest.mark.parametrize("command", ["decode", "inspect"])
def test_module_folders_in_a_bad_order_are_one_error_line(exported, tmp_path, capsys, order, message, command):
    from legonn import cli

    _, config, modules = exported
    args = [command, "--modules", *[str(modules / m) for m in order], "--data_dir", config["data"]["valid"],
            "--input_file", "text.de"]
    out = tmp_path / "out"
    assert cli.main(args + (["--out_dir", str(out)] if command == "decode" else [])) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"legonn {command}: error: ") and message in err[0], captured.err
    assert not out.exists()


def test_decode_keeps_utterances_with_an_empty_input(exported, tmp_path):
    """7 lines, 2 of them empty: 7 utterances decoded, the empty ones as empty hypotheses in every
    file, and one warning line naming them."""
    _, config, modules = exported
    data = tmp_path / "data"
    data.mkdir()
    valid = read_table(f"{config['data']['valid']}/text.de")
    utts = sorted(valid)[:5]
    (data / "text.de").write_text("".join(f"{u} {valid[u]}\n" for u in utts[:2]) + "e1\n" + "e2 \n"
                                  + "".join(f"{u} {valid[u]}\n" for u in utts[2:]))
    out = tmp_path / "out"
    proc = run_legonn("decode", "--modules", modules / "encoder", modules / "decoder", "--data_dir", data,
                      "--out_dir", out, "--beam", "2", "--nbest", "2")
    assert proc.returncode == 0, proc.stderr
    assert "decoded 7 utterances" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "empty input" in line]
    assert warnings == [f"{data}: 2 utterance(s) with an empty input (e1, e2): written as empty hypotheses"], proc.stderr
    text = read_table(out / "text")
    assert sorted(text) == sorted(utts + ["e1", "e2"]) and text["e1"] == text["e2"] == ""
    assert all(text[u] for u in utts)
    assert (out / "text").read_text().splitlines()[:2] == ["e1", "e2"]
    nbest = (out / "nbest").read_text().splitlines()
    assert nbest[:2] == ["e1 1 0.0000", "e2 1 0.0000"] and len(nbest) == 2 + 2 * 5
    assert read_table(out / "ctc_encoder.text")["e1"] == ""
