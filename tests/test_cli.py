"""Tests of the ``legonn`` command (legonn/cli.py and legonn/bin/info.py)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from legonn import cli
from legonn.errors import LegonnError
from legonn.version import __version__

ROOT = Path(__file__).resolve().parents[1]


def run_legonn(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "legonn", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- through a real process -------------------------------------------------


def test_help_lists_info_with_its_one_line_help():
    proc = run_legonn("--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: legonn <command>")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("info ")]
    assert len(lines) == 1
    assert cli.command_help("info") in lines[0]
    assert cli.command_help("info")  # non-empty one-line help


def test_no_arguments_prints_usage():
    proc = run_legonn()
    assert proc.returncode == 0, proc.stderr
    assert "usage: legonn" in proc.stdout
    assert "info" in proc.stdout


def test_version():
    proc = run_legonn("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"legonn {__version__}"


def test_unknown_command_is_one_line_and_exit_2():
    proc = run_legonn("nosuch", "--flag")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("legonn: unknown command 'nosuch' (known: ")
    assert "info" in lines[0]


def test_info_prints_torch_version():
    torch = pytest.importorskip("torch")
    proc = run_legonn("info")
    assert proc.returncode == 0, proc.stderr
    rows = dict(ln.split(None, 1) for ln in proc.stdout.splitlines() if ln.strip())
    assert rows["legonn"] == __version__
    assert rows["torch"] == torch.__version__
    assert int(rows["threads"]) >= 1
    assert rows["cuda"].startswith(("available", "not available"))
    for module, _ in cli.load_command("info").OPTIONAL:
        assert module in rows


def test_subcommand_help_goes_to_the_subcommand():
    proc = run_legonn("info", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: legonn info" in proc.stdout


# --- in-process, with the dispatch monkeypatched ----------------------------


def test_legonn_error_becomes_one_stderr_line_and_exit_1(monkeypatch, capsys):
    def failing_main(argv):
        assert argv == ["--x", "1"]
        raise LegonnError("no such file: data/train/wav.scp\n(check the path)")

    fake = types.ModuleType("legonn.bin.info", "Fake info.")
    fake.main = failing_main
    monkeypatch.setattr(cli, "load_command", lambda name: fake)

    status = cli.main(["info", "--x", "1"])
    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    assert err.splitlines() == ["legonn info: error: no such file: data/train/wav.scp (check the path)"]
    assert "Traceback" not in err


def test_run_command_is_the_dispatch_point(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "run_command", lambda name, argv: calls.append((name, argv)) or 7)
    assert cli.main(["info", "a", "b"]) == 7
    assert calls == [("info", ["a", "b"])]


@pytest.mark.parametrize("returned, expected", [(None, 0), (0, 0), (3, 3), (True, 1)])
def test_run_command_exit_status(monkeypatch, returned, expected):
    fake = types.ModuleType("legonn.bin.info")
    fake.main = lambda argv: returned
    monkeypatch.setattr(cli, "load_command", lambda name: fake)
    assert cli.run_command("info", []) == expected


def test_other_exceptions_keep_their_traceback(monkeypatch):
    fake = types.ModuleType("legonn.bin.info")

    def buggy(argv):
        raise RuntimeError("a bug")

    fake.main = buggy
    monkeypatch.setattr(cli, "load_command", lambda name: fake)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["info"])


def test_only_known_commands_with_a_module_are_listed():
    available = cli.available_commands()
    assert "info" in available
    assert set(available) <= set(cli.COMMANDS)
    # Listed in the table's order.
    assert available == [c for c in cli.COMMANDS if c in available]
    for name in cli.COMMANDS:
        present = (ROOT / "legonn" / "bin" / f"{name}.py").exists()
        assert (name in available) == present, name
    # A module in legonn/bin that is not in the table is not a command.
    assert "__init__" not in available
    assert cli.main(["__init__"]) == 2


def test_every_available_command_has_main_and_one_line_help():
    for name in cli.available_commands():
        module = cli.load_command(name)
        assert callable(getattr(module, "main", None)), name
        assert cli.command_help(name), f"legonn/bin/{name}.py needs a module docstring"


class _Parser(Exception):
    """Raised instead of parsing: carries the parser a subcommand built."""


def test_every_command_help_states_its_defaults(monkeypatch):
    """Every option with a default says it in --help (the shared HelpFormatter, or its own words)."""

    def capture(self, args=None, namespace=None):
        raise _Parser(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", capture)
    for name in cli.available_commands():
        with pytest.raises(_Parser) as exc:
            cli.run_command(name, [])
        parsers = [exc.value.args[0]]
        for action in parsers[0]._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers += list(action.choices.values())
        for parser in parsers:
            assert parser.formatter_class is cli.HelpFormatter, parser.prog
            formatter = parser._get_formatter()
            for action in parser._actions:
                default = action.default
                if not action.option_strings or default is None or default is False or default is argparse.SUPPRESS \
                        or default in ("", []):
                    continue
                text = formatter._expand_help(action) if action.help else ""
                assert "default" in text, f"{parser.prog} {action.option_strings[0]}: {text!r}"


def test_help_formatter_adds_only_the_defaults_worth_stating():
    p = argparse.ArgumentParser(prog="t", formatter_class=cli.HelpFormatter, description="line one\n  kept as written")
    p.add_argument("--beam", type=int, default=5, help="beam size")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--out", help="output (default: beside the input)")
    p.add_argument("--flag", action="store_true", help="a flag")
    p.add_argument("--note", default="", help="a note")
    text = p.format_help()
    assert "beam size (default: 5)" in text and "seed (default: 0)" in text and "  kept as written" in text
    assert "(default: beside the input)" in text and text.count("default") == 3
