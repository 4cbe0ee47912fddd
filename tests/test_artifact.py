"""Module artifacts: save -> load round trips, metadata, vocabulary checks, assemble, no pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from legonn.modules.artifact import assemble, load_module, save_module
from legonn.nn.chain import Chain, ModuleSpec, build_module
from legonn.errors import LegonnError
from legonn.nn.interface import ModuleOutput
from legonn.data.vocab import Vocabulary

TINY = {"d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0}
FEAT = 8


def vocab(prefix: str, size: int) -> Vocabulary:
    return Vocabulary.from_symbols(f"{prefix}{i}" for i in range(size - 3))


PHONES = vocab("ph", 12)
WORDS = vocab("w", 10)
TEXT = vocab("t", 14)


def features(batch=2):
    g = torch.Generator().manual_seed(5)
    return torch.randn(batch, 26, FEAT, generator=g), torch.tensor([26, 19][:batch])


def marginals(v, batch=2, t=7):
    g = torch.Generator().manual_seed(6)
    lp = torch.log_softmax(torch.randn(batch, t, v, generator=g), -1)
    return lp, torch.tensor([t, t - 2][:batch])


def tokens(v, batch=2, t=6):
    g = torch.Generator().manual_seed(7)
    x = torch.randint(3, v, (batch, t), generator=g)
    x[:, 0] = 2
    return x


def run_encoder(module, x, lengths):
    out = module(x, lengths)
    return [out.hidden, out.lengths] + ([out.log_probs] if out.log_probs is not None else [])


def run_decoder_marginals(v_in):
    lp, lengths = marginals(v_in)

    def run(module):
        return [module(ModuleOutput(lp, lengths, lp), tokens(module.output_vocab_size))]

    return run


def run_decoder_hidden(dim):
    g = torch.Generator().manual_seed(8)
    hidden, lengths = torch.randn(2, 5, dim, generator=g), torch.tensor([5, 3])

    def run(module):
        return [module(ModuleOutput(hidden, lengths), tokens(module.output_vocab_size))]

    return run


# name -> (type, conf, input_vocab, output_vocab, runner)
MODULE_CASES = {
    "encoder_conv2d_olc": (
        "lego_encoder",
        {**TINY, "input": {"type": "conv2d", "input_dim": FEAT, "channels": [4, 4]},
         "olc": {"factor": "1/1.5", "max_len": 20, "layers": 1}, "ctc_vocab_size": len(PHONES)},
        None, PHONES, lambda m: run_encoder(m, *features()),
    ),
    "encoder_embedding": (
        "lego_encoder",
        {**TINY, "input": {"type": "embedding", "vocab_size": len(TEXT)}, "olc": {"factor": 2, "max_len": 30, "layers": 1},
         "ctc_vocab_size": len(WORDS)},
        TEXT, WORDS, lambda m: run_encoder(m, tokens(len(TEXT)), torch.tensor([6, 4])),
    ),
    "encoder_wemb": (
        "lego_encoder",
        {**TINY, "input": {"type": "wemb", "vocab_size": len(PHONES), "rf": 3, "layers": 1},
         "olc": {"factor": 0.5, "max_len": 10, "layers": 1}, "ctc_vocab_size": len(WORDS)},
        PHONES, WORDS, lambda m: run_encoder(m, *marginals(len(PHONES))),
    ),
    "decoder_wemb": (
        "lego_decoder",
        {**TINY, "vocab_size": len(TEXT), "ingestor": {"type": "wemb", "vocab_size": len(WORDS), "layers": 1}},
        WORDS, TEXT, run_decoder_marginals(len(WORDS)),
    ),
    "decoder_beamconv": (
        "lego_decoder",
        {**TINY, "vocab_size": len(TEXT), "ingestor": {"type": "beamconv", "vocab_size": len(WORDS), "beam": 3, "embed_dim": 5, "layers": 1}},
        WORDS, TEXT, run_decoder_marginals(len(WORDS)),
    ),
    "transformer_encoder": (
        "transformer_encoder",
        {**TINY, "input": {"type": "conv2d", "input_dim": FEAT, "channels": [4, 4]}},
        None, None, lambda m: run_encoder(m, *features()),
    ),
    "transformer_decoder": (
        "transformer_decoder",
        {**TINY, "vocab_size": len(TEXT), "input_dim": 24},
        None, TEXT, run_decoder_hidden(24),
    ),
}


def build(name: str, seed: int = 0):
    type_name, conf, vin, vout, runner = MODULE_CASES[name]
    torch.manual_seed(seed)
    module = build_module(type_name, conf)
    # Nudge every parameter so that a parameter not saved (left at its init) would show.
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return module.eval(), vin, vout, runner


@pytest.mark.parametrize("name", sorted(MODULE_CASES))
def test_save_load_round_trip_gives_identical_outputs(name, tmp_path):
    module, vin, vout, runner = build(name)
    folder = save_module(module, tmp_path / name, name, input_vocab=vin, output_vocab=vout, trained_on="unit test data")
    with torch.no_grad():
        before = runner(module)
    loaded = load_module(folder)
    assert not loaded.module.training
    assert type(loaded.module) is type(module)
    with torch.no_grad():
        after = runner(loaded.module)
    for a, b in zip(before, after):
        assert torch.equal(a, b)
    # Different weights would give different outputs: the comparison is not vacuous.
    other, *_ = build(name, seed=1)
    with torch.no_grad():
        assert not torch.equal(runner(other)[0], before[0])

    assert loaded.name == name
    for side, v in (("input", vin), ("output", vout)):
        got = getattr(loaded, f"{side}_vocab")
        if v is None:
            assert got is None
        else:
            assert got.tokens == v.tokens and got.checksum == v.checksum


@pytest.mark.parametrize("name", sorted(MODULE_CASES))
def test_module_json_and_card(name, tmp_path):
    module, vin, vout, _ = build(name)
    folder = save_module(module, tmp_path / "m", name, input_vocab=vin, output_vocab=vout, trained_on="unit test data")
    assert {p.name for p in folder.iterdir()} >= {"module.json", "model.safetensors", "README.md"}
    meta = json.loads((folder / "module.json").read_text())
    assert meta["type"] == MODULE_CASES[name][0]
    assert meta["conf"] == json.loads(json.dumps(MODULE_CASES[name][1]))
    for side, v in (("input", vin), ("output", vout)):
        if v is None:
            assert meta[side]["vocab"] is None
        else:
            assert meta[side]["vocab"]["sha256"] == v.checksum
            assert meta[side]["vocab"]["size"] == len(v)
            assert (folder / meta[side]["vocab"]["tokens"]).is_file()
    if name == "transformer_encoder":
        assert meta["output"] == {"kind": "hidden", "vocab": None, "dim": 32}
    if name == "transformer_decoder":
        assert meta["input"] == {"kind": "hidden", "vocab": None, "dim": 24}  # its input_dim, not d_model
    olc_conf = MODULE_CASES[name][1].get("olc")
    if olc_conf is None:
        assert meta["olc"] is None
    else:
        assert meta["olc"] == {"factor": str(olc_conf["factor"]), "max_len": olc_conf["max_len"]}
    card = (folder / "README.md").read_text()
    assert card.startswith(f"# {name}")
    assert MODULE_CASES[name][0] in card
    assert "unit test data" in card
    if vout is not None:
        assert vout.checksum[:16] in card
    # No leftover temporary folders next to the artifact.
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_save_refuses_a_missing_or_wrong_size_vocabulary(tmp_path):
    module, vin, vout, _ = build("encoder_embedding")
    with pytest.raises(LegonnError, match="output vocabulary"):
        save_module(module, tmp_path / "a", "a", input_vocab=vin)
    with pytest.raises(LegonnError, match="symbols"):
        save_module(module, tmp_path / "b", "b", input_vocab=vin, output_vocab=PHONES)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder was cleaned up


def test_saving_over_an_existing_artifact_replaces_it(tmp_path):
    module, vin, vout, runner = build("encoder_embedding")
    save_module(build("encoder_embedding", seed=3)[0], tmp_path / "m", "old", input_vocab=vin, output_vocab=vout)
    save_module(module, tmp_path / "m", "new", input_vocab=vin, output_vocab=vout)
    loaded = load_module(tmp_path / "m")
    assert loaded.name == "new"
    with torch.no_grad():
        assert torch.equal(runner(loaded.module)[0], runner(module)[0])


# --- refusing damaged folders -----------------------------------------------------------


@pytest.fixture
def saved_encoder(tmp_path) -> Path:
    module, vin, vout, _ = build("encoder_embedding")
    return save_module(module, tmp_path / "enc", "enc", input_vocab=vin, output_vocab=vout)


def assert_one_line(exc: pytest.ExceptionInfo, *needles: str):
    message = str(exc.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


@pytest.mark.parametrize("side", ["input", "output"])
@pytest.mark.parametrize("edit", ["swap", "append", "rename"])
def test_edited_vocabulary_file_is_refused(saved_encoder, side, edit):
    path = saved_encoder / f"{side}.tokens.txt"
    lines = path.read_text().splitlines()
    if edit == "swap":
        lines[4], lines[5] = lines[5], lines[4]
    elif edit == "append":
        lines.append("extra")
    else:
        lines[-1] = lines[-1] + "x"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LegonnError) as exc:
        load_module(saved_encoder)
    assert_one_line(exc, str(path), "checksum")


def test_missing_folder(tmp_path):
    with pytest.raises(LegonnError) as exc:
        load_module(tmp_path / "nope")
    assert_one_line(exc, str(tmp_path / "nope"), "module.json")


def test_missing_vocabulary_file(saved_encoder):
    (saved_encoder / "output.tokens.txt").unlink()
    with pytest.raises(LegonnError) as exc:
        load_module(saved_encoder)
    assert_one_line(exc, str(saved_encoder / "output.tokens.txt"))


@pytest.mark.parametrize(
    "content", ["{not json", "", '{"format": "something-else"}', '{"format": "legonn-module", "format_version": 1}', "[1, 2]"]
)
def test_corrupt_module_json(saved_encoder, content):
    (saved_encoder / "module.json").write_text(content)
    with pytest.raises(LegonnError) as exc:
        load_module(saved_encoder)
    assert_one_line(exc, str(saved_encoder / "module.json"))


def test_newer_format_version_is_refused(saved_encoder):
    meta_file = saved_encoder / "module.json"
    meta = json.loads(meta_file.read_text())
    meta["format_version"] = 99
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(LegonnError) as exc:
        load_module(saved_encoder)
    assert_one_line(exc, str(meta_file), "99")


@pytest.mark.parametrize("keep", [0, 7, 100, -50])
def test_truncated_weights(saved_encoder, keep):
    weights = saved_encoder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    with pytest.raises(LegonnError) as exc:
        load_module(saved_encoder)
    assert_one_line(exc, str(weights))


def test_missing_weights(saved_encoder):
    (saved_encoder / "model.safetensors").unlink()
    with pytest.raises(LegonnError) as exc:
        load_module(saved_encoder)
    assert_one_line(exc, "model.safetensors", str(saved_encoder))


def test_weights_of_another_architecture_are_refused(saved_encoder, tmp_path):
    other, vin, vout, _ = build("encoder_wemb")
    other_dir = save_module(other, tmp_path / "other", "other", input_vocab=vin, output_vocab=vout)
    (saved_encoder / "model.safetensors").write_bytes((other_dir / "model.safetensors").read_bytes())
    with pytest.raises(LegonnError) as exc:
        load_module(saved_encoder)
    assert_one_line(exc, str(saved_encoder / "model.safetensors"))


def test_loading_never_unpickles(saved_encoder, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading a module")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded = load_module(saved_encoder)
    assert loaded.output_vocab.checksum == WORDS.checksum
    with torch.no_grad():
        out = loaded.module(tokens(len(TEXT)), torch.tensor([6, 4]))
    assert torch.isfinite(out.log_probs).all()


# --- assemble ---------------------------------------------------------------------------


def save_case(name: str, folder: Path, output_vocab=None, input_vocab=None, **kw) -> Path:
    module, vin, vout, _ = build(name)
    return save_module(module, folder, name, input_vocab=input_vocab or vin, output_vocab=output_vocab or vout, **kw)


def test_assemble_refuses_a_vocabulary_mismatch_naming_both_folders(tmp_path):
    other_words = Vocabulary.from_symbols(f"x{i}" for i in range(len(WORDS) - 3))  # same size, other symbols
    enc = save_case("encoder_conv2d_olc", tmp_path / "phone_enc")  # outputs PHONES
    enc2 = save_case("encoder_wemb", tmp_path / "pron_enc", output_vocab=other_words)
    dec = save_case("decoder_wemb", tmp_path / "text_dec")  # reads WORDS
    with pytest.raises(LegonnError) as exc:
        assemble([enc, enc2, dec])
    assert_one_line(exc, str(enc2), str(dec))
    assert other_words.checksum[:12] in str(exc.value) and WORDS.checksum[:12] in str(exc.value)


def test_assemble_refuses_interface_kind_mismatch(tmp_path):
    enc = save_case("transformer_encoder", tmp_path / "base_enc")  # hidden states
    dec = save_case("decoder_wemb", tmp_path / "text_dec")  # reads marginals
    with pytest.raises(LegonnError) as exc:
        assemble([enc, dec])
    assert_one_line(exc, str(enc), str(dec))


def test_assemble_a_matching_chain_and_run_it(tmp_path):
    modules = {name: build(name)[0] for name in ("encoder_conv2d_olc", "encoder_wemb", "decoder_wemb")}
    dirs = [save_module(modules[n], tmp_path / n, n, input_vocab=MODULE_CASES[n][2], output_vocab=MODULE_CASES[n][3])
            for n in modules]
    chain, loaded = assemble(dirs)
    assert chain.names == list(modules)
    assert [m.directory for m in loaded] == dirs
    assert chain.decoder is loaded[-1].module
    x, lengths = features()
    prev = tokens(len(TEXT))
    with torch.no_grad():
        outputs = chain.encode(x, lengths)
        logits = chain.decoder(outputs[-1], prev)
        # The same modules, chained by hand before saving.
        o1 = modules["encoder_conv2d_olc"](x, lengths)
        o2 = modules["encoder_wemb"](o1.log_probs, o1.lengths)
        want = modules["decoder_wemb"](o2, prev)
    assert torch.equal(logits, want)
    assert logits.shape == (2, prev.size(1), len(TEXT))


@pytest.mark.parametrize("enc_dim,dec_input_dim", [(32, None), (48, 48)])
def test_assemble_the_baseline_pair(tmp_path, enc_dim, dec_input_dim):
    """The baseline decoder reads encoder states: of its own width, or projected from input_dim."""
    torch.manual_seed(0)
    enc = build_module("transformer_encoder", {**TINY, "d_model": enc_dim, "input": {"type": "conv2d", "input_dim": FEAT, "channels": [4, 4]}})
    dec = build_module("transformer_decoder", {**TINY, "vocab_size": len(TEXT), "input_dim": dec_input_dim})
    chain, _ = assemble([save_module(enc.eval(), tmp_path / "e", "e"), save_module(dec.eval(), tmp_path / "d", "d", output_vocab=TEXT)])
    x, lengths = features()
    with torch.no_grad():
        logits = chain.decoder(chain.encode(x, lengths)[-1], tokens(len(TEXT)))
    assert torch.isfinite(logits).all()


def test_assemble_refuses_a_baseline_pair_of_different_widths(tmp_path):
    torch.manual_seed(0)
    enc = build_module("transformer_encoder", {**TINY, "d_model": 48, "input": {"type": "conv2d", "input_dim": FEAT, "channels": [4, 4]}})
    dec = build_module("transformer_decoder", {**TINY, "vocab_size": len(TEXT)})  # reads 32-dim states
    e, d = save_module(enc.eval(), tmp_path / "e", "e"), save_module(dec.eval(), tmp_path / "d", "d", output_vocab=TEXT)
    with pytest.raises(LegonnError) as exc:
        assemble([e, d])
    assert_one_line(exc, str(e), str(d), "48", "32")


def test_assemble_the_same_module_twice_gets_unique_names(tmp_path):
    torch.manual_seed(0)
    module = build_module("lego_encoder", {**TINY, "input": {"type": "wemb", "vocab_size": len(WORDS), "layers": 1},
                                           "ctc_vocab_size": len(WORDS)}).eval()
    folder = save_module(module, tmp_path / "same", "same", input_vocab=WORDS, output_vocab=WORDS)
    first = save_case("encoder_embedding", tmp_path / "text_enc")  # reads the data, outputs WORDS
    chain, _ = assemble([first, folder, folder])
    assert len(set(chain.names)) == 3


def test_assemble_refuses_a_decoder_before_the_last_part(tmp_path):
    """A decoder's generated tokens feed nothing: the error names both folders and what each emits/reads."""
    enc = save_case("encoder_embedding", tmp_path / "text_enc")  # reads TEXT tokens from a data file
    dec = save_case("decoder_wemb", tmp_path / "text_dec", output_vocab=Vocabulary(TEXT.tokens[:3] + TEXT.tokens[:2:-1]))
    with pytest.raises(LegonnError) as exc:
        assemble([dec, enc])
    assert_one_line(exc, f"cannot chain {dec} -> {enc}: {dec} is a decoder: it generates tokens over 14 symbols",
                    "a decoder can only be the last part of a chain",
                    f"{enc} reads tokens over 14 symbols (sha256 {TEXT.checksum[:12]}, another vocabulary) from a data file")
    same = save_case("decoder_wemb", tmp_path / "same_dec", output_vocab=TEXT)
    with pytest.raises(LegonnError, match=r"another vocabulary|the same vocabulary") as exc:
        assemble([same, enc])
    assert "the same vocabulary" in str(exc.value)
    with pytest.raises(LegonnError, match="only be the last part"):  # two decoders in a row
        assemble([save_case("encoder_embedding", tmp_path / "e2"), same, same])


@pytest.mark.parametrize("name", ["decoder_wemb", "encoder_wemb", "transformer_decoder"])
def test_assemble_refuses_a_chain_that_reads_no_data(tmp_path, name):
    """A lone decoder (or a module reading marginals or states) has no input in a data dir."""
    folder = save_case(name, tmp_path / name)
    with pytest.raises(LegonnError) as exc:
        assemble([folder])
    role = "a decoder" if "decoder" in name else "a 'lego_encoder' module"
    assert_one_line(exc, f"{folder}: cannot start a chain: it is {role} and reads ", "not a data file",
                    "nothing to decode")


def test_a_chain_refuses_a_decoder_in_the_middle():
    enc = build_module(*MODULE_CASES["encoder_embedding"][:2])
    dec = build_module(*MODULE_CASES["decoder_wemb"][:2])
    with pytest.raises(LegonnError, match="'dec' is a decoder .* only the last module of a chain can be one"):
        Chain([ModuleSpec("enc", "lego_encoder", {}), ModuleSpec("dec", "lego_decoder", {}),
               ModuleSpec("enc2", "lego_encoder", {})], [enc, dec, build_module(*MODULE_CASES["encoder_embedding"][:2])])
