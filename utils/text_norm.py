"""Text normalisation shared by recipes whose vocabularies must agree.

egs/europarl/asr1 trains the English BPE that egs/wmt/mt1's ASR-transfer De-En models decode
into (paper Appendix A-B), so both recipes must normalise English with this one function.

Steps, each optional, in this order:
  romanian    s/t with cedilla -> with comma below (WMT16 Romanian mixes both spellings)
  lowercase
  tokenize    sacrebleu's 13a tokenizer (mteval-v13a), the one tokenized BLEU uses here
  no_punct    drop Unicode punctuation (categories P*), except inside words: an apostrophe or
              hyphen between two letters/digits ("it's", "co-operation"; a typographic apostrophe
              becomes '), a point or comma between two digits ("3.5", "1,000")

Recipes import it (local/*.py put utils/ on sys.path); nothing here reads files.
"""
from __future__ import annotations

import unicodedata
from typing import Callable

_RO_COMMA = str.maketrans({"ş": "ș", "Ş": "Ș", "ţ": "ț", "Ţ": "Ț"})
_WORD_INNER = {"'", "-", "’"}
_NUMBER_INNER = {".", ","}


def _is_punct(c: str) -> bool:
    return unicodedata.category(c).startswith("P")


def strip_punct(text: str) -> str:
    words = []
    for word in text.split():
        kept = []
        for i, c in enumerate(word):
            if _is_punct(c):
                left, right = word[i - 1: i], word[i + 1: i + 2]
                inner = (c in _WORD_INNER and left.isalnum() and right.isalnum()) or (
                    c in _NUMBER_INNER and left.isdigit() and right.isdigit())
                if not inner:
                    continue
                c = "'" if c == "’" else c
            kept.append(c)
        if kept:
            words.append("".join(kept))
    return " ".join(words)


def make_normaliser(*, romanian: bool = False, lowercase: bool = False, tokenize: bool = False,
                    no_punct: bool = False) -> Callable[[str], str]:
    """A str -> str function applying the chosen steps; whitespace always ends up single spaces."""
    tok = None
    if tokenize:
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

        tok = Tokenizer13a()

    def normalise(text: str) -> str:
        if romanian:
            text = text.translate(_RO_COMMA)
        if lowercase:
            text = text.lower()
        if tok is not None:
            text = tok(text)
        if no_punct:
            text = strip_punct(text)
        return " ".join(text.split())

    return normalise


def token_counter() -> Callable[[str], int]:
    """Tokens of a text as 13a tokenization counts them (for length filters on untokenized text)."""
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    return lambda text: len(tok(text).split())
