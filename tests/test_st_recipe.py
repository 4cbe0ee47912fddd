"""The mini zero-shot speech-translation recipe (egs/mini/st1) end to end on a tiny German set.

A temporary tree holds utils/ and egs/TEMPLATE/ (symlinks), asr1's synth.py (st1 speaks through
it), a copy of st1 and a small mt1: De-En text data dirs from a word-for-word grammar, its BPEs,
and the text-side modules trained there in seconds with mt1's tiny configs (the teacher De-En
model, and the marginal-reading MT encoder under its frozen decoder). Then st1 runs every stage:
German speech, phonemes, the recogniser, the zero-shot composition, its fine-tuning, the
end-to-end rival, the cascade (the recogniser's 1-best read by the text MT model) and the table.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_fixtures import read_table, recipe_env
from test_asr_recipe import OBJECTS, SUBJECTS, TIMES, VERBS

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "egs" / "mini"


def grammar_pairs() -> list[tuple[str, str]]:
    pairs = []
    for s_en, s_de in SUBJECTS:
        for v_en, v_de in VERBS:
            for o_en, o_de in OBJECTS:
                for t_en, t_de in TIMES:
                    de, en = f"{s_de} {v_de} {o_de} {t_de}.", f"{s_en} {v_en} {o_en} {t_en}."
                    pairs.append((de[0].upper() + de[1:], en[0].upper() + en[1:]))
    return pairs


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=recipe_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("st_recipe")
    (root / "egs" / "mini" / "asr1" / "local").mkdir(parents=True)
    (root / "utils").symlink_to(ROOT / "utils")
    (root / "egs" / "TEMPLATE").symlink_to(ROOT / "egs" / "TEMPLATE")
    shutil.copy(MINI / "asr1" / "local" / "synth.py", root / "egs" / "mini" / "asr1" / "local" / "synth.py")
    shutil.copytree(MINI / "st1", root / "egs" / "mini" / "st1",
                    ignore=shutil.ignore_patterns("data", "exp", "RESULTS*", "__pycache__"))
    mt = root / "egs" / "mini" / "mt1"
    shutil.copytree(MINI / "mt1" / "conf", mt / "conf")
    pairs = grammar_pairs()
    for name, rows in (("train", pairs[:160]), ("valid", pairs[160:180]), ("test", pairs[180:200])):
        d = mt / "data" / f"deen_{name}"
        d.mkdir(parents=True)
        for lang, col in (("de", 0), ("en", 1)):
            (d / f"text.{lang}").write_text(
                "".join(f"deen_deen-{name}-{i:06d} {row[col]}\n" for i, row in enumerate(rows)), encoding="utf-8")
    for lang in ("de", "en"):
        run(["legonn", "vocab", "--kind", "bpe", "--size", "60", "--texts", f"data/deen_train/text.{lang}",
             "--out", f"data/lang/{lang}"], mt)
    for exp, conf in (("deen_lego_teacher", "deen_lego_teacher"), ("deen_zeroshot_mt_ctc", "zeroshot_deen_mt")):
        run(["legonn", "train", "--config", f"conf/tiny/{conf}.yaml", "--exp_dir", f"exp/{exp}"], mt)
        run(["legonn", "export", "--exp_dir", f"exp/{exp}", "--checkpoint", f"exp/{exp}/checkpoints/checkpoint_last.pt",
             "--out_dir", f"exp/{exp}/modules"], mt)
    return root / "egs" / "mini" / "st1"


MT = "../mt1/exp/deen_zeroshot_mt_ctc/modules"
EXPERIMENTS = f"""st_asr:conf/tiny/st_asr.yaml
ctc_compress_de=weightless:ctc_compress:data/lang/de.model
st_zeroshot=exp/st_asr/modules/encoder+exp/st_asr/modules/pron+{MT}/encoder+{MT}/decoder
st_zeroshot_compress=exp/st_asr/modules/encoder+exp/st_asr/modules/pron+exp/ctc_compress_de+{MT}/encoder+{MT}/decoder
st_zeroshot_ft:exp/st_zeroshot_compress/finetune.yaml,conf/tiny/finetune_st.yaml
st_e2e_10pct:conf/tiny/st_e2e.yaml,conf/data_train_10pct.yaml
st_text_mt=../mt1/exp/deen_lego_teacher/modules/encoder+../mt1/exp/deen_lego_teacher/modules/decoder"""


def test_st_recipe_end_to_end(tree: Path):
    proc = run(["bash", "run.sh", "--nj", "2",
                "--data_opts", "--train_utts 60 --eval_utts 8 --voices_train 4 --voices_valid 2 --voices_test 2 "
                               "--espeak_backend lib --nj 1 --min_words 5",
                "--experiments", EXPERIMENTS, "--avg_num", "2",
                "--decodes", "st_asr@test st_text_mt@test_cascade st_zeroshot@test st_zeroshot_compress@test st_zeroshot_ft@test "
                            "st_e2e_10pct@test",
                "--decode_opts", "--beam 2"], tree)
    data = tree / "data"
    # stage 1: German speech of De-En pairs, the English side beside it, espeak's German phonemes
    for s in ("train", "valid", "test", "train_10pct"):
        for f in ("wav.scp", "text", "text.de", "text.en", "text.phn", "utt2spk", "spk2voice"):
            assert (data / s / f).is_file(), f"data/{s}/{f} missing"
    test = read_table(data / "test" / "text")
    english = read_table(data / "test" / "text.en")
    mt_test = read_table(tree.parent / "mt1" / "data" / "deen_test" / "text.de")
    mt_english = read_table(tree.parent / "mt1" / "data" / "deen_test" / "text.en")
    assert len(test) == 8 and test.keys() == english.keys()
    for utt, german in test.items():  # "<speaker>-<MT sentence id>": the MT test set's pairs
        sid = utt.split("-", 1)[1]
        assert mt_test[sid] == german and mt_english[sid] == english[utt]
    assert all(v.startswith("de+") for v in (line.split()[2] for line in (data / "test" / "spk2voice").read_text().splitlines()))
    fam = {s: {line.split()[-1] for line in (data / s / "spk2voice").read_text().splitlines()} for s in ("train", "test")}
    assert not fam["train"] & fam["test"], "test voices are held out"
    assert len(read_table(data / "train_10pct" / "text")) == 6
    assert {"aU", "S", "OY"} <= set((data / "lang" / "phn.tokens.txt").read_text().split())  # Haus, Schwester, neues
    # stage 6: the zero-shot chain, checked link by link, reads speech and writes English
    composed = json.loads((tree / "exp" / "st_zeroshot" / "composed.json").read_text())
    assert [p["name"] for p in composed["parts"]] == ["encoder", "pron", "encoder", "decoder"]
    composed = json.loads((tree / "exp" / "st_zeroshot_compress" / "composed.json").read_text())
    assert [p["type"] for p in composed["parts"]][2] == "ctc_compress"
    # stage 7: the cascade set is the test set with the recogniser's 1-best as the MT input
    cascade = tree / "data" / "test_cascade"
    assert (cascade / "text.de").read_text() == (tree / "exp" / "st_asr" / "decode_test" / "ctc_pron.text").read_text()
    assert (cascade / "text.en").read_text() == (data / "test" / "text.en").read_text()
    assert "stage 7 (cascade test_cascade)" in proc.stderr
    # stage 8: every system scored on English; the modules' CTC outputs on what they emit
    for name, s in (("st_text_mt", "test_cascade"), ("st_zeroshot", "test"), ("st_zeroshot_compress", "test"),
                    ("st_zeroshot_ft", "test"), ("st_e2e_10pct", "test")):
        score = json.loads((tree / "exp" / name / f"decode_{s}" / "score.json").read_text())
        assert "bleu" in score and "chrf" in score
    zs = tree / "exp" / "st_zeroshot" / "decode_test"
    assert (zs / "ctc_pron.ref").read_text() == "text.de\n"
    assert (zs / "ctc_encoder_2.ref").read_text() == "text.en\n"
    assert (tree / "RESULTS.md").is_file() and "st_zeroshot_ft" in (tree / "RESULTS.md").read_text()
    # the side-by-side table: each system with where its errors come from
    run([sys.executable, "local/st_table.py"], tree)
    notes = (tree / "RESULTS.notes.md").read_text()
    for row in ("| copy the German source | 0 |", "| (a) cascade", "| (b) zero-shot: MT encoder trained on CTC-shaped text",
                "| (b'') zero-shot: that MT encoder behind ctc_compress", "| (c) (b'') fine-tuned end to end on 10 % of the pairs | 6 |",
                "| (d) end-to-end ST from scratch, 10 % of the pairs | 6 |"):
        assert row in notes
    assert "sacreBLEU signatures: `nrefs:1|" in notes
