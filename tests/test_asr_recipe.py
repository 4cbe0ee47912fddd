"""The mini ASR recipe (egs/mini/asr1) end to end on a tiny synthesised set.

The recipe runs in a temporary tree (symlinks to utils/ and egs/TEMPLATE/, a copy of
egs/mini/asr1, a small fixture corpus in egs/mini/corpus) so nothing is written into the repo.
Speech comes from espeak-ng through the espeakng-loader wheel (the PyPI path: no Debian
package needed). mt1's English BPE is absent here, so local/data.sh trains a standalone one
(--standalone_bpe_size); a tiny model config stands in for the real ones.
"""
from __future__ import annotations

import json
import lzma
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "mini" / "asr1"

# A word-for-word English/German grammar: enough distinct 5-9 word sentences for a fixture corpus.
SUBJECTS = [("the old man", "der alte Mann"), ("my sister", "meine Schwester"), ("our teacher", "unser Lehrer"),
            ("a young woman", "eine junge Frau"), ("his friend", "sein Freund"), ("the doctor", "der Arzt")]
VERBS = [("reads", "liest"), ("sees", "sieht"), ("buys", "kauft"), ("likes", "mag"), ("finds", "findet")]
OBJECTS = [("a red book", "ein rotes Buch"), ("the big house", "das große Haus"), ("fresh bread", "frisches Brot"),
           ("the small dog", "den kleinen Hund"), ("a new car", "ein neues Auto")]
TIMES = [("today", "heute"), ("every morning", "jeden Morgen"), ("in the evening", "am Abend"),
         ("on Sunday", "am Sonntag")]


def make_fixture_corpus(root: Path, n_train: int = 200, n_eval: int = 20, n_heldout: int = 30, seed: int = 0) -> Path:
    """``root/{deen,roen}/{train,valid,test}.tsv.xz`` (id, source, english, origin) and ``root/en_heldout.txt``."""
    rng = random.Random(seed)
    pairs = []
    for s_en, s_de in SUBJECTS:
        for v_en, v_de in VERBS:
            for o_en, o_de in OBJECTS:
                for t_en, t_de in TIMES:
                    en = f"{s_en} {v_en} {o_en} {t_en}."
                    de = f"{s_de} {v_de} {o_de} {t_de}."
                    pairs.append((de[0].upper() + de[1:], en[0].upper() + en[1:]))
    rng.shuffle(pairs)
    splits = {"train": pairs[:n_train], "valid": pairs[n_train:n_train + n_eval],
              "test": pairs[n_train + n_eval:n_train + 2 * n_eval]}
    for pair in ("deen", "roen"):
        (root / pair).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            with lzma.open(root / pair / f"{split}.tsv.xz", "wt", encoding="utf-8") as f:
                for i, (src, en) in enumerate(rows):
                    f.write(f"{split}{i:04d}\t{src}\t{en}\tfixture\n")
    heldout = set()
    while len(heldout) < n_heldout:  # a question form no training sentence has
        s, v, o = rng.choice(SUBJECTS)[0], rng.choice(VERBS)[0], rng.choice(OBJECTS)[0]
        heldout.add(f"Nobody knows why {s} {v[:-1]} {o}.")
    (root / "en_heldout.txt").write_text("\n".join(sorted(heldout)) + "\n", encoding="utf-8")
    return root


TINY_ENCONLY = {
    "model": [{"name": "encoder", "type": "lego_encoder", "target": "en", "conf": {
        "input": {"type": "conv2d", "input_dim": "dim:input", "channels": [8, 8]},
        "d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0,
        "olc": {"factor": "1/2", "max_len": 200, "layers": 1}, "ctc_vocab_size": "vocab:en"}}],
}
TINY_LEGO = {
    "model": TINY_ENCONLY["model"] + [{"name": "decoder", "type": "lego_decoder", "target": "en", "conf": {
        "vocab_size": "vocab:en", "ingestor": {"type": "wemb", "vocab_size": "vocab:en", "rf": 1, "layers": 1},
        "d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0}}],
}
TINY_PHN = {
    "model": [{"name": "encoder", "type": "lego_encoder", "target": "phn", "conf": {
        "input": {"type": "conv2d", "input_dim": "dim:input", "channels": [8, 8]},
        "d_model": 32, "heads": 2, "d_ff": 64, "layers": 1, "dropout": 0.0, "ctc_vocab_size": "vocab:phn"}}],
}
TINY_COMMON = {
    "data": {"train": "data/train", "valid": "data/valid",
             "input": {"file": "feats.scp", "cmvn": "data/train/cmvn.ark"},
             "max_input_length": 3000, "max_target_length": 300,
             "specaug": {"freq_masks": 1, "freq_width": 10, "time_masks": 1, "time_width": 20}},
    "batching": {"max_tokens": 4000},
    "optim": {"lr": 1.0e-3},
    "scheduler": {"type": "inverse_sqrt", "warmup_steps": 5},
    "trainer": {"max_steps": 6, "max_epochs": 100, "valid_every_steps": 3, "keep_best": 2, "log_every_steps": 3},
}


def tiny_config(model: dict, targets: dict, best_metric: str | None = None) -> dict:
    cfg = {"model": model["model"], **json.loads(json.dumps(TINY_COMMON))}
    cfg["data"]["targets"] = targets
    if best_metric:
        cfg["trainer"]["best_metric"] = best_metric
    return cfg


@pytest.fixture(scope="module")
def recipe_tree(tmp_path_factory) -> Path:
    """A tmp root holding utils/, egs/TEMPLATE/ (symlinks), egs/mini/corpus (fixture) and a copy of asr1."""
    root = tmp_path_factory.mktemp("asr_recipe")
    (root / "egs" / "mini").mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    make_fixture_corpus(root / "egs" / "mini" / "corpus")
    asr = root / "egs" / "mini" / "asr1"
    shutil.copytree(RECIPE, asr, ignore=shutil.ignore_patterns("data", "exp", "RESULTS.md", "__pycache__"))
    en = {"en": {"file": "text.en", "vocab": "data/lang/en.model"}}
    phn = {"phn": {"file": "text.phn", "vocab": "data/lang/phn.tokens.txt"}}
    for name, model, targets, metric in (("tiny_lego", TINY_LEGO, en, None),
                                         ("tiny_enconly", TINY_ENCONLY, en, "encoder/loss"),
                                         ("tiny_phn", TINY_PHN, phn, "encoder/loss")):
        (asr / "conf" / f"{name}.yaml").write_text(yaml.safe_dump(tiny_config(model, targets, metric), sort_keys=False))
    return asr


def recipe_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_asr_recipe_end_to_end(recipe_tree: Path):
    asr = recipe_tree
    args = [
        "bash", "run.sh", "--nj", "2",
        "--data_opts", "--train_utts 40 --eval_utts 8 --voices_train 4 --voices_valid 2 --voices_test 2 "
                       "--engines espeak --espeak_backend lib --standalone_bpe_size 60 --bpe en --nj 1",
        # the LegoNN system (encoder CTC over English BPE + decoder) and the phoneme recogniser cover
        # every stage; the encoder-only model's mechanics are the first of these.
        "--experiments", "lego:conf/tiny_lego.yaml phn:conf/tiny_phn.yaml",
        "--avg_num", "2",
        "--decodes", "lego@test phn@test_phn",
        "--decode_opts", "--beam 2 --length_penalty 1.0",
    ]
    proc = subprocess.run(args, cwd=asr, env=recipe_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    data = asr / "data"
    # stage 1: synthesised data dirs with every view of the transcripts
    for s in ("train", "valid", "test"):
        for f in ("wav.scp", "text", "text.en", "text.lc", "text.phn", "utt2spk", "spk2utt", "utt2dur", "spk2voice"):
            assert (data / s / f).is_file(), f"data/{s}/{f} missing"
    assert len((data / "train" / "text").read_text().splitlines()) == 40
    assert len((data / "test" / "text").read_text().splitlines()) == 8
    assert (data / "test_phn" / "text").read_text() == (data / "test" / "text.phn").read_text()
    spk = {s: {line.split()[0] for line in (data / s / "spk2utt").read_text().splitlines()} for s in ("train", "valid", "test")}
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["valid"]) and not (spk["valid"] & spk["test"])
    fam = {s: {line.split()[-1] for line in (data / s / "spk2voice").read_text().splitlines()} for s in spk}
    assert not (fam["train"] & fam["test"]), "test voice families must be unseen in training"
    # the test sentences are the held-out ones, never training text
    test_text = {line.split(" ", 1)[1] for line in (data / "test" / "text").read_text().splitlines()}
    train_text = {line.split(" ", 1)[1] for line in (data / "train" / "text").read_text().splitlines()}
    assert all(t.startswith("Nobody knows why") for t in test_text) and not (test_text & train_text)
    assert (data / "train" / "text.de").is_file() and (data / "local" / "olc_ratio.json").is_file()
    # low-resource subsets (Appendix F): 10 % / 30 % of the training utterances, every voice kept
    train_utts = [line.split()[0] for line in (data / "train" / "text").read_text().splitlines()]
    for pct, n in ((10, 4), (30, 12)):
        subset = [line.split()[0] for line in (data / f"train_{pct}pct" / "text").read_text().splitlines()]
        assert len(subset) == n and set(subset) <= set(train_utts)
        assert {u.split("-")[0] for u in subset} == {u.split("-")[0] for u in train_utts}
    # stage 2: features; stage 3: vocabularies
    for s in ("train", "valid", "test", "test_phn", "train_10pct", "train_30pct"):
        assert (data / s / "feats.scp").is_file() and (data / s / "cmvn.ark").is_file()
    assert (data / "lang" / "en.model").is_file() and (data / "lang" / "phn.tokens.txt").is_file()
    assert "AH" in (data / "lang" / "phn.tokens.txt").read_text().split()
    # stages 4-8
    for name, test_set in (("lego", "test"), ("phn", "test_phn")):
        exp = asr / "exp" / name
        assert list(exp.glob("checkpoint*.pt")) or list(exp.glob("checkpoints/*.pt")), f"{name}: no checkpoints"
        assert (exp / "averaged.pt").is_file()
        assert (exp / "modules").is_dir() and any((exp / "modules").iterdir())
        dec = exp / f"decode_{test_set}"
        assert (dec / "text").is_file() and (dec / "score.json").is_file()
        assert "wer" in json.loads((dec / "score.json").read_text())
    assert (asr / "exp" / "lego" / "decode_test" / "ctc_encoder" / "score.json").is_file()
    # the encoder's best path is scored against what it learnt to emit (its .ref names text.en)
    assert (asr / "exp" / "lego" / "decode_test" / "ctc_encoder.ref").read_text() == "text.en\n"
    assert "--ref data/test/text.en --hyp exp/lego/decode_test/ctc_encoder.text" in proc.stderr
    results = (asr / "RESULTS.md").read_text()
    assert "lego" in results and "test_phn" in results


@pytest.mark.parametrize("conf", sorted(p.name for p in (RECIPE / "conf").glob("train_*.yaml")))
def test_recipe_configs_build_and_run(conf):
    """The real (full-size) configs resolve, build and run a forward pass on fbank-shaped input."""
    import torch

    from legonn.config import resolve
    from legonn.engine.experiment import build_model

    config = resolve(RECIPE / "conf" / conf)
    # Each model normalises with the statistics of its own training set (the pronunciation
    # model trains on the second domain's speech).
    assert config["data"]["input"] == {"file": "feats.scp", "cmvn": f"{config['data']['train']}/cmvn.ark"}
    assert config["data"]["specaug"], "speech configs train with SpecAugment"
    model = build_model(config, {"dim:input": 80, "vocab:en": 1000, "vocab:phn": 40})
    model.eval()
    lengths = torch.tensor([300, 217])
    with torch.no_grad():
        outputs = model.encode(torch.randn(2, 300, 80), lengths)
    enc = outputs[0]
    assert enc.hidden.shape[-1] == 256
    if model.blocks["encoder"].olc is not None:  # the OLC fixes the interface length
        assert torch.equal(enc.lengths, model.blocks["encoder"].output_lengths(lengths))


def test_shared_bpe_models_use_one_olc_factor():
    """The LegoNN ASR encoder and the encoder-only model emit MT-encoder-like lengths alike (the
    same OLC factor, or, where the front-end's lengths already match, no OLC in either)."""
    factors = set()
    for conf in ("train_asr_lego_wemb.yaml", "train_asr_enconly.yaml"):
        enc = yaml.safe_load((RECIPE / "conf" / conf).read_text())["model"][0]
        assert enc["conf"]["ctc_vocab_size"] == "vocab:en"
        factors.add(str((enc["conf"].get("olc") or {}).get("factor", "no OLC")))
    assert len(factors) == 1
