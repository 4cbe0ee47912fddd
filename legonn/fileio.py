"""Plain-file helpers shared by every command (no torch import, so light tools stay fast):
Kaldi "table" files (``key value`` lines) and atomic writes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from legonn.errors import LegonnError


def read_table(path: str | os.PathLike, what: str = "file", allow_empty_value: bool = True, allow_empty: bool = False) -> dict[str, str]:
    """``key value`` lines -> insertion-ordered dict of stripped values.

    A blank line or one starting with whitespace (no key), a repeated key, an empty value
    (unless allowed), undecodable UTF-8 or an empty file (unless allowed) is a LegonnError
    naming file and line, as Kaldi's own readers refuse them.
    """
    path = Path(path)
    if not path.is_file():
        raise LegonnError(f"{path}: {what} not found")
    table: dict[str, str] = {}
    first: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: tolerate a byte-order mark
            for n, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip() or line[0].isspace():
                    raise LegonnError(f"{path}:{n}: line has no utterance id")
                key, *rest = line.split(maxsplit=1)  # Kaldi separates the key by a space or a tab
                value = rest[0] if rest else ""
                if key in table:
                    raise LegonnError(f"{path}:{n}: utterance id '{key}' appears twice (first on line {first[key]})")
                if not value.strip() and not allow_empty_value:
                    raise LegonnError(f"{path}:{n}: utterance '{key}' has an empty value")
                table[key], first[key] = value.strip(), n
    except UnicodeDecodeError as exc:
        raise LegonnError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not table and not allow_empty:
        raise LegonnError(f"{path}: no entries")
    return table


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike) -> None:
    """Give a temp file or dir (mkstemp/mkdtemp make them private) the usual umask permissions."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def write_atomic(path: str | os.PathLike, text: str | bytes) -> None:
    """Write through a temporary sibling and rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        public_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure as PNG through a temporary sibling and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        public_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
