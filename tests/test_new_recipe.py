"""egs/TEMPLATE/README.md's "A new text-only corpus, step by step", built from the README itself.

The files marked ``<!-- recipe: FILE -->`` there are written, exactly as shown, into a recipe
directory of a temporary tree, and stages 1-8 run on a generated French-English corpus at a
smoke-test size (small BPEs through --vocabs, a tiny model through --train_opts). The same recipe
then shows stage 4 after an edited config, a longer budget and --force true, and stages 5-7 of a
deleted experiment.
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from recipe_fixtures import ROOT, recipe_env, recipe_variables

README = ROOT / "egs" / "TEMPLATE" / "README.md"
LEXICON = {"maison": "house", "chat": "cat", "chien": "dog", "arbre": "tree", "voiture": "car", "livre": "book",
           "table": "table", "chaise": "chair", "eau": "water", "pain": "bread", "pomme": "apple", "oiseau": "bird"}
TINY_MODEL = " ".join(f"--model.{m}.conf.{key} {value}" for m in ("encoder", "decoder")
                      for key, value in (("d_model", 32), ("heads", 2), ("d_ff", 64), ("layers", 1)))
TRAIN_OPTS = f"{TINY_MODEL} --model.encoder.conf.olc.layers 1 --scheduler.warmup_steps 2 " \
             "--trainer.max_steps 6 --trainer.valid_every_steps 2"


def readme_files() -> dict[str, str]:
    """The README's recipe files: {path in the recipe: the code block after its marker}."""
    blocks = re.findall(r"^<!-- recipe: (\S+) -->\n```\w*\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    return dict(blocks)


def write_corpus(directory: Path) -> None:
    """{train,valid,test}.tsv: word-for-word French-English pairs, ids out of order."""
    rng = random.Random(0)
    directory.mkdir()
    for name, n in (("train", 200), ("valid", 20), ("test", 20)):
        rows = []
        for i in rng.sample(range(n), n):
            words = rng.choices(sorted(LEXICON), k=rng.randint(2, 6))
            rows.append(f"{name}{i:04d}\t{' '.join(words)}\t{' '.join(LEXICON[w] for w in words)}\n")
        (directory / f"{name}.tsv").write_text("".join(rows), encoding="utf-8")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The README's recipe in a tree of its own, run through stages 1-8: (its dir, run(*args))."""
    root = tmp_path_factory.mktemp("new_recipe")
    (root / "egs").mkdir()
    (root / "utils").symlink_to(ROOT / "utils")
    (root / "egs" / "TEMPLATE").symlink_to(ROOT / "egs" / "TEMPLATE")
    mt = root / "egs" / "mycorpus" / "mt1"
    files = readme_files()
    assert sorted(files) == ["conf/train_lego.yaml", "db.sh", "local/data.sh", "run.sh"]
    for path, text in files.items():
        (mt / path).parent.mkdir(parents=True, exist_ok=True)
        (mt / path).write_text(text)
    write_corpus(root / "corpus")
    # The README's vocabularies, at a size the generated corpus can give.
    vocabs = re.sub(r":bpe:\d+:", ":bpe:40:", recipe_variables(mt, "vocabs")["vocabs"])
    env = recipe_env(MYCORPUS=str(root / "corpus"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "run.sh", "--vocabs", vocabs, *args], cwd=mt, env=env, capture_output=True,
                              text=True, timeout=300, check=False)

    proc = run("--train_opts", TRAIN_OPTS)
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return mt, run


def test_the_readme_recipe_runs_stages_1_to_8(recipe):
    mt, _ = recipe
    for split, n in (("train", 200), ("valid", 20), ("test", 20)):
        for lang in ("fr", "en"):
            ids = [line.split(" ", 1)[0] for line in (mt / "data" / split / f"text.{lang}").read_text().splitlines()]
            assert len(ids) == n and ids == sorted(ids)
    stage1 = (mt / "exp" / "logs" / "stage1_data.log").read_text()
    for split, n in (("train", 200), ("valid", 20), ("test", 20)):  # local/data.sh validated each dir
        assert f"data/{split}: OK ({n} utterances)" in stage1
    for name in ("fr", "en"):
        assert (mt / "data" / "lang" / f"{name}.model").is_file()
    assert (mt / "exp" / "lego" / "averaged.pt").is_file()
    assert (mt / "exp" / "lego" / "modules" / "decoder" / "module.json").is_file()
    rows = [line for line in (mt / "RESULTS.md").read_text().splitlines() if line.startswith("| lego | test | text |")]
    header = next(line for line in (mt / "RESULTS.md").read_text().splitlines() if line.startswith("| experiment"))
    assert len(rows) == 1 and "BLEU" in header


def test_stage_4_after_an_edited_config_a_longer_budget_and_force(recipe):
    mt, run = recipe
    exp = mt / "exp" / "lego"
    conf = mt / "conf" / "train_lego.yaml"
    saved = (exp / "config.yaml").read_text()

    # An edited config: the changed keys, one line on how to retrain, nothing trained.
    original = conf.read_text()
    conf.write_text(original.replace("optim: {lr: 1.0e-3}", "optim: {lr: 2.0e-3}"))
    edited = run("--train_opts", TRAIN_OPTS, "--stage", "4", "--stop_stage", "4")
    conf.write_text(original)
    assert edited.returncode == 1
    assert "stage 4 (train lego): its config changed since exp/lego was trained:\n    optim.lr: 0.001 -> 0.002\n" \
        in edited.stderr
    assert "to retrain it, mv exp/lego exp/lego.old and rerun run.sh --stage 4" in edited.stderr
    assert "Traceback" not in edited.stderr and (exp / "config.yaml").read_text() == saved

    # A longer budget continues the experiment (and its later stages are redone).
    longer = TRAIN_OPTS.replace("--trainer.max_steps 6", "--trainer.max_steps 8")
    more = run("--train_opts", longer, "--stage", "4", "--stop_stage", "5")
    assert more.returncode == 0, more.stderr[-3000:]
    assert "stage 4 (train lego): continuing with a new budget: trainer.max_steps: 6 -> 8" in more.stderr
    assert "stage 5 (average lego): already done" not in more.stderr
    assert yaml.safe_load((exp / "config.yaml").read_text())["trainer"]["max_steps"] == 8
    assert "resumed from" in (exp / "train.log").read_text()

    # --force true trains afresh, the old experiment moved aside.
    forced = run("--train_opts", longer, "--stage", "4", "--stop_stage", "4", "--force", "true")
    assert forced.returncode == 0, forced.stderr[-3000:]
    old = [p for p in (mt / "exp").iterdir() if p.name.startswith("lego.old-")]
    assert len(old) == 1 and (old[0] / "averaged.pt").is_file()
    assert f"stage 4 (train lego): --force true: moved exp/lego aside to exp/{old[0].name}; training afresh" \
        in forced.stderr
    assert "resumed from" not in (exp / "train.log").read_text() and not (exp / "averaged.pt").exists()


def test_stage_5_of_a_deleted_experiment_asks_for_stage_4(recipe):
    mt, run = recipe
    shutil.rmtree(mt / "exp" / "lego")
    proc = run("--stage", "5")
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith(
        "[mycorpus/mt1] stage 5 (lego): exp/lego holds no trained experiment (no config.yaml); "
        "run stage 4 first: run.sh --stage 4")
    assert "Traceback" not in proc.stderr
