"""The mini MT recipe (egs/mini/mt1) end to end, on the models of the tiny demo run.

`make demo`'s tiny mode (conftest.py's ``tiny_demo``) runs this recipe's stages 1-8 for a De-En
LegoNN model and a Ro-En encoder-only model on the ASR test's fixture corpus; training them again
here would repeat that work. The test extends a copy of that recipe directory the way a model
inventory grows: the two are composed, the composition fine-tuned from its parts, and everything
decoded, scored and tabulated. The committed corpus is unpacked by test_data_sh_on_the_committed_corpus.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "mini" / "mt1"
CORPUS = ROOT / "egs" / "mini" / "corpus"

# The demo's tiny experiments and the options it ran mt1 with (egs/mini/demo.sh, --mode tiny).
DEEN, ROEN = "tiny_deen_lego_demo", "tiny_roen_enconly_demo"
DATA_OPTS = "--train_pairs 300 --eval_pairs 20"
VOCABS = ("en:bpe:200:data/deen_train/text.en,data/roen_train/text.en:data/deen_test/text.en,data/roen_test/text.en "
          "de:bpe:200:data/deen_train/text.de ro:bpe:200:data/roen_train/text.ro")
DECODE_OPTS = "--beam 2 --max_len_a 1.2 --max_len_b 5"


def test_data_sh_on_the_committed_corpus(tmp_path):
    """local/data.sh unpacks the committed corpus, the first --train_pairs / --eval_pairs pairs of each split."""
    if not (CORPUS / "deen" / "train.tsv.xz").is_file():
        pytest.fail(f"{CORPUS} is missing: the mini corpus must be committed")
    (tmp_path / "egs" / "mini" / "mt1" / "local").mkdir(parents=True)
    os.symlink(ROOT / "utils", tmp_path / "utils")
    os.symlink(CORPUS, tmp_path / "egs" / "mini" / "corpus")
    mt = tmp_path / "egs" / "mini" / "mt1"
    shutil.copy2(RECIPE / "local" / "data.sh", mt / "local" / "data.sh")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(["bash", "local/data.sh", *DATA_OPTS.split()], cwd=mt, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": OK (") == 6, proc.stdout  # every data dir validated
    for pair, src in (("deen", "de"), ("roen", "ro")):
        for split, n in (("train", 300), ("valid", 20), ("test", 20)):
            for lang in (src, "en"):
                lines = (mt / "data" / f"{pair}_{split}" / f"text.{lang}").read_text().splitlines()
                assert len(lines) == n


@pytest.fixture(scope="module")
def recipe_tree(tiny_demo, tmp_path_factory) -> Path:
    """A copy of the demo's mt1 (data, vocabularies, trained models) in a tree of its own."""
    mini, run = tiny_demo
    proc = run.result()
    assert proc.returncode == 0, f"demo.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    root = tmp_path_factory.mktemp("mt_recipe")
    (root / "egs" / "mini").mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    shutil.copytree(mini / "corpus", root / "egs" / "mini" / "corpus")
    shutil.copytree(mini / "mt1", root / "egs" / "mini" / "mt1", ignore=shutil.ignore_patterns("RESULTS*"))
    return root / "egs" / "mini" / "mt1"


def run(mt: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bash", "run.sh", *args], cwd=mt, env=env, capture_output=True, text=True, timeout=600)


def test_mt_recipe_end_to_end(recipe_tree: Path):
    mt = recipe_tree
    args = ["--data_opts", DATA_OPTS, "--vocabs", VOCABS,
            "--experiments", f"{DEEN}:conf/tiny/deen_lego_wemb.yaml {ROEN}:conf/tiny/roen_enconly.yaml "
            f"plug=exp/{ROEN}/modules/encoder+exp/{DEEN}/modules/decoder "
            "plug_ft:exp/plug/finetune.yaml,conf/tiny/finetune_roen_plug.yaml",
            "--avg_num", "2", "--decodes", f"{DEEN}@deen_test {ROEN}@roen_test plug@roen_test plug_ft@roen_test",
            "--relative", f"plug@roen_test={ROEN} plug_ft@roen_test={ROEN}", "--decode_opts", DECODE_OPTS]
    proc = run(mt, *args)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    # The demo's models are reused (the model inventory), not trained again.
    for exp in (DEEN, ROEN):
        assert f"stage 4 (train {exp}): already done" in proc.stderr
    for name in ("en", "de", "ro"):
        assert (mt / "data" / "lang" / f"{name}.model").is_file()
        assert json.loads((mt / "data" / "lang" / f"{name}.report.json").read_text())["size"] > 0
    assert "coverage" in json.loads((mt / "data" / "lang" / "en.report.json").read_text())
    for exp, test_set, modules in ((DEEN, "deen_test", ("encoder", "decoder")), (ROEN, "roen_test", ("encoder",))):
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
    sources = [p["source"].split("exp/")[-1] for p in composed["parts"]]
    assert sources == [f"{ROEN}/modules/encoder", f"{DEEN}/modules/decoder"]
    ft = yaml.safe_load((mt / "exp" / "plug_ft" / "config.yaml").read_text())
    assert ft["data"]["train"] == "data/roen_train" and ft["trainer"]["max_steps"] == 4
    assert ft["trainer"]["init_modules"]["decoder"].endswith("exp/plug/parts/1_decoder")
    assert "module 'decoder' starts from" in (mt / "exp" / "plug_ft" / "train.log").read_text()
    # The modularity table: each row's score as a percentage of the reference's.
    ref = json.loads((mt / "exp" / ROEN / "decode_roen_test" / "score.json").read_text())["bleu"]["score"]
    plug = json.loads((mt / "exp" / "plug" / "decode_roen_test" / "score.json").read_text())["bleu"]["score"]
    assert "## Modularity" in results
    section = results.split("## Modularity", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| plug")]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:4] == ["plug", "roen_test", ROEN, "BLEU"]
    if ref > 0:
        assert float(cells[6]) == pytest.approx(100 * plug / ref, abs=0.06)
    assert (mt / "RESULTS_modularity.png").stat().st_size > 0
    for stage in ("stage1_data", f"stage4_train.{DEEN}", f"stage8_score.{DEEN}@deen_test", "stage4_train.plug_ft"):
        assert (mt / "exp" / ".done" / stage).is_file(), stage
        assert (mt / "exp" / "logs" / f"{stage}.log").is_file(), stage

    # A finished recipe re-runs as a no-op; --stage N alone works because variables are set before stages.
    again = run(mt, *args, "--stage", "4", "--stop_stage", "4")
    assert again.returncode == 0 and "already done" in again.stderr

    # A marker does not outlive its experiment: with exp/plug deleted, stage 6 composes it again,
    # and the markers of plug's later stages go (its decodes were of the old folder).
    shutil.rmtree(mt / "exp" / "plug")
    redo = run(mt, *args, "--stage", "6", "--stop_stage", "6")
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert "stage 6 (compose plug): exp/plug is gone; redoing the stage" in redo.stderr
    assert f"stage 6 (export {DEEN}): already done" in redo.stderr
    assert (mt / "exp" / "plug" / "composed.json").is_file()
    done = mt / "exp" / ".done"
    assert not list(done.glob("stage[78]_*.plug@*")), sorted(p.name for p in done.iterdir())
    assert (done / f"stage7_decode.{DEEN}@deen_test").is_file() and (done / "stage7_decode.plug_ft@roen_test").is_file()
    # A part exported after the composition (its experiment retrained) makes it compose again.
    later = (done / "stage6_compose.plug").stat().st_mtime + 10
    os.utime(mt / "exp" / DEEN / "modules" / "decoder", (later, later))
    again = run(mt, *args, "--stage", "6", "--stop_stage", "6")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"stage 6 (compose plug): exp/{DEEN}/modules/decoder is newer than the composition" in again.stderr


@pytest.mark.parametrize("conf", sorted(p.name for p in (RECIPE / "conf").glob("train_*.yaml")))
def test_recipe_configs_build_and_run(conf):
    """The real configs resolve, build and run a forward pass; a LegoNN encoder's OLC sets the
    interface length the way its config says (ceil(factor x source pieces), capped)."""
    import torch

    from legonn.config import resolve
    from legonn.engine.experiment import build_model

    config = resolve(RECIPE / "conf" / conf)
    assert Path(config["data"]["input"]["vocab"]).parent == Path("data/lang")
    model = build_model(config, {"vocab:input": 260, "vocab:en": 260})
    model.eval()
    lengths = torch.tensor([30, 17])
    with torch.no_grad():
        outputs = model.encode(torch.randint(3, 260, (2, 30)), lengths)
    encoder = model.blocks["encoder"]
    olc = getattr(encoder, "olc", None)
    if olc is not None:
        factor = Fraction(str(config["model"][0]["conf"]["olc"]["factor"]))
        want = [min(math.ceil(factor * n), olc.max_len) for n in (30, 17)]
        assert outputs[0].lengths.tolist() == want
        assert outputs[0].log_probs.shape[:2] == (2, want[0])


def test_compression_entries_end_to_end(recipe_tree: Path):
    """Modular Transformers through the stage table: a teacher, its modular phase (stage 6 exports
    nothing), an assembled and a shrunk decoder (stage 6), the assembly composed, decoded, scored."""
    mt = recipe_tree
    args = ["--data_opts", DATA_OPTS, "--vocabs", VOCABS, "--avg_num", "2", "--decode_opts", DECODE_OPTS,
            "--experiments", "tiny_teacher:conf/tiny/deen_lego_teacher.yaml tiny_modular:conf/tiny/modular_deen.yaml "
            "tiny_dec2x=assemble:tiny_modular:decoder:2 tiny_dec2x_drop=shrink:exp/tiny_teacher/modules/decoder:2 "
            "tiny_dec2x_eval=exp/tiny_teacher/modules/encoder+exp/tiny_dec2x",
            "--decodes", "tiny_dec2x_eval@deen_test", "--results_file", "RESULTS.compress.md"]
    proc = run(mt, *args)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert "stage 6 (tiny_modular): a modular phase" in proc.stderr
    assert not (mt / "exp" / "tiny_modular" / "modules").exists()
    teacher = json.loads((mt / "exp" / "tiny_teacher" / "modules" / "decoder" / "module.json").read_text())
    for name, key, layers in (("tiny_dec2x", "assembled", ["g2_0"]), ("tiny_dec2x_drop", "shrunk", None)):
        meta = json.loads((mt / "exp" / name / "module.json").read_text())
        assert meta["conf"]["layers"] == 1 and meta["output"]["vocab"]["sha256"] == teacher["output"]["vocab"]["sha256"]
        if layers:
            assert meta["extra"][key]["plan"] == layers
        else:
            assert meta["extra"][key]["kept_layers"] == [0]
    score = json.loads((mt / "exp" / "tiny_dec2x_eval" / "decode_deen_test" / "score.json").read_text())
    assert score["n_utts"] == 20 and "bleu" in score
    assert "tiny_dec2x_eval" in (mt / "RESULTS.compress.md").read_text()


@pytest.mark.parametrize("conf", ["zeroshot_deen_mt_ctc.yaml", "zeroshot_deen_mt_onehot.yaml", "zeroshot_deen_mt_beamconv.yaml"])
def test_zeroshot_mt_configs_build(conf):
    """The marginal-reading MT encoders of issue 20 (text_marginals -> WEmb or BeamConv encoder -> the
    teacher's frozen decoder) resolve and build; their teacher folder exists only after the compress suite."""
    import torch

    from legonn.config import resolve
    from legonn.engine.experiment import build_model

    config = resolve(RECIPE / "conf" / conf)
    assert config["trainer"].pop("init_modules") == {"decoder": "exp/deen_lego_teacher/modules/decoder"}
    model = build_model(config, {"vocab:input": 260, "vocab:en": 260})
    assert model.names == ["text", "encoder", "decoder"] and set(config["data"]["targets"]) == {"en", "de"}
    assert not any(p.requires_grad for p in model.blocks["decoder"].parameters())
    text = model.blocks["text"]
    assert text.ctc_frames == conf.endswith("ctc.yaml") and text.smoothing == 0.1
    assert text.distractors == (15 if "beamconv" in conf else 0)
    ingestor = type(model.blocks["encoder"].input_layer).__name__
    assert ingestor == ("BeamConvIngestor" if "beamconv" in conf else "WEmbIngestor")
    with torch.no_grad():
        out = model.eval().encode(torch.randint(3, 260, (2, 30)), torch.tensor([30, 17]))
    assert out[1].log_probs.shape[:2] == (2, 45)  # OLC x1.5 over one position per token at evaluation
