"""``legonn train``: the training loop (paper §IV, Appendix Tables XII-XIII).

AdamW (fairseq's decoupled weight decay), gradient clipping and accumulation, per-step LR
schedule, a registered criterion (legonn/engine/criteria.py), callbacks (callbacks.py), mixed
precision (precision.py), batches loaded by a DataLoader, validation of every module (loss and
accuracy), keep-best-N checkpoints, and exact resumption: model, optimiser, scheduler, grad
scaler, criterion and callback state, RNG and the position inside the epoch are restored, so an
interrupted run ends with the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import logging
import random
import time
from pathlib import Path
from typing import Any, Optional

import torch
from rapidfuzz.distance import Levenshtein
from torch import nn
from tqdm import tqdm

from legonn.config import describe_changes, dump, experiment_changes
from legonn.data.batching import Batch, load_batches, make_batches, shard
from legonn.data.dataset import ChainDataset
from legonn.engine import distributed
from legonn.engine.callbacks import build_callbacks
from legonn.engine.checkpoint import LAST, CheckpointKeeper, is_better, load
from legonn.engine.criteria import LossReport, build_criterion
from legonn.engine.experiment import build_experiment, record_experiment
from legonn.engine.precision import Precision
from legonn.engine.scheduler import build_scheduler
from legonn.errors import LegonnError
from legonn.fileio import exclusive, write_atomic
from legonn.nn.ctc import greedy_decode

log = logging.getLogger("legonn.train")


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


def _setup_logging(exp_dir: Path, main: bool) -> None:
    logger = logging.getLogger("legonn")
    logger.setLevel(logging.INFO)
    if main and not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(exp_dir / "train.log") for h in logger.handlers):
        handler = logging.FileHandler(exp_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)


def _window() -> dict[str, float]:
    """What the next logged training loss averages over, and since when."""
    return {"loss": 0.0, "n": 0, "tokens": 0, "t": time.time()}


class CTCSkips:
    """Per module with a CTC term: the utterances it left out (targets longer than the module's
    output, see legonn.nn.ctc) and the utterances it saw, reported once per validation."""

    def __init__(self) -> None:
        self.counts: dict[str, tuple[int, int]] = {}  # module -> (skipped, seen)

    def add(self, loss: LossReport, utterances: int) -> None:
        for name, term in loss.terms.items():
            if term.correct is None and not term.distillation:  # a CTC term
                skipped, seen = self.counts.get(name, (0, 0))
                self.counts[name] = (skipped + term.skipped, seen + utterances)

    def merge(self, other: "CTCSkips") -> None:
        for name, (skipped, seen) in other.counts.items():
            mine = self.counts.get(name, (0, 0))
            self.counts[name] = (mine[0] + skipped, mine[1] + seen)

    def describe(self) -> list[str]:
        return [f"CTC skipped {s} of {n} utterance(s) (module {name})" for name, (s, n) in self.counts.items() if s]


def _check_num_workers(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LegonnError(f"batching.num_workers: expected a non-negative integer, got {value!r}")
    return value


def build_optimizer(params: list[nn.Parameter], oconf: dict[str, Any]) -> torch.optim.AdamW:
    """AdamW as ``optim`` configures it, as one fused kernel over all parameters (on CPU 6x
    faster than the per-tensor loop, bench/README.md)."""
    return torch.optim.AdamW(
        params, lr=oconf["lr"], betas=tuple(oconf["betas"]), eps=oconf["eps"], weight_decay=oconf["weight_decay"],
        fused=True,
    )


class Trainer:
    """Training of one experiment directory: set-up (or resumption) in the constructor, then
    ``fit()``. Its seams are methods (train_step, optimizer_step, validate, save_checkpoint,
    log_step) and callbacks hook into them (on_train_start, on_step_start, on_step_end,
    on_validation_end, on_train_end)."""

    def __init__(self, config: dict[str, Any], exp_dir: str | Path, device: str = "cpu"):
        self.config = config
        self.info = distributed.setup(device)
        self.device = distributed.device_for(device, self.info)
        self.exp_dir = Path(exp_dir)
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        self.lock = contextlib.ExitStack()  # one writer per experiment: the main rank holds it until fit() ends
        if self.info.main:
            self.lock.enter_context(exclusive(self.exp_dir, "legonn train"))
        try:
            self._set_up(config, device)
        except BaseException:
            self.lock.close()
            raise

    def _set_up(self, config: dict[str, Any], device: str) -> None:
        _setup_logging(self.exp_dir, self.info.main)
        saved = self._check_saved_config()
        tconf, oconf, bconf = config["trainer"], config["optim"], config["batching"]
        self.tconf, self.oconf, self.bconf = tconf, oconf, bconf
        self.precision = Precision(tconf["precision"], self.device)
        self.num_workers = _check_num_workers(bconf["num_workers"])
        torch.manual_seed(tconf["seed"] + self.info.rank)
        random.seed(tconf["seed"] + self.info.rank)
        exp = build_experiment(config)
        self.train_set, self.valid_set = exp.train_set, exp.valid_set
        self.model = exp.model.to(self.device)
        n_params = sum(p.numel() for p in self.model.parameters())
        n_train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        if self.info.main:
            log.info("model: %s; %.2fM parameters (%.2fM trained)", " -> ".join(self.model.names), n_params / 1e6, n_train / 1e6)
            log.info("data: %d training / %d validation utterances", len(self.train_set), len(self.valid_set))
            log.info("precision: %s; data loading: %d worker process(es)", self.precision.name, self.num_workers)
        self.trained = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trained:
            raise LegonnError("every module is frozen (trainer.freeze): nothing to train")
        self.criterion = build_criterion(config, self.model).to(self.device)
        self.callbacks = build_callbacks(tconf["callbacks"])
        if self.info.main:  # only once the set-up worked: a failed start does not lock exp_dir
            if not saved.is_file():
                write_atomic(saved, dump(config))
            record_experiment(exp, self.exp_dir)
        self.optimizer = build_optimizer(self.trained, oconf)
        self.scheduler = build_scheduler(self.optimizer, config["scheduler"], oconf["lr"])
        self.keeper = CheckpointKeeper(self.exp_dir / "checkpoints", tconf["keep_best"], tconf["best_metric"], tconf["keep_last"])
        self.accum = max(int(oconf["accum_grad"]), 1)
        self.progress = {"step": 0, "epoch": 0, "batch": 0, "since_best": 0}
        self.should_stop = False
        self.writer = None  # tensorboard, main rank, opened by fit()
        self.window = _window()
        self._resume()
        self.train_skips, self.skips_since = CTCSkips(), self.step  # reported and reset by validate()
        self.wrapped: nn.Module = self.model
        if self.info.world > 1:
            self.wrapped = nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)

    @property
    def step(self) -> int:
        return self.progress["step"]

    def _check_saved_config(self) -> Path:
        """A re-run must have the experiment's config; only the EXTENDABLE budgets may change."""
        saved = self.exp_dir / "config.yaml"
        changes = experiment_changes(self.exp_dir, self.config)
        fixed = [c for c in changes if not c.extendable]
        if fixed:
            raise LegonnError(
                f"{saved}: this experiment was started with another config ({describe_changes(fixed)}); "
                "use a new --exp_dir (only trainer.max_steps, max_epochs and patience may change on resume)"
            )
        if changes and self.info.main:
            log.info("continuing with a new budget: %s", describe_changes(changes))
            write_atomic(saved, dump(self.config))
        return saved

    def _resume(self) -> None:
        last = self.exp_dir / "checkpoints" / LAST
        if not last.is_file():
            return
        state = load(last)
        rank = self.info.rank
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.criterion.load_state_dict(state.get("criterion", {}))
        self.precision.load_state_dict(state.get("scaler", {}))
        for callback, saved in zip(self.callbacks, state["callbacks"][rank] if "callbacks" in state else []):
            callback.load_state_dict(saved)
        set_rng_state(state["rng"][rank])
        self.progress = dict(state["progress"])
        if self.info.main:
            p = self.progress
            log.info("resumed from %s at step %d (epoch %d, batch %d)", last, p["step"], p["epoch"] + 1, p["batch"])

    def finished(self) -> bool:
        max_steps = self.tconf["max_steps"]
        return (max_steps is not None and self.step >= max_steps) or self.progress["epoch"] >= self.tconf["max_epochs"]

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _loader(self, dataset: ChainDataset, batches: list[list[int]], start: int = 0, key: tuple[int, ...] = ()):
        return load_batches(dataset, batches, start, key, self.num_workers, pin_memory=self.device.type == "cuda")

    # --- the loop ---------------------------------------------------------------------------

    def fit(self, stop_at_step: Optional[int] = None) -> dict[str, Any]:
        """Train until the budget is spent or early stopping; ``stop_at_step`` simulates an interruption."""
        try:
            if self.finished():
                if self.info.main:
                    log.info("training already finished at step %d", self.step)
                return self.progress
            if self.info.main:  # opened only now: re-running a finished experiment adds no empty event file
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.exp_dir / "tensorboard"))
            self._call("on_train_start")
            self.model.train()
            while not self.finished() and not self.should_stop:
                if self._run_epoch(stop_at_step):
                    return self.progress
            every = self.tconf["valid_every_steps"]
            if every and self.step % every:
                self.validate()
            self._call("on_train_end")
            if self.info.main:
                best, metric = self.keeper.best(), self.tconf["best_metric"]
                log.info("finished at step %d; best %s %.4f at step %d", self.step, metric,
                         best["metrics"][metric] if best else float("nan"), best["step"] if best else -1)
            return self.progress
        finally:
            if self.writer is not None:
                self.writer.close()
            distributed.cleanup(self.info)
            self.lock.close()

    def _run_epoch(self, stop_at_step: Optional[int]) -> bool:
        """The rest of the current epoch; True when interrupted at ``stop_at_step``."""
        progress, bconf = self.progress, self.bconf
        batches = make_batches(
            self.train_set.input_lengths,
            self.train_set.target_lengths,
            bconf["max_tokens"],
            bconf["max_sentences"],
            seed=bconf["seed"],
            epoch=progress["epoch"],
            shuffle=bconf["shuffle"],
        )
        batches = shard(batches, self.info.rank, self.info.world)
        key = (bconf["seed"], progress["epoch"], self.info.rank)
        bar = tqdm(total=len(batches), initial=progress["batch"], desc=f"epoch {progress['epoch'] + 1}", disable=not self.info.main)
        try:
            for batch in self._loader(self.train_set, batches, progress["batch"], key):
                batch = batch.to(self.device)
                if progress["batch"] % self.accum == 0:  # an update starts (resumption is at update boundaries)
                    self._call("on_step_start")
                sync = (progress["batch"] + 1) % self.accum == 0 or progress["batch"] + 1 == len(batches)
                loss = self.train_step(batch, sync)
                progress["batch"] += 1
                bar.update(1)
                if not sync:
                    continue
                grad_norm = self.optimizer_step()
                self.log_step(loss, grad_norm, bar)
                self._call("on_step_end", loss)
                every = self.tconf["valid_every_steps"]
                validated = bool(every and self.step % every == 0)
                if validated:
                    self.validate()
                    self._check_patience()
                if stop_at_step is not None and self.step >= stop_at_step:
                    if not validated:  # else the validation just saved this step, with its metrics
                        self.save_checkpoint({})
                    return True
                if self.finished() or self.should_stop:
                    break
        finally:
            bar.close()
        if progress["batch"] >= len(batches):
            progress["epoch"] += 1
            progress["batch"] = 0
            if not self.tconf["valid_every_steps"]:
                self.validate()
                self._check_patience()
        return False

    def train_step(self, batch: Batch, sync: bool = True) -> LossReport:
        """Forward and backward pass of one batch, its gradient 1/accum_grad of an update's
        (``sync`` False: a batch that does not end the update, whose gradients DDP need not reduce yet)."""
        no_sync = self.info.world > 1 and not sync
        with self.wrapped.no_sync() if no_sync else contextlib.nullcontext():
            with self.precision.autocast():
                output = self.wrapped(batch.inputs, batch.input_lengths, batch.targets)
            loss = self.criterion(batch, output)
            if loss.total.requires_grad:  # else no trained parameter took part (a modular step that replaced nothing)
                self.precision.backward(loss.total / self.accum)
        self.window["loss"] += float(loss.total.detach())
        self.window["n"] += 1
        self.window["tokens"] += int(batch.input_lengths.sum())
        self.train_skips.add(loss, len(batch.input_lengths))
        return loss

    def optimizer_step(self) -> float:
        """Clip, update, advance the schedule; returns the gradient norm before clipping."""
        self.precision.unscale(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trained, self.oconf["clip_norm"])
        self.precision.step(self.optimizer)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress["step"] += 1
        return float(grad_norm)

    def log_step(self, loss: LossReport, grad_norm: float, bar: tqdm) -> None:
        """Every trainer.log_every_steps updates: train.log, tensorboard and the progress bar."""
        step = self.step
        if not self.info.main or step % self.tconf["log_every_steps"]:
            return
        window = self.window
        elapsed = max(time.time() - window["t"], 1e-9)
        lr = self.scheduler.get_last_lr()[0]
        mean = window["loss"] / max(window["n"], 1)
        log.info("step %d epoch %d loss %.4f lr %.3g grad_norm %.2f %.0f input positions/s",
                 step, self.progress["epoch"] + 1, mean, lr, grad_norm, window["tokens"] / elapsed)
        self.writer.add_scalar("train/loss", mean, step)
        self.writer.add_scalar("train/lr", lr, step)
        for name, term in loss.terms.items():
            self.writer.add_scalar(f"train/{name}_loss", float(term.loss.detach()), step)
        bar.set_postfix(loss=f"{mean:.3f}", lr=f"{lr:.2g}")
        self.window = _window()

    # --- validation and checkpoints ---------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Validate (main rank), log (with the CTC skips of training since the last validation and
        of validation), count validations without improvement, save a checkpoint."""
        valid_skips = CTCSkips()
        metrics = self.evaluate(valid_skips) if self.info.main else {}
        metrics = distributed.gather(metrics, self.info)[0]
        train_skips = CTCSkips()
        for rank_skips in distributed.gather(self.train_skips, self.info):
            train_skips.merge(rank_skips)
        if self.info.main:
            for line in train_skips.describe():
                log.warning("%s since step %d: targets longer than the module's output; raise the OLC factor "
                            "or filter long targets", line, self.skips_since)
            shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            log.info("validation at step %d: %s", self.step, "; ".join([shown, *valid_skips.describe()]))
            for key, value in metrics.items():
                self.writer.add_scalar(f"valid/{key}", value, self.step)
        metric = self.tconf["best_metric"]
        if metric not in metrics:
            raise LegonnError(f"trainer.best_metric '{metric}' is not a validation metric (known: {', '.join(sorted(metrics))})")
        best = self.keeper.best()
        improved = best is None or is_better(metric, metrics[metric], best["metrics"][metric])
        improved = distributed.gather(improved, self.info)[0]  # only rank 0's keeper sees the saved checkpoints
        self.progress["since_best"] = 0 if improved else self.progress["since_best"] + 1
        self._call("on_validation_end", metrics)
        self.save_checkpoint(metrics)
        self.train_skips, self.skips_since = CTCSkips(), self.step
        return metrics

    def _check_patience(self) -> None:
        """Early stopping after trainer.patience validations without improvement."""
        patience = self.tconf["patience"]
        if patience is not None and self.progress["since_best"] >= patience:
            log.info("no improvement in %d validations: stopping", patience)
            self.should_stop = True

    @torch.no_grad()
    def evaluate(self, skips: Optional[CTCSkips] = None) -> dict[str, float]:
        """Per module: loss per token and accuracy (decoder: token accuracy; CTC: 1 - token error rate);
        the utterances CTC terms left out are counted into ``skips``."""
        model, dataset = self.model, self.valid_set
        model.eval()
        self.criterion.eval()
        sums: dict[str, dict[str, float]] = {}
        weights: dict[str, float] = {}
        batches = make_batches(dataset.input_lengths, dataset.target_lengths, self.bconf["max_tokens"], shuffle=False)
        for batch in tqdm(self._loader(dataset, batches), total=len(batches), desc="valid", leave=False, disable=not self.info.main):
            batch = batch.to(self.device)
            with self.precision.autocast():
                output = model(batch.inputs, batch.input_lengths, batch.targets)
            result = self.criterion(batch, output)
            if skips is not None:
                skips.add(result, len(batch.input_lengths))
            for name, term in result.terms.items():
                acc = sums.setdefault(name, {"loss": 0.0, "tokens": 0, "errors": 0})
                acc["loss"] += float(term.loss) * term.tokens
                acc["tokens"] += term.tokens
                weights[name] = term.weight
                acc.setdefault("scored", not term.distillation)
                if term.correct is not None:
                    acc["errors"] += term.tokens - term.correct
            for spec, out in zip(model.specs, output.outputs):
                if spec.name in result.terms and out.log_probs is not None and result.terms[spec.name].correct is None:
                    tgt, tgt_len = batch.targets[spec.target]
                    hyps = greedy_decode(out.log_probs, out.lengths)
                    refs = [t[:n].tolist() for t, n in zip(tgt.cpu(), tgt_len.cpu())]
                    sums[spec.name]["errors"] += sum(Levenshtein.distance(h, r) for h, r in zip(hyps, refs))
        metrics: dict[str, float] = {}
        total = 0.0
        for name, acc in sums.items():
            tokens = max(acc["tokens"], 1)
            metrics[f"{name}/loss"] = acc["loss"] / tokens
            if acc["scored"]:
                metrics[f"{name}/acc"] = 1.0 - acc["errors"] / tokens
            total += weights[name] * metrics[f"{name}/loss"]
        metrics["loss"] = total
        last = model.specs[-1].name
        if f"{last}/acc" in metrics:
            metrics["acc"] = metrics[f"{last}/acc"]
        model.train()
        self.criterion.train()
        return metrics

    def save_checkpoint(self, metrics: dict[str, float]) -> None:
        """checkpoint_step<N>.pt and checkpoint_last.pt (main rank), with every rank's RNG and callback states."""
        states = distributed.gather({"rng": rng_state(), "callbacks": [c.state_dict() for c in self.callbacks]}, self.info)
        if self.info.main:
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "criterion": self.criterion.state_dict(),
                "scaler": self.precision.state_dict(),
                "callbacks": [s["callbacks"] for s in states],
                "rng": [s["rng"] for s in states],
                "progress": dict(self.progress),
                "metrics": metrics,
            }
            self.keeper.save(state, self.step, metrics)
        distributed.barrier(self.info)


def train(config: dict[str, Any], exp_dir: str | Path, device: str = "cpu", stop_at_step: Optional[int] = None) -> dict[str, Any]:
    """Train (or resume) the experiment in ``exp_dir``. ``stop_at_step`` simulates an interruption."""
    logger = logging.getLogger("legonn")
    before = list(logger.handlers)
    try:
        return Trainer(config, exp_dir, device).fit(stop_at_step)
    finally:  # detach this experiment's train.log, so a later train() in the process does not write to it
        for handler in [h for h in logger.handlers if h not in before]:
            logger.removeHandler(handler)
            handler.close()
