"""Reading a composed model folder (``composed.json`` + ``parts/``): the format ``legonn compose``
writes (:mod:`legonn.modules.compose`), read wherever a list of module folders is accepted."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from legonn.errors import LegonnError
from legonn.fileio import inside, read_descriptor

FORMAT = "legonn-composed"
FORMAT_VERSION = 1
INDEX = "composed.json"
PARTS = "parts"


def is_composed(directory: str | os.PathLike) -> bool:
    return (Path(directory) / INDEX).is_file()


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_composed(directory: str | os.PathLike) -> dict[str, Any]:
    """composed.json of ``directory``, checked for format and version."""
    directory = Path(directory)
    index = directory / INDEX
    if not index.is_file():
        raise LegonnError(f"{directory}: not a composed legonn model (no {INDEX})")
    meta = read_descriptor(index, FORMAT, FORMAT_VERSION, "composed model description")
    parts = meta.get("parts")
    if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) and "folder" in p for p in parts):
        raise LegonnError(f"{index}: 'parts' must be a non-empty list of parts with a 'folder'")
    return meta


def part_folders(directory: str | os.PathLike, verify: bool = True) -> list[Path]:
    """The part folders of a composed model, in chain order; their weights are checked against
    the sha256 in composed.json (a replaced or damaged part is refused)."""
    directory = Path(directory)
    meta = read_composed(directory)
    folders = []
    for part in meta["parts"]:
        folder = inside(directory, part["folder"], str(directory / INDEX))
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise LegonnError(f"{directory}: part '{part.get('name')}' is missing ({weights} not found)")
        if verify and part.get("weights_sha256"):
            got = file_sha256(weights)
            if got != part["weights_sha256"]:
                raise LegonnError(
                    f"{weights}: sha256 {got[:12]} does not match {part['weights_sha256'][:12]} recorded in "
                    f"{directory / INDEX} (part replaced or damaged)"
                )
        folders.append(folder)
    return folders


def expand(directories: list[str | os.PathLike]) -> list[Path]:
    """Module folders, with every composed folder replaced by its parts."""
    out: list[Path] = []
    for d in directories:
        out.extend(part_folders(d) if is_composed(d) else [Path(d)])
    return out
