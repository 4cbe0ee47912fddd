"""``legonn compose``: interface checks, the length-gap warning, the composed artifact (atomic,
self-contained, decoding exactly like its parts) and fine-tuning it from finetune.yaml."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fixtures import shared_experiment, single_thread  # noqa: F401  (fixture)
from legonn import cli
from legonn.modules.artifact import assemble, load_module, save_module
from legonn.nn.chain import Chain
from legonn.modules.compose import compose, load_composed, read_composed, write_finetune_config
from legonn.config import fill_placeholders, resolve
from legonn.errors import LegonnError
from legonn.engine.experiment import data_vocabs, export_experiment, load_trained, open_dataset, stream_sizes
from legonn.modules.export import TrainLengths, export_modules
from legonn.data.vocab import Vocabulary

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """Module folders: the trained encoder and decoder, a decoder reading another vocabulary of the
    same size, and an encoder whose OLC (factor 4) makes twice the positions the decoder knows."""
    exp_dir, config = shared_experiment(tmp_path_factory)
    out = tmp_path_factory.mktemp("compose_modules")
    enc, dec = export_experiment(exp_dir, out_dir=out, trained_on="Trained on the toy De-En corpus.")
    exp = load_trained(exp_dir)
    train_set = open_dataset(exp.config, "train")

    en = Vocabulary.load(config["data"]["targets"]["en"]["vocab"])
    shuffled = Vocabulary(en.tokens[:3] + en.tokens[:2:-1])  # same symbols, another order: another checksum
    loaded = load_module(dec)
    other_dec = save_module(loaded.module, out / "other_decoder", "decoder", input_vocab=shuffled,
                            output_vocab=en, extra=loaded.meta["extra"])

    raw = fill_placeholders(exp.config["model"], stream_sizes(train_set))
    raw[0]["conf"]["olc"]["factor"] = 4
    torch.manual_seed(0)
    (long_enc,) = export_modules(Chain.from_specs(raw), exp.config, TrainLengths.of(train_set), data_vocabs(exp.config),
                                 out / "long", names=["encoder"])
    return {"enc": enc, "dec": dec, "other_dec": other_dec, "long_enc": long_enc, "config": config, "root": out}


@pytest.fixture(scope="module")
def composed(modules, tmp_path_factory):
    out = tmp_path_factory.mktemp("composed") / "de-en"
    result = compose([modules["enc"], modules["dec"]], out, name="toy-de-en")
    assert not result.warnings
    return out


def test_compose_refuses_another_vocabulary_in_one_line(modules, tmp_path, capsys):
    out = tmp_path / "bad"
    assert cli.main(["compose", "--modules", str(modules["enc"]), str(modules["other_dec"]), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    line = err[0]
    assert line.startswith("legonn compose: error: cannot chain")
    assert str(modules["enc"]) in line and str(modules["other_dec"]) in line
    enc_sum = json.loads((modules["enc"] / "module.json").read_text())["output"]["vocab"]["sha256"]
    dec_sum = json.loads((modules["other_dec"] / "module.json").read_text())["input"]["vocab"]["sha256"]
    assert enc_sum != dec_sum
    assert enc_sum[:12] in line and dec_sum[:12] in line and "15 symbols" in line
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "no temporary folder left"


def one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"legonn {command}: error: "), captured.err
    assert "Traceback" not in captured.err
    return err[0]


def test_compose_refuses_a_decoder_before_an_encoder(modules, tmp_path, capsys):
    """--modules DECODER ENCODER: the decoder's generated English tokens cannot feed an encoder
    reading German tokens from a data file; the line says which folder is which."""
    enc, dec = modules["enc"], modules["dec"]
    out = tmp_path / "bad"
    assert cli.main(["compose", "--modules", str(dec), str(enc), "--out", str(out)]) == 1
    line = one_error_line(capsys, "compose")
    en = json.loads((dec / "module.json").read_text())["output"]["vocab"]["sha256"][:12]
    de = json.loads((enc / "module.json").read_text())["input"]["vocab"]["sha256"][:12]
    assert (f"cannot chain {dec} -> {enc}: {dec} is a decoder: it generates tokens over 15 symbols (sha256 {en}), "
            f"and a decoder can only be the last part of a chain; {enc} reads tokens over 15 symbols "
            f"(sha256 {de}, another vocabulary) from a data file") in line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_compose_refuses_a_chain_that_reads_no_data(modules, tmp_path, capsys):
    out = tmp_path / "lone"
    assert cli.main(["compose", "--modules", str(modules["dec"]), "--out", str(out)]) == 1
    line = one_error_line(capsys, "compose")
    assert f"{modules['dec']}: cannot start a chain: it is a decoder and reads marginals over 15 symbols" in line
    assert "not a data file" in line and "nothing to decode" in line
    assert not out.exists()


def test_a_bad_composed_folder_from_an_older_legonn_is_refused(composed, tmp_path, capsys):
    """Older legonn composed DECODER ENCODER: decoding and inspecting it is one error line."""
    bad = tmp_path / "bad"
    shutil.copytree(composed, bad)
    meta = json.loads((bad / "composed.json").read_text())
    meta["parts"].reverse()
    (bad / "composed.json").write_text(json.dumps(meta))
    data = ["--data_dir", str(tmp_path), "--input_file", "text.de"]
    assert cli.main(["decode", "--modules", str(bad), "--out_dir", str(tmp_path / "out"), *data]) == 1
    assert "is a decoder: it generates tokens" in one_error_line(capsys, "decode")
    assert cli.main(["inspect", "--modules", str(bad), *data]) == 1
    assert "only be the last part of a chain" in one_error_line(capsys, "inspect")
    assert not (tmp_path / "out").exists()


def test_compose_writes_a_self_contained_artifact(modules, composed, capsys):
    meta = read_composed(composed)
    assert meta["format"] == "legonn-composed" and meta["format_version"] == 1 and meta["name"] == "toy-de-en"
    assert [p["name"] for p in meta["parts"]] == ["encoder", "decoder"]
    assert [p["folder"] for p in meta["parts"]] == ["parts/0_encoder", "parts/1_decoder"]
    assert [p["type"] for p in meta["parts"]] == ["lego_encoder", "lego_decoder"]
    for part, src in zip(meta["parts"], (modules["enc"], modules["dec"])):
        assert part["source"] == str(src.resolve())
        assert part["target"] == "en"
        for f in src.iterdir():  # a byte-identical copy of the module folder
            assert (composed / part["folder"] / f.name).read_bytes() == f.read_bytes(), f.name
    (link,) = meta["interfaces"]
    assert link["kind"] == "marginals" and link["vocab_size"] == 15
    assert link["vocab_sha256"] == meta["parts"][0]["output"]["vocab_sha256"] == meta["parts"][1]["input"]["vocab_sha256"]
    assert link["relative_gap"] == 0.0 and link["warning"] is None and link["suggested_olc_factor"] == pytest.approx(2.0)
    card = (composed / "README.md").read_text()
    assert card.startswith("# toy-de-en")
    for needle in ("**encoder** (`lego_encoder`)", "**decoder** (`lego_decoder`)", str(modules["enc"].resolve()),
                   "Trained on the toy De-En corpus.", "checksums match", "gap of the means +0%", "init_modules",
                   "   - tokens from the data file `text.de` (e.g. `apfel` `auto` `baum` `brot` `buch` `haus` …) -> "
                   "marginals of stream `en`, learnt from the data file `text.en` (e.g. `apple` `bird` `book` `bread` "
                   "`car` `cat` …); output/input length ratio 2.000"):
        assert needle in card, needle
    assert {p.name for p in composed.iterdir()} == {"composed.json", "README.md", "finetune.yaml", "parts"}


def test_load_composed_is_assemble_of_the_parts(modules, composed):
    chain, loaded = load_composed(composed)
    ref_chain, ref_loaded = assemble([modules["enc"], modules["dec"]])
    assert chain.names == ref_chain.names == ["encoder", "decoder"]
    assert [m.directory for m in loaded] == [composed / "parts/0_encoder", composed / "parts/1_decoder"]
    a, b = chain.state_dict(), ref_chain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [s.target for s in chain.specs] == [s.target for s in ref_chain.specs]
    with pytest.raises(LegonnError, match="not a composed"):
        load_composed(modules["enc"])


def test_length_gap_warning_suggests_an_olc_factor(modules, tmp_path, capsys):
    out = tmp_path / "long"
    assert cli.main(["compose", "--modules", str(modules["long_enc"]), str(modules["dec"]), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, captured.err
    assert "100% longer" in warnings[0] and "OLC factor of 2 instead of 4" in warnings[0]
    assert "1 warning(s)" in captured.out
    link = read_composed(out)["interfaces"][0]
    assert link["relative_gap"] == pytest.approx(1.0) and link["suggested_olc_factor"] == pytest.approx(2.0)
    assert "WARNING" in (out / "README.md").read_text()
    # a looser limit: the same chain, no warning
    assert cli.main(["compose", "--modules", str(modules["long_enc"]), str(modules["dec"]), "--out", str(tmp_path / "ok"),
                     "--max_length_gap", "1.5"]) == 0
    assert "WARNING" not in capsys.readouterr().err


def test_composed_decodes_like_its_parts(modules, composed, tmp_path):
    from legonn.data.dataset import ChainDataset, StreamSpec
    from legonn.engine.decode import decode_dataset

    valid = modules["config"]["data"]["valid"]
    common = ["--data_dir", valid, "--input_file", "text.de", "--beam", "3"]
    # in this process: test_decode_cli and the recipe tests decode module folders in real ones
    assert cli.main(["decode", "--modules", str(composed), "--out_dir", str(tmp_path / "composed"), *common]) == 0
    parts = [str(modules["enc"]), str(modules["dec"])]
    assert cli.main(["decode", "--modules", *parts, "--out_dir", str(tmp_path / "parts"), *common]) == 0
    # the same modules assembled in Python
    chain, loaded = assemble([modules["enc"], modules["dec"]])
    dataset = ChainDataset(valid, StreamSpec("text.de", str(modules["enc"] / "input.tokens.txt")), {}, require_targets=False)
    vocab = loaded[1].output_vocab
    decode_dataset(chain, dataset, tmp_path / "python", vocab, {"encoder": loaded[0].output_vocab}, beam=3)
    for name in ("text", "nbest", "ctc_encoder.text"):
        want = (tmp_path / "python" / name).read_text()
        assert (tmp_path / "composed" / name).read_text() == want, name
        assert (tmp_path / "parts" / name).read_text() == want, name
    assert len(want.splitlines()) == 30


def test_failing_compose_leaves_no_folder(modules, composed, tmp_path, monkeypatch):
    import legonn.modules.compose as mod

    real, calls = mod._copy_part, []

    def failing(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(mod, "_copy_part", failing)
    with pytest.raises(LegonnError, match=r"new: cannot write \(No space left on device\); nothing was written"):
        compose([modules["enc"], modules["dec"]], tmp_path / "new")
    assert list(tmp_path.iterdir()) == []
    # over an earlier composed model: it stays as it was
    previous = tmp_path / "prev"
    shutil.copytree(composed, previous)
    before = {p.relative_to(previous): p.read_bytes() for p in previous.rglob("*") if p.is_file()}
    calls.clear()
    with pytest.raises(LegonnError, match="the previous prev is kept as it was"):
        compose([modules["long_enc"], modules["dec"]], previous)
    assert {p.relative_to(previous): p.read_bytes() for p in previous.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["prev"]


def test_compose_refuses_unsafe_outputs(modules, tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine\n")
    with pytest.raises(LegonnError, match="not a composed model folder"):
        compose([modules["enc"], modules["dec"]], keep)
    assert (keep / "notes.txt").read_text() == "mine\n"
    with pytest.raises(LegonnError, match="inside the module folder"):
        compose([modules["enc"], modules["dec"]], modules["enc"] / "sub")
    assert not (modules["enc"] / "sub").exists()


def test_damaged_part_is_refused(composed, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(composed, copy)
    weights = copy / "parts/1_decoder/model.safetensors"
    tensors = load_file(str(weights))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key] + 1
    from safetensors.torch import save_file

    save_file(tensors, str(weights))
    with pytest.raises(LegonnError) as exc:
        assemble([copy])
    assert "\n" not in str(exc.value) and str(weights) in str(exc.value) and "sha256" in str(exc.value)


def test_composing_a_composed_folder_and_moving_it(modules, composed, tmp_path):
    again = compose([composed], tmp_path / "again")
    assert [p["name"] for p in again.meta["parts"]] == ["encoder", "decoder"]
    assert [p["origin"] for p in again.meta["parts"]] == [str(modules["enc"].resolve()), str(modules["dec"].resolve())]
    assert again.meta["parts"][0]["source"] == str((composed / "parts/0_encoder").resolve())
    assert f"(originally `{modules['enc'].resolve()}`)" in (again.directory / "README.md").read_text()
    moved = tmp_path / "moved"
    shutil.move(str(again.directory), moved)
    write_finetune_config(moved)
    config = yaml.safe_load((moved / "finetune.yaml").read_text())
    assert config["trainer"]["init_modules"] == {"encoder": str(moved.resolve() / "parts/0_encoder"),
                                                "decoder": str(moved.resolve() / "parts/1_decoder")}


def test_finetune_config_trains_with_a_frozen_encoder(modules, composed, tmp_path):
    corpus = modules["config"]["data"]
    text = (composed / "finetune.yaml").read_text()
    assert "FILL IN" in text
    config = resolve(composed / "finetune.yaml", ["--data.train", corpus["train"], "--data.valid", corpus["valid"],
                                                  "--data.input.file", "text.de"])
    assert [m["name"] for m in config["model"]] == ["encoder", "decoder"]
    for m, part in zip(config["model"], ("0_encoder", "1_decoder")):
        meta = json.loads((composed / "parts" / part / "module.json").read_text())
        assert (m["type"], m["conf"], m["target"]) == (meta["type"], meta["conf"], meta["extra"]["target"])
        assert config["trainer"]["init_modules"][m["name"]] == str((composed / "parts" / part).resolve())
    assert config["trainer"]["freeze"] == []

    exp = tmp_path / "ft"
    status = cli.main(["train", "--config", str(composed / "finetune.yaml"), "--exp_dir", str(exp),
                       "--data.train", corpus["train"], "--data.valid", corpus["valid"], "--data.input.file", "text.de",
                       "--trainer.freeze", "[encoder]", "--trainer.max_steps", "2"])
    assert status == 0
    state = torch.load(exp / "checkpoints" / "checkpoint_last.pt", weights_only=True)
    assert state["progress"]["step"] == 2
    for name, part, frozen in (("encoder", "0_encoder", True), ("decoder", "1_decoder", False)):
        saved = load_file(str(composed / "parts" / part / "model.safetensors"))
        now = {k[len(f"blocks.{name}."):]: v for k, v in state["model"].items() if k.startswith(f"blocks.{name}.")}
        same = [k for k in saved if torch.equal(saved[k], now[k])]
        if frozen:
            assert len(same) == len(saved), "a frozen part changed"
        else:
            assert len(same) < len(saved), "the trained part did not change"


def test_compose_help_is_self_contained(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["compose", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert ".py" not in text and "legonn/" not in text  # no pointer into the source
    for needle in ("composed.json", "parts/<i>_<name>/", "finetune.yaml", "legonn decode --modules COMPOSED",
                   "legonn train --config COMPOSED/finetune.yaml", "--trainer.freeze", "legonn compose --finetune_config COMPOSED",
                   "a decoder anywhere but last", "(default: 0.5)"):
        assert needle in text, needle
