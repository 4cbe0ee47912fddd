"""bench/peer without the ESPnet environment: both harnesses share bench/shapes.py's data, the ESPnet
harness imports neither legonn nor ESPnet at module level, and run.py's ratio table and README
section replacement work on a fake pair of reports."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from legonn.data import vocab

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def modules():
    bench = load(BENCH / "bench.py", "legonn_bench")
    espnet_bench = load(BENCH / "peer" / "espnet_bench.py", "espnet_bench")
    run = load(BENCH / "peer" / "run.py", "bench_peer_run")
    return bench, espnet_bench, run, sys.modules["shapes"]


def test_both_harnesses_take_their_data_from_shapes(modules):
    bench, espnet_bench, _, shapes = modules
    for module in (bench, espnet_bench):
        for name in ("mt_train_data", "asr_train_data", "mt_decode_data", "SEED", "V", "SIZE", "BEAM", "OPTIM", "FULL", "QUICK"):
            assert getattr(module, name) is getattr(shapes, name), (module.__name__, name)
    assert shapes.PAD == vocab.PAD and shapes.FIRST_ID > max(vocab.BLANK, vocab.UNK, vocab.SOS, vocab.EOS)


def test_espnet_relabelling_is_one_to_one(modules):
    _, espnet_bench, _, shapes = modules
    src, src_len, tgt, tgt_len = shapes.mt_train_data(shapes.FULL)
    assert (tgt == shapes.V - 1).any()  # the case the relabelling is for
    for ids, lengths in ((src, src_len), (tgt, tgt_len)):
        esp = espnet_bench.espnet_tokens(ids, lengths)
        real = torch.arange(ids.size(1)) < lengths[:, None]
        assert (esp[~real] == espnet_bench.IGNORE_ID).all()
        assert not (esp[real] == espnet_bench.ESPNET_EOS).any()
        back = torch.where(esp == espnet_bench.LEGONN_EOS, espnet_bench.ESPNET_EOS, esp).masked_fill(~real, shapes.PAD)
        assert torch.equal(back, ids)


def test_peer_side_imports_neither_legonn_nor_espnet_at_module_level():
    for path in (BENCH / "shapes.py", BENCH / "peer" / "espnet_bench.py", BENCH / "peer" / "run.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert n.split(".")[0] != "legonn", f"{path.name} imports {n}"
                if n.split(".")[0] in ("espnet", "espnet2"):
                    assert node not in tree.body, f"{path.name} imports {n} at module level"


def report(workloads: dict, **system) -> dict:
    return {"system": {"date": "2026-01-01T00:00:00+00:00", "cpu": "Test CPU", "threads": 2, "torch": "2.13.0+cpu",
                       "load_average_1min_at_start": 0.1, "git_commit": "0123456789abcdef", "git_dirty": False,
                       "espnet": "202511", **system},
            "quick": False, "precision": "fp32", "workloads": workloads}


LEGONN = report({
    "mt_train_baseline": {"target_tokens_per_second": 1500.0},
    "mt_train_legonn": {"target_tokens_per_second": 900.0},
    "asr_train": {"frames_per_second": 4000.0},
    "mt_decode_baseline": {"batch_1_sentences_per_second": 2.0, "best_sentences_per_second": 20.0, "best_batch_size": 16,
                           "batch_sizes": {"1": {}, "8": {}, "16": {}, "32": {}}},
    "mt_decode_legonn": {"batch_1_sentences_per_second": 1.5, "best_sentences_per_second": 10.0, "best_batch_size": 32,
                         "batch_sizes": {"1": {}, "8": {}, "16": {}, "32": {}}},
})
ESPNET = report({
    "mt_train_baseline": {"target_tokens_per_second": 1000.0},
    "asr_train": {"frames_per_second": 2000.0},
    "mt_decode_baseline": {"batch_1_sentences_per_second": 4.0},
})


def test_ratios_and_table(modules):
    run = modules[2]
    r = run.ratios(LEGONN, ESPNET)
    assert r["MT training"]["baseline_over_espnet2"] == pytest.approx(1.5)
    assert r["MT training"]["lego_over_espnet2"] == pytest.approx(0.9)
    assert r["ASR training"]["baseline_over_espnet2"] == pytest.approx(2.0) and r["ASR training"]["lego_over_espnet2"] is None
    assert r["MT decoding, batch 1"]["baseline_over_espnet2"] == pytest.approx(0.5)
    assert r["MT decoding, legonn's best batch vs ESPnet2's batch 1"]["lego_over_espnet2"] == pytest.approx(2.5)

    table = run.ratio_table(LEGONN, ESPNET)
    assert "| MT training (target tok/s) | 1500 | 900 | 1000 | **1.50×** | **0.90×** |" in table
    assert "| ASR training (frames/s) | 4000 | — | 2000 | **2.00×** | — |" in table
    assert "git `0123456`" in table and "Test CPU" in table and "QUICK" not in table
    assert "(of 8, 16, 32): baseline 16, legonn 32" in table


def test_section_replaced_in_place(modules):
    run = modules[2]
    text = f"# head\n\n{run.BEGIN}\nold table\n{run.END}\n\n## tail\n"
    once = run.replace_section(text, "new table\n")
    assert once == f"# head\n\n{run.BEGIN}\nnew table\n{run.END}\n\n## tail\n"
    assert run.replace_section(once, "new table\n") == once
    with pytest.raises(ValueError, match="bench-peer"):
        run.replace_section("# no markers\n", "x\n")
    readme = (BENCH / "README.md").read_text(encoding="utf-8")
    assert readme.count(run.BEGIN) == 1 and readme.count(run.END) == 1


def test_espnet_bench_refuses_to_run_without_espnet(modules, capsys):
    espnet_bench = modules[1]
    if importlib.util.find_spec("espnet") is not None:
        pytest.skip("espnet is installed in this Python")
    with pytest.raises(SystemExit) as exc:
        espnet_bench.main(["--quick"])
    assert exc.value.code == 2 and "bench/peer/setup.sh" in capsys.readouterr().err


def test_busy_machine_is_flagged(modules):
    run = modules[2]
    busy = {**LEGONN, "system": {**LEGONN["system"], "load_average_1min_at_start": 2.5}}
    assert "busy" not in run.ratio_table(LEGONN, ESPNET) and "busy" in run.ratio_table(busy, ESPNET)
