"""Plain-file helpers shared by every command (no torch import, so light tools stay fast):
Kaldi "table" files (``key value`` lines) and atomic writes.

Text is UTF-8 (a byte-order mark is tolerated); undecodable bytes are one error naming file and
line. Every file or folder legonn writes goes through :func:`atomic_path` or :func:`atomic_dir`:
a reader sees the old version or the new one, never half of one.
"""
from __future__ import annotations

import codecs
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from legonn.errors import LegonnError


def text_lines(path: str | os.PathLike, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file, without their ``\\n`` (a ``\\r`` before it is kept)."""
    path = Path(path)
    if not path.is_file():
        raise LegonnError(f"{path}: {what} not found")
    data = path.read_bytes()
    data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise LegonnError(f"{path}:{line}: not valid UTF-8 ({exc.reason} at byte {column} of the line)") from None
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


@dataclass
class Line:
    no: int
    key: str
    value: str  # everything after the key, stripped
    fields: list[str]
    raw: str


def parse_table(
    path: str | os.PathLike, check: Optional[Callable[[list[str]], Optional[str]]] = None, what: str = "file"
) -> tuple[list[Line], list[tuple[str, str]]]:
    """The ``key value`` lines of a Kaldi table, and (category, "file:line: message") for each line
    left out: a line with no key, or one ``check(fields)`` finds fault with. A Windows line ending is
    reported but its line kept. Collecting rather than raising lets a validator list every problem."""
    path = Path(path)
    lines: list[Line] = []
    problems: list[tuple[str, str]] = []
    for no, raw in enumerate(text_lines(path, what), 1):
        where = f"{path}:{no}"
        if raw.endswith("\r"):
            problems.append(("line ending", f"{where}: Windows line ending (\\r); run dos2unix or fix"))
            raw = raw.rstrip("\r")
        if not raw.strip() or raw[0].isspace():
            why = "empty line" if not raw.strip() else "it starts with whitespace"
            problems.append(("malformed", f"{where}: line has no utterance id ({why})"))
            continue
        fields = raw.split()  # Kaldi separates the key by a space or a tab
        fault = check(fields) if check is not None else None
        if fault:
            problems.append(("malformed", f"{where}: {fault}"))
            continue
        lines.append(Line(no, fields[0], raw[len(fields[0]):].strip(), fields, raw))
    return lines, problems


def unique(path: str | os.PathLike, lines: list[Line]) -> dict[str, Line]:
    """Lines by key; a repeated key is an error naming both lines, as Kaldi's own readers refuse it."""
    table: dict[str, Line] = {}
    for line in lines:
        if line.key in table:
            raise LegonnError(f"{path}:{line.no}: utterance id '{line.key}' appears twice (first on line {table[line.key].no})")
        table[line.key] = line
    return table


def read_table(path: str | os.PathLike, what: str = "file", allow_empty_value: bool = True, allow_empty: bool = False) -> dict[str, str]:
    """``key value`` lines -> insertion-ordered dict of stripped values.

    A line with no key, a repeated key, an empty value (unless allowed), undecodable UTF-8 or an
    empty file (unless allowed) is a LegonnError naming file and line. Windows line endings pass.
    """
    lines, problems = parse_table(path, what=what)
    for category, message in problems:
        if category != "line ending":
            raise LegonnError(message)
    table = unique(path, lines)
    if not allow_empty_value:
        for key, line in table.items():
            if not line.value:
                raise LegonnError(f"{path}:{line.no}: utterance '{key}' has an empty value")
    if not table and not allow_empty:
        raise LegonnError(f"{path}: no entries")
    return {key: line.value for key, line in table.items()}


def read_descriptor(path: Path, fmt: str, version: int, what: str) -> dict:
    """A versioned JSON description (module.json, composed.json): an object whose ``format`` is
    ``fmt`` and whose ``format_version`` this legonn can read; anything else is one clear error."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LegonnError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(meta, dict):
        raise LegonnError(f"{path}: not a {what} (a JSON {type(meta).__name__}, not an object)")
    if meta.get("format") != fmt:
        raise LegonnError(f"{path}: not a {what} (format {meta.get('format')!r})")
    if meta.get("format_version", 0) > version:
        raise LegonnError(f"{path}: format version {meta['format_version']} is newer than this legonn reads ({version})")
    return meta


def _public_mode(path: Path) -> None:
    """The usual umask permissions: mkstemp and mkdtemp make their files and folders private."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of ``path`` for a writer that wants a file name (torch.save, safetensors,
    kaldiio, matplotlib): when the block succeeds it is synced to disk and renamed over ``path``;
    when it fails it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        _public_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write text (as UTF-8) or bytes through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder that replaces the folder ``path`` (if any) when the block
    succeeds, its files synced and shareable; removed when the block fails, leaving ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = None
    try:
        yield tmp
        for item in [tmp, *tmp.rglob("*")]:
            if item.is_file():
                _fsync(item)
            _public_mode(item)
        if path.exists():  # swap: the old folder moves aside, then goes once the new one is in place
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.rename(path, old / "x")
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "x").exists() and not path.exists():
            os.rename(old / "x", path)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure as PNG through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
