"""bench/bench.py --quick runs end to end and reports well-formed JSON (no timing thresholds)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "bench.py"
TRAIN = ("mt_train_baseline", "mt_train_legonn", "asr_train")
DECODE = ("mt_decode_baseline", "mt_decode_legonn")


def run_bench(tmp_path: Path, *args: str) -> tuple[dict, dict]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--threads", "1", "--out", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[bench]" in proc.stderr  # the human summary
    return json.loads(proc.stdout), json.loads(out.read_text())


def numbers(node, path="report"):
    """Every numeric leaf of the report, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numbers(value, f"{path}[{i}]")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_run_reports_every_workload(tmp_path):
    stdout_report, file_report = run_bench(tmp_path)
    assert stdout_report == file_report
    report = file_report
    assert report["quick"] is True

    system = report["system"]
    for key in ("date", "torch", "threads", "cpu", "device", "git_commit"):
        assert key in system
    assert system["threads"] == 1 and system["device"] == "cpu"

    for where, value in numbers(report):
        assert math.isfinite(value) and value >= 0, where

    w = report["workloads"]
    assert set(w) == {"matmul_peak", *TRAIN, *DECODE}
    assert positive(w["matmul_peak"]["gflops"]) and positive(w["matmul_peak"]["best_seconds"])

    for name in TRAIN:
        r = w[name]
        s = r["step_seconds"]
        assert all(positive(s[k]) for k in ("median", "min", "max")), name
        assert s["min"] <= s["median"] <= s["max"]
        for key in ("flops_per_step", "achieved_gflops", "mfu", "loss", "parameters", "real_flops_per_step",
                    "real_token_utilisation"):
            assert positive(r[key]), (name, key)
        # Examples one by one never do more than the (packed) batch: padding only adds work.
        assert r["real_flops_per_step"] <= r["flops_per_step"], name
        assert isinstance(r["model"], list) and len(r["model"]) == 2
    assert positive(w["mt_train_baseline"]["target_tokens_per_second"])
    assert positive(w["mt_train_legonn"]["target_tokens_per_second"])
    assert positive(w["asr_train"]["frames_per_second"])
    assert "OLC" in w["mt_train_legonn"]["layers_note"]

    for name in DECODE:
        r = w[name]
        assert r["beam"] == 5
        assert "1" in r["batch_sizes"] and str(r["best_batch_size"]) in r["batch_sizes"]
        for size in r["batch_sizes"].values():
            assert positive(size["sentences_per_second"])
        assert positive(r["batch_1_sentences_per_second"]) and positive(r["best_sentences_per_second"])


def test_only_selects_workloads(tmp_path):
    report, _ = run_bench(tmp_path, "--only", "matmul_peak")
    assert set(report["workloads"]) == {"matmul_peak"}


def test_decode_shape_on_trained_module_folders(tmp_path):
    """mt_decode_modules times a chain of module folders (here small random ones over 1000 symbols)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from shapes import V

    from legonn.data.vocab import SPECIALS, Vocabulary
    from legonn.modules.artifact import save_module
    from legonn.nn.chain import Chain

    size = {"d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0}
    chain = Chain.from_specs([
        {"name": "encoder", "type": "lego_encoder", "target": "en",
         "conf": {"input": {"type": "embedding", "vocab_size": V}, **size, "olc": {"factor": 2, "max_len": 80, "layers": 1},
                  "ctc_vocab_size": V}},
        {"name": "decoder", "type": "lego_decoder", "target": "en",
         "conf": {"vocab_size": V, "ingestor": {"type": "wemb", "vocab_size": V}, **size}},
    ])
    vocab = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(V - len(SPECIALS))])
    save_module(chain.blocks["encoder"], tmp_path / "enc", "encoder", vocab, vocab)
    save_module(chain.blocks["decoder"], tmp_path / "dec", "decoder", vocab, vocab)
    report, _ = run_bench(tmp_path, "--only", "mt_decode_modules", "--modules", str(tmp_path / "enc"), str(tmp_path / "dec"))
    r = report["workloads"]["mt_decode_modules"]
    assert r["model"] == [str(tmp_path / "enc"), str(tmp_path / "dec")]
    assert positive(r["batch_1_sentences_per_second"]) and positive(r["best_sentences_per_second"])
    alone = subprocess.run([sys.executable, str(BENCH), "--quick", "--modules", str(tmp_path / "enc")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert alone.returncode == 2 and "go together" in alone.stderr
