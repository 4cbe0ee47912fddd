"""Module vocabularies: token lists, checksums, sentencepiece models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from legonn.errors import LegonnError
from legonn.data.vocab import BLANK, EOS, PAD, SOS, SPECIALS, UNK, Vocabulary


def test_special_ids():
    assert (BLANK, UNK, SOS, EOS, PAD) == (0, 1, 2, 2, 0)
    assert SPECIALS == ("<blank>", "<unk>", "<sos/eos>")
    v = Vocabulary.from_symbols(["a", "b"])
    assert v.tokens[:3] == list(SPECIALS)
    assert v.tokens[BLANK] == "<blank>" and v.tokens[UNK] == "<unk>" and v.tokens[SOS] == "<sos/eos>"


def test_from_symbols_skips_specials_it_is_given():
    v = Vocabulary.from_symbols(["<blank>", "a", "<unk>", "b"])
    assert v.tokens == list(SPECIALS) + ["a", "b"]


def test_token_list_round_trip(tmp_path):
    v = Vocabulary.from_symbols(["AA", "B", "CH", "ZH"])
    manifest = v.save(tmp_path, "out")
    path = tmp_path / manifest["tokens"]
    assert path.read_text().splitlines() == v.tokens
    back = Vocabulary.from_token_list(path)
    assert back.tokens == v.tokens
    assert back.checksum == v.checksum == manifest["sha256"]
    assert manifest["size"] == len(v) == 7
    assert manifest["sentencepiece"] is None
    assert back.kind == "tokens"
    assert Vocabulary.load(path).tokens == v.tokens
    assert Vocabulary.from_manifest(tmp_path, manifest).checksum == v.checksum


def test_checksum_is_sha256_of_ordered_tokens():
    v = Vocabulary.from_symbols(["x", "y"])
    assert v.checksum == hashlib.sha256("\n".join(v.tokens).encode()).hexdigest()


def test_checksum_changes_when_order_changes():
    a = Vocabulary.from_symbols(["a", "b", "c"])
    b = Vocabulary.from_symbols(["a", "c", "b"])
    assert sorted(a.tokens) == sorted(b.tokens)
    assert a.checksum != b.checksum
    assert Vocabulary.from_symbols(["a", "b", "c"]).checksum == a.checksum
    assert Vocabulary.from_symbols(["a", "b", "c", "d"]).checksum != a.checksum


def test_encode_decode_token_list():
    v = Vocabulary.from_symbols(["hello", "world"])
    ids = v.encode("hello there world")
    assert ids == [3, UNK, 4]
    assert v.decode(ids) == "hello <unk> world"
    assert v.decode([SOS, 3, 4, SOS, PAD]) == "hello world"  # specials other than <unk> vanish


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "tokens.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "lines,line",
    [
        (["a", "b", "c"], 1),  # no specials at all
        (["<blank>", "<sos/eos>", "<unk>", "a"], 2),  # specials in the wrong order
        (["<blank>", "<unk>"], 3),  # too short
        (["<unk>", "<blank>", "<sos/eos>", "a"], 1),
    ],
)
def test_token_list_missing_specials_names_file_and_line(tmp_path, lines, line):
    path = write(tmp_path, lines)
    with pytest.raises(LegonnError) as exc:
        Vocabulary.from_token_list(path)
    assert f"{path}:{line}:" in str(exc.value)
    assert "<blank>" in str(exc.value)


def test_token_list_duplicate_names_file_and_both_lines(tmp_path):
    path = write(tmp_path, list(SPECIALS) + ["a", "b", "c", "b"])
    with pytest.raises(LegonnError) as exc:
        Vocabulary.from_token_list(path)
    message = str(exc.value)
    assert f"{path}:7:" in message and "'b'" in message and "line 5" in message


@pytest.mark.parametrize("bad,line", [("two words", 5), ("", 5), ("tab\there", 5)])
def test_token_list_blank_or_spaced_token(tmp_path, bad, line):
    path = write(tmp_path, list(SPECIALS) + ["a", bad, "c"])
    with pytest.raises(LegonnError, match=f"{path}:{line}:"):
        Vocabulary.from_token_list(path)


def test_missing_token_list(tmp_path):
    with pytest.raises(LegonnError, match="not found"):
        Vocabulary.from_token_list(tmp_path / "nope.txt")


# --- sentencepiece -------------------------------------------------------------------------

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the bird sang a song at dawn",
    "my friend reads books every night",
    "we walk to the station in the morning",
    "rain falls on the quiet town",
    "she writes letters to her mother",
    "the old man fixed the broken chair",
    "children play games after school",
    "the river flows past the mill",
]


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory) -> Path:
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("spm")
    corpus = d / "corpus.txt"
    lines = [f"{s} {w}" for s in SENTENCES for w in ("today", "again", "now", "too", "")][:50]
    corpus.write_text("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(d / "bpe"), vocab_size=60, model_type="bpe", character_coverage=1.0,
        num_threads=1, minloglevel=2,
    )
    return d / "bpe.model"


def test_sentencepiece_vocabulary(spm_model):
    v = Vocabulary.from_sentencepiece(spm_model)
    assert v.kind == "sentencepiece"
    assert v.tokens[:3] == list(SPECIALS)
    assert len(v) == 60  # the model's 60 pieces, its own <unk>/<s>/</s> replaced by ours
    assert len(set(v.tokens)) == len(v.tokens)
    assert Vocabulary.load(spm_model).checksum == v.checksum


@pytest.mark.parametrize("text", SENTENCES[:4] + ["the dog sang to the cat"])
def test_sentencepiece_round_trip(spm_model, text):
    v = Vocabulary.from_sentencepiece(spm_model)
    ids = v.encode(text)
    assert ids and all(3 <= i < len(v) for i in ids)  # nothing unknown, no specials
    assert v.decode(ids) == text


def test_sentencepiece_saved_with_its_model(spm_model, tmp_path):
    v = Vocabulary.from_sentencepiece(spm_model)
    manifest = v.save(tmp_path, "input")
    assert manifest["sentencepiece"] == "input.spm.model"
    back = Vocabulary.from_manifest(tmp_path, manifest)
    assert back.checksum == v.checksum
    assert back.decode(back.encode(SENTENCES[0])) == SENTENCES[0]


def test_not_a_sentencepiece_model(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(LegonnError, match=str(bad)):
        Vocabulary.from_sentencepiece(bad)
