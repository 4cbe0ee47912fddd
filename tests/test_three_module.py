"""The three-module ASR system of paper Table V in the mini ASR recipe (egs/mini/asr1), tiny.

A temporary recipe tree (symlinks to utils/ and egs/TEMPLATE/, a copy of egs/mini/asr1, the
fixture corpus of the ASR recipe test plus a second-domain file en_domain2.txt) runs stages 1-3:
the synthesis of data/{train,valid,test} and of the pronunciation model's data/pron_{train,valid},
features and the phoneme inventory. Then, in this process (no torch start-up per step), a
phoneme recogniser, a pronunciation model and a LegoNN ASR model whose decoder stands in for the
De-En MT decoder (the same standalone English BPE) train for 2 updates each; their modules are
composed into recogniser + pronunciation model + decoder, fine-tuned for an update, decoded and
scored; and a pronunciation model over another phoneme inventory is refused in one line.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recipe_fixtures import recipe_variables
from test_asr_recipe import make_fixture_corpus

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "mini" / "asr1"

# Second-domain fixture sentences: another sentence frame than the fixture corpus's, over words
# of the same few phonemes, and one sentence with a phoneme (OY) no training sentence has.
D2_SUBJECTS = ["The doctor", "My sister", "A young man", "Our friend", "The old teacher", "His mother"]
D2_VERBS = ["never reads", "often finds", "still likes", "sometimes sees", "rarely buys"]
D2_OBJECTS = ["a red car", "the small house", "fresh bread", "the big book", "a new dog"]
UNSEEN_PHONEME_SENTENCE = "The boy enjoys his toy at night."

TINY = {"d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0}
SPEECH_IN = {"type": "conv2d", "input_dim": "dim:input", "channels": [8, 8]}
PHN_ENCODER = {"name": "encoder", "type": "lego_encoder", "target": "phn",
               "conf": {"input": SPEECH_IN, **TINY, "ctc_vocab_size": "vocab:phn"}}
PRON = {"name": "pron", "type": "lego_encoder", "target": "en",
        "conf": {"input": {"type": "wemb", "vocab_size": "vocab:phn", "rf": 5, "layers": 1}, **TINY,
                 "olc": {"factor": "9/8", "max_len": 200, "layers": 1}, "ctc_vocab_size": "vocab:en"}}
EN_ENCODER = {"name": "encoder", "type": "lego_encoder", "target": "en",
              "conf": {"input": SPEECH_IN, **TINY, "ctc_vocab_size": "vocab:en"}}
DECODER = {"name": "decoder", "type": "lego_decoder", "target": "en",
           "conf": {"vocab_size": "vocab:en", "ingestor": {"type": "wemb", "vocab_size": "vocab:en", "rf": 1, "layers": 1},
                    **TINY}}
PHN = {"phn": {"file": "text.phn", "vocab": "data/lang/phn.tokens.txt"}}
EN = {"en": {"file": "text.en", "vocab": "data/lang/en.model"}}


def tiny_config(model: list, targets: dict, sets: str, metric: str) -> dict:
    """A 2-update training on data/{sets}train, valid on data/{sets}valid, with their own CMVN."""
    return {
        "model": model,
        "data": {"train": f"data/{sets}train", "valid": f"data/{sets}valid",
                 "input": {"file": "feats.scp", "cmvn": f"data/{sets}train/cmvn.ark"},
                 "targets": targets, "max_input_length": 3000, "max_target_length": 300},
        "batching": {"max_tokens": 3000},
        "optim": {"lr": 1.0e-3},
        "scheduler": {"warmup_steps": 2},
        "trainer": {"max_steps": 2, "valid_every_steps": 2, "keep_best": 1, "log_every_steps": 1, "best_metric": metric},
    }


CONFIGS = {
    "phn": tiny_config([PHN_ENCODER], PHN, "", "encoder/loss"),
    "pron": tiny_config([PHN_ENCODER, PRON], {**PHN, **EN}, "pron_", "pron/loss"),
    "lego": tiny_config([EN_ENCODER, DECODER], EN, "", "loss"),
}


def recipe_env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The recipe tree after stages 1-3 (data, features, phoneme inventory) on tiny sets."""
    root = tmp_path_factory.mktemp("three_module")
    (root / "egs" / "mini").mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    corpus = make_fixture_corpus(root / "egs" / "mini" / "corpus")
    domain2 = [f"{s} {v} {o} at night." for s in D2_SUBJECTS for v in D2_VERBS for o in D2_OBJECTS]
    (corpus / "en_domain2.txt").write_text("\n".join([UNSEEN_PHONEME_SENTENCE] + domain2) + "\n", encoding="utf-8")
    asr = root / "egs" / "mini" / "asr1"
    shutil.copytree(RECIPE, asr, ignore=shutil.ignore_patterns("data", "exp", "RESULTS*", "__pycache__"))
    for name, config in CONFIGS.items():
        (asr / "conf" / f"tiny_{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    data_opts = ("--train_utts 24 --eval_utts 4 --voices_train 3 --voices_valid 1 --voices_test 1 "
                 "--pron_utts 12 --pron_eval_utts 4 --voices_pron 3 --voices_pron_valid 2 "
                 "--engines espeak --espeak_backend lib --standalone_bpe_size 40 --bpe en --nj 2")
    proc = subprocess.run(["bash", "run.sh", "--stop_stage", "3", "--nj", "2", "--data_opts", data_opts],
                          cwd=asr, env=recipe_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return asr, proc


def table(path: Path) -> dict[str, str]:
    return dict(line.split(" ", 1) if " " in line else (line, "") for line in path.read_text().splitlines())


def test_second_domain_speech(tree):
    asr, proc = tree
    data = asr / "data"
    for s in ("pron_train", "pron_valid"):
        for f in ("wav.scp", "text", "text.en", "text.lc", "text.phn", "utt2spk", "spk2utt", "utt2dur", "spk2voice",
                  "feats.scp", "cmvn.ark"):
            assert (data / s / f).is_file(), f"data/{s}/{f} missing"
    assert len(table(data / "pron_train" / "text")) == 12 and len(table(data / "pron_valid" / "text")) == 4
    # Voices of their own: no voice family of train/valid/test speaks the second domain.
    fam = {s: {line.split()[-1] for line in (data / s / "spk2voice").read_text().splitlines()}
           for s in ("train", "valid", "test", "pron_train", "pron_valid")}
    for s in ("train", "valid", "test"):
        assert not (fam[s] & (fam["pron_train"] | fam["pron_valid"])), s
    assert not (fam["pron_train"] & fam["pron_valid"])
    # Second-domain text only, none of it in the ASR sets.
    pron_text = set(table(data / "pron_train" / "text").values()) | set(table(data / "pron_valid" / "text").values())
    asr_text = {t for s in ("train", "valid", "test") for t in table(data / s / "text").values()}
    assert all(t.endswith("at night.") for t in pron_text) and not (pron_text & asr_text)
    # The shared phoneme interface: every second-domain phoneme is a symbol of data/lang/phn, made
    # from data/train alone; the sentence with a phoneme data/train lacks was left out, and said so.
    inventory = set((data / "lang" / "phn.tokens.txt").read_text().split())
    for s in ("pron_train", "pron_valid"):
        assert {p for v in table(data / s / "text.phn").values() for p in v.split()} <= inventory
    assert "OY" not in inventory and UNSEEN_PHONEME_SENTENCE not in pron_text
    assert re.search(r"unusable \(phonemes outside data/train's \d+: [^)]*OY in 1", proc.stdout + proc.stderr)
    # Stage 1 measured the pronunciation model's OLC and logged the factor its config uses.
    olc = json.loads((data / "local" / "olc_ratio.json").read_text())["pron_model"]
    assert olc["config"] == "conf/train_asr_pron.yaml" and olc["config_factor"] == "9/8" and olc["factor"] > 0
    assert "OLC of the pronunciation model" in proc.stdout + proc.stderr


def test_three_modules_compose_decode_and_score(tree, monkeypatch, capsys):
    from legonn import cli
    from legonn.modules.artifact import input_spec, load_module, save_module
    from legonn.nn.chain import build_module
    from legonn.modules.compose import part_folders
    from legonn.speech.phonemes import PHONEMES
    from legonn.data.vocab import Vocabulary

    asr, _ = tree
    monkeypatch.chdir(asr)
    for name in CONFIGS:
        assert cli.main(["train", "--config", f"conf/tiny_{name}.yaml", "--exp_dir", f"exp/{name}"]) == 0
        assert cli.main(["export", "--exp_dir", f"exp/{name}"]) == 0
    modules = ["exp/phn/modules/encoder", "exp/pron/modules/pron", "exp/lego/modules/decoder"]
    assert cli.main(["compose", "--modules", *modules, "--out", "exp/three"]) == 0
    # Both interfaces were checked: phonemes between 1 and 2, English BPE between 2 and 3.
    meta = json.loads(Path("exp/three/composed.json").read_text())
    phn = Vocabulary.load("data/lang/phn.tokens.txt")
    en = Vocabulary.load("data/lang/en.model")
    assert [i["vocab_sha256"] for i in meta["interfaces"]] == [phn.checksum, en.checksum]
    # The chain reads features normalised with the recogniser's CMVN (data/train's), not the
    # pronunciation model's (data/pron_train's).
    parts = part_folders("exp/three")
    cmvn = Path(input_spec([load_module(parts[0])]).cmvn)
    assert cmvn == parts[0] / "cmvn.ark" and cmvn.read_bytes() == Path("data/train/cmvn.ark").read_bytes()
    assert cmvn.read_bytes() != Path("data/pron_train/cmvn.ark").read_bytes()

    # Fine-tuning the composition (run.sh: asr_three_ft, the recipe's layered config) starts every
    # module from its part and learns with the joint loss of paper Eq. 9: CTC over the phonemes and
    # over the English BPE, cross-entropy at the decoder.
    assert cli.main(["train", "--config", "exp/three/finetune.yaml", "conf/finetune_asr_three.yaml", "--exp_dir",
                     "exp/three_ft", "--trainer.max_steps", "1", "--trainer.valid_every_steps", "1",
                     "--batching.max_tokens", "3000"]) == 0
    (entry,) = json.loads(Path("exp/three_ft/checkpoints/checkpoints.json").read_text())
    assert {"encoder/loss", "pron/loss", "decoder/loss"} <= set(entry["metrics"])

    assert cli.main(["decode", "--modules", "exp/three", "--data_dir", "data/test", "--out_dir", "exp/three/decode_test",
                     "--beam", "2"]) == 0
    out = Path("exp/three/decode_test")
    assert set(table(out / "text")) == set(table(Path("data/test/text")))
    assert set(table(out / "ctc_encoder.text")) == set(table(out / "ctc_pron.text")) == set(table(out / "text"))
    assert set(" ".join(table(out / "ctc_encoder.text").values()).split()) <= set(phn.tokens)
    # Each best path names its reference: the recogniser's phonemes, the pronunciation model's English.
    assert (out / "ctc_encoder.ref").read_text() == "text.phn\n"
    assert (out / "ctc_pron.ref").read_text() == "text.en\n"
    assert cli.main(["score", "--ref", "data/test/text", "--hyp", str(out / "text"), "--out_dir", str(out),
                     "--metric", "wer", "--lowercase", "--remove_punct"]) == 0
    assert json.loads((out / "score.json").read_text())["n_utts"] == 4

    # Table V's second row: recogniser + pronunciation model, no decoder (its CTC best path is the output).
    assert cli.main(["compose", "--modules", *modules[:2], "--out", "exp/phn_pron"]) == 0
    assert cli.main(["decode", "--modules", "exp/phn_pron", "--data_dir", "data/test", "--out_dir",
                     "exp/phn_pron/decode_test"]) == 0
    assert table(Path("exp/phn_pron/decode_test/text")) == table(Path("exp/phn_pron/decode_test/ctc_pron.text"))

    # A pronunciation model over another phoneme inventory (ARPAbet with stress digits) is refused.
    pron = load_module("exp/pron/modules/pron")
    stressed = Vocabulary.from_symbols(PHONEMES[4:])
    conf = {**pron.meta["conf"], "input": {**pron.meta["conf"]["input"], "vocab_size": len(stressed)}}
    other = save_module(build_module("lego_encoder", conf), Path("exp/other_pron"), "pron",
                        input_vocab=stressed, output_vocab=pron.output_vocab, extra=pron.meta["extra"])
    capsys.readouterr()
    assert cli.main(["compose", "--modules", modules[0], str(other), modules[2], "--out", "exp/bad"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("legonn compose: error: cannot chain exp/phn/modules/encoder -> exp/other_pron")
    assert f"{len(phn)} symbols" in err[0] and f"{len(stressed)} symbols" in err[0]
    assert not Path("exp/bad").exists()


def test_recipe_lists_the_three_module_system():
    """run.sh trains the pronunciation model, composes Table V's chains, fine-tunes, decodes and
    compares them with the baseline; the configs it names exist."""
    variables = {k: v.split() for k, v in recipe_variables(RECIPE, "experiments", "decodes", "relative").items()}
    experiments = variables["experiments"]
    entries = dict(re.split(r"[:=]", e, maxsplit=1) for e in experiments)
    assert entries["asr_pron"] == "conf/train_asr_pron.yaml"
    assert entries["asr_three"] == "exp/asr_phn/modules/encoder+exp/asr_pron/modules/pron+../mt1/exp/deen_lego_wemb_bpe256/modules/decoder"
    assert entries["asr_three_ft"] == "exp/asr_three/finetune.yaml,conf/finetune_asr_three.yaml"
    names = [re.split(r"[:=]", e, maxsplit=1)[0] for e in experiments]
    assert names.index("asr_phn") < names.index("asr_pron") < names.index("asr_three") < names.index("asr_three_ft")
    for conf in ("train_asr_pron.yaml", "finetune_asr_three.yaml"):
        assert (RECIPE / "conf" / conf).is_file()
    decodes, relative = variables["decodes"], variables["relative"]
    for name in ("asr_three", "asr_three_ft"):
        assert f"{name}@test" in decodes and f"{name}@test=asr_baseline" in relative
    model = yaml.safe_load((RECIPE / "conf" / "train_asr_pron.yaml").read_text())["model"]
    assert [m["target"] for m in model] == ["phn", "en"]
    assert model[1]["conf"]["input"] == {"type": "wemb", "vocab_size": "vocab:phn", "rf": 5, "layers": 2}
