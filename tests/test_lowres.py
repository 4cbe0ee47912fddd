"""The low-resource transfer of paper Appendix F (Table XI) in the mini ASR recipe: run.sh trains a
baseline and an encoder-only module on 10 % / 30 % of the training data and plugs each encoder
onto the decoder of the LegoNN model trained on all of it; the layered configs only swap the
training set. (tests/test_asr_recipe.py runs local/data.sh, which writes the subsets.)"""
from __future__ import annotations

import re

import yaml

from legonn.config import resolve
from recipe_fixtures import recipe_variables
from test_three_module import RECIPE


def test_recipe_lists_the_low_resource_transfer():
    variables = {k: v.split() for k, v in recipe_variables(RECIPE, "experiments", "decodes", "relative", "feats_sets").items()}
    entries = dict(re.split(r"[:=]", e, maxsplit=1) for e in variables["experiments"])
    names = list(entries)
    for pct in (10, 30):
        subset = f"conf/data_train_{pct}pct.yaml"
        assert entries[f"asr_baseline_{pct}pct"] == f"conf/train_asr_baseline.yaml,{subset}"
        assert entries[f"asr_enconly_{pct}pct"] == f"conf/train_asr_enconly.yaml,{subset}"
        plug = f"asr_lowres_plug_{pct}pct"
        assert entries[plug] == f"exp/asr_enconly_{pct}pct/modules/encoder+exp/asr_lego_wemb/modules/decoder"
        # The full-data decoder and the subset encoder are trained before they are composed.
        assert names.index("asr_lego_wemb") < names.index(plug) and names.index(f"asr_enconly_{pct}pct") < names.index(plug)
        for model in (f"asr_baseline_{pct}pct", f"asr_enconly_{pct}pct", plug):
            assert f"{model}@test" in variables["decodes"]
        assert f"{plug}@test=asr_baseline_{pct}pct" in variables["relative"]
        assert f"train_{pct}pct" in variables["feats_sets"]


def test_subset_configs_change_only_the_training_set(monkeypatch):
    monkeypatch.chdir(RECIPE)
    for pct in (10, 30):
        assert yaml.safe_load(open(f"conf/data_train_{pct}pct.yaml")) == {"data": {"train": f"data/train_{pct}pct"}}
        for base in ("train_asr_baseline.yaml", "train_asr_enconly.yaml"):
            full = resolve([f"conf/{base}"])
            low = resolve([f"conf/{base}", f"conf/data_train_{pct}pct.yaml"])
            assert low["data"].pop("train") == f"data/train_{pct}pct"
            full["data"].pop("train")
            assert low == full
