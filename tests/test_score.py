"""Tests of the scoring engine (legonn/score.py) and ``legonn score`` (legonn/bin/score.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from legonn.engine import score as S
from legonn.errors import LegonnError

ROOT = Path(__file__).resolve().parents[1]

REFS = {"u1": "a b c d", "u2": "x y z", "u3": ""}
HYPS = {"u2": "x z", "u1": "a x c d e", "u3": ""}  # order differs on purpose: matched by id

MT_REFS = [
    "The cat sat on the mat.",
    "A well-known author wrote this state-of-the-art book.",
    "It is raining today, isn't it?",
]
MT_HYPS = [
    "The cat sat on a mat.",
    "A well known author wrote this state-of-the-art book.",
    "It rains today, isn't it?",
]


def write(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(f"{k} {v}".rstrip() + "\n" for k, v in rows.items()), encoding="utf-8")
    return path


def mt(texts: list[str]) -> dict[str, str]:
    return {f"s{i}": t for i, t in enumerate(texts)}


# --- reading and matching ---------------------------------------------------------


def test_read_text_allows_empty_text_and_collapses_spaces(tmp_path):
    p = tmp_path / "text"
    p.write_text("a  hello   world\nb\nc\t x \n", encoding="utf-8")
    assert S.read_text(p) == {"a": "hello world", "b": "", "c": "x"}


def test_duplicate_id_names_file_and_line(tmp_path):
    p = tmp_path / "text"
    p.write_text("a x\nb y\na z\n", encoding="utf-8")
    with pytest.raises(LegonnError, match=rf"{p}:3: utterance id 'a' appears twice \(first on line 1\)"):
        S.read_text(p)


@pytest.mark.parametrize("bad", ["\n", "   \n", " leading space\n"])
def test_line_without_id_names_file_and_line(tmp_path, bad):
    p = tmp_path / "text"
    p.write_text("a x\n" + bad + "b y\n", encoding="utf-8")
    with pytest.raises(LegonnError, match=rf"{p}:2: line has no utterance id"):
        S.read_text(p)


def test_missing_file():
    with pytest.raises(LegonnError, match="/no/such: reference file not found"):
        S.read_text("/no/such", "reference")


def test_missing_hypotheses_listed_or_scored_as_empty():
    refs = {f"u{i}": "w" for i in range(8)}
    hyps = {"u0": "w"}
    with pytest.raises(LegonnError, match=r"7 of 8 utterance\(s\) .* missing .*: u1, u2, u3, u4, u5, \.\.\."):
        S.score_texts(refs, hyps, ["wer"])
    res = S.score_texts(refs, hyps, ["wer"], allow_missing=True)
    assert res["n_missing"] == 7 and res["missing"][0] == "u1"
    assert res["wer"]["deletions"] == 7 and res["wer"]["ref_len"] == 8
    assert "(7 missing, scored as empty)" in S.summary_line(res)


def test_extra_hypotheses_are_an_error_even_with_allow_missing():
    with pytest.raises(LegonnError, match=r"1 utterance\(s\) in hypothesis not in reference: zz"):
        S.score_texts(REFS, {**HYPS, "zz": "q"}, ["wer"], allow_missing=True)


def test_empty_reference_is_an_error():
    with pytest.raises(LegonnError, match="has no utterances"):
        S.score_texts({}, {}, ["wer"])
    with pytest.raises(LegonnError, match="no words"):
        S.score_texts({"a": ""}, {"a": "x"}, ["wer"])


# --- WER / CER ----------------------------------------------------------------------


def test_perfect_hypothesis_scores_wer_0_and_bleu_100():
    res = S.score_texts(mt(MT_REFS), mt(MT_REFS), cer=True)
    assert res["wer"]["score"] == 0 and res["cer"]["score"] == 0
    assert res["wer"]["hits"] == sum(len(r.split()) for r in MT_REFS)
    assert res["bleu"]["score"] == pytest.approx(100) and res["bleu_tok"]["score"] == pytest.approx(100)
    assert res["chrf"]["score"] == pytest.approx(100)


def test_hand_computed_counts_and_alignment():
    # u1: a b c d -> a x c d e : C C(a,c,d)=3, S(b->x), I(e)
    # u2: x y z   -> x z       : C=2, D(y)
    # u3: empty on both sides
    res = S.score_texts(REFS, HYPS, ["wer"])
    w = res["wer"]
    assert (w["substitutions"], w["deletions"], w["insertions"], w["hits"]) == (1, 1, 1, 5)
    assert w["ref_len"] == 7 and w["score"] == pytest.approx(300 / 7)
    assert w["utts_with_errors"] == 2
    u1, u2, u3 = w["utterances"]
    assert [u["id"] for u in (u1, u2, u3)] == ["u1", "u2", "u3"]  # reference order
    assert u1["pairs"] == [["a", "a", "C"], ["b", "x", "S"], ["c", "c", "C"], ["d", "d", "C"], [None, "e", "I"]]
    assert (u2["C"], u2["S"], u2["D"], u2["I"], u2["errors"]) == (2, 0, 1, 0, 1)
    assert u3["pairs"] == [] and u3["errors"] == 0
    assert S.summary_line(res) == "WER 42.86 % [S=1 D=1 I=1 / N=7] | 3 utts"
    assert S.format_alignment(u1).splitlines() == [
        "id: (u1)",
        "Scores: (#C #S #D #I) 3 1 0 1",
        "REF:  a b c d ***",
        "HYP:  a x c d e",
        "Eval:   S     I",
    ]
    assert S.format_alignment(u2).splitlines()[2:] == ["REF:  x y   z", "HYP:  x *** z", "Eval:   D"]


def test_cer_counts_characters_including_spaces():
    res = S.score_texts({"a": "abc de"}, {"a": "abd de"}, ["wer"], cer=True)
    c = res["cer"]
    assert (c["substitutions"], c["deletions"], c["insertions"], c["ref_len"]) == (1, 0, 0, 6)
    assert res["wer"]["substitutions"] == 1


def test_normalisation_is_opt_in():
    refs, hyps = {"a": "Hello, world!"}, {"a": "hello world"}
    assert S.score_texts(refs, hyps, ["wer"])["wer"]["score"] == 100
    assert S.score_texts(refs, hyps, ["wer"], lowercase=True)["wer"]["score"] == 100  # punctuation left
    assert S.score_texts(refs, hyps, ["wer"], remove_punct=True)["wer"]["substitutions"] == 1
    assert S.score_texts(refs, hyps, ["wer"], lowercase=True, remove_punct=True)["wer"]["score"] == 0
    # a punctuation-only word disappears rather than becoming an empty word
    assert S.normalise("a - b", remove_punct=True) == "a b"


# --- BLEU / chrF -------------------------------------------------------------------------


def test_bleu_and_chrf_match_sacrebleu():
    res = S.score_texts(mt(MT_REFS), mt(MT_HYPS), ["bleu", "chrf"])
    expected = sacrebleu.corpus_bleu(MT_HYPS, [MT_REFS])
    assert res["bleu"]["score"] == pytest.approx(expected.score)
    assert 0 < res["bleu"]["score"] < 100
    assert res["chrf"]["score"] == pytest.approx(sacrebleu.corpus_chrf(MT_HYPS, [MT_REFS]).score)
    assert "tok:13a" in res["bleu"]["signature"] and "version:" in res["bleu"]["signature"]
    assert "nc:6" in res["chrf"]["signature"]


def test_lowercase_goes_through_sacrebleu_and_its_signature():
    refs, hyps = mt(["The Cat sat ."]), mt(["the cat sat ."])
    res = S.score_texts(refs, hyps, ["bleu", "chrf"], lowercase=True)
    assert res["bleu"]["score"] == pytest.approx(100)
    assert "case:lc" in res["bleu"]["signature"] and "case:lc" in res["chrf"]["signature"]


def test_compound_split():
    # Expected output checked against perl -ple 's{(\S)-(\S)}{$1 ##AT##-##AT## $2}g'
    # (get_ende_bleu.sh), including its non-overlapping quirk on "a-b-c".
    assert S.compound_split("a well-known state-of-the-art x - y a-b-c") == (
        "a well ##AT##-##AT## known state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art"
        " x - y a ##AT##-##AT## b-c"
    )
    plain = S.score_texts(mt(MT_REFS), mt(MT_HYPS), ["bleu"])
    split = S.score_texts(mt(MT_REFS), mt(MT_HYPS), ["bleu"], compound_split=True)
    # only the hyphenation differs in sentence 2: splitting gives partial credit for 'well' and 'known'
    assert split["bleu_tok"]["score"] != pytest.approx(plain["bleu_tok"]["score"])
    assert split["bleu_tok"]["compound_split"] and not plain["bleu_tok"]["compound_split"]
    assert split["bleu"]["score"] == pytest.approx(plain["bleu"]["score"])  # detok BLEU unaffected
    # without splitting, tokenized BLEU is multi-bleu on 13a-tokenized text
    tok = sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a()
    expected = sacrebleu.corpus_bleu([tok(h) for h in MT_HYPS], [[tok(r) for r in MT_REFS]], tokenize="none")
    assert plain["bleu_tok"]["score"] == pytest.approx(expected.score)


# --- writing ------------------------------------------------------------------------------


def test_json_written_atomically_and_parseable(tmp_path):
    res = S.score_files(write(tmp_path / "ref", REFS), write(tmp_path / "hyp", HYPS), cer=True)
    out = tmp_path / "score.json"
    S.write_json(res, out)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["wer"]["substitutions"] == 1 and "utterances" not in data["wer"]
    assert data["bleu"]["signature"] == res["bleu"]["signature"]
    assert set(data) >= {"wer", "cer", "bleu", "bleu_tok", "chrf", "n_utts"}
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp.")]  # no temp file left behind
    S.write_json(res, out, details=True)
    assert json.loads(out.read_text(encoding="utf-8"))["wer"]["utterances"][0]["id"] == "u1"


# --- the command --------------------------------------------------------------------------


def run_legonn(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "legonn", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_prints_summary_and_writes_files(tmp_path):
    ref, hyp = write(tmp_path / "ref", REFS), write(tmp_path / "hyp", HYPS)
    proc = run_legonn("score", "--ref", str(ref), "--hyp", str(hyp))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("WER 42.86 % [S=1 D=1 I=1 / N=7] | BLEU ")
    assert " (tok " in lines[0] and "| chrF " in lines[0] and lines[0].endswith("| 3 utts")
    assert lines[1].startswith("BLEU signature: nrefs:1|") and lines[-1].startswith("chrF signature: ")
    assert json.loads((tmp_path / "score.json").read_text())["n_utts"] == 3  # default out_dir: hyp's dir
    assert "HYP:  x *** z" in (tmp_path / "result.txt").read_text()


def test_cli_wer_only_to_out_dir(tmp_path):
    ref, hyp = write(tmp_path / "ref", REFS), write(tmp_path / "hyp", HYPS)
    out = tmp_path / "new" / "dir"
    proc = run_legonn("score", "--ref", str(ref), "--hyp", str(hyp), "--metric", "wer", "--cer", "--out_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "WER 42.86 % [S=1 D=1 I=1 / N=7] | CER 41.67 % [S=1 D=2 I=2 / N=12] | 3 utts"
    ]
    assert sorted(os.listdir(out)) == ["result.txt", "score.json"]


def test_cli_missing_file_is_one_stderr_line_and_exit_1(tmp_path):
    hyp = write(tmp_path / "hyp", HYPS)
    proc = run_legonn("score", "--ref", str(tmp_path / "nope"), "--hyp", str(hyp))
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"legonn score: error: {tmp_path / 'nope'}: reference file not found"]
