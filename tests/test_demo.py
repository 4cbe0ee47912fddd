"""`make demo`'s script (egs/mini/demo.sh) in tiny mode, end to end, in a temporary tree.

The tree (tests/demo_fixtures.py) holds copies of the mini recipes and a small fixture corpus,
so nothing is written into the repository. Tiny mode runs every stage of the demo with the
committed conf/tiny configs; the run is conftest.py's session fixture ``tiny_demo``.
"""
from __future__ import annotations

import json
from pathlib import Path

from demo_fixtures import make_demo_tree, run_demo


def test_demo_tiny_mode_end_to_end(tiny_demo):
    mini, run = tiny_demo
    proc = run.result()
    assert proc.returncode == 0, f"demo.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    # Both decoder plugs are composed folders whose parts come from different experiments.
    # The ASR encoder is two modules (phoneme CTC, then BPE CTC over the phoneme marginals).
    for recipe, plug, encoder_modules in (("mt1", "tiny_roen_plug_demo", ["tiny_roen_enconly_demo/modules/encoder"]),
                                          ("asr1", "tiny_asr_plug_demo", ["tiny_asr_enconly_demo/modules/encoder",
                                                                          "tiny_asr_enconly_demo/modules/pron"])):
        composed = json.loads((mini / recipe / "exp" / plug / "composed.json").read_text())
        sources = [part["source"] for part in composed["parts"]]
        assert len(sources) == len(encoder_modules) + 1, sources
        for source, module in zip(sources, encoder_modules):
            assert source.endswith(module), sources
        assert sources[-1].endswith("tiny_deen_lego_demo/modules/decoder"), sources
    # The speech encoder travels with its CMVN statistics; the plug read them from its own folder.
    enc = mini / "asr1" / "exp" / "tiny_asr_enconly_demo" / "modules" / "encoder"
    meta = json.loads((enc / "module.json").read_text())
    assert meta["extra"]["input"] == {"file": "feats.scp", "cmvn": "cmvn.ark"}
    assert (enc / "cmvn.ark").read_bytes() == (mini / "asr1" / "data" / "train" / "cmvn.ark").read_bytes()

    # The paper-style table: seven rows with numbers, printed and written.
    table = (mini / "RESULTS.tiny.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 7, table
    assert "no fine-tuning" in table and "| Ro-En MT |" in table and "| English ASR |" in table
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        numbers = [c for c in cells[3:] if c]
        assert numbers and all(float(n) >= 0 for n in numbers), row
    assert "| task | test set | model |" in proc.stdout
    wer = json.loads((mini / "asr1" / "exp" / "tiny_asr_plug_demo" / "decode_test" / "score.json").read_text())
    assert wer["n_utts"] == 8
    for recipe in ("mt1", "asr1"):
        assert (mini / recipe / "RESULTS.tiny.md").is_file()
        assert (mini / recipe / "RESULTS.tiny_curves.png").stat().st_size > 0

    # A second run reuses every trained module (the model inventory): nothing is retrained.
    again = run_demo(mini, "--mode", "tiny")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "stage 4 (train tiny_deen_lego_demo): already done" in (mini / "mt1" / "exp" / "logs" / "demo_lane_a.tiny.log").read_text()
    assert "stage 4 (train tiny_asr_enconly_demo): already done" in again.stderr
    assert "legonn train" not in again.stderr


def test_demo_rejects_an_unknown_mode(tmp_path: Path):
    proc = run_demo(make_demo_tree(tmp_path), "--mode", "huge")
    assert proc.returncode != 0
    assert "unknown --mode 'huge'" in proc.stderr
