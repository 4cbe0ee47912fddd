"""``legonn train``: the training loop (paper §IV, Appendix Tables XII-XIII).

AdamW (fairseq's decoupled weight decay), gradient clipping and accumulation, per-step LR
schedule, validation of every module (loss and accuracy), keep-best-N checkpoints, and exact
resumption: model, optimiser, scheduler, RNG and the position inside the epoch are restored,
so an interrupted run ends with the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import logging
import random
import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from tqdm import tqdm

from legonn.config import dump
from legonn.data.batching import iterate, make_batches, shard
from legonn.data.dataset import ChainDataset
from legonn.engine import distributed
from legonn.engine.checkpoint import LAST, CheckpointKeeper, load
from legonn.engine.experiment import build_experiment
from legonn.engine.scheduler import build_scheduler
from legonn.errors import LegonnError
from legonn.fileio import write_atomic
from legonn.nn.chain import Chain
from legonn.nn.ctc import greedy_decode

log = logging.getLogger("legonn.train")


def edit_distance(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


@torch.no_grad()
def validate(model: Chain, dataset: ChainDataset, max_tokens: int, device: torch.device, show: bool = True) -> dict[str, float]:
    """Per module: loss per token and accuracy (decoder: token accuracy; CTC: 1 - token error rate)."""
    model.eval()
    sums: dict[str, dict[str, float]] = {}
    batches = make_batches(dataset.input_lengths, dataset.target_lengths, max_tokens, shuffle=False)
    for batch in tqdm(iterate(dataset, batches), total=len(batches), desc="valid", leave=False, disable=not show):
        batch = batch.to(device)
        result = model(batch.inputs, batch.input_lengths, batch.targets)
        for name, term in result.terms.items():
            acc = sums.setdefault(name, {"loss": 0.0, "tokens": 0, "errors": 0})
            acc["loss"] += float(term.loss) * term.tokens
            acc["tokens"] += term.tokens
            if term.correct is not None:
                acc["errors"] += term.tokens - term.correct
        for spec, out in zip(model.specs, result.outputs):
            if spec.name in result.terms and out.log_probs is not None and result.terms[spec.name].correct is None:
                tgt, tgt_len = batch.targets[spec.target]
                hyps = greedy_decode(out.log_probs, out.lengths)
                refs = [t[:n].tolist() for t, n in zip(tgt.cpu(), tgt_len.cpu())]
                sums[spec.name]["errors"] += sum(edit_distance(h, r) for h, r in zip(hyps, refs))
    metrics: dict[str, float] = {}
    total = 0.0
    weights = {s.name: s.loss_weight for s in model.specs}
    for name, acc in sums.items():
        tokens = max(acc["tokens"], 1)
        metrics[f"{name}/loss"] = acc["loss"] / tokens
        metrics[f"{name}/acc"] = 1.0 - acc["errors"] / tokens
        total += weights[name] * metrics[f"{name}/loss"]
    metrics["loss"] = total
    last = model.specs[-1].name
    if f"{last}/acc" in metrics:
        metrics["acc"] = metrics[f"{last}/acc"]
    model.train()
    return metrics


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Budgets that may change when an experiment is continued ("train 2000 more steps"); any other
# difference means another experiment, which must get its own exp_dir.
EXTENDABLE = {"trainer.max_steps", "trainer.max_epochs", "trainer.patience"}


def _config_diffs(old: dict, new: dict, where: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{where}.{key}" if where else key
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _config_diffs(a, b, path)
        elif a != b:
            diffs.append(path)
    return diffs


def _describe(path: str, old: dict, new: dict) -> str:
    def get(config: dict) -> Any:
        for part in path.split("."):
            config = config.get(part) if isinstance(config, dict) else None
        return config

    return f"{path}: {get(old)!r} -> {get(new)!r}"


def _setup_logging(exp_dir: Path, main: bool) -> None:
    logger = logging.getLogger("legonn")
    logger.setLevel(logging.INFO)
    if main and not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(exp_dir / "train.log") for h in logger.handlers):
        handler = logging.FileHandler(exp_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def train(config: dict[str, Any], exp_dir: str | Path, device: str = "cpu", stop_at_step: Optional[int] = None) -> dict[str, Any]:
    """Train (or resume) the experiment in ``exp_dir``. ``stop_at_step`` simulates an interruption."""
    logger = logging.getLogger("legonn")
    before = list(logger.handlers)
    try:
        return _train(config, exp_dir, device, stop_at_step)
    finally:  # detach this experiment's train.log, so a later train() in the process does not write to it
        for handler in [h for h in logger.handlers if h not in before]:
            logger.removeHandler(handler)
            handler.close()


def _train(config: dict[str, Any], exp_dir: str | Path, device: str, stop_at_step: Optional[int]) -> dict[str, Any]:
    info = distributed.setup(device)
    dev = distributed.device_for(device, info)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(exp_dir, info.main)
    saved = exp_dir / "config.yaml"
    if saved.is_file():
        import yaml

        previous = yaml.safe_load(saved.read_text())
        diffs = _config_diffs(previous, config)
        fixed = [d for d in diffs if d not in EXTENDABLE]
        if fixed:
            raise LegonnError(
                f"{saved}: this experiment was started with another config ({_describe(fixed[0], previous, config)}); "
                "use a new --exp_dir (only trainer.max_steps, max_epochs and patience may change on resume)"
            )
        if diffs and info.main:
            log.info("continuing with a new budget: %s", "; ".join(_describe(d, previous, config) for d in diffs))
            write_atomic(saved, dump(config))

    tconf, oconf, bconf = config["trainer"], config["optim"], config["batching"]
    torch.manual_seed(tconf["seed"] + info.rank)
    random.seed(tconf["seed"] + info.rank)
    exp = build_experiment(config)
    model = exp.model.to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if info.main:
        log.info("model: %s; %.2fM parameters (%.2fM trained)", " -> ".join(model.names), n_params / 1e6, n_train / 1e6)
        log.info("data: %d training / %d validation utterances", len(exp.train_set), len(exp.valid_set))
    trained = [p for p in model.parameters() if p.requires_grad]
    if not trained:
        raise LegonnError("every module is frozen (trainer.freeze): nothing to train")
    if info.main and not saved.is_file():  # only once the set-up worked: a failed start does not lock exp_dir
        write_atomic(saved, dump(config))
    optimizer = torch.optim.AdamW(
        trained, lr=oconf["lr"], betas=tuple(oconf["betas"]), eps=oconf["eps"], weight_decay=oconf["weight_decay"]
    )
    scheduler = build_scheduler(optimizer, config["scheduler"], oconf["lr"])
    keeper = CheckpointKeeper(exp_dir / "checkpoints", tconf["keep_best"], tconf["best_metric"], tconf["keep_last"])
    progress = {"step": 0, "epoch": 0, "batch": 0, "since_best": 0}

    last = exp_dir / "checkpoints" / LAST
    if last.is_file():
        state = load(last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"][info.rank])
        progress = dict(state["progress"])
        if info.main:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", last, progress["step"], progress["epoch"] + 1, progress["batch"])

    wrapped: nn.Module = model
    if info.world > 1:
        wrapped = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)

    def checkpoint(metrics: dict[str, float]) -> None:
        states = distributed.gather(rng_state(), info)
        if info.main:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": states,
                "progress": dict(progress),
                "metrics": metrics,
            }
            keeper.save(state, progress["step"], metrics)
        distributed.barrier(info)

    def run_validation() -> dict[str, float]:
        metrics = validate(model, exp.valid_set, bconf["max_tokens"], dev, show=info.main) if info.main else {}
        metrics = distributed.gather(metrics, info)[0]
        if info.main:
            shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            log.info("validation at step %d: %s", progress["step"], shown)
            for key, value in metrics.items():
                writer.add_scalar(f"valid/{key}", value, progress["step"])
        best = keeper.best()
        metric = tconf["best_metric"]
        if metric not in metrics:
            raise LegonnError(f"trainer.best_metric '{metric}' is not a validation metric (known: {', '.join(sorted(metrics))})")
        improved = best is None or (metrics[metric] > best["metrics"][metric] if "acc" in metric else metrics[metric] < best["metrics"][metric])
        improved = distributed.gather(improved, info)[0]  # only rank 0's keeper sees the saved checkpoints
        progress["since_best"] = 0 if improved else progress["since_best"] + 1
        checkpoint(metrics)
        return metrics

    max_steps = tconf["max_steps"]
    accum = max(int(oconf["accum_grad"]), 1)
    finished = lambda: (max_steps is not None and progress["step"] >= max_steps) or progress["epoch"] >= tconf["max_epochs"]  # noqa: E731
    if finished():
        if info.main:
            log.info("training already finished at step %d", progress["step"])
        distributed.cleanup(info)
        return progress

    writer = None
    if info.main:  # opened only now: re-running a finished experiment adds no empty event file
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(exp_dir / "tensorboard"))

    model.train()
    window = {"loss": 0.0, "n": 0, "tokens": 0, "t": time.time()}
    stopped = False
    while not finished() and not stopped:
        batches = make_batches(
            exp.train_set.input_lengths,
            exp.train_set.target_lengths,
            bconf["max_tokens"],
            bconf["max_sentences"],
            seed=bconf["seed"],
            epoch=progress["epoch"],
            shuffle=bconf["shuffle"],
        )
        batches = shard(batches, info.rank, info.world)
        bar = tqdm(total=len(batches), initial=progress["batch"], desc=f"epoch {progress['epoch'] + 1}", disable=not info.main)
        micro = progress["batch"]
        for batch in iterate(exp.train_set, batches, progress["batch"]):
            batch = batch.to(dev)
            micro += 1
            sync = micro % accum == 0 or progress["batch"] + 1 == len(batches)
            ctx = wrapped.no_sync() if (info.world > 1 and not sync) else contextlib.nullcontext()
            with ctx:
                result = wrapped(batch.inputs, batch.input_lengths, batch.targets)
                (result.total / accum).backward()
            progress["batch"] += 1
            bar.update(1)
            window["loss"] += float(result.total.detach())
            window["n"] += 1
            window["tokens"] += int(batch.input_lengths.sum())
            if not sync:
                continue
            grad_norm = torch.nn.utils.clip_grad_norm_(trained, oconf["clip_norm"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            progress["step"] += 1
            if info.main and progress["step"] % tconf["log_every_steps"] == 0:
                elapsed = max(time.time() - window["t"], 1e-9)
                lr = scheduler.get_last_lr()[0]
                mean = window["loss"] / max(window["n"], 1)
                log.info("step %d epoch %d loss %.4f lr %.3g grad_norm %.2f %.0f input positions/s",
                         progress["step"], progress["epoch"] + 1, mean, lr, float(grad_norm), window["tokens"] / elapsed)
                writer.add_scalar("train/loss", mean, progress["step"])
                writer.add_scalar("train/lr", lr, progress["step"])
                for name, term in result.terms.items():
                    writer.add_scalar(f"train/{name}_loss", float(term.loss.detach()), progress["step"])
                bar.set_postfix(loss=f"{mean:.3f}", lr=f"{lr:.2g}")
                window = {"loss": 0.0, "n": 0, "tokens": 0, "t": time.time()}
            every = tconf["valid_every_steps"]
            validated = bool(every and progress["step"] % every == 0)
            if validated:
                run_validation()
                if tconf["patience"] is not None and progress["since_best"] >= tconf["patience"]:
                    log.info("no improvement in %d validations: stopping", tconf["patience"])
                    stopped = True
            if stop_at_step is not None and progress["step"] >= stop_at_step:
                if not validated:  # else the validation just saved this step, with its metrics
                    checkpoint({})
                bar.close()
                distributed.cleanup(info)
                return progress
            if finished() or stopped:
                break
        bar.close()
        if progress["batch"] >= len(batches):
            progress["epoch"] += 1
            progress["batch"] = 0
            if not tconf["valid_every_steps"]:
                run_validation()
                if tconf["patience"] is not None and progress["since_best"] >= tconf["patience"]:
                    log.info("no improvement in %d validations: stopping", tconf["patience"])
                    stopped = True
    if tconf["valid_every_steps"] and progress["step"] % tconf["valid_every_steps"]:
        run_validation()
    if info.main:
        best = keeper.best()
        log.info("finished at step %d; best %s %.4f at step %d", progress["step"], tconf["best_metric"],
                 best["metrics"][tconf["best_metric"]] if best else float("nan"), best["step"] if best else -1)
        writer.close()
    distributed.cleanup(info)
    return progress
