"""Plain-file helpers shared by every command (no torch import, so light tools stay fast):
Kaldi "table" files (``key value`` lines) and atomic writes.

Text is UTF-8 (a byte-order mark is tolerated); undecodable bytes are one error naming file and
line. Every file or folder legonn writes goes through :func:`atomic_path` or :func:`atomic_dir`:
a reader sees the old version or the new one, never half of one.
"""
from __future__ import annotations

import codecs
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from legonn.errors import LegonnError

log = logging.getLogger(__name__)


def text_lines(path: str | os.PathLike, what: str = "file") -> Iterator[str]:
    """The lines of a UTF-8 text file, read as they come, without their ``\\n`` (a ``\\r`` before
    it is kept); a byte-order mark is skipped; a NUL byte is an error (no text tool expects one)."""
    path = Path(path)
    if not path.is_file():
        raise LegonnError(f"{path}: {what} not found")
    with open(path, "rb") as f:
        for no, data in enumerate(f, 1):
            if no == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            try:
                line = data.decode("utf-8").removesuffix("\n")
            except UnicodeDecodeError as exc:  # Latin-1 bytes, an encoded unpaired surrogate, ...
                raise LegonnError(f"{path}:{no}: not valid UTF-8 ({exc.reason} at byte {exc.start + 1} of the line)") from None
            if "\x00" in line:
                raise LegonnError(f"{path}:{no}: contains a NUL byte (at character {line.index(chr(0)) + 1}): not a text file")
            yield line


@dataclass
class Line:
    no: int
    key: str
    value: str  # everything after the key, stripped
    raw: str

    @property
    def fields(self) -> list[str]:
        return self.raw.split()


Problem = tuple[str, str]  # (category, "file:line: message")


def table_rows(
    path: str | os.PathLike, check: Optional[Callable[[list[str]], Optional[str]]] = None, what: str = "file"
) -> Iterator[Line | Problem]:
    """Each line of a Kaldi table as a :class:`Line`, or as a problem when it has no key or
    ``check(fields)`` finds fault with it; a Windows line ending is a problem, and its line is kept."""
    path = Path(path)
    for no, raw in enumerate(text_lines(path, what), 1):
        where = f"{path}:{no}"
        if raw.endswith("\r"):
            yield "line ending", f"{where}: Windows line ending (\\r); run dos2unix or fix"
            raw = raw.rstrip("\r")
        if not raw.strip() or raw[0].isspace():
            yield "malformed", f"{where}: line has no utterance id ({'empty line' if not raw.strip() else 'it starts with whitespace'})"
            continue
        fault = check(raw.split()) if check is not None else None
        if fault:
            yield "malformed", f"{where}: {fault}"
            continue
        key = raw.split(maxsplit=1)[0]  # Kaldi separates the key by a space or a tab
        yield Line(no, key, raw[len(key):].strip(), raw)


def parse_table(
    path: str | os.PathLike, check: Optional[Callable[[list[str]], Optional[str]]] = None, what: str = "file"
) -> tuple[list[Line], list[Problem]]:
    """The lines of a table and the problems of those left out: a validator lists every problem."""
    rows = list(table_rows(path, check, what))
    return [r for r in rows if isinstance(r, Line)], [r for r in rows if not isinstance(r, Line)]


def unique(path: str | os.PathLike, lines: Iterable[Line]) -> Iterator[Line]:
    """The lines, refusing a repeated key (naming both lines) as Kaldi's own readers do."""
    first: dict[str, int] = {}
    for line in lines:
        if line.key in first:
            raise LegonnError(f"{path}:{line.no}: utterance id '{line.key}' appears twice (first on line {first[line.key]})")
        first[line.key] = line.no
        yield line


def read_table(path: str | os.PathLike, what: str = "file", allow_empty_value: bool = True, allow_empty: bool = False) -> dict[str, str]:
    """``key value`` lines -> insertion-ordered dict of stripped values (read as a stream: training
    texts can be large).

    A line with no key, a repeated key, an empty value (unless allowed), undecodable UTF-8 or an
    empty file (unless allowed) is a LegonnError naming file and line. Windows line endings pass.
    """

    def lines() -> Iterator[Line]:
        for row in table_rows(path, what=what):
            if not isinstance(row, Line):
                if row[0] != "line ending":
                    raise LegonnError(row[1])
                continue
            if not row.value and not allow_empty_value:
                raise LegonnError(f"{path}:{row.no}: utterance '{row.key}' has an empty value")
            yield row

    table = {line.key: line.value for line in unique(path, lines())}
    if not table and not allow_empty:
        raise LegonnError(f"{path}: no entries")
    return table


def inside(directory: str | os.PathLike, name: object, where: str) -> Path:
    """``directory / name`` for a file name a descriptor (``where``) records, refused in one line
    when it could lead out of ``directory``: not a plain relative string, absolute, with ``..``,
    or resolving (through symlinks) to a place outside it. A folder made by someone else is data:
    reading it must never read anything else."""
    directory = Path(directory)
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise LegonnError(f"{where}: file name {name!r} is not a relative name inside {directory}")
    path = directory / name
    if not path.resolve().is_relative_to(directory.resolve()):
        raise LegonnError(f"{where}: {name!r} leads outside {directory} (a symbolic link to {path.resolve()})")
    return path


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        _public_mode(tmp)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk, a folder made read-only meanwhile, a quota
        tmp.unlink(missing_ok=True)
        raise _unwritable(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unwritable(path: Path, exc: OSError) -> LegonnError:
    kept = f"; the previous {path.name} is kept as it was" if path.exists() else "; nothing was written"
    return LegonnError(f"{path}: cannot write ({exc.strerror or exc}){kept}")


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        raise _unwritable(path, exc) from None
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
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "x").exists() and not path.exists():
            os.rename(old / "x", path)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure as PNG through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


LOCK = ".legonn.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextmanager
def exclusive(directory: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``directory``'s lock (``.legonn.lock``: pid, host, command) while the body writes there,
    so that two jobs never write one experiment or output folder. A lock held by a live process
    is refused in one line naming it; one left by a dead process on this host (a kill -9) is taken
    over with a warning; one from another host is refused (its process cannot be checked from here)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK
    host, pid = socket.gethostname(), os.getpid()
    mine = json.dumps({"pid": pid, "host": host, "what": what, "command": " ".join(sys.argv)}) + "\n"
    for _ in range(3):  # a lock removed between our two looks is simply tried again
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text(encoding="utf-8"))
                other_pid, other_host = int(holder["pid"]), str(holder["host"])
            except FileNotFoundError:
                continue
            except (ValueError, KeyError, TypeError):
                raise LegonnError(f"{lock}: unreadable lock file; if no job writes {directory}, remove it") from None
            if other_host != host:
                raise LegonnError(f"{directory}: in use by {holder.get('what', 'a job')} (pid {other_pid} on host {other_host}, "
                                  f"{lock}); if that job is gone, remove the lock file")
            if other_pid != pid and _alive(other_pid):
                raise LegonnError(f"{directory}: in use by {holder.get('what', 'a job')} (pid {other_pid}: "
                                  f"{holder.get('command', '?')}); wait for it or stop it")
            if other_pid != pid:
                log.warning("%s: taking over the lock of pid %d on %s, which is no longer running", directory, other_pid, host)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(mine)
        break
    else:
        raise LegonnError(f"{lock}: could not take the lock (it keeps changing hands)")
    try:
        yield
    finally:
        try:
            if json.loads(lock.read_text(encoding="utf-8")).get("pid") == pid:
                lock.unlink()
        except (OSError, ValueError):
            pass
