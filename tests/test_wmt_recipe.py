"""The WMT recipe (egs/wmt/mt1) end to end on a fixture corpus laid out like the real WMT files.

The fixture has the real file names and formats (line-parallel training files, two-column TSVs,
one gzipped, SGML test sets in the dev.tgz / test-full.tgz naming, one plain-text test set), a few
dozen sentence pairs per corpus, and planted pairs the filters must drop. The recipe runs in a
temporary tree (symlinks to utils/ and egs/TEMPLATE/, a copy of egs/wmt/mt1 whose db.sh points
at the fixture), with tiny vocabularies and 2-step models; the real configs are checked to build.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from itertools import product
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "wmt" / "mt1"
DB_VARS = ("WMT14_ENDE", "WMT19_DEEN", "WMT16_ROEN")

# A word-for-word grammar in English / German / Romanian (with the cedilla spellings WMT16 mixes in).
SUBJECTS = [("the old man", "der alte Mann", "bătrânul"), ("my sister", "meine Schwester", "sora mea"),
            ("our teacher", "unser Lehrer", "profesorul nostru"), ("a young woman", "eine junge Frau", "o femeie tânără"),
            ("his friend", "sein Freund", "prietenul său"), ("the doctor", "der Arzt", "doctoriţa")]
VERBS = [("reads", "liest", "citeşte"), ("sees", "sieht", "vede"), ("buys", "kauft", "cumpără"),
         ("likes", "mag", "iubeşte"), ("finds", "findet", "găseşte")]
OBJECTS = [("a red book", "ein rotes Buch", "o carte roşie"), ("the big house", "das große Haus", "casa mare"),
           ("fresh bread", "frisches Brot", "pâine proaspătă"), ("the small dog", "den kleinen Hund", "câinele mic"),
           ("a new car", "ein neues Auto", "o maşină nouă")]
TIMES = [("today", "heute", "astăzi"), ("every morning", "jeden Morgen", "în fiecare dimineaţă"),
         ("in the evening", "am Abend", "seara"), ("on Sunday", "am Sonntag", "duminică")]


def sentences() -> list[dict[str, str]]:
    out = []
    for s, v, o, t in product(SUBJECTS, VERBS, OBJECTS, TIMES):
        row = {}
        for i, lang in enumerate(("en", "de", "ro")):
            text = f"{s[i]} {v[i]} {o[i]}, {t[i]}."
            row[lang] = text[0].upper() + text[1:]
        out.append(row)
    return out


SENTS = sentences()  # 600 triples, consumed in disjoint slices below
LONG_100 = " ".join(f"word{i}" for i in range(100))  # kept by En-De (max 250), dropped by Ro-En (max 80)
LONG_260 = " ".join(f"word{i}" for i in range(260))  # dropped everywhere
# Planted En-De training pairs, with what the filters must do to each.
PLANTED = [
    ("Thank you.", "Vielen Dank, Herr Präsident, für Ihre sehr freundlichen Worte zu diesem Thema.", "ratio"),
    ("", "Hallo.", "empty"),
    (LONG_260, LONG_260, "too_long"),
    (LONG_100, LONG_100, "kept"),
    ("Good morning", "Guten Morgen allerseits", "kept"),  # token ratio exactly 1.5
]


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_parallel(root: Path, stem: str, pairs: list[tuple[str, str]], langs: tuple[str, str]) -> None:
    for i, lang in enumerate(langs):
        write_lines(root / f"{stem}.{lang}", [p[i] for p in pairs])


def write_sgm(path: Path, set_id: str, lang: str, docs: list[tuple[str, list[str]]], role: str) -> None:
    escape = {"&": "&amp;", '"': "&quot;", "<": "&lt;", ">": "&gt;"}
    lines = [f'<{role}set setid="{set_id}" srclang="any" trglang="{lang}">']
    for docid, segs in docs:
        lines.append(f'<doc sysid="{role}" docid="{docid}" genre="news" origlang="en">')
        lines += [f'<seg id="{i}">{"".join(escape.get(c, c) for c in seg)}</seg>' for i, seg in enumerate(segs, 1)]
        lines.append("</doc>")
    lines.append(f"</{role}set>")
    write_lines(path, lines)


def pool(offset: int):
    """take(n): the next n sentence triples from SENTS[offset:] (each corpus uses its own range)."""
    rows = iter(SENTS[offset:])
    return lambda n: [next(rows) for _ in range(n)]


def sgm_test(root: Path, name: str, langs: tuple[str, str], pairs: list[str], docs_rows: list[dict[str, str]]) -> None:
    """``name``-<pair>-src/ref sgm files for every pair in ``pairs`` ('' = pair-less dev.tgz names)."""
    half = len(docs_rows) // 2
    docs = [("doc.a", docs_rows[:half]), ("doc.b", docs_rows[half:])]
    for pair in pairs:
        for lang in langs:
            for role in ("src", "ref"):
                write_sgm(root / f"{name}{pair}-{role}.{lang}.sgm", name, lang,
                          [(d, [r[lang] for r in rows]) for d, rows in docs], role)


def make_wmt14(root: Path) -> None:
    take = pool(0)
    europarl = [(r["en"], r["de"]) for r in take(30)] + [(en, de) for en, de, _ in PLANTED]
    write_parallel(root / "training", "europarl-v7.de-en", [(de, en) for en, de in europarl], ("de", "en"))
    crawl = [(r["de"], r["en"]) for r in take(20)]
    crawl.insert(5, ("Ein Satz mit einem verirrten\rWagenrücklauf.", "A sentence with a stray\rcarriage return."))
    write_parallel(root, "commoncrawl.de-en", crawl, ("de", "en"))
    write_parallel(root / "training-parallel-nc-v11", "news-commentary-v11.de-en",
                   [(r["de"], r["en"]) for r in take(20)], ("de", "en"))
    dev, test_full = root / "dev", root / "test-full"
    entity_row = {"en": 'Tom & Jerry say "hello".', "de": 'Tom & Jerry sagen "hallo".'}
    sgm_test(dev, "newstest2011", ("en", "de"), [""], take(3) + [entity_row])
    sgm_test(dev, "newstest2012", ("en", "de"), [""], take(4))
    rows = take(4)  # newstest2013, the validation set: plain text only (dev.tgz has both)
    write_lines(dev / "newstest2013.en", [r["en"] for r in rows])
    write_lines(dev / "newstest2013.de", [r["de"] for r in rows])
    sgm_test(test_full, "newstest2014", ("en", "de"), ["-deen"], take(4))
    sgm_test(dev, "newstest2015", ("en", "de"), ["-deen", "-ende"], take(4))
    sgm_test(dev, "newstest2016", ("en", "de"), ["-deen", "-ende"], take(4))


def make_wmt19(root: Path) -> None:
    take = pool(200)
    write_lines(root / "europarl-v9.de-en.tsv.gz", [f"{r['de']}\t{r['en']}" for r in take(25)])
    write_parallel(root, "commoncrawl.de-en", [(r["de"], r["en"]) for r in take(15)], ("de", "en"))
    news = [f"{r['de']}\t{r['en']}" for r in take(15)]
    write_lines(root / "news-commentary-v14.de-en.tsv", news[:7] + [""] + news[7:])  # a blank document break
    write_lines(root / "wikititles-v1.de-en.tsv", ["Berlin\tBerlin", "Deutsche Bahn\tDeutsche Bahn", "Hund\tDog"])
    write_parallel(root, "rapid2019.de-en", [(r["de"], r["en"]) for r in take(15)], ("de", "en"))
    sgm_test(root / "sgm", "newstest2018", ("de", "en"), ["-deen"], take(4))
    sgm_test(root / "sgm", "newstest2019", ("de", "en"), ["-deen"], take(4))


def make_wmt16(root: Path) -> None:
    take = pool(400)
    europarl = [(r["ro"], r["en"]) for r in take(30)] + [(LONG_100, LONG_100)]
    write_parallel(root / "training-parallel-ep-v8", "europarl-v8.ro-en", europarl, ("ro", "en"))
    write_parallel(root, "SETIMES2.en-ro", [(r["en"], r["ro"]) for r in take(20)], ("en", "ro"))
    sgm_test(root / "dev", "newsdev2016", ("ro", "en"), ["-roen", "-enro"], take(4))
    sgm_test(root / "dev", "newstest2016", ("ro", "en"), ["-roen", "-enro"], take(4))


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if k not in DB_VARS}
    e["PATH"] = os.path.dirname(sys.executable) + os.pathsep + e.get("PATH", "")
    e["OMP_NUM_THREADS"] = "1"
    return e


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)


def copy_recipe(root: Path) -> Path:
    (root / "egs" / "wmt").mkdir(parents=True)
    os.symlink(ROOT / "utils", root / "utils")
    os.symlink(ROOT / "egs" / "TEMPLATE", root / "egs" / "TEMPLATE")
    mt = root / "egs" / "wmt" / "mt1"
    shutil.copytree(RECIPE, mt, ignore=shutil.ignore_patterns("data", "exp", "RESULTS.md", "__pycache__"))
    return mt


TINY = {"d_model": 32, "heads": 2, "d_ff": 64, "dropout": 0.0}
# A tiny LegoNN En->De model (encoder + x2 OLC + CTC, WEmb decoder) over the joint BPE.
TINY_ENDE = {
    "model": [
        {"name": "encoder", "type": "lego_encoder", "target": "de",
         "conf": {"input": {"type": "embedding", "vocab_size": "vocab:input"}, "layers": 1,
                  "olc": {"factor": 2, "max_len": 512, "layers": 1}, "ctc_vocab_size": "vocab:de", **TINY}},
        {"name": "decoder", "type": "lego_decoder", "target": "de",
         "conf": {"vocab_size": "vocab:de", "layers": 1, **TINY,
                  "ingestor": {"type": "wemb", "vocab_size": "vocab:de", "layers": 1}}},
    ],
    "data": {"train": "data/ende_train", "valid": "data/ende_valid",
             "input": {"file": "text.en", "vocab": "data/lang/ende.model"},
             "targets": {"de": {"file": "text.de", "vocab": "data/lang/ende.model"}}},
    "batching": {"max_tokens": 2000},
    "optim": {"lr": 1.0e-3},
    "scheduler": {"warmup_steps": 1},
    "trainer": {"max_steps": 2, "valid_every_steps": 1, "keep_best": 2, "log_every_steps": 1},
}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wmt_recipe")
    corpus = root / "corpus"
    make_wmt14(corpus / "wmt14")
    make_wmt19(corpus / "wmt19")
    make_wmt16(corpus / "wmt16")
    mt = copy_recipe(root)
    (mt / "db.sh").write_text(f"WMT14_ENDE={corpus / 'wmt14'}\nWMT19_DEEN={corpus / 'wmt19'}\nWMT16_ROEN={corpus / 'wmt16'}\n")
    # egs/europarl/asr1's English BPE, which --tasks asr decodes into
    asr = root / "egs" / "europarl" / "asr1"
    write_lines(asr / "data" / "train" / "text",
                [f"utt{i:03d} {' '.join(r['en'].lower().replace(',', '').replace('.', '').split())}"
                 for i, r in enumerate(SENTS[:200])])
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "legonn"), "vocab", "--kind", "bpe", "--size", "60",
                    "--texts", "data/train/text", "--out", "data/lang/en"], cwd=asr, check=True, capture_output=True)
    (mt / "conf" / "tiny_ende.yaml").write_text(yaml.safe_dump(TINY_ENDE))
    return mt


def read_text(path: Path) -> dict[str, str]:
    return dict((line.split(" ", 1) + [""])[:2] for line in path.read_text(encoding="utf-8").splitlines())


def test_wmt_recipe_end_to_end(recipe: Path):
    mt = recipe
    vocabs = ("ende:bpe:150:data/ende_train/text.en,data/ende_train/text.de:data/ende_test/text.de "
              "deroen:bpe:200:data/deen19_train/text.de,data/deen19_train/text.en,data/roen_train/text.ro,"
              "data/roen_train/text.en:data/roen_test/text.ro asr_de:bpe:100:data/deen19asr_train/text.de")
    # one tiny LegoNN model covers stages 4-8 (each legonn call costs seconds of torch start-up)
    proc = run(mt, "run.sh", "--tasks", "ende roen asr", "--vocabs", vocabs,
               "--experiments", "ende_lego:conf/tiny_ende.yaml", "--avg_num", "2",
               "--decodes", "ende_lego@ende_test", "--relative", "", "--decode_opts", "--beam 2")
    assert proc.returncode == 0, f"run.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    data = mt / "data"

    # filters: the planted pairs went where they should; the per-corpus stats say so
    stats = json.loads((data / "local" / "ende_train.filter.json").read_text())["corpora"]
    assert stats["europarl-v7.de-en"]["read"] == 35
    assert stats["europarl-v7.de-en"]["dropped"] == {"malformed": 0, "empty": 1, "too_long": 1, "ratio": 1}
    assert stats["commoncrawl.de-en"]["kept"] == 21 and stats["news-commentary-v11.de-en"]["kept"] == 20
    en, de = read_text(data / "ende_train" / "text.en"), read_text(data / "ende_train" / "text.de")
    assert list(en) == list(de) == sorted(en) and len(en) == 32 + 21 + 20
    stage1 = (mt / "exp" / "logs" / "stage1_data.log").read_text()  # each data dir validated
    assert "data/ende_train: OK (73 utterances)" in stage1 and "data/ende_newstest2011: OK (4 utterances)" in stage1
    assert en["ende-00-europarl-v7.de-en-000000034"] == LONG_100
    assert (en["ende-00-europarl-v7.de-en-000000035"], de["ende-00-europarl-v7.de-en-000000035"]) == \
        ("Good morning", "Guten Morgen allerseits")
    assert "Thank you." not in en.values() and "Hallo." not in de.values()
    # a CR inside a line neither ends it nor shifts the next pair
    assert en["ende-01-commoncrawl.de-en-000000006"] == "A sentence with a stray carriage return."
    assert de["ende-01-commoncrawl.de-en-000000007"] == SENTS[35]["de"]
    # En-De keeps the raw cased text; Ro-En is lowercased and tokenized, with comma-below Romanian
    assert en["ende-00-europarl-v7.de-en-000000001"] == SENTS[0]["en"]
    roen_stats = json.loads((data / "local" / "roen_train.filter.json").read_text())["corpora"]
    assert roen_stats["europarl-v8.ro-en"]["dropped"]["too_long"] == 1  # LONG_100 > 80 tokens
    ro = read_text(data / "roen_train" / "text.ro")
    assert len(ro) == 50 and not any(c in "".join(ro.values()) for c in "şţŞŢ")
    assert "citește" in " ".join(ro.values()) and all(t == t.lower() and t.endswith(" .") for t in ro.values())
    assert len(read_text(data / "deen19_train" / "text.de")) == 25 + 15 + 15 + 3 + 15
    deen_stats = json.loads((data / "local" / "deen19_train.filter.json").read_text())["corpora"]
    assert deen_stats["news-commentary-v14.de-en.tsv"]["dropped"] == {"malformed": 0, "empty": 1, "too_long": 0, "ratio": 0}
    asr_en = read_text(data / "deen19asr_train" / "text.en")
    assert all(t == t.lower() and "," not in t and "." not in t for t in asr_en.values())

    # test sets: SGML parsed (entities unescaped), plain text read, sets concatenated, 'text' = target side
    test = data / "ende_test"
    assert len(read_text(test / "text.en")) == 4 * 5 and (test / "text").read_text() == (test / "text.de").read_text()
    assert 'Tom & Jerry sagen "hallo".' in read_text(test / "text.de").values()
    # newstest2013 (plain text) is SENTS[77:81]: after 70 training and 3 + 4 newstest2011/2012 rows
    assert read_text(data / "ende_valid" / "text.en") == {f"newstest2013-{i:05d}": SENTS[76 + i]["en"] for i in range(1, 5)}
    for year in (2011, 2012, 2013, 2014, 2015, 2016):
        assert len(read_text(data / f"ende_newstest{year}" / "text.de")) == 4
    assert len(read_text(data / "roen_test" / "text")) == 4 and len(read_text(data / "deen19_valid" / "text.en")) == 4

    # the Europarl English BPE, shared by copy with its checksum and coverage on the WMT English
    model = (mt.parent.parent / "europarl" / "asr1" / "data" / "lang" / "en.model").read_bytes()
    assert (data / "lang" / "asr_en.model").read_bytes() == model
    path, digest = (data / "lang" / "asr_en.source").read_text().split()
    assert digest == hashlib.sha256(model).hexdigest() and path.endswith("europarl/asr1/data/lang/en.model")
    assert "word_oov_rate" in json.loads((data / "lang" / "asr_en.wmt_coverage.json").read_text())
    for name in ("ende", "deroen", "asr_de"):
        assert (data / "lang" / f"{name}.model").is_file()

    # training, averaging, export, decoding, scoring (SacreBLEU + compound-split tokenized BLEU)
    d = mt / "exp" / "ende_lego"
    assert (d / "averaged.pt").is_file()
    assert all((d / "modules" / m / "module.json").is_file() for m in ("encoder", "decoder"))
    for score_file in (d / "decode_ende_test" / "score.json", d / "decode_ende_test" / "ctc_encoder" / "score.json"):
        score = json.loads(score_file.read_text())
        assert score["n_utts"] == 20
        assert score["bleu"]["signature"].startswith("nrefs:1") and score["bleu_tok"]["compound_split"] is True
    results = (mt / "RESULTS.md").read_text()
    assert "| ende_lego | ende_test | text |" in results and "| ende_lego | ende_test | ctc_encoder |" in results
    assert "sacrebleu signatures" in results


def error_run(mt: Path, *args: str) -> subprocess.CompletedProcess:
    proc = run(mt, "local/data.sh", *args)
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc


def test_unset_and_missing_corpus_stop_with_one_line(tmp_path: Path):
    mt = copy_recipe(tmp_path)
    proc = error_run(mt)  # the committed db.sh: every path empty
    assert "WMT14_ENDE is not set in db.sh" in proc.stderr
    staged = run(mt, "run.sh", "--stop_stage", "1")
    assert staged.returncode != 0 and "WMT14_ENDE is not set in db.sh" in staged.stderr

    wmt19, wmt16 = tmp_path / "wmt19", tmp_path / "wmt16"
    make_wmt19(wmt19)
    make_wmt16(wmt16)
    (mt / "db.sh").write_text(f"WMT19_DEEN={wmt19}\nWMT16_ROEN={wmt16}\n")
    ro_file = wmt16 / "training-parallel-ep-v8" / "europarl-v8.ro-en.ro"
    ro_lines = ro_file.read_bytes()
    ro_file.unlink()
    proc = error_run(mt, "--tasks", "roen")
    assert "WMT16_ROEN=" in proc.stderr and "europarl-v8.ro-en.ro not found" in proc.stderr
    assert not (mt / "data").exists(), "nothing is written before every input is found"

    # unequal line counts show only while reading: the training dir never appears, half-written or not
    ro_file.write_bytes(b"".join(ro_lines.splitlines(keepends=True)[:2]))
    proc = error_run(mt, "--tasks", "roen")
    assert "europarl-v8.ro-en.en: 31 lines, but" in proc.stderr and "europarl-v8.ro-en.ro has 2" in proc.stderr
    assert (mt / "data" / "deen19_train").is_dir() and not (mt / "data" / "roen_train").exists()
    assert not list((mt / "data").glob(".*.tmp"))

    # a "TSV" without two columns is a format error, not noise to drop line by line
    write_lines(wmt19 / "wikititles-v1.de-en.tsv", ["Berlin", "Hund", "Katze"])
    proc = error_run(mt, "--tasks", "roen")
    assert "wikititles-v1.de-en.tsv: 3 of 3 lines do not have exactly two tab-separated columns" in proc.stderr


@pytest.mark.parametrize("conf", sorted(p.name for p in (RECIPE / "conf").glob("train_*.yaml")))
def test_real_configs_build(conf):
    """The paper-sized configs resolve and build (on the meta device: no memory, no time)."""
    import torch

    from legonn.config import resolve
    from legonn.engine.experiment import build_model

    config = resolve(RECIPE / "conf" / conf)
    sizes = {"vocab:input": 32000, "vocab:de": 32000, "vocab:en": 41000}
    with torch.device("meta"):
        model = build_model(config, sizes)
    encoder = model.blocks["encoder"]
    assert config["trainer"]["max_steps"] == 150000 and config["scheduler"]["warmup_steps"] == 35000
    assert config["optim"]["weight_decay"] == 0.1 and config["trainer"]["keep_best"] >= 10
    if encoder.olc is not None:
        assert encoder.olc.factor == 2
    if "decoder" in model.blocks:
        ingestor = model.blocks["decoder"].ingestor
        if conf.endswith("beamconv.yaml"):
            assert (ingestor.beam, ingestor.embed.embedding_dim) == (200, 300)


def test_finetune_config_layers_over_compose_output():
    """Table VI's fine-tuning: the paper's settings, in keys legonn train accepts (the layering over
    compose's finetune.yaml is exercised in tests/test_europarl_recipe.py)."""
    from legonn.config import resolve

    config = resolve(RECIPE / "conf" / "finetune_roen_transfer.yaml")
    assert config["optim"]["lr"] == 5.0e-6 and config["scheduler"]["warmup_steps"] == 15000
    assert config["trainer"]["max_steps"] == 4000 and config["data"]["train"] == "data/roen_train"
    run_sh = (RECIPE / "run.sh").read_text()
    assert "roen_transfer_wemb_ft:exp/roen_transfer_wemb/finetune.yaml,conf/finetune_roen_transfer.yaml" in run_sh


def test_modular_config_builds_on_the_table_one_model():
    """The Modular Transformers phase of the paper-size WEmb model resolves and builds (meta
    device; its teacher folders, trainer.init_modules, exist only after the recipe's stage 6)."""
    import torch

    from legonn.config import resolve
    from legonn.engine.experiment import build_model
    from legonn.nn.modular import ModularStudent, depths

    config = resolve(RECIPE / "conf" / "modular_ende_lego_wemb.yaml")
    assert set(config["trainer"].pop("init_modules")) == {"encoder", "decoder"}
    with torch.device("meta"):
        model = build_model(config, {"vocab:input": 32000, "vocab:de": 32000})
    assert isinstance(model, ModularStudent) and model.depth("encoder") == model.depth("decoder") == 6
    assert depths(6, model.granularities["decoder"]) == [1, 2, 3, 4, 5, 6]
    assert all(not p.requires_grad for p in model.teacher.parameters())
    assert config["criterion"]["type"] == "modular_kd" and config["trainer"]["callbacks"][0]["type"] == "module_replacing"
