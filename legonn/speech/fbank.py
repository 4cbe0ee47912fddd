"""Kaldi-compatible log-mel filterbank features for a data dir, in parallel jobs.

:func:`compute_fbank` is Kaldi's ``compute-fbank-feats`` (via ``kaldi_native_fbank``):
25 ms Povey-windowed frames every 10 ms, DC removal, pre-emphasis 0.97, 512-point power
spectrum, 80 triangular mel bins from 20 Hz to Nyquist, natural log; no dither by default
(so features are reproducible); samples at 16-bit scale (float in [-1, 1] x 32768), as
Kaldi reads WAV files, so values match Kaldi's.

:func:`compute_features` writes, for data dir ``D`` (``--out_dir`` default ``D/data``)::

    D/data/feats.JOB.ark   float32 matrices, one ark per job
    D/feats.scp            utt -> /abs/D/data/feats.JOB.ark:offset (read with kaldiio)
    D/utt2num_frames       frames per utterance
    D/feat_dim             the feature dimension
    D/cmvn.ark             global CMVN stats: Kaldi 2 x (dim+1) double matrix
                           [sum_0 .. sum_{d-1} count ; sumsq_0 .. sumsq_{d-1} 0]

Everything is written under temporary names and renamed into place when every job has
finished; the old ``feats.scp`` is removed first, so it never points into new arks.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue as queue_mod
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from legonn.errors import LegonnError
from legonn.fileio import atomic_path, write_atomic
from legonn.speech.audio import AudioReader, narrowband
from legonn.speech.datadir import sort_key

log = logging.getLogger(__name__)


def _knf():
    try:
        import kaldi_native_fbank
    except ImportError:
        raise LegonnError("fbank features need the 'kaldi-native-fbank' package: pip install 'legonn[speech]'") from None
    return kaldi_native_fbank


@dataclass
class FbankConfig:
    num_mel_bins: int = 80
    sample_rate: int = 16000
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    low_freq: float = 20.0
    high_freq: float = 0.0  # <= 0: offset from Nyquist (0 = Nyquist), as in Kaldi
    snip_edges: bool = True

    def options(self):
        knf = _knf()

        o = knf.FbankOptions()
        o.frame_opts.samp_freq = float(self.sample_rate)
        o.frame_opts.frame_length_ms = float(self.frame_length_ms)
        o.frame_opts.frame_shift_ms = float(self.frame_shift_ms)
        o.frame_opts.dither = float(self.dither)
        o.frame_opts.snip_edges = bool(self.snip_edges)
        o.frame_opts.window_type = "povey"
        o.frame_opts.preemph_coeff = 0.97
        o.frame_opts.remove_dc_offset = True
        o.mel_opts.num_bins = int(self.num_mel_bins)
        o.mel_opts.low_freq = float(self.low_freq)
        o.mel_opts.high_freq = float(self.high_freq)
        o.use_energy = False
        o.use_log_fbank = True
        o.use_power = True
        return o


def compute_fbank(wave: np.ndarray, cfg: Optional[FbankConfig] = None, *, scale: float = 32768.0) -> np.ndarray:
    """(frames, num_mel_bins) float32 log-mel filterbanks of a mono float waveform at ``cfg.sample_rate``.

    ``scale`` multiplies the samples first (32768: float [-1, 1] -> Kaldi's 16-bit scale).
    """
    knf = _knf()

    cfg = cfg or FbankConfig()
    fb = knf.OnlineFbank(cfg.options())
    x = np.ascontiguousarray(wave, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"compute_fbank expects a 1-D waveform, got shape {x.shape}")
    fb.accept_waveform(float(cfg.sample_rate), x * np.float32(scale) if scale != 1.0 else x)
    fb.input_finished()
    n = fb.num_frames_ready
    if n == 0:
        return np.zeros((0, cfg.num_mel_bins), np.float32)
    return np.stack([np.asarray(fb.get_frame(i), dtype=np.float32) for i in range(n)])


def cmvn_stats(feats: np.ndarray) -> np.ndarray:
    """Kaldi global CMVN accumulators of one matrix: 2 x (dim+1) float64."""
    f = np.asarray(feats, dtype=np.float64)
    stats = np.zeros((2, f.shape[1] + 1))
    stats[0, :-1] = f.sum(0)
    stats[1, :-1] = (f * f).sum(0)
    stats[0, -1] = f.shape[0]
    return stats


# --------------------------------------------------------------------------- the parallel job


class _Stopped(Exception):
    """A job gave up because another one failed."""


def _job(job: int, utts: list[str], data_dir: str, ark_tmp: str, cfg: FbankConfig, speed: float, report, stop=None):
    """One job's features into ``ark_tmp``: ``(offsets, frames, short, stats, narrowband)``.

    ``report(n)`` is called with the number of utterances done since the last call (about
    every 0.2 s); ``stop`` (an Event) makes the job give up between utterances.  Any failure
    is a :class:`LegonnError` naming the utterance.
    """
    import kaldiio

    utt = None
    try:
        reader = AudioReader(data_dir, rate=cfg.sample_rate, speed=speed)
        stats = np.zeros((2, cfg.num_mel_bins + 1))
        offsets: dict[str, int] = {}
        frames: dict[str, int] = {}
        short: list[str] = []
        narrow: list[str] = []  # no energy above 4 kHz though their audio declares the full rate
        pending, last = 0, time.monotonic()
        with open(ark_tmp, "wb") as ark:
            for utt in utts:
                if stop is not None and stop.is_set():
                    raise _Stopped
                wave, native = reader.read_native(utt)
                if native >= cfg.sample_rate and narrowband(wave, cfg.sample_rate):
                    narrow.append(utt)
                feats = compute_fbank(wave, cfg)
                if feats.shape[0] == 0:
                    short.append(utt)
                else:
                    pos = ark.tell()
                    kaldiio.save_ark(ark, {utt: feats})
                    offsets[utt] = pos + len((utt + " ").encode("utf-8"))
                    frames[utt] = int(feats.shape[0])
                    stats += cmvn_stats(feats)
                pending += 1
                now = time.monotonic()
                if now - last > 0.2:
                    report(pending)
                    pending, last = 0, now
        report(pending)
        return offsets, frames, short, stats, narrow
    except (LegonnError, _Stopped):
        raise
    except Exception as exc:  # noqa: BLE001 - report anything, with where it happened
        where = f"utterance '{utt}': " if utt is not None else ""
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        raise LegonnError(f"{where}{type(exc).__name__}: {exc} (at {Path(tb.filename).name}:{tb.lineno})") from None


# set in each worker process by _init_worker: a queue and an Event cannot be task arguments
_progress = None
_stop = None


def _init_worker(progress, stop) -> None:
    global _progress, _stop
    _progress, _stop = progress, stop


def _worker_job(*args):
    return _job(*args, report=_progress.put, stop=_stop)


def _split(utts: list[str], nj: int) -> list[list[str]]:
    """Contiguous, near-equal chunks (segments of one recording stay mostly together)."""
    n = len(utts)
    return [utts[(i * n) // nj : ((i + 1) * n) // nj] for i in range(nj)]


@dataclass
class FeatureSummary:
    utterances: int
    frames: int
    dim: int
    skipped: list[str]
    feats_scp: Path
    cmvn: Optional[Path]


def compute_features(
    data_dir: str | os.PathLike,
    *,
    nj: int = 1,
    out_dir: Optional[str | os.PathLike] = None,
    cfg: Optional[FbankConfig] = None,
    speed: float = 1.0,
    cmvn: bool = True,
    progress: Optional[bool] = None,
) -> FeatureSummary:
    """Filterbank features of every utterance of ``data_dir`` in ``nj`` worker processes.

    A failing utterance stops everything with one :class:`LegonnError` naming it and the
    cause; nothing is renamed into place then.  Utterances too short for one frame are
    skipped with a warning (as Kaldi does; ``utils/fix_data_dir.sh`` then drops them).
    ``progress``: a tqdm bar over utterances (None: only when stderr is a terminal; log
    lines every 10% otherwise).
    """
    d = Path(data_dir)
    cfg = cfg or FbankConfig()
    if not d.is_dir():
        raise LegonnError(f"{d}: data directory not found")
    if not (d / "wav.scp").is_file():
        raise LegonnError(f"{d}/wav.scp: file not found (features are computed from wav.scp [+ segments])")
    if nj < 1:
        raise LegonnError(f"--nj must be at least 1, got {nj}")
    if speed <= 0:
        raise LegonnError(f"--speed must be positive, got {speed}")
    utts = AudioReader(d).utts  # parses wav.scp/segments strictly, in the parent: errors show up at once
    if not utts:
        raise LegonnError(f"{d}: no utterances in wav.scp/segments")
    nj = min(nj, len(utts))
    out = Path(out_dir) if out_dir is not None else d / "data"
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    tag = f"tmp.{os.getpid()}"
    arks = [out / f"feats.{j + 1}.ark" for j in range(nj)]
    tmps = [out / f".feats.{j + 1}.ark.{tag}" for j in range(nj)]
    chunks = _split(utts, nj)

    results: dict[int, tuple] = {}
    try:
        _run_jobs(chunks, str(d), tmps, cfg, speed, results, progress)
        offsets: dict[str, str] = {}
        frames: dict[str, int] = {}
        skipped: list[str] = []
        narrow: list[str] = []
        stats = np.zeros((2, cfg.num_mel_bins + 1))
        for j in range(nj):
            offs, frs, short, st, nb = results[j]
            for u, off in offs.items():
                offsets[u] = f"{arks[j]}:{off}"
            frames.update(frs)
            skipped += short
            narrow += nb
            stats += st
        if narrow:  # a warning: telephone speech upsampled on purpose looks the same
            log.warning("%s: %d utterance(s) have no energy above 4 kHz although their audio declares %d Hz or more "
                        "(e.g. '%s'): 8 kHz speech labelled as wideband? Features were computed as declared",
                        d, len(narrow), cfg.sample_rate, narrow[0])
        if not frames:
            raise LegonnError(f"{d}: every utterance is too short for one {cfg.frame_length_ms:g} ms frame")
        if skipped:
            log.warning(
                "%s: %d utterance(s) too short for one frame, left out of feats.scp (e.g. '%s'); "
                "run utils/fix_data_dir.sh %s",
                d, len(skipped), skipped[0], d,
            )
        # the old feats.scp must not point into the new arks, even for a moment
        (d / "feats.scp").unlink(missing_ok=True)
        for tmp, ark in zip(tmps, arks):
            os.replace(tmp, ark)
        keys = sorted(frames, key=sort_key)
        write_atomic(d / "utt2num_frames", "".join(f"{u} {frames[u]}\n" for u in keys))
        write_atomic(d / "feat_dim", f"{cfg.num_mel_bins}\n")
        cmvn_path = None
        if cmvn:
            import kaldiio

            cmvn_path = d / "cmvn.ark"
            with atomic_path(cmvn_path) as tmp:
                kaldiio.save_mat(str(tmp), stats)
        write_atomic(d / "feats.scp", "".join(f"{u} {offsets[u]}\n" for u in keys))
        _remove_stale_arks(out, nj)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()
    return FeatureSummary(len(keys), int(stats[0, -1]), cfg.num_mel_bins, skipped, d / "feats.scp", cmvn_path)


def _remove_stale_arks(out: Path, nj: int) -> None:
    """feats.K.ark with K > nj are left over from an earlier run with more jobs."""
    for p in out.glob("feats.*.ark"):
        mid = p.name[len("feats.") : -len(".ark")]
        if mid.isdigit() and int(mid) > nj:
            log.info("removing %s (left over from an earlier run with more jobs)", p)
            p.unlink()


def _run_jobs(chunks, data_dir, tmps, cfg, speed, results, progress) -> None:
    """Run one job per chunk (in this process when there is one) and put each job's result in
    ``results[job]``; the first failure stops the others and raises."""
    total = sum(len(c) for c in chunks)
    bar = _Progress(total, progress)
    try:
        if len(chunks) == 1:  # no worker process: simpler to debug, same code path
            try:
                results[0] = _job(0, chunks[0], data_dir, str(tmps[0]), cfg, speed, bar.update)
            except LegonnError as exc:
                raise LegonnError(f"feature job 1: {exc}") from None
            return
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        queue, stop = ctx.Queue(), ctx.Event()
        pool = ProcessPoolExecutor(len(chunks), mp_context=ctx, initializer=_init_worker, initargs=(queue, stop))
        with pool:
            jobs = {pool.submit(_worker_job, j, chunk, data_dir, str(tmps[j]), cfg, speed): j
                    for j, chunk in enumerate(chunks)}
            try:
                pending = set(jobs)
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(queue, bar)
                    for future in done:
                        j = jobs[future]
                        try:
                            results[j] = future.result()
                        except LegonnError as exc:
                            raise LegonnError(f"feature job {j + 1}: {exc}") from None
                        except BrokenProcessPool:  # every unfinished job fails so: which one died is unknown
                            raise LegonnError("a feature worker process died before finishing "
                                              "(killed; out of memory?)") from None
            except BaseException:
                stop.set()  # the running jobs give up at their next utterance, so the pool closes soon
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        # the last progress counts may still be in the queue's pipe, but every utterance is done
        bar.update(total - bar.done)
    finally:
        bar.close()


def _drain(queue, bar) -> None:
    try:
        while True:
            bar.update(queue.get_nowait())
    except queue_mod.Empty:
        pass


class _Progress:
    """tqdm over utterances on a terminal; a log line every 10% otherwise."""

    def __init__(self, total: int, enabled: Optional[bool]):
        self.total, self.done, self.next_log = total, 0, 0.1
        tty = enabled if enabled is not None else sys.stderr.isatty()
        self.bar = None
        if tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="utt", desc="fbank", file=sys.stderr, mininterval=0.5)
        self.quiet = enabled is False

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.quiet and self.total and self.done / self.total >= self.next_log:
            log.info("fbank: %d / %d utterances", self.done, self.total)
            while self.done / self.total >= self.next_log:
                self.next_log += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
