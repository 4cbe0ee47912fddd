"""Recipe-wide consistency: every trained experiment of a recipe keeps at least the $avg_num
checkpoints stage 5 averages (otherwise `legonn average` refuses and the recipe stops there)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from legonn.config import resolve

from recipe_fixtures import recipe_variables

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.parent for p in (ROOT / "egs").glob("*/*/run.sh"))


def trainer_setting(recipe: Path, configs: list[str], key: str):
    """trainer.<key> as `legonn train` resolves the layered config list (base configs and
    defaults included; files that compose writes, exp/<name>/finetune.yaml, are skipped when
    absent: they set no trainer keep counts)."""
    return resolve([recipe / conf for conf in configs if (recipe / conf).is_file()])["trainer"][key]


@pytest.mark.parametrize("recipe", RECIPES, ids=[f"{p.parent.name}/{p.name}" for p in RECIPES])
def test_trained_experiments_keep_what_stage5_averages(recipe: Path):
    variables = recipe_variables(recipe, "experiments", "avg_num", "avg_mode")
    avg_num = int(variables["avg_num"] or 5)
    key = "keep_last" if variables["avg_mode"] == "last" else "keep_best"
    trained = [e.split(":", 1) for e in variables["experiments"].split() if not re.match(r"^[^:]*=", e)]
    assert trained, f"{recipe}: no trained experiment found"
    for name, confs in trained:
        kept = trainer_setting(recipe, confs.split(","), key)
        assert kept >= avg_num, f"{recipe.name}/{name}: trainer.{key} {kept} < avg_num {avg_num}"


@pytest.mark.parametrize("recipe", RECIPES, ids=[f"{p.parent.name}/{p.name}" for p in RECIPES])
def test_experiments_name_existing_configs_and_earlier_modules(recipe: Path):
    """Every config a trained entry layers exists (compose's finetune.yaml excepted: stage 4 writes
    it), and a composed, assembled or shrunk entry or a config under exp/ uses only experiments
    listed above it."""
    experiments = recipe_variables(recipe, "experiments")["experiments"].split()
    seen: set[str] = set()
    for entry in experiments:
        composed = re.match(r"^([^:=]+)=(.+)$", entry)
        name, parts = (composed.group(1), composed.group(2).split("+")) if composed else entry.split(":", 1)
        if composed and parts[0].startswith("assemble:"):  # assemble:phase:module:ratio[:strategy]
            parts = ["exp/" + parts[0].split(":")[1]]
        elif composed and parts[0].startswith("shrink:"):  # shrink:folder:ratio
            parts = [parts[0].split(":")[1]]
        if not composed:
            parts = parts.split(",")
            for conf in parts:
                assert conf.startswith("exp/") or (recipe / conf).is_file(), f"{recipe.name}/{name}: no config {conf}"
        for part in parts:
            if part.startswith("exp/"):
                used = part.split("/")[1]
                assert used in seen, f"{recipe.parent.name}/{recipe.name}/{name}: uses {used} before it is listed"
        assert name not in seen, f"{recipe.name}: experiment {name} listed twice"
        seen.add(name)


@pytest.mark.parametrize("recipe", RECIPES, ids=[f"{p.parent.name}/{p.name}" for p in RECIPES])
def test_run_sh_exits_on_the_line_that_runs_the_stages(recipe: Path):
    """bash reads a running script as it goes: a run.sh edited while its stages run (adding an
    experiment, say) would hand the shell half a line when they return, unless that line exits."""
    code = [line for line in (recipe / "run.sh").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert code[-1] == '. ../../TEMPLATE/legonn.sh "$@"; exit', f"{recipe}/run.sh ends with {code[-1]!r}"


def test_running_recipe_survives_an_edit_of_its_run_sh(tmp_path: Path):
    """The behaviour the rule above relies on, shown on a two-line script."""
    import subprocess
    import time

    (tmp_path / "stages.sh").write_text("sleep 1\necho stages-done\n")
    script = tmp_path / "run.sh"
    script.write_text("x=1\n. ./stages.sh; exit\n")
    proc = subprocess.Popen(["bash", "run.sh"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.4)
    with open(script, "w") as f:  # rewritten in place, as many editors and scripts do
        f.write("# a longer header shifts every byte of the file\nx=1\necho RERUN\n. ./stages.sh; exit\n")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out == "stages-done\n", out
