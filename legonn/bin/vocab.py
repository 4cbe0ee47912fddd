"""Build a module vocabulary (sentencepiece BPE/unigram or a token list) and report coverage."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

from legonn.data.vocab import SPECIALS, UNK, Vocabulary
from legonn.errors import LegonnError
from legonn.fileio import read_table, write_atomic


def read_texts(files: list[str]) -> list[str]:
    """Kaldi ``utt_id text`` files -> the texts."""
    return [text for f in files for text in read_table(f).values()]


def train_sentencepiece(texts: list[str], kind: str, size: int, out: Path) -> Path:
    import sentencepiece as spm

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
        prefix = Path(tmp) / "model"
        try:
            spm.SentencePieceTrainer.train(
                input=str(corpus), model_prefix=str(prefix), vocab_size=size, model_type=kind,
                character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                input_sentence_size=2_000_000, shuffle_input_sentence=True, minloglevel=2,
            )
        except RuntimeError as exc:
            raise LegonnError(f"sentencepiece could not build a {size}-piece {kind} model ({str(exc).splitlines()[0]})") from None
        os.replace(f"{prefix}.model", out.with_suffix(".model"))
    return out.with_suffix(".model")


def coverage(vocab: Vocabulary, train_texts: list[str], eval_texts: list[str]) -> dict[str, float]:
    seen = Counter(w for t in train_texts for w in t.split())
    words = [w for t in eval_texts for w in t.split()]
    types = set(words)
    ids = [i for t in eval_texts for i in vocab.encode(t)]
    return {
        "eval_words": len(words),
        "word_oov_rate": sum(w not in seen for w in words) / max(len(words), 1),
        "word_type_oov_rate": sum(w not in seen for w in types) / max(len(types), 1),
        "unk_token_rate": sum(i == UNK for i in ids) / max(len(ids), 1),
        "tokens_per_word": len(ids) / max(len(words), 1),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="legonn vocab", description=__doc__)
    p.add_argument("--kind", choices=("bpe", "unigram", "tokens"), required=True,
                   help="sentencepiece bpe/unigram, or 'tokens': the whitespace-separated symbols (e.g. phonemes)")
    p.add_argument("--size", type=int, default=0, help="number of sentencepiece pieces")
    p.add_argument("--texts", required=True, help="comma-separated Kaldi text files to learn from")
    p.add_argument("--eval_texts", default="", help="comma-separated Kaldi text files to report coverage on")
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.model (sentencepiece), PREFIX.tokens.txt, PREFIX.report.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    texts = read_texts([f for f in args.texts.split(",") if f])
    if args.kind == "tokens":
        symbols = sorted({s for t in texts for s in t.split()} - set(SPECIALS))
        vocab = Vocabulary.from_symbols(symbols)
    else:
        if args.size <= 0:
            raise LegonnError("--size must be a positive number of pieces for sentencepiece")
        vocab = Vocabulary.from_sentencepiece(train_sentencepiece(texts, args.kind, args.size, out))
    write_atomic(out.with_suffix(".tokens.txt"), "\n".join(vocab.tokens) + "\n")
    report = {"kind": args.kind, "size": len(vocab), "sha256": vocab.checksum, "train_sentences": len(texts),
              "train_texts": args.texts.split(",")}
    if args.eval_texts:
        report["coverage"] = coverage(vocab, texts, read_texts(args.eval_texts.split(",")))
    write_atomic(out.with_suffix(".report.json"), json.dumps(report, indent=1) + "\n")
    line = f"{out}: {len(vocab)} symbols ({args.kind}) from {len(texts)} sentences"
    if "coverage" in report:
        c = report["coverage"]
        line += (f"; eval word OOV {100 * c['word_oov_rate']:.2f}% (types {100 * c['word_type_oov_rate']:.2f}%), "
                 f"<unk> {100 * c['unk_token_rate']:.3f}%, {c['tokens_per_word']:.2f} tokens/word")
    print(line)
    return 0
