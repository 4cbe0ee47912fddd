"""The one atomic writer and the one Kaldi table reader (legonn/fileio.py)."""
from __future__ import annotations

import os

import pytest

from legonn.errors import LegonnError
from legonn.fileio import atomic_dir, atomic_path, parse_table, read_table, write_atomic
from legonn.speech import datadir as D


def test_write_atomic_text_and_bytes(tmp_path):
    write_atomic(tmp_path / "sub" / "a.txt", "ä\n")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    assert (tmp_path / "sub" / "a.txt").read_text(encoding="utf-8") == "ä\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0o600


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.pt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_atomic_dir_replaces_a_folder_as_a_whole(tmp_path):
    out = tmp_path / "module"
    with atomic_dir(out) as tmp:
        (tmp / "a").write_text("1")
        (tmp / "b").write_text("2")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a").write_text("new")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"] and (out / "a").read_text() == "1"
    with atomic_dir(out) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in out.iterdir()] == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["module"]
    assert out.stat().st_mode & 0o777 != 0o700  # mkdtemp's folder is private; a module is meant to be shared


def test_invalid_utf8_is_one_error_naming_file_and_line(tmp_path):
    p = tmp_path / "text"
    p.write_bytes("u1 grüße\nu2 caf\xe9\n".encode("utf-8").replace(b"\xc3\xa9", b"\xe9"))
    with pytest.raises(LegonnError, match=rf"^{p}:2: not valid UTF-8 \(invalid continuation byte at byte 7 of the line\)$"):
        read_table(p)
    d = tmp_path / "data"  # data-dir tools follow the same policy
    d.mkdir()
    (d / "text").write_bytes(p.read_bytes())
    with pytest.raises(LegonnError, match=rf"{d / 'text'}:2: not valid UTF-8"):
        D.validate(d)


def test_one_reader_for_both_policies(tmp_path):
    """read_table refuses what the data-dir validator lists; both tolerate a byte-order mark."""
    p = tmp_path / "utt2dur"
    p.write_text("\ufeffu1 1.5\r\nu2 x\r\n\nu3 2\r\n", encoding="utf-8")
    lines, problems = parse_table(p)
    assert [line.key for line in lines] == ["u1", "u2", "u3"]
    assert [c for c, _ in problems] == ["line ending", "line ending", "malformed", "line ending"]
    with pytest.raises(LegonnError, match=rf"{p}:3: line has no utterance id \(empty line\)"):
        read_table(p)
    messages = D.read_lines(p).problems
    assert f"{p}:2: malformed line: 'x' is not a number" in [m for _, m in messages]
    p.write_text("\ufeffu1 1.5\r\nu2 2\r\n", encoding="utf-8")
    assert read_table(p) == {"u1": "1.5", "u2": "2"}


@pytest.mark.parametrize("data, message", [
    (b"u1 hello\nu2 he\x00llo\n", r":2: contains a NUL byte \(at character 6\)"),
    (b"u1 \xed\xa0\x80 lone surrogate\n", r":1: not valid UTF-8"),  # UTF-8 of an unpaired surrogate
])
def test_nul_bytes_and_encoded_surrogates_are_refused(tmp_path, data, message):
    p = tmp_path / "text"
    p.write_bytes(data)
    with pytest.raises(LegonnError, match=message):
        read_table(p)
    d = tmp_path / "data"
    d.mkdir()
    (d / "text").write_bytes(data)
    with pytest.raises(LegonnError, match=message):
        D.validate(d)
