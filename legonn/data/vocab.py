"""Module vocabularies: the designer-chosen symbol sets that LegoNN modules talk in.

Every vocabulary, token list or sentencepiece, starts with the same three symbols:
index 0 ``<blank>`` (the CTC blank, also padding), 1 ``<unk>``, 2 ``<sos/eos>``.
Its identity is the SHA-256 of its ordered token list: two modules may be chained when the
producer's output checksum equals the consumer's input checksum.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from legonn.errors import LegonnError
from legonn.fileio import inside, read_table, write_atomic

BLANK, UNK, SOS, EOS = 0, 1, 2, 2
PAD = BLANK
SPECIALS = ("<blank>", "<unk>", "<sos/eos>")


class Vocabulary:
    def __init__(self, tokens: list[str], spm_model: Optional[str] = None, source: str = "<memory>"):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            line = next(i for i, want in enumerate(SPECIALS) if i >= len(tokens) or tokens[i] != want) + 1
            raise LegonnError(f"{source}:{line}: a vocabulary must start with {', '.join(SPECIALS)}")
        seen: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not tok or any(c.isspace() for c in tok):
                raise LegonnError(f"{source}:{i + 1}: token '{tok}' is empty or contains whitespace")
            if tok in seen:
                raise LegonnError(f"{source}:{i + 1}: token '{tok}' repeats line {seen[tok] + 1}")
            seen[tok] = i
        self.tokens = list(tokens)
        self.index = seen
        self.spm_model = spm_model
        self.source = source
        self._spm = None
        if spm_model is not None:
            import sentencepiece as spm

            self._spm = spm.SentencePieceProcessor(model_file=str(spm_model))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def kind(self) -> str:
        return "sentencepiece" if self._spm is not None else "tokens"

    @property
    def checksum(self) -> str:
        return hashlib.sha256("\n".join(self.tokens).encode("utf-8")).hexdigest()

    @classmethod
    def from_token_list(cls, path: str | os.PathLike) -> "Vocabulary":
        """One token per line; the first lines must be the shared special symbols."""
        path = Path(path)
        if not path.is_file():
            raise LegonnError(f"{path}: token list not found")
        tokens = path.read_text(encoding="utf-8").splitlines()
        return cls(tokens, source=str(path))

    @classmethod
    def from_symbols(cls, symbols: Iterable[str]) -> "Vocabulary":
        return cls(list(SPECIALS) + [s for s in symbols if s not in SPECIALS])

    @classmethod
    def from_sentencepiece(cls, model: str | os.PathLike) -> "Vocabulary":
        """Specials, then every piece of the model except its own control and unknown pieces."""
        model = Path(model)
        if not model.is_file():
            raise LegonnError(f"{model}: sentencepiece model not found")
        import sentencepiece as spm

        try:
            sp = spm.SentencePieceProcessor(model_file=str(model))
        except (RuntimeError, OSError) as exc:
            raise LegonnError(f"{model}: not a sentencepiece model ({exc})") from None
        pieces = [
            sp.id_to_piece(i)
            for i in range(sp.get_piece_size())
            if not (sp.is_control(i) or sp.is_unknown(i))
        ]
        return cls(list(SPECIALS) + pieces, spm_model=str(model), source=str(model))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """A ``.model`` file is sentencepiece; anything else is a token list."""
        return cls.from_sentencepiece(path) if str(path).endswith(".model") else cls.from_token_list(path)

    def encode(self, text: str) -> list[int]:
        pieces = self._spm.encode(text, out_type=str) if self._spm is not None else text.split()
        return [self.index.get(p, UNK) for p in pieces]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [self.tokens[i] for i in ids if i >= len(SPECIALS) or i == UNK]
        if self._spm is not None:
            return self._spm.decode_pieces(["<unk>" if p == "<unk>" else p for p in pieces])
        return " ".join(pieces)

    def save(self, directory: str | os.PathLike, prefix: str) -> dict:
        """Write the token list (and the sentencepiece model) into ``directory``; return its manifest."""
        directory = Path(directory)
        tokens_file = f"{prefix}.tokens.txt"
        (directory / tokens_file).write_text("\n".join(self.tokens) + "\n", encoding="utf-8")
        manifest = {"tokens": tokens_file, "size": len(self), "sha256": self.checksum, "sentencepiece": None}
        if self.spm_model is not None:
            spm_file = f"{prefix}.spm.model"
            shutil.copyfile(self.spm_model, directory / spm_file)
            manifest["sentencepiece"] = spm_file
        return manifest

    @classmethod
    def from_manifest(cls, directory: str | os.PathLike, manifest: dict, where: str = "module.json") -> "Vocabulary":
        """The vocabulary a folder's descriptor (``where``) records; its files must lie inside ``directory``."""
        directory = Path(directory)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), str):
            raise LegonnError(f"{where}: a vocabulary entry needs its files and sha256, got {manifest!r}")
        if manifest.get("sentencepiece"):
            vocab = cls.from_sentencepiece(inside(directory, manifest["sentencepiece"], where))
        else:
            vocab = cls.from_token_list(inside(directory, manifest.get("tokens"), where))
        if vocab.checksum != manifest["sha256"]:
            raise LegonnError(
                f"{directory / manifest['tokens']}: vocabulary checksum {vocab.checksum[:12]} does not match "
                f"the recorded {manifest['sha256'][:12]} (file edited or replaced)"
            )
        return vocab


# --- building a vocabulary from Kaldi text files (``legonn vocab``) --------------------------


def read_texts(files: Iterable[str | os.PathLike]) -> list[str]:
    """Kaldi ``utt_id text`` files -> the texts."""
    return [text for f in files for text in read_table(f).values()]


def train_sentencepiece(texts: list[str], kind: str, size: int, model: Path) -> Path:
    """A ``size``-piece sentencepiece ``kind`` (bpe, unigram) model of ``texts`` written to ``model``."""
    import sentencepiece as spm

    model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model.parent) as tmp:
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
        write_atomic(model, Path(f"{prefix}.model").read_bytes())
    return model


def coverage(vocab: Vocabulary, train_texts: list[str], eval_texts: list[str]) -> dict[str, float]:
    """How well a vocabulary learnt on ``train_texts`` covers ``eval_texts``: word OOV rates
    (tokens and types) against the training words, <unk> rate and tokens per word."""
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


def build_vocabulary(kind: str, texts: Sequence[str], out: str | os.PathLike, size: int = 0,
                     eval_texts: Sequence[str] = ()) -> dict[str, Any]:
    """Learn a vocabulary from Kaldi text files and write ``OUT.model`` (sentencepiece kinds),
    ``OUT.tokens.txt`` and ``OUT.report.json`` (with coverage of ``eval_texts``); return the report.

    ``kind``: sentencepiece ``bpe``/``unigram`` of ``size`` pieces, or ``tokens``: every
    whitespace-separated symbol of the texts (e.g. phonemes)."""
    out = Path(out)
    sentences = read_texts(texts)
    if kind == "tokens":
        vocab = Vocabulary.from_symbols(sorted({s for t in sentences for s in t.split()} - set(SPECIALS)))
    else:
        if size <= 0:
            raise LegonnError("--size must be a positive number of pieces for sentencepiece")
        vocab = Vocabulary.from_sentencepiece(train_sentencepiece(sentences, kind, size, out.with_suffix(".model")))
    write_atomic(out.with_suffix(".tokens.txt"), "\n".join(vocab.tokens) + "\n")
    report: dict[str, Any] = {"kind": kind, "size": len(vocab), "sha256": vocab.checksum,
                              "train_sentences": len(sentences), "train_texts": list(texts)}
    if eval_texts:
        report["coverage"] = coverage(vocab, sentences, read_texts(eval_texts))
    write_atomic(out.with_suffix(".report.json"), json.dumps(report, indent=1) + "\n")
    return report
