"""An experiment directory: its config, data sets and model, built or reloaded.

Besides config.yaml and checkpoints/, training records (:func:`record_experiment`)
``resolved.yaml``, the config with the data's vocabulary sizes and feature width in place of the
``vocab:``/``dim:`` placeholders, and ``train_lengths.npz``, the training set's lengths; decoding
and export then rebuild the model and its length statistics without opening the data again.
An experiment trained before these files existed is still read, by measuring the data once more.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from legonn.config import dump, fill_placeholders
from legonn.data.dataset import ChainDataset, FeatureStream, TokenStream, stream_spec
from legonn.data.specaug import SpecAugment
from legonn.data.vocab import Vocabulary
from legonn.engine.checkpoint import LAST, CheckpointKeeper, average, load, save_atomic, select
from legonn.errors import LegonnError
from legonn.fileio import write_atomic
from legonn.modules.artifact import LoadedModule, load_module
from legonn.modules.export import TrainLengths, export_modules
from legonn.nn.chain import Chain
from legonn.nn.modular import ModularStudent

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
RESOLVED = "resolved.yaml"
LENGTHS = "train_lengths.npz"


@dataclass
class Experiment:
    config: dict[str, Any]
    resolved: dict[str, Any]  # config with the placeholders of the model section filled in
    model: Chain | ModularStudent
    train_set: Optional[ChainDataset] = None
    valid_set: Optional[ChainDataset] = None
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


def data_vocabs(config: dict[str, Any]) -> dict[str, Vocabulary]:
    """The vocabularies the data section names, read from their files: 'input' for a text input
    and one per target stream (those :func:`stream_vocabs` finds in an opened data set)."""
    data = config["data"]
    specs = {name: stream_spec(spec, f"data.targets.{name}") for name, spec in (data.get("targets") or {}).items()}
    specs["input"] = stream_spec(data["input"], "data.input")
    return {name: Vocabulary.load(spec.vocab) for name, spec in specs.items() if spec.vocab}


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


def resolve_sizes(config: dict[str, Any], sizes: dict[str, int]) -> dict[str, Any]:
    """The config with its model's placeholders filled in: what resolved.yaml records."""
    return {**config, "model": fill_placeholders(config["model"], sizes)}


def model_of(chain: Chain, config: dict[str, Any]) -> Chain | ModularStudent:
    """The model an experiment trains: the chain, or with a ``modular`` section the chain as the
    frozen teacher of modular layers."""
    return ModularStudent(chain, config["modular"]) if config.get("modular") else chain


def build_model(config: dict[str, Any], sizes: dict[str, int], vocabs: Optional[dict[str, Vocabulary]] = None) -> Chain | ModularStudent:
    """The model of ``config`` sized by ``sizes``, its modules started from ``trainer.init_modules``
    and frozen as ``trainer.freeze`` says; ``vocabs`` (the data's) are checked against the modules'."""
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
    return model_of(chain, config)


def build_experiment(config: dict[str, Any]) -> Experiment:
    """Open the training and validation data and build the model they size."""
    valid_set = open_dataset(config, "valid")
    train_set = open_dataset(config, "train")
    sizes = stream_sizes(train_set)
    model = build_model(config, sizes, stream_vocabs(train_set))
    return Experiment(config, resolve_sizes(config, sizes), model, train_set, valid_set)


def record_experiment(exp: Experiment, exp_dir: str | Path) -> None:
    """Write ``resolved.yaml`` and ``train_lengths.npz`` into ``exp_dir`` (see the module's doc); a
    file that already says the same is left alone, so re-running a finished experiment touches nothing."""
    exp_dir = Path(exp_dir)
    resolved = dump(exp.resolved)
    if not ((exp_dir / RESOLVED).is_file() and (exp_dir / RESOLVED).read_text(encoding="utf-8") == resolved):
        write_atomic(exp_dir / RESOLVED, resolved)
    lengths = TrainLengths.of(exp.train_set)
    if not ((exp_dir / LENGTHS).is_file() and TrainLengths.load(exp_dir / LENGTHS).same_as(lengths)):
        lengths.save(exp_dir / LENGTHS)


def read_config(exp_dir: Path) -> dict[str, Any]:
    config_file = exp_dir / CONFIG
    if not config_file.is_file():
        raise LegonnError(f"{exp_dir}: no {CONFIG} (not a legonn experiment directory)")
    return yaml.safe_load(config_file.read_text(encoding="utf-8"))


def load_trained(exp_dir: str | Path, checkpoint: Optional[str | Path] = None) -> Experiment:
    """Rebuild an experiment's model from resolved.yaml (else config.yaml and the validation data's
    sizes) and load a checkpoint's weights; no data set is opened when resolved.yaml is there.

    ``checkpoint`` defaults to the best kept one (by the config's metric), else the last.
    """
    exp_dir = Path(exp_dir)
    config = read_config(exp_dir)
    if (exp_dir / RESOLVED).is_file():
        resolved = yaml.safe_load((exp_dir / RESOLVED).read_text(encoding="utf-8"))
    else:
        resolved = resolve_sizes(config, stream_sizes(open_dataset(config, "valid")))
    model = model_of(Chain.from_specs(resolved["model"]), config)
    if checkpoint is None:
        best = CheckpointKeeper(exp_dir / "checkpoints", 1, config["trainer"]["best_metric"]).best()
        checkpoint = exp_dir / "checkpoints" / (best["file"] if best else LAST)
    state = load(checkpoint)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise LegonnError(f"{checkpoint}: weights do not fit the model of {exp_dir / CONFIG} ({str(exc).splitlines()[0]})") from None
    model.eval()
    return Experiment(config, resolved, model, checkpoint=Path(checkpoint))


def trained_chain(exp: Experiment, exp_dir: str | Path) -> Chain:
    """The experiment's chain, refusing a Modular Transformers phase: its product is assemblies."""
    if isinstance(exp.model, ModularStudent):
        raise LegonnError(f"{exp_dir}: trains modular layers (config section 'modular'); build a module from them "
                          f"first: legonn assemble --exp_dir {exp_dir} --module NAME --ratio R --out DIR")
    return exp.model


def train_lengths(exp_dir: str | Path, config: dict[str, Any]) -> TrainLengths:
    """train_lengths.npz, or the lengths measured on the training data for an older experiment."""
    path = Path(exp_dir) / LENGTHS
    return TrainLengths.load(path) if path.is_file() else TrainLengths.of(open_dataset(config, "train"))


def export_experiment(
    exp_dir: str | Path,
    checkpoint: Optional[str | Path] = None,
    out_dir: Optional[str | Path] = None,
    names: Optional[list[str]] = None,
    trained_on: str = "",
) -> list[Path]:
    """``legonn export``: the experiment's modules as folders under ``out_dir`` (default EXP_DIR/modules)."""
    exp = load_trained(exp_dir, checkpoint)
    lengths = train_lengths(exp_dir, exp.config)
    provenance = trained_on or (
        f"Trained in `{exp_dir}` on `{exp.config['data']['train']}` ({len(lengths.utts)} utterances); "
        f"weights from `{exp.checkpoint.name}`."
    )
    out_dir = Path(out_dir) if out_dir else Path(exp_dir) / "modules"
    return export_modules(trained_chain(exp, exp_dir), exp.config, lengths, data_vocabs(exp.config), out_dir, names, provenance)


def average_checkpoints(exp_dir: str | Path, num: int, mode: str, metric: Optional[str] = None,
                        out: Optional[str | Path] = None) -> tuple[Path, list[Path]]:
    """``legonn average``: the mean weights of the ``num`` best (by ``metric``, default the config's
    trainer.best_metric) or latest checkpoints, saved to ``out`` (default EXP_DIR/averaged_<mode><num>.pt)."""
    exp_dir = Path(exp_dir)
    config = read_config(exp_dir)
    metric = metric or config["trainer"]["best_metric"]
    paths = select(exp_dir / "checkpoints", num, mode, metric)
    out = Path(out) if out else exp_dir / f"averaged_{mode}{num}.pt"
    save_atomic({"model": average(paths), "averaged_from": [p.name for p in paths]}, out)
    return out, paths
