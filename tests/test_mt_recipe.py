"""The mini MT recipe (egs/mini/mt1) end to end on a tiny slice of the committed corpus.

The recipe runs in a temporary tree (symlinks to utils/, egs/TEMPLATE/ and the corpus, a copy
of egs/mini/mt1) so nothing is written into the repository; tiny configs replace the real ones.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "mini" / "mt1"
CORPUS = ROOT / "egs" / "mini" / "corpus"

TINY = {"d_model": 32, "heads": 2, "d_ff": 64, "dropout": 0.0}


def tiny_config(pair: str, src: str, model: list) -> dict:
    return {
        "model": model,
        "data": {
            "train": f"data/{pair}_train",
            "valid": f"data/{pair}_valid",
            "input": {"file": f"text.{src}", "vocab": f"data/lang/{src}.model"},
            "targets": {"en": {"file": "text.en", "vocab": "data/lang/en.model"}},
        },
        "batching": {"max_tokens": 400},
        "optim": {"lr": 3.0e-3},
        "scheduler": {"warmup_steps": 5},
        "trainer": {"max_steps": 8, "valid_every_steps": 4, "keep_best": 2, "log_every_steps": 4,
                    "best_metric": "loss"},
    }


def lego(src_vocab: str = "vocab:input", decoder: bool = True) -> list:
    encoder = {"name": "encoder", "type": "lego_encoder", "target": "en",
               "conf": {"input": {"type": "embedding", "vocab_size": src_vocab}, "layers": 1,
                        "olc": {"factor": 2, "max_len": 256, "layers": 1}, "ctc_vocab_size": "vocab:en", **TINY}}
    if not decoder:
        return [encoder]
    return [encoder, {"name": "decoder", "type": "lego_decoder", "target": "en",
                      "conf": {"vocab_size": "vocab:en", "layers": 1, **TINY,
                               "ingestor": {"type": "wemb", "vocab_size": "vocab:en", "layers": 1}}}]


@pytest.fixture(scope="module")
def recipe_tree(tmp_path_factory) -> Path:
    if not (CORPUS / "deen" / "train.tsv.xz").is_file():
        pytest.fail(f"{CORPUS} is missing: the mini corpus must be committed")
    root = tmp_path_factory.mktemp("mt_recipe")
    (root / "egs" / "mini").mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    os.symlink(CORPUS, root / "egs" / "mini" / "corpus")
    mt = root / "egs" / "mini" / "mt1"
    shutil.copytree(RECIPE, mt, ignore=shutil.ignore_patterns("data", "exp", "downloads", "RESULTS.md", "__pycache__"))
    configs = {"tiny_deen_lego": tiny_config("deen", "de", lego()),
               "tiny_roen_enconly": tiny_config("roen", "ro", lego(decoder=False))}
    configs["tiny_roen_enconly"]["trainer"]["best_metric"] = "encoder/loss"
    for name, cfg in configs.items():
        (mt / "conf" / f"{name}.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return mt


def run(mt: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bash", "run.sh", *args], cwd=mt, env=env, capture_output=True, text=True, timeout=600)


def test_mt_recipe_end_to_end(recipe_tree: Path):
    mt = recipe_tree
    vocabs = ("en:bpe:200:data/deen_train/text.en,data/roen_train/text.en:data/deen_test/text.en "
              "de:bpe:200:data/deen_train/text.de ro:bpe:200:data/roen_train/text.ro")
    args = ["--data_opts", "--train_pairs 300 --eval_pairs 20", "--vocabs", vocabs,
            "--experiments", "deen:conf/tiny_deen_lego.yaml roen:conf/tiny_roen_enconly.yaml "
            "plug=exp/roen/modules/encoder+exp/deen/modules/decoder "
            "plug_ft:exp/plug/finetune.yaml,conf/tiny/finetune_roen_plug.yaml",
            "--avg_num", "2", "--decodes", "deen@deen_test roen@roen_test plug@roen_test plug_ft@roen_test",
            "--relative", "plug@roen_test=roen plug_ft@roen_test=roen", "--decode_opts", "--beam 2"]
    proc = run(mt, *args)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    for pair, src in (("deen", "de"), ("roen", "ro")):
        for split, n in (("train", 300), ("valid", 20), ("test", 20)):
            for lang in (src, "en"):
                lines = (mt / "data" / f"{pair}_{split}" / f"text.{lang}").read_text().splitlines()
                assert len(lines) == n
    for name in ("en", "de", "ro"):
        assert (mt / "data" / "lang" / f"{name}.model").is_file()
        assert json.loads((mt / "data" / "lang" / f"{name}.report.json").read_text())["size"] > 0
    assert "coverage" in json.loads((mt / "data" / "lang" / "en.report.json").read_text())
    for exp, test_set, modules in (("deen", "deen_test", ("encoder", "decoder")), ("roen", "roen_test", ("encoder",))):
        d = mt / "exp" / exp
        assert (d / "config.yaml").is_file() and (d / "train.log").is_file() and (d / "averaged.pt").is_file()
        for m in modules:
            assert (d / "modules" / m / "module.json").is_file()
        score = json.loads((d / f"decode_{test_set}" / "score.json").read_text())
        assert score["n_utts"] == 20 and "bleu" in score and "chrf" in score
        assert (d / f"decode_{test_set}" / "ctc_encoder" / "score.json").is_file()
    results = (mt / "RESULTS.md").read_text()
    assert "deen_test" in results and "ctc_encoder" in results

    # The Ro-En encoder + De-En decoder composition decodes without training, then is fine-tuned
    # from its parts (the later config file layered over compose's finetune.yaml).
    composed = json.loads((mt / "exp" / "plug" / "composed.json").read_text())
    assert [p["source"].split("exp/")[-1] for p in composed["parts"]] == ["roen/modules/encoder", "deen/modules/decoder"]
    ft = yaml.safe_load((mt / "exp" / "plug_ft" / "config.yaml").read_text())
    assert ft["data"]["train"] == "data/roen_train" and ft["trainer"]["max_steps"] == 4
    assert ft["trainer"]["init_modules"]["decoder"].endswith("exp/plug/parts/1_decoder")
    assert "module 'decoder' starts from" in (mt / "exp" / "plug_ft" / "train.log").read_text()
    # The modularity table: each row's score as a percentage of the reference's.
    ref = json.loads((mt / "exp" / "roen" / "decode_roen_test" / "score.json").read_text())["bleu"]["score"]
    plug = json.loads((mt / "exp" / "plug" / "decode_roen_test" / "score.json").read_text())["bleu"]["score"]
    assert "## Modularity" in results
    section = results.split("## Modularity", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| plug")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:4] == ["plug", "roen_test", "roen", "BLEU"]
    if ref > 0:
        assert float(cells[6]) == pytest.approx(100 * plug / ref, abs=0.06)
    assert (mt / "RESULTS_modularity.png").stat().st_size > 0
    for stage in ("stage1_data", "stage4_train.deen", "stage8_score.deen@deen_test"):
        assert (mt / "exp" / ".done" / stage).is_file(), stage
        assert (mt / "exp" / "logs" / f"{stage}.log").is_file(), stage

    # A finished recipe re-runs as a no-op; --stage N alone works because variables are set before stages.
    again = run(mt, *args, "--stage", "4", "--stop_stage", "4")
    assert again.returncode == 0 and "already done" in again.stderr
