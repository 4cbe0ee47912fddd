"""Training configuration: YAML file + defaults + ``--section.key value`` command-line overrides.

Every key outside ``model`` must exist in DEFAULTS, so a typo is an error, not a silent default.
Model conf values ``vocab:<stream>`` and ``dim:input`` are filled from the data, as ESPnet fills
vocabulary sizes from its token lists.

A config file may name others it builds on (``base: train_lego.yaml``, or a list; paths relative
to the file), which are resolved first. Its ``model`` is then either a full module list, which
replaces the base's, or a mapping ``{module name: changes}`` that edits the base's modules by
name (nested mappings merge, other values replace), so a variant states only what differs:

    base: train_deen_lego_wemb.yaml
    model:
      encoder: {conf: {olc: {queries: upsampled}}}
    trainer: {max_steps: 1200}

An experiment directory keeps the config it was started with (config.yaml); :func:`config_changes`
lists what another config changes, key by key, and only the EXTENDABLE budgets may change when
the experiment is continued.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
import reprlib
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from legonn.errors import LegonnError

DEFAULTS: dict[str, Any] = {
    "model": [],
    "data": {
        "train": None,  # Kaldi-style data dir
        "valid": None,
        "input": None,  # {file: text.de, vocab: bpe.model} or {file: feats.scp, cmvn: cmvn.ark}
        "targets": {},  # stream name -> {file, vocab}
        "max_input_length": None,
        "max_target_length": None,
        "specaug": None,  # training-set SpecAugment, e.g. {freq_masks: 2, freq_width: 27, time_masks: 2, time_width: 70, time_ratio: 0.2, prob: 1.0} (legonn/data/specaug.py)
    },
    "batching": {
        "max_tokens": 4000,
        "max_sentences": None,
        "shuffle": True,
        "seed": 1,
        # Data-loading processes (0: the training process reads and pads). 0 by default: measured on a
        # 2-core CPU machine, reading + SpecAugment + padding is 0.2-3 % of a training step (tiny MT
        # fixture 0.3 of 22 ms; synthetic 80-dim ASR, 6000-frame batches, 1.2 of 660 ms), and a
        # worker adds its start-up per epoch and a process competing for the cores (tiny fixture,
        # 6 epochs: 1.05 s with 0 workers, 1.56 s with 1). Worth 1-2 where cores are spare and
        # features are read from slow storage (GPU training).
        "num_workers": 0,
    },
    "optim": {
        "lr": 1.0e-3,
        "betas": [0.9, 0.999],
        "eps": 1.0e-9,
        "weight_decay": 0.0,
        "clip_norm": 5.0,
        "accum_grad": 1,
        "label_smoothing": 0.1,  # the default of criterion.conf.label_smoothing
    },
    # Modular Transformers (legonn/nn/modular.py): module name -> granularities of its modular layers,
    # e.g. {decoder: [2, 3, 6]}; the model section is then the frozen teacher (its weights from
    # trainer.init_modules) and only modular layers are trained (criterion modular_kd).
    "modular": {},
    "criterion": {"type": "legonn_joint", "conf": {}},  # training loss (legonn/engine/criteria.py): paper Eq. 9
    "scheduler": {
        "type": "inverse_sqrt",  # inverse_sqrt | tristage | constant
        "warmup_steps": 4000,
        "warmup_init_lr": 1.0e-7,
        # tristage (fractions of optim.lr at the start and the end of the schedule)
        "hold_steps": 0,
        "decay_steps": 0,
        "init_lr_scale": 0.01,
        "final_lr_scale": 0.05,
    },
    "trainer": {
        "max_epochs": 100,
        "max_steps": None,
        "valid_every_steps": None,  # None: validate once an epoch
        "log_every_steps": 50,
        "keep_best": 5,
        "keep_last": 0,  # also keep the latest N step checkpoints, for legonn average --mode last
        "best_metric": "loss",  # loss | accuracy (of the final module) ...
        "seed": 1,
        "freeze": [],  # module names whose parameters are not updated
        "init_modules": {},  # module name -> artifact folder to start from
        "patience": None,  # stop after this many validations without improvement
        "precision": "fp32",  # fp32 | bf16 | fp16 (CUDA only): autocast of the forward pass
        "callbacks": [],  # [{type: name, conf: {...}}] (legonn/engine/callbacks.py)
    },
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``5e-4`` and ``1.0e3`` as floats: PyYAML follows YAML 1.1, where a
    float needs a dot and a signed exponent, so ``--optim.lr 5e-4`` would be the string '5e-4'."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _unique_keys(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping that sets one key twice is refused (PyYAML would keep the last one silently)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' set twice (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, lambda loader, node: _unique_keys(loader, node))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise LegonnError(f"{path}: config file not found")
    try:
        data = _yaml_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise LegonnError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise LegonnError(f"{path}: the config must be a mapping of sections")
    return data


def _merge(base: dict, update: dict, where: str, source: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{where}.{key}" if where else key
        if path == "model" and isinstance(value, dict):
            out[key] = _edit_modules(base[key], value, source)
            continue
        if key not in base and _default_at(where) == {}:  # a free-form mapping (data.targets, modular): a new entry
            out[key] = copy.deepcopy(value)
            continue
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise LegonnError(f"{source}: unknown config key '{path}'{hint}")
        if isinstance(base[key], dict) and base[key] and isinstance(value, dict):
            out[key] = _merge(base[key], value, path, source)
        else:
            _check_type(path, value, source)
            out[key] = value
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a whole number" if isinstance(value, int) else "a number"
    return {str: "a string", list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


_ABSENT_DEFAULT = object()


def _default_at(path: str) -> Any:
    """The DEFAULTS value at a dotted path, or a marker when DEFAULTS does not list it."""
    default: Any = DEFAULTS
    for part in path.split(".") if path else []:
        if not isinstance(default, dict) or part not in default:
            return _ABSENT_DEFAULT
        default = default[part]
    return default


def _check_type(path: str, value: Any, source: str) -> None:
    """A value must be of the kind of its DEFAULTS value (a number where the default is a number,
    ...); a key whose default is None, or that DEFAULTS does not list (inside a free-form mapping
    such as data.targets), takes anything and is checked where it is used."""
    default = _default_at(path)
    if default is None or default is _ABSENT_DEFAULT:
        return
    ok = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    }.get(type(default), lambda v: isinstance(v, type(default)))(value)
    if not ok:
        raise LegonnError(f"{source}: {path} must be {_kind(default)} (like its default {default!r}), got {value!r}")


def _edit_modules(modules: list, edits: dict, source: str) -> list:
    """Apply ``model: {name: changes}`` to the module list of the layers below."""
    out = copy.deepcopy(modules)
    by_name = {module.get("name"): module for module in out}
    for name, changes in edits.items():
        if name not in by_name:
            known = ", ".join(str(n) for n in by_name) or "none"
            raise LegonnError(f"{source}: model edits module '{name}', but the base config has no such module (modules: {known})")
        if not isinstance(changes, dict):
            raise LegonnError(f"{source}: model.{name} must be a mapping of the module's keys to change")
        _deep_update(by_name[name], changes)
    return out


def _deep_update(node: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(node.get(key), dict):
            _deep_update(node[key], value)
        else:
            node[key] = copy.deepcopy(value)


def _layers(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[dict, str]]:
    """A config file's layers, its bases' (recursively, in order) first."""
    if path.resolve() in chain:
        raise LegonnError(f"{path}: 'base' chain loops back to this file")
    data = load_yaml(path)
    bases = data.pop("base", None)
    if isinstance(bases, str):
        bases = [bases]
    if bases is not None and not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise LegonnError(f"{path}: 'base' must be a config file path or a list of them")
    layers = []
    for base in bases or []:
        layers += _layers(path.parent / base, chain + (path.resolve(),))
    return layers + [(data, str(path))]


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``--optim.lr 5e-4 --trainer.freeze [encoder]`` -> nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg:
            raise LegonnError(f"unexpected argument '{arg}' (overrides look like --section.key value)")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise LegonnError(f"override '{arg}' needs a value")
            value, i = args[i + 1], i + 1
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _yaml_load(value)
        i += 1
    return nested


def resolve(config_files: str | os.PathLike | list | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """DEFAULTS, then each config file in order (its bases first), then command-line overrides."""
    config = copy.deepcopy(DEFAULTS)
    if isinstance(config_files, (str, os.PathLike)):
        config_files = [config_files]
    for config_file in config_files or []:
        for layer, source in _layers(Path(config_file)):
            config = _merge(config, layer, "", source)
    if overrides:
        config = _merge(config, parse_overrides(overrides), "", "command line")
    return config


def dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def fill_placeholders(model: list[dict[str, Any]], sizes: dict[str, int]) -> list[dict[str, Any]]:
    """Replace ``vocab:<stream>`` / ``dim:input`` strings in module confs with measured sizes."""

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str) and (value.startswith("vocab:") or value == "dim:input"):
            if value not in sizes:
                raise LegonnError(f"model: '{value}' names no stream of the data section (known: {', '.join(sorted(sizes))})")
            return sizes[value]
        return value

    return fill(copy.deepcopy(model))


# Budgets that may change when an experiment is continued ("train 2000 more steps"); any other
# difference means another experiment, which must get its own exp_dir.
EXTENDABLE = frozenset({"trainer.max_steps", "trainer.max_epochs", "trainer.patience"})

_ABSENT = object()  # a key one side of a comparison does not have
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 40, 40, 4, 3, 2


class Change(NamedTuple):
    """One changed key: its dotted path (modules by name: model.encoder.conf.d_model), old and new values."""

    path: str
    old: Any
    new: Any

    @property
    def extendable(self) -> bool:
        return self.path in EXTENDABLE

    def __str__(self) -> str:
        return f"{self.path}: {_short(self.old)} -> {_short(self.new)}"


def _short(value: Any) -> str:
    return "(absent)" if value is _ABSENT else _REPR.repr(value)


def with_new_keys(saved: dict, defaults: dict = DEFAULTS) -> dict:
    """A config.yaml written before a key existed has that key's default (so it still resumes)."""
    out = dict(saved)
    for key, value in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and value and isinstance(out[key], dict):
            out[key] = with_new_keys(out[key], value)
    return out


def _is_module_list(value: Any) -> bool:
    names = [m.get("name") for m in value if isinstance(m, dict)] if isinstance(value, list) else []
    return bool(names) and len(names) == len(value) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def _diff(old: Any, new: Any, path: str, out: list[Change]) -> None:
    if _is_module_list(old) and _is_module_list(new):  # modules are compared by name
        old_names, new_names = [m["name"] for m in old], [m["name"] for m in new]
        if old_names != new_names:
            out.append(Change(path, old_names, new_names))
        by_name = {m["name"]: m for m in new}
        for module in old:
            if module["name"] in by_name:
                _diff(module, by_name[module["name"]], f"{path}.{module['name']}", out)
    elif isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            _diff(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else str(key), out)
    elif old != new:
        out.append(Change(path, old, new))


def config_changes(saved: dict, config: dict) -> list[Change]:
    """What ``config`` changes in an experiment's ``saved`` config.yaml, key by key (keys added to
    DEFAULTS since it was written count as their defaults)."""
    out: list[Change] = []
    _diff(with_new_keys(saved), config, "", out)
    return out


def experiment_changes(exp_dir: str | os.PathLike, config: dict) -> list[Change]:
    """What ``config`` changes in the config.yaml of experiment ``exp_dir`` (nothing for a new one)."""
    saved = Path(exp_dir) / "config.yaml"
    return config_changes(load_yaml(saved), config) if saved.is_file() else []


def describe_changes(changes: list[Change], limit: int = 3) -> str:
    """The first ``limit`` changes on one line, and how many more there are."""
    text = "; ".join(str(c) for c in changes[:limit])
    return text + (f"; and {len(changes) - limit} more" if len(changes) > limit else "")
