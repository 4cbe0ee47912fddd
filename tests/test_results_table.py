"""utils/results_table.py: the results table and the modularity table (paper Fig. 4) from a
recipe's score.json files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "utils" / "results_table.py"


def score(recipe: Path, exp: str, test_set: str, **metrics: float) -> None:
    d = recipe / "exp" / exp / f"decode_{test_set}"
    d.mkdir(parents=True)
    data = {key: {"score": value, **({"signature": f"{key}-sig"} if key in ("bleu", "chrf") else {})}
            for key, value in metrics.items()}
    (d / "score.json").write_text(json.dumps({**data, "n_utts": 10}))


def run(recipe: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=recipe, capture_output=True, text=True, timeout=120)


def rows(markdown: str, section: str) -> dict[str, list[str]]:
    part = markdown.split(section, 1)[1]
    table = [line for line in part.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    return {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)}


def test_modularity_table_compares_bleu_chrf_and_word_accuracy(tmp_path):
    score(tmp_path, "ref", "mt", bleu=4.0, bleu_tok=4.2, chrf=20.0)
    score(tmp_path, "swap", "mt", bleu=1.0, bleu_tok=1.1, chrf=15.0)
    score(tmp_path, "asr_ref", "test", wer=60.0)
    score(tmp_path, "asr_swap", "test", wer=80.0)
    score(tmp_path, "asr_broken", "test", wer=130.0)
    proc = run(tmp_path, "--decodes", "ref@mt swap@mt asr_ref@test asr_swap@test asr_broken@test",
               "--relative", "swap@mt=ref asr_swap@test=asr_ref asr_broken@test=asr_ref",
               "--relative_plot", "modularity.png")
    assert proc.returncode == 0, proc.stderr
    table = rows(proc.stdout, "## Modularity")
    assert table["swap"][3:] == ["BLEU", "1.00", "4.00", "25.0", "75.0"]
    # WER as word accuracy: (100 - 80) / (100 - 60); worse than nothing right is 0 %; no chrF for ASR
    assert table["asr_swap"][3:] == ["WER", "80.00", "60.00", "50.0", "-"]
    assert table["asr_broken"][6] == "0.0"
    assert (tmp_path / "modularity.png").stat().st_size > 0
    assert "![modularity](modularity.png)" in proc.stdout


def test_relative_entry_without_its_score_is_one_clear_error(tmp_path):
    score(tmp_path, "ref", "mt", bleu=4.0, chrf=20.0)
    proc = run(tmp_path, "--decodes", "ref@mt gone@mt", "--relative", "gone@mt=ref")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["results_table: exp/gone/decode_mt/score.json is missing (run the score stage)"]
    # A row whose decode is not listed (a run restricted to some experiments) is left out, saying so.
    proc = run(tmp_path, "--decodes", "ref@mt", "--relative", "gone@mt=ref")
    assert proc.returncode == 0 and "## Modularity" not in proc.stdout
    assert "modularity row 'gone@mt=ref' left out" in proc.stderr


@pytest.mark.parametrize("entry", ["swap@mt", "swap=ref", "@mt=ref"])
def test_malformed_relative_entry_is_refused(tmp_path, entry):
    score(tmp_path, "ref", "mt", bleu=4.0, chrf=20.0)
    proc = run(tmp_path, "--decodes", "ref@mt", "--relative", entry)
    assert proc.returncode != 0 and "is not <exp>@<set>=<reference exp>" in proc.stderr
