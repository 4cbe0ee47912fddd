"""The ``legonn`` command: dispatches ``legonn <command> [args...]`` to ``legonn.bin.<command>``.

Each subcommand lives in ``legonn/bin/<name>.py`` and exposes
``main(argv: list[str]) -> int | None``; the first line of its module docstring
is its one-line help.  Only the commands in :data:`COMMANDS` are known, and
only those whose module exists are listed and dispatched, so a command appears
as soon as its module is written.

A :class:`legonn.errors.LegonnError` escaping a subcommand is printed as
``legonn <cmd>: error: <message>`` on one line to stderr (exit status 1).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Sequence

from legonn.errors import LegonnError
from legonn.version import __version__

PROG = "legonn"

# Known subcommands, in the order ``legonn --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "datadir",
    "features",
    "phonemize",
    "vocab",
    "train",
    "decode",
    "score",
    "average",
    "export",
    "assemble",
    "compose",
    "inspect",
    "info",
)

_PACKAGE = "legonn.bin"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The ``--help`` of every subcommand: the description as written, and each option's default
    unless it has none (None, empty, a flag's False) or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default in ("", []) or "default" in text:
            return text
        return super()._get_help_string(action)


def _module_name(name: str) -> str:
    return f"{_PACKAGE}.{name}"


def _find(name: str):
    """The import spec of subcommand ``name``'s module, or None if it does not exist."""
    if name not in COMMANDS:
        return None
    try:
        return importlib.util.find_spec(_module_name(name))
    except (ImportError, ValueError):
        return None


def available_commands() -> list[str]:
    """The known subcommands whose module exists, in :data:`COMMANDS` order."""
    return [name for name in COMMANDS if _find(name) is not None]


def command_help(name: str) -> str:
    """The one-line help of subcommand ``name``: the first line of its module docstring.

    The docstring is read from the source without importing the module, so
    ``legonn --help`` stays fast (subcommands may import torch).
    """
    spec = _find(name)
    doc = None
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        try:
            with open(spec.origin, encoding="utf-8") as f:
                doc = ast.get_docstring(ast.parse(f.read()))
        except (OSError, SyntaxError, ValueError):
            doc = None
    if doc is None and spec is not None:
        try:  # no readable source: fall back to importing it
            doc = load_command(name).__doc__
        except Exception:  # noqa: BLE001 - help must not crash on a broken module
            doc = None
    doc = (doc or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def usage() -> str:
    """The text ``legonn --help`` prints."""
    names = available_commands()
    lines = [
        f"usage: {PROG} <command> [args...]",
        "",
        "LegoNN: modular encoder-decoder models for speech recognition and translation.",
        "",
        "commands:",
    ]
    width = max((len(n) for n in names), default=0)
    for name in names:
        lines.append(f"  {name:<{width}}  {command_help(name)}".rstrip())
    if not names:
        lines.append("  (none available)")
    lines += [
        "",
        "options:",
        "  -h, --help     show this message and exit",
        "  -V, --version  print the legonn version and exit",
        "",
        f"Run '{PROG} <command> --help' for a command's options.",
    ]
    return "\n".join(lines)


def load_command(name: str) -> ModuleType:
    """Import and return subcommand ``name``'s module."""
    return importlib.import_module(_module_name(name))


def run_command(name: str, argv: Sequence[str]) -> int:
    """Run subcommand ``name`` with ``argv`` and return its exit status.

    Exceptions, :class:`LegonnError` included, propagate to the caller.
    """
    module = load_command(name)
    entry = getattr(module, "main", None)
    if not callable(entry):
        raise LegonnError(f"command module {module.__name__} has no main(argv)")
    status = entry(list(argv))
    if status is None:
        return 0
    if isinstance(status, bool):
        return int(status)
    return status if isinstance(status, int) else 1


def _error(cmd: str | None, message: object) -> None:
    where = f"{PROG} {cmd}" if cmd else PROG
    text = " ".join(str(message).split()) or type(message).__name__
    print(f"{where}: error: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``legonn`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)

    if not args or args[0] in ("-h", "--help", "help"):
        if len(args) >= 2 and args[0] == "help":  # 'legonn help train' == 'legonn train --help'
            args = [args[1], "--help"]
        else:
            print(usage())
            return 0
    if args[0] in ("-V", "--version"):
        print(f"{PROG} {__version__}")
        return 0

    name, rest = args[0], args[1:]
    known = available_commands()
    if name not in known:
        print(
            f"{PROG}: unknown command '{name}' (known: {', '.join(known) or 'none'})",
            file=sys.stderr,
        )
        return 2

    try:
        return run_command(name, rest)
    except LegonnError as exc:
        _error(name, exc)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: not an error worth a traceback.  Point
        # stdout at devnull so the flush at interpreter exit does not fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
