"""The command registry: every command is listed where it is declared, and the top-level help
and a command's run import only what they need."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from typing import Any

import typer

import testledger.cli
from testledger.cli.app import app
from testledger.cli.registry import COMMANDS, SECTIONS


def _declared_commands() -> dict[str, str]:
    """Every top-level command of every module of testledger.cli -> the module declaring it."""
    for module in pkgutil.iter_modules(testledger.cli.__path__):
        importlib.import_module(f"testledger.cli.{module.name}")
    group: Any = typer.main.get_command(app)
    declared = {}
    for name, command in group.commands.items():
        callback = command.callback
        if callback is None or callback.__module__ == "testledger.cli.app":
            callback = next(iter(command.commands.values())).callback  # a group: its first
        declared[name] = callback.__module__.rsplit(".", 1)[1]
    return declared


def test_every_command_is_in_the_registry_with_the_module_that_declares_it() -> None:
    declared = _declared_commands()
    assert {name: entry.module for name, entry in COMMANDS.items()} == declared
    assert {entry.section for entry in COMMANDS.values()} <= set(SECTIONS)


def test_every_listed_summary_fits_the_help_of_an_80_column_terminal() -> None:
    longest_name = max(map(len, COMMANDS))
    for name, entry in COMMANDS.items():
        assert len(entry.summary) <= 80 - 2 - longest_name - 2, name
        assert not entry.summary.endswith("."), name


_IMPORTED_BY_HELP = """
import sys
from testledger.cli import main
code = main(["--help"])
print(__import__("json").dumps([code, sorted(sys.modules)]))
"""


def test_the_top_level_help_imports_no_command_module_nor_the_database_layers() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED_BY_HELP], capture_output=True, text=True, check=True
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code == 0
    assert "Inspect commands:" in done.stdout
    commands = {f"testledger.cli.{entry.module}" for entry in COMMANDS.values()}
    heavy = {"sqlalchemy", "rich", "numpy", "alembic", "testledger.store", "testledger.report"}
    assert not (commands | heavy) & set(modules)


_IMPORTED_BY_RUNS = """
import sys
from testledger.cli import main
code = main(["runs", "--db", sys.argv[1], "--json"])
print(__import__("json").dumps([code, sorted(sys.modules)]))
"""


def test_a_command_imports_its_own_module_and_no_other_command(tmp_path: Any) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED_BY_RUNS, f"sqlite:///{tmp_path / 'ledger.db'}"],
        capture_output=True,
        text=True,
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    assert code == 1, done.stderr  # no ledger there yet: said in one line
    assert done.stderr.startswith("error: no ledger at")
    loaded = {name.rsplit(".", 1)[1] for name in modules if name.startswith("testledger.cli.")}
    others = {entry.module for entry in COMMANDS.values()} - {"runs"}
    assert "runs" in loaded and not loaded & others


def test_a_command_s_own_help_and_an_unknown_command() -> None:
    assert testledger.cli.main(["runs", "--help"]) == 0
    assert testledger.cli.main(["no-such-command"]) == 1
