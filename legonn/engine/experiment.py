"""An experiment directory: its resolved config, data sets and model, built or reloaded."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from legonn.config import fill_placeholders
from legonn.data.dataset import ChainDataset, FeatureStream, TokenStream, stream_spec
from legonn.data.specaug import SpecAugment
from legonn.data.vocab import Vocabulary
from legonn.engine.checkpoint import LAST, CheckpointKeeper, load
from legonn.errors import LegonnError
from legonn.modules.artifact import LoadedModule, load_module
from legonn.nn.chain import Chain

log = logging.getLogger(__name__)


@dataclass
class Experiment:
    config: dict[str, Any]
    model: Chain
    train_set: Optional[ChainDataset]
    valid_set: Optional[ChainDataset]
    checkpoint: Optional[Path] = None


def open_dataset(config: dict[str, Any], split: str) -> ChainDataset:
    data = config["data"]
    if not data.get(split):
        raise LegonnError(f"config: data.{split} (a data directory) is not set")
    if data.get("input") is None:
        raise LegonnError("config: data.input is not set (e.g. {file: feats.scp} or {file: text.de, vocab: bpe.model})")
    targets = {name: stream_spec(spec, f"data.targets.{name}") for name, spec in (data.get("targets") or {}).items()}
    augment = SpecAugment.from_config(data.get("specaug"), "data.specaug")  # checked for every split, used for train only
    return ChainDataset(
        data[split], stream_spec(data["input"], "data.input"), targets, data.get("max_input_length"), data.get("max_target_length"),
        augment=augment if split == "train" else None,
    )


def stream_sizes(dataset: ChainDataset) -> dict[str, int]:
    sizes = {f"vocab:{name}": len(s.vocab) for name, s in dataset.targets.items()}
    if isinstance(dataset.input, TokenStream):
        sizes["vocab:input"] = len(dataset.input.vocab)
    elif isinstance(dataset.input, FeatureStream):
        sizes["dim:input"] = dataset.input.dim()
    return sizes


def stream_vocabs(dataset: ChainDataset) -> dict[str, Vocabulary]:
    """The data's token vocabularies: 'input' (for a text input) and one per target name."""
    vocabs = {name: s.vocab for name, s in dataset.targets.items()}
    if isinstance(dataset.input, TokenStream):
        vocabs["input"] = dataset.input.vocab
    return vocabs


def check_module_vocabularies(chain: Chain, name: str, loaded: LoadedModule, folder: str, vocabs: dict[str, Vocabulary]) -> None:
    """A module started from an artifact must read and emit the data's very symbols: the same
    number of pieces with other strings would load without complaint and silently mistrain."""
    idx = chain.names.index(name)
    expected = {
        "input": vocabs.get("input") if idx == 0 else vocabs.get(chain.specs[idx - 1].target),
        "output": vocabs.get(chain.specs[idx].target),
    }
    for side, data_vocab in expected.items():
        module_vocab = getattr(loaded, f"{side}_vocab")
        if module_vocab is not None and data_vocab is not None and module_vocab.checksum != data_vocab.checksum:
            raise LegonnError(
                f"trainer.init_modules.{name}: {folder} has another {side} vocabulary (sha256 {module_vocab.checksum[:12]}) "
                f"than the data's {data_vocab.source} (sha256 {data_vocab.checksum[:12]})"
            )


def build_model(config: dict[str, Any], sizes: dict[str, int], vocabs: Optional[dict[str, Vocabulary]] = None) -> Chain:
    chain = Chain.from_specs(fill_placeholders(config["model"], sizes))
    for name, folder in (config["trainer"].get("init_modules") or {}).items():
        if name not in chain.blocks:
            raise LegonnError(f"trainer.init_modules: no module named '{name}' (modules: {', '.join(chain.names)})")
        loaded = load_module(folder)
        target = chain.blocks[name]
        if loaded.meta["type"] != target.spec_type or loaded.meta["conf"] != target.spec_conf:
            raise LegonnError(f"trainer.init_modules.{name}: {folder} has another architecture than module '{name}'")
        if vocabs is not None:
            check_module_vocabularies(chain, name, loaded, folder, vocabs)
        target.load_state_dict(loaded.module.state_dict())
        log.info("module '%s' starts from %s", name, folder)
    for name in config["trainer"].get("freeze") or []:
        if name not in chain.blocks:
            raise LegonnError(f"trainer.freeze: no module named '{name}' (modules: {', '.join(chain.names)})")
        chain.blocks[name].requires_grad_(False)
    return chain


def build_experiment(config: dict[str, Any], with_train: bool = True) -> Experiment:
    valid_set = open_dataset(config, "valid")
    train_set = open_dataset(config, "train") if with_train else None
    dataset = train_set or valid_set
    model = build_model(config, stream_sizes(dataset), stream_vocabs(dataset))
    return Experiment(config, model, train_set, valid_set)


def load_trained(exp_dir: str | Path, checkpoint: Optional[str | Path] = None) -> Experiment:
    """Rebuild an experiment's model from its config.yaml and load a checkpoint's weights.

    ``checkpoint`` defaults to the best kept one (by the config's metric), else the last.
    """
    exp_dir = Path(exp_dir)
    config_file = exp_dir / "config.yaml"
    if not config_file.is_file():
        raise LegonnError(f"{exp_dir}: no config.yaml (not a legonn experiment directory)")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    exp = build_experiment(config, with_train=False)
    if checkpoint is None:
        best = CheckpointKeeper(exp_dir / "checkpoints", 1, config["trainer"]["best_metric"]).best()
        checkpoint = exp_dir / "checkpoints" / (best["file"] if best else LAST)
    state = load(checkpoint)
    try:
        exp.model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise LegonnError(f"{checkpoint}: weights do not fit the model of {config_file} ({str(exc).splitlines()[0]})") from None
    exp.model.eval()
    exp.checkpoint = Path(checkpoint)
    return exp
