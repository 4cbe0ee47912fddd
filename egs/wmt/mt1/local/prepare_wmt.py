#!/usr/bin/env python3
"""One WMT task's Kaldi-style data dirs from the raw WMT files (called by local/data.sh).

Writes data/<name>_train/text.{src,tgt} (filtered), data/<name>_valid and data/<name>_test
(text.{src,tgt} and text = the reference, i.e. the target side), and with several test sets
also data/<name>_<set> per set. Training pairs are dropped, in this order, when a side is
empty, when a side has more than --max_len tokens, or when the token ratio exceeds --ratio
either way (Moses clean-corpus-n's rules); tokens are counted after 13a tokenization. Valid and
test sets are normalised like the training text but never filtered.

Files are found by name anywhere below --corpus_dir (archives can be unpacked as they come),
with or without .gz:
  train corpus "X.de-en.tsv"  two tab-separated columns, in the order the name gives
  train corpus "X"            line-parallel files X.<src> and X.<tgt>
  test set "newstestYYYY"     SGML newstestYYYY[-<pair>]-{src,ref}.<lang>.sgm, else plain
                              newstestYYYY.<lang>
Each problem (missing or duplicate file, unequal line counts, src/ref segments that do not
match) stops the run with one line naming the file; --check_only only looks the files up.
"""
from __future__ import annotations

import argparse
import gzip
import html
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "utils"))
from text_norm import make_normaliser, token_counter  # noqa: E402

TSV_PAIR = re.compile(r"\.([a-z]{2,3})-([a-z]{2,3})\.tsv$")
SGM_DOC = re.compile(r"<doc\b[^>]*?\bdocid=\"([^\"]*)\"", re.IGNORECASE)
SGM_SEG = re.compile(r"<seg\b[^>]*?\bid=\"?([^\"\s>]+)\"?[^>]*>(.*?)</seg>", re.IGNORECASE | re.DOTALL)
MAX_MALFORMED_TSV = 0.01  # more than this share of lines without two columns: not a 2-column TSV


class PrepError(Exception):
    """One line for the user: what is wrong, naming the file."""


@dataclass
class Stats:
    read: int = 0
    kept: int = 0
    dropped: dict = field(default_factory=lambda: {"malformed": 0, "empty": 0, "too_long": 0, "ratio": 0})


# --- locating files ----------------------------------------------------------------------------


class CorpusDir:
    """Every file below a directory, by name (with or without .gz)."""

    def __init__(self, root: Path, label: str):
        self.root, self.label = root, label
        self.files: dict[str, list[Path]] = {}
        for dirpath, _, names in os.walk(root, followlinks=True):
            for name in names:
                self.files.setdefault(name[:-3] if name.endswith(".gz") else name, []).append(Path(dirpath) / name)

    def find(self, name: str) -> Optional[Path]:
        paths = self.files.get(name, [])
        if len(paths) > 1:
            raise PrepError(f"{self.label}: {name} found {len(paths)} times ({', '.join(map(str, sorted(paths)))}); keep one")
        return paths[0] if paths else None

    def need(self, name: str) -> Path:
        path = self.find(name)
        if path is None:
            raise PrepError(f"{self.label}: {name} not found below {self.root} (see README.md for the expected files)")
        return path


def open_text(path: Path):
    # newline="\n": only LF ends a line, so a stray CR inside a sentence cannot shift a parallel file
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    return open(path, encoding="utf-8", errors="replace", newline="\n")


@dataclass
class TrainCorpus:
    name: str
    tsv: Optional[Path] = None
    columns: tuple[str, str] = ("", "")
    src: Optional[Path] = None
    tgt: Optional[Path] = None


def locate_train(corpus: CorpusDir, name: str, src: str, tgt: str) -> TrainCorpus:
    m = TSV_PAIR.search(name)
    if m:
        if {m.group(1), m.group(2)} != {src, tgt}:
            raise PrepError(f"{corpus.label}: {name}: its language pair is not {src}-{tgt}")
        return TrainCorpus(name, tsv=corpus.need(name), columns=(m.group(1), m.group(2)))
    if name.endswith(".tsv"):
        raise PrepError(f"{corpus.label}: {name}: a TSV corpus name must say its column order, like X.de-en.tsv")
    return TrainCorpus(name, src=corpus.need(f"{name}.{src}"), tgt=corpus.need(f"{name}.{tgt}"))


@dataclass
class TestSet:
    name: str
    src: Path
    tgt: Path
    sgm: bool


def locate_test(corpus: CorpusDir, name: str, src: str, tgt: str) -> TestSet:
    """SGML if both sides have it (the pair named src->tgt first, then the reverse, then none),
    else the plain text files."""
    def first(lang: str, roles: tuple[str, str]) -> Optional[Path]:
        for pair in (f"-{src}{tgt}", f"-{tgt}{src}", ""):
            for role in roles:
                path = corpus.find(f"{name}{pair}-{role}.{lang}.sgm")
                if path is not None:
                    return path
        return None

    src_sgm, tgt_sgm = first(src, ("src", "ref")), first(tgt, ("ref", "src"))
    if src_sgm is not None and tgt_sgm is not None:
        return TestSet(name, src_sgm, tgt_sgm, sgm=True)
    src_txt, tgt_txt = corpus.find(f"{name}.{src}"), corpus.find(f"{name}.{tgt}")
    if src_txt is not None and tgt_txt is not None:
        return TestSet(name, src_txt, tgt_txt, sgm=False)
    raise PrepError(f"{corpus.label}: test set {name} not found below {corpus.root}: expected "
                    f"{name}-{src}{tgt}-src.{src}.sgm + {name}-{src}{tgt}-ref.{tgt}.sgm (or the -{tgt}{src}- or "
                    f"pair-less names), or plain {name}.{src} + {name}.{tgt}")


# --- reading -----------------------------------------------------------------------------------


def read_sgm(path: Path) -> list[tuple[tuple[str, str], str]]:
    """((docid, segid), text) in file order; entities unescaped."""
    with open_text(path) as f:
        content = f.read()
    docs = [(m.start(), m.group(1)) for m in SGM_DOC.finditer(content)]
    out, seen, d = [], set(), -1
    for m in SGM_SEG.finditer(content):
        while d + 1 < len(docs) and docs[d + 1][0] < m.start():
            d += 1
        key = (docs[d][1] if d >= 0 else "", m.group(1))
        if key in seen:
            raise PrepError(f"{path}: segment {key[1]} of document '{key[0]}' appears twice")
        seen.add(key)
        out.append((key, html.unescape(m.group(2))))
    if not out:
        raise PrepError(f"{path}: no <seg id=...>...</seg> segments (not a WMT SGML file?)")
    return out


def read_test_pairs(test: TestSet) -> list[tuple[str, str]]:
    if test.sgm:
        src, tgt = read_sgm(test.src), dict(read_sgm(test.tgt))
        src_keys = {k for k, _ in src}
        missing = [k for k, _ in src if k not in tgt]
        extra = [k for k in tgt if k not in src_keys]
        if missing or extra:
            k = (missing or extra)[0]
            raise PrepError(f"{test.tgt}: {len(missing)} segment(s) of {test.src.name} missing and {len(extra)} extra "
                            f"(first: document '{k[0]}' segment {k[1]}); src and ref must hold the same segments")
        return [(s, tgt[k]) for k, s in src]
    with open_text(test.src) as f:
        src = [line.rstrip("\n") for line in f]
    with open_text(test.tgt) as f:
        tgt = [line.rstrip("\n") for line in f]
    if len(src) != len(tgt):
        raise PrepError(f"{test.tgt}: {len(tgt)} lines, but {test.src} has {len(src)}; they must be line-parallel")
    return list(zip(src, tgt))


def train_pairs(c: TrainCorpus, src: str, tgt: str, stats: Stats) -> Iterator[tuple[int, str, str]]:
    """(line number, source, target) of one training corpus."""
    if c.tsv is not None:
        src_col, n = c.columns.index(src), 0
        with open_text(c.tsv) as f:
            for n, line in enumerate(f, 1):
                fields = line.rstrip("\n").split("\t")
                if not line.strip():  # a blank line (document break): an empty pair, as in plain files
                    fields = ["", ""]
                if len(fields) != 2:
                    stats.dropped["malformed"] += 1
                    continue
                yield n, fields[src_col], fields[1 - src_col]
        if stats.dropped["malformed"] > MAX_MALFORMED_TSV * max(n, 1):
            raise PrepError(f"{c.tsv}: {stats.dropped['malformed']} of {n} lines do not have exactly two tab-separated "
                            f"columns (expected {c.columns[0]}<TAB>{c.columns[1]})")
        return
    with open_text(c.src) as fs, open_text(c.tgt) as ft:
        n = 0
        for n, (s, t) in enumerate(zip(fs, ft), 1):
            yield n, s.rstrip("\n"), t.rstrip("\n")
        rest_s, rest_t = sum(1 for _ in fs), sum(1 for _ in ft)
    if rest_s or rest_t:
        longer, shorter = (c.src, c.tgt) if rest_s else (c.tgt, c.src)
        raise PrepError(f"{longer}: {n + rest_s + rest_t} lines, but {shorter} has {n}; they must be line-parallel")


# --- writing -----------------------------------------------------------------------------------


def safe_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class DataDir:
    """A data dir written under a temporary name and renamed into place only when complete
    (``with DataDir(...) as d:``; an error removes the partial copy)."""

    def __init__(self, out: Path, name: str, langs: tuple[str, ...], ref_lang: Optional[str] = None):
        self.final = out / name
        self.tmp = out / f".{name}.tmp"
        self.langs, self.ref_lang = langs, ref_lang

    def __enter__(self) -> "DataDir":
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.files = {lang: open(self.tmp / f"text.{lang}", "w", encoding="utf-8") for lang in self.langs}
        return self

    def write(self, utt: str, texts: dict[str, str]) -> None:
        for lang, f in self.files.items():
            f.write(f"{utt} {texts[lang]}\n")

    def __exit__(self, exc_type, exc, tb) -> None:
        for f in self.files.values():
            f.close()
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.ref_lang is not None:  # 'text' is what legonn.sh scores against
            shutil.copyfile(self.tmp / f"text.{self.ref_lang}", self.tmp / "text")
        shutil.rmtree(self.final, ignore_errors=True)
        os.replace(self.tmp, self.final)


def prepare_train(args, corpora: list[TrainCorpus], normalise: Callable[[str, str], str],
                  count: Callable[[str], int]) -> dict:
    report = {"ratio": args.ratio, "max_len": args.max_len, "corpora": {}}
    with DataDir(args.out, f"{args.name}_train", (args.src, args.tgt)) as out:
        # ids <task>-<corpus index>-<corpus>-<line>: written in sorted order, as Kaldi wants
        for i, c in enumerate(corpora):
            stats = Stats()
            prefix = f"{args.name}-{i:02d}-{safe_id(c.name)}"
            for n, s, t in train_pairs(c, args.src, args.tgt, stats):
                stats.read += 1
                s, t = normalise(s, args.src), normalise(t, args.tgt)
                if not s or not t:
                    stats.dropped["empty"] += 1
                    continue
                ls, lt = count(s), count(t)
                if ls > args.max_len or lt > args.max_len:
                    stats.dropped["too_long"] += 1
                    continue
                if ls > args.ratio * lt or lt > args.ratio * ls:
                    stats.dropped["ratio"] += 1
                    continue
                stats.kept += 1
                out.write(f"{prefix}-{n:09d}", {args.src: s, args.tgt: t})
            report["corpora"][c.name] = {"read": stats.read, "kept": stats.kept, "dropped": stats.dropped}
            print(f"{args.name}_train: {c.name}: {stats.kept} of {stats.read} pairs kept "
                  f"(dropped: {', '.join(f'{k} {v}' for k, v in stats.dropped.items())})", flush=True)
    return report


def prepare_eval(args, tests: list[TestSet], normalise: Callable[[str, str], str]) -> None:
    sets = {}
    for t in tests:
        rows = [(f"{safe_id(t.name)}-{k:05d}", normalise(s, args.src), normalise(r, args.tgt))
                for k, (s, r) in enumerate(read_test_pairs(t), 1)]
        # a source that normalises to nothing cannot be decoded, and scoring needs every id
        sets[t.name] = [row for row in rows if row[1]]
        if len(sets[t.name]) < len(rows):
            print(f"{t.name}: WARNING: {len(rows) - len(sets[t.name])} segment(s) with an empty source left out",
                  file=sys.stderr)
    groups = {f"{args.name}_valid": [tests[0].name], f"{args.name}_test": [t.name for t in tests[1:]]}
    if len(tests) > 2:  # several test sets: one dir each as well (per-year scores, paper Table VIII)
        groups.update({f"{args.name}_{t.name}": [t.name] for t in tests})
    for dirname, names in groups.items():
        rows = sorted(row for name in names for row in sets[name])
        with DataDir(args.out, dirname, (args.src, args.tgt), ref_lang=args.tgt) as d:
            for utt, s, r in rows:
                d.write(utt, {args.src: s, args.tgt: r})
        print(f"{dirname}: {len(rows)} pairs ({', '.join(names)})", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="task name: data dir prefix")
    p.add_argument("--label", required=True, help="how errors name the corpus (the db.sh variable)")
    p.add_argument("--corpus_dir", required=True, type=Path)
    p.add_argument("--src", required=True)
    p.add_argument("--tgt", required=True)
    p.add_argument("--train", required=True, help="comma-separated training corpus names")
    p.add_argument("--valid", required=True, help="the validation set's name (e.g. newstest2013)")
    p.add_argument("--tests", required=True, help="comma-separated test set names")
    p.add_argument("--max_len", type=int, required=True, help="drop training pairs with a longer side (tokens)")
    p.add_argument("--ratio", type=float, default=1.5, help="drop training pairs whose token ratio exceeds this")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--tokenize", action="store_true", help="store 13a-tokenized text")
    p.add_argument("--no_punct", action="store_true", help="strip punctuation (utils/text_norm.py)")
    p.add_argument("--out", type=Path, default=Path("data"))
    p.add_argument("--check_only", action="store_true", help="only look the files up")
    args = p.parse_args()
    try:
        if not args.corpus_dir.is_dir():
            raise PrepError(f"{args.label}={args.corpus_dir}: not a directory")
        corpus = CorpusDir(args.corpus_dir, f"{args.label}={args.corpus_dir}")
        corpora = [locate_train(corpus, c, args.src, args.tgt) for c in args.train.split(",") if c]
        tests = [locate_test(corpus, t, args.src, args.tgt) for t in [args.valid, *args.tests.split(",")] if t]
        if args.check_only:
            return 0
        opts = {"lowercase": args.lowercase, "tokenize": args.tokenize, "no_punct": args.no_punct}
        by_lang = {lang: make_normaliser(romanian=lang == "ro", **opts) for lang in (args.src, args.tgt)}
        normalise = lambda text, lang: by_lang[lang](text)  # noqa: E731
        count = (lambda text: len(text.split())) if args.tokenize else token_counter()
        args.out.mkdir(parents=True, exist_ok=True)
        prepare_eval(args, tests, normalise)
        report = prepare_train(args, corpora, normalise, count)
        stats_file = args.out / "local" / f"{args.name}_train.filter.json"
        stats_file.parent.mkdir(exist_ok=True)
        stats_file.with_suffix(".tmp").write_text(json.dumps(report, indent=1) + "\n")
        os.replace(stats_file.with_suffix(".tmp"), stats_file)
    except PrepError as exc:
        print(f"local/data.sh: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
