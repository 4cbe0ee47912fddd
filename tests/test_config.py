"""Tests of the training configuration (legonn/config.py) and of ``legonn train``'s config handling."""
from __future__ import annotations

import copy
import re

import pytest
import yaml

from fixtures import base_config, corpus, run_legonn, write_config  # noqa: F401  (corpus is a fixture)
from legonn.config import DEFAULTS, config_changes, describe_changes, dump, fill_placeholders, parse_overrides, resolve
from legonn.errors import LegonnError


@pytest.fixture
def conf_file(corpus, tmp_path):
    return write_config(tmp_path / "conf.yaml", base_config(corpus))


# --- YAML file + defaults -----------------------------------------------------


def test_yaml_values_override_defaults_and_keep_the_rest(conf_file):
    config = resolve(conf_file)
    assert config["optim"]["lr"] == 0.003
    assert config["scheduler"]["warmup_steps"] == 50
    assert config["trainer"]["keep_best"] == 3
    assert config["batching"]["max_tokens"] == 300
    # untouched keys keep their defaults
    assert config["optim"]["clip_norm"] == DEFAULTS["optim"]["clip_norm"]
    assert config["scheduler"]["type"] == "inverse_sqrt"
    assert config["trainer"]["freeze"] == []
    assert config["model"][0]["name"] == "encoder"
    # resolve never mutates the defaults
    assert DEFAULTS["optim"]["lr"] == 1.0e-3


def test_later_config_files_override_earlier_ones(conf_file, tmp_path):
    """A composed model's finetune.yaml followed by a recipe's fine-tuning settings."""
    second = tmp_path / "finetune.yaml"
    second.write_text("optim: {lr: 1.0e-4}\ntrainer: {max_steps: 9, freeze: [encoder]}\n")
    config = resolve([conf_file, second], ["--trainer.max_steps", "11"])
    assert config["optim"]["lr"] == 1.0e-4 and config["trainer"]["freeze"] == ["encoder"]
    assert config["trainer"]["max_steps"] == 11  # the command line still wins
    assert config["batching"]["max_tokens"] == 300  # kept from the first file
    typo = tmp_path / "typo.yaml"
    typo.write_text("optim: {lrr: 1.0}\n")
    with pytest.raises(LegonnError, match=r"typo.yaml: unknown config key 'optim.lrr'; did you mean 'lr'"):
        resolve([conf_file, typo])


def test_a_variant_names_its_base_and_edits_modules_by_name(conf_file, tmp_path):
    """``base:`` resolves the named file first; ``model: {name: changes}`` edits its modules."""
    variant = tmp_path / "variants" / "deeper.yaml"
    variant.parent.mkdir()
    variant.write_text("base: ../conf.yaml\n"
                       "model:\n  encoder: {conf: {layers: 3, olc: {factor: 3}}}\n"
                       "trainer: {max_steps: 7}\n")
    base, config = resolve(conf_file), resolve(variant)
    expected = copy.deepcopy(base)
    expected["model"][0]["conf"]["layers"] = 3
    expected["model"][0]["conf"]["olc"]["factor"] = 3
    expected["trainer"]["max_steps"] = 7
    assert config == expected  # everything else, the OLC's other keys included, is the base's
    # The command line edits a module the same way.
    assert resolve(conf_file, ["--model.decoder.conf.layers", "2"])["model"][1]["conf"]["layers"] == 2
    # A full module list still replaces the base's.
    replaced = tmp_path / "replaced.yaml"
    replaced.write_text(yaml.safe_dump({"base": "conf.yaml", "model": base["model"][:1]}))
    assert [m["name"] for m in resolve(replaced)["model"]] == ["encoder"]


def test_bad_bases_and_module_edits_are_one_clear_error(conf_file, tmp_path):
    cases = {
        "unknown_module.yaml": ("base: conf.yaml\nmodel: {encodr: {conf: {layers: 1}}}\n",
                                r"unknown_module.yaml: model edits module 'encodr', but the base config has no such module \(modules: encoder, decoder\)"),
        "no_base.yaml": ("model: {encoder: {conf: {layers: 1}}}\n", r"no_base.yaml: model edits module 'encoder'.*\(modules: none\)"),
        "not_a_mapping.yaml": ("base: conf.yaml\nmodel: {encoder: 3}\n", r"not_a_mapping.yaml: model.encoder must be a mapping"),
        "missing_base.yaml": ("base: nowhere.yaml\n", r"nowhere.yaml: config file not found"),
        "bad_base.yaml": ("base: {file: conf.yaml}\n", r"bad_base.yaml: 'base' must be a config file path or a list of them"),
        "loop.yaml": ("base: loop.yaml\n", r"loop.yaml: 'base' chain loops back to this file"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(LegonnError, match=message):
            resolve(tmp_path / name)


def test_no_file_gives_the_defaults():
    assert resolve(None) == DEFAULTS
    assert resolve(None) is not DEFAULTS


def test_missing_config_file(tmp_path):
    with pytest.raises(LegonnError, match="config file not found"):
        resolve(tmp_path / "nope.yaml")


# --- command-line overrides ---------------------------------------------------


def test_overrides_are_parsed_as_yaml(conf_file):
    config = resolve(conf_file, ["--optim.lr", "5e-4", "--trainer.freeze", "[encoder]", "--trainer.max_steps=7"])
    assert config["optim"]["lr"] == 5e-4
    assert isinstance(config["optim"]["lr"], float)
    assert config["trainer"]["freeze"] == ["encoder"]
    assert config["trainer"]["max_steps"] == 7
    # the rest of the file and of the defaults survives
    assert config["trainer"]["keep_best"] == 3
    assert config["optim"]["clip_norm"] == 5.0


@pytest.mark.parametrize("text,value", [("5e-4", 5e-4), ("1E3", 1e3), ("-2.5e-3", -2.5e-3), ("1.0e3", 1000.0), ("3", 3)])
def test_scientific_notation_is_a_number(text, value):
    """YAML 1.1 (PyYAML) reads ``5e-4`` as a string; a learning rate must come out as a float."""
    parsed = parse_overrides(["--optim.lr", text])["optim"]["lr"]
    assert parsed == value and type(parsed) is type(value)


def test_scientific_notation_in_the_file_is_a_number(corpus, tmp_path):
    raw = base_config(corpus)
    path = tmp_path / "conf.yaml"
    text = yaml.safe_dump(raw, sort_keys=False).replace("lr: 0.003", "lr: 3e-3")
    assert "lr: 3e-3" in text
    path.write_text(text)
    assert resolve(path)["optim"]["lr"] == 3e-3


def test_equals_form_and_nested_values():
    nested = parse_overrides(["--a.b=value", "--a.c", "{x: 1}", "--d.e.f=[1, 2]"])
    assert nested == {"a": {"b": "value", "c": {"x": 1}}, "d": {"e": {"f": [1, 2]}}}


def test_override_of_a_mapping_key(conf_file, corpus):
    config = resolve(conf_file, ["--data.targets.en.file=text.en2"])
    assert config["data"]["targets"]["en"] == {"file": "text.en2", "vocab": str(corpus / "en.txt")}


@pytest.mark.parametrize("args", [["optim.lr", "1"], ["--optim", "1"], ["--optim.lr"]])
def test_malformed_overrides(args):
    with pytest.raises(LegonnError):
        parse_overrides(args)


# --- typos ---------------------------------------------------------------------


def test_typo_in_file_names_the_file_and_the_close_key(corpus, tmp_path):
    raw = base_config(corpus)
    raw["optim"] = {"lrr": 0.1}
    path = write_config(tmp_path / "typo.yaml", raw)
    with pytest.raises(LegonnError) as err:
        resolve(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "optim.lrr" in msg
    assert "did you mean 'lr'" in msg


def test_typo_in_section_name(corpus, tmp_path):
    raw = base_config(corpus)
    raw["trainr"] = raw.pop("trainer")
    path = write_config(tmp_path / "typo.yaml", raw)
    with pytest.raises(LegonnError, match=r"unknown config key 'trainr'; did you mean 'trainer'"):
        resolve(path)


def test_typo_on_command_line_names_the_command_line(conf_file):
    with pytest.raises(LegonnError) as err:
        resolve(conf_file, ["--trainer.max_step", "10"])
    msg = str(err.value)
    assert msg.startswith("command line:")
    assert "trainer.max_step" in msg
    assert "did you mean 'max_steps'" in msg
    assert str(conf_file) not in msg


def test_unknown_key_without_a_close_match(conf_file):
    with pytest.raises(LegonnError) as err:
        resolve(conf_file, ["--optim.zzzzzz", "1"])
    assert "optim.zzzzzz" in str(err.value)
    assert "did you mean" not in str(err.value)


# --- invalid YAML ------------------------------------------------------------------


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lr: 0.1\n  betas: [0.9, 0.98\ntrainer:\n  max_epochs: 3\n")
    with pytest.raises(LegonnError) as err:
        resolve(path)
    msg = str(err.value)
    assert "invalid YAML" in msg
    # "<path>:<line>: invalid YAML": the line of the problem is within the file
    prefix = f"{path}:"
    assert msg.startswith(prefix)
    line = int(msg[len(prefix):].split(":")[0])
    assert 3 <= line <= 5


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(LegonnError, match="mapping"):
        resolve(path)


# --- vocab:<stream> placeholders ---------------------------------------------------


def test_placeholders_are_filled_from_the_data(conf_file):
    from legonn.engine.experiment import build_experiment

    config = resolve(conf_file)
    exp = build_experiment(config)
    n_de, n_en = 3 + 12, 3 + 12
    enc, dec = exp.model.blocks["encoder"], exp.model.blocks["decoder"]
    assert enc.input_vocab_size == n_de
    assert enc.output_vocab_size == n_en
    assert dec.output_vocab_size == n_en and dec.input_vocab_size == n_en
    assert dec.embed.num_embeddings == n_en
    assert enc.spec_conf["input"]["vocab_size"] == n_de  # the filled value is what the module records
    # the config itself keeps the placeholder strings (what config.yaml stores)
    assert config["model"][0]["conf"]["input"]["vocab_size"] == "vocab:input"


def test_fill_placeholders_unknown_stream():
    model = [{"name": "e", "type": "lego_encoder", "conf": {"ctc_vocab_size": "vocab:fr", "x": ["vocab:en"]}}]
    filled = fill_placeholders(copy.deepcopy(model[:0]), {})
    assert filled == []
    with pytest.raises(LegonnError, match=r"vocab:fr.*known: vocab:en"):
        fill_placeholders(model, {"vocab:en": 5})
    ok = fill_placeholders([{"conf": {"a": "vocab:en", "b": ["vocab:en", "text"]}}], {"vocab:en": 5})
    assert ok == [{"conf": {"a": 5, "b": [5, "text"]}}]


# --- what another config changes in an experiment's config.yaml ------------------------


def test_config_changes_name_keys_and_modules_and_keep_values_short(conf_file):
    saved = resolve(conf_file)
    new = resolve(conf_file, ["--optim.lr", "0.01", "--model.decoder.conf.layers", "3", "--trainer.max_steps", "9",
                              "--data.input.vocab", "x" * 200])
    changes = config_changes(saved, new)
    assert [c.path for c in changes] == ["model.decoder.conf.layers", "data.input.vocab", "optim.lr", "trainer.max_steps"]
    assert [c.extendable for c in changes] == [False, False, False, True]
    assert str(changes[0]) == "model.decoder.conf.layers: 2 -> 3"
    assert len(str(changes[1])) < 120  # values are shortened
    assert describe_changes(changes, limit=2) == f"{changes[0]}; {changes[1]}; and 2 more"
    # a module renamed or added: the module list; a key one side lacks is "(absent)"
    renamed = copy.deepcopy(new)
    renamed["model"][1]["name"] = "dec"
    renamed["model"][0]["conf"]["extra"] = 1
    assert [str(c) for c in config_changes(saved, renamed)][:2] == [
        "model: ['encoder', 'decoder'] -> ['encoder', 'dec']", "model.encoder.conf.extra: (absent) -> 1"]


def test_config_changes_of_a_config_yaml_older_than_a_key(conf_file):
    """A key added to DEFAULTS since config.yaml was written counts as its default, not a change."""
    saved = resolve(conf_file)
    del saved["trainer"]["precision"]
    assert config_changes(saved, resolve(conf_file)) == []


# --- legonn train (subprocess) ------------------------------------------------------


def test_print_config_prints_the_resolved_yaml(conf_file, tmp_path):
    proc = run_legonn("train", "--config", conf_file, "--print_config", "--optim.lr", "5e-4",
                      "--trainer.freeze", "[encoder]", timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = yaml.safe_load(proc.stdout)
    assert printed == resolve(conf_file, ["--optim.lr", "5e-4", "--trainer.freeze", "[encoder]"])
    assert printed["optim"]["lr"] == 5e-4
    assert not (tmp_path / "exp").exists()


def test_missing_data_dir_is_one_line_and_exit_1(conf_file, tmp_path):
    missing = tmp_path / "no_such_dir"
    proc = run_legonn("train", "--config", conf_file, "--exp_dir", tmp_path / "exp", "--data.valid", str(missing),
                      timeout=180)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("legonn train: error: ")
    assert str(missing) in lines[0] and "not found" in lines[0]


def test_typo_on_train_command_line_is_one_line_and_exit_1(conf_file, tmp_path):
    proc = run_legonn("train", "--config", conf_file, "--exp_dir", tmp_path / "exp", "--optim.lrr", "1", timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "command line: unknown config key 'optim.lrr'; did you mean 'lr'?" in lines[0]


def test_check_config_prints_the_changed_keys_and_says_whether_training_continues(conf_file, tmp_path):
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    (exp_dir / "config.yaml").write_text(dump(resolve(conf_file)))

    def check(*overrides):
        return run_legonn("train", "--config", conf_file, "--exp_dir", exp_dir, "--check_config", *overrides, timeout=120)

    same = check()
    assert same.returncode == 0 and same.stdout == "" and same.stderr == ""
    budget = check("--trainer.max_steps", "9")
    assert budget.returncode == 0 and budget.stdout.splitlines() == ["trainer.max_steps: None -> 9"]
    changed = check("--trainer.max_steps", "9", "--optim.lr", "0.01")
    assert changed.returncode == 3, changed.stderr
    assert changed.stdout.splitlines() == ["optim.lr: 0.003 -> 0.01", "trainer.max_steps: None -> 9"]
    fresh = run_legonn("train", "--config", conf_file, "--exp_dir", tmp_path / "new", "--check_config", timeout=120)
    assert fresh.returncode == 0 and fresh.stdout == ""  # no config.yaml: a new experiment


def test_a_key_set_twice_is_refused_with_its_lines(tmp_path):
    conf = tmp_path / "twice.yaml"
    conf.write_text("optim:\n  lr: 1.0e-3\n  lr: 5.0e-4\n")
    with pytest.raises(LegonnError, match=r"twice.yaml:3: invalid YAML \(key 'lr' set twice \(first at line 2\)\)"):
        resolve(conf)


@pytest.mark.parametrize("yaml_text, override, message", [
    ("optim: {lr: fast}\n", None, "optim.lr must be a number (like its default 0.001), got 'fast'"),
    ("{}\n", ["--optim.lr", "fast"], "command line: optim.lr must be a number"),
    ("batching: {max_tokens: 2.5}\n", None, "batching.max_tokens must be a whole number"),
    ("batching: {shuffle: 'yes'}\n", None, "batching.shuffle must be true or false"),
    ("trainer: {freeze: encoder}\n", None, "trainer.freeze must be a list"),
])
def test_a_value_of_the_wrong_kind_is_refused_before_training(tmp_path, yaml_text, override, message):
    conf = tmp_path / "typed.yaml"
    conf.write_text(yaml_text)
    with pytest.raises(LegonnError, match=re.escape(message)):
        resolve(conf, override)


def test_a_layer_adds_an_entry_to_a_free_form_mapping(tmp_path):
    """data.targets (free-form: stream name -> spec) takes a new stream on top of a base's; a typo
    in a fixed section is still refused."""
    (tmp_path / "base.yaml").write_text("data: {targets: {en: {file: text.en}}}\n")
    (tmp_path / "more.yaml").write_text("base: base.yaml\ndata: {targets: {de: {file: text.de}}}\n")
    assert resolve(tmp_path / "more.yaml")["data"]["targets"] == {"en": {"file": "text.en"}, "de": {"file": "text.de"}}
    (tmp_path / "typo.yaml").write_text("base: base.yaml\ndata: {tragets: {de: {file: text.de}}}\n")
    with pytest.raises(LegonnError, match="unknown config key 'data.tragets'"):
        resolve(tmp_path / "typo.yaml")
