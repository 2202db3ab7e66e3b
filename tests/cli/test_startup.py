"""A command's start-up (issue 19): what ``testledger runs`` imports on a small SQLite ledger,
and the plain converter of command-line values (testledger.cli.coercion) held to Typer's own.

The timings themselves are bench/startup.py's; what is tested here is what they rest on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testledger.cli.coercion import _coercion_for, install_plain_coercion
from testledger.record.ledger import Ledger
from tests.histories import record_test, scripted_run

_MODULES_AFTER = """
import sys
from testledger.cli import main
code = main([*sys.argv[1:], "--json"])
print(__import__("json").dumps([code, sorted(sys.modules)]))
"""

#: What a report on a SQLite ledger must not import: the runner's writers, numpy, Alembic (the
#: schema check is one query), pydantic (Typer's converters; see testledger.cli.coercion), the
#: PostgreSQL driver and SQLAlchemy's PostgreSQL dialect (store.types, store.tables).
NOT_IMPORTED = (
    "testledger.record.runner",
    "testledger.record.archive",
    "numpy",
    "alembic",
    "pydantic",
    "typer._adapters",
    "psycopg",
    "sqlalchemy.dialects.postgresql",
)


@pytest.fixture
def small_ledger(sqlite_template: str, tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "ledger.db"
    shutil.copy(sqlite_template.removeprefix("sqlite:///"), path)
    url, results = f"sqlite:///{path}", tmp_path / "results"
    with Ledger(url, results_dir=results) as ledger:
        for index in range(3):
            with scripted_run(ledger, index, detect_issues=False) as run:
                record_test(run, "tool/passes", "PASS")
                record_test(run, "tool/fails", "FAIL")
    return url, results


def _modules_imported_by(*argv: str) -> tuple[int, list[str], str]:
    env = {k: v for k, v in os.environ.items() if k != "TESTLEDGER_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER, *argv],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    return code, modules, done.stdout


@pytest.mark.parametrize("command", [["runs"], ["show"], ["show", "1"]])
def test_a_report_on_sqlite_imports_only_what_it_reads_with(
    small_ledger: tuple[str, Path], command: list[str]
) -> None:
    url, results = small_ledger
    code, modules, output = _modules_imported_by(
        *command, "--db", url, "--results-dir", str(results)
    )
    assert code == 0, output
    assert "tool/fails" in output or '"id": 3' in output  # the command did read the ledger
    assert "sqlalchemy" in modules  # the database was read, through SQLAlchemy
    assert not set(NOT_IMPORTED) & set(modules)


# -- the plain converter against Typer's own ---------------------------------------------------

_HERE = Path(__file__)
_CASES_APP = typer.Typer()


@_CASES_APP.command()
def _declared(
    text: str = typer.Option("x", "--text"),
    maybe_text: str | None = typer.Option(None, "--maybe-text"),
    count: int = typer.Option(3, "--count"),
    positive: int = typer.Option(20, "--positive", min=1),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    ratio: float = typer.Option(0.5, "--ratio"),
    bounded: float = typer.Option(50.0, "--bounded", min=1.0, max=100.0),
    flag: bool = typer.Option(False, "--flag"),
    maybe_flag: bool | None = typer.Option(None, "--maybe-flag/--no-maybe-flag"),
    path: Path | None = typer.Option(None, "--path"),
    words: list[str] = typer.Option([], "--word"),
    files: list[Path] = typer.Argument(None),
) -> None:
    """Every kind of parameter testledger's commands declare."""


_COMMAND: Any = typer.main.get_command(_CASES_APP)
_PARAMS = {param.name: param for param in _COMMAND.params}

_TEXTS = ["abc", "", " padded ", "é-ü", "\udcff", "a\x00b", "-", "<script>", "x" * 10_000]
_NUMBERS = [
    "0", "1", "-1", "5", "007", "+5", " 5", "5 ", "5.0", "1_000", "1e3", "abc", "", "-0",
    "99999999999999999999", "9" * 5000, "1.5", ".5", "1.", "-0.5", "inf", "nan", "0x10",
    "65535", "65536", "100", "100.5", 0, 1, 20, -4, 2.5, 1.0, True, None,
]  # fmt: skip
_PATHS = [
    "a/b.xml", "", "-", ".", "~", "a\x00b", "\udcff", str(_HERE), str(_HERE.parent),
    Path("x"), _HERE, None,
]  # fmt: skip

CASES = (
    [("text", value) for value in [*_TEXTS, None, 5]]
    + [("maybe_text", value) for value in [*_TEXTS, None]]
    + [(name, value) for name in ("count", "positive", "port") for value in _NUMBERS]
    + [(name, value) for name in ("ratio", "bounded") for value in _NUMBERS]
    + [(name, value) for name in ("flag", "maybe_flag") for value in (True, False, None, "yes")]
    + [("path", value) for value in _PATHS]
    + [("words", value) for value in [(), ("a", "b"), ["x"], ("\udcff",), "ab", None]]
    + [("files", value) for value in [(), (str(_HERE), "a.xml"), ("",), "ab", None]]
)


def _outcome(coerce: Any, param: Any, value: Any) -> tuple[str, Any]:
    ctx = typer.Context(_COMMAND)
    try:
        return "value", coerce(value, param=param, ctx=ctx)
    except Exception as exc:  # the error a user would be shown
        return type(exc).__name__, str(getattr(exc, "message", exc))


def _typers(param: Any, value: Any) -> tuple[str, Any]:
    param._runtime_param = None
    return _outcome(lambda *a, **k: param.get_runtime_param().coerce(*a, **k), param, value)


def _plain(param: Any, value: Any) -> tuple[str, Any]:
    coercion = _coercion_for(param)
    assert coercion is not None, param.name
    param._runtime_param = coercion
    return _outcome(coercion.coerce, param, value)


def _same(param_name: str, value: Any) -> None:
    param = _PARAMS[param_name]
    theirs, ours = _typers(param, value), _plain(param, value)
    assert repr(ours) == repr(theirs), (param_name, value)  # repr: nan is nan
    assert type(ours[1]) is type(theirs[1]), (param_name, value)
    if ours[0] == "value" and isinstance(ours[1], list):
        assert [type(item) for item in ours[1]] == [type(item) for item in theirs[1]]


@pytest.mark.parametrize(("param_name", "value"), CASES)
def test_the_plain_converter_answers_as_typer_does(param_name: str, value: Any) -> None:
    _same(param_name, value)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(["text", "count", "positive", "port", "ratio", "bounded", "path"]),
    st.one_of(st.text(max_size=30), st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,20})?")),
)
def test_any_text_is_converted_as_typer_does(param_name: str, value: str) -> None:
    _same(param_name, value)


def test_every_parameter_of_every_command_gets_the_plain_converter() -> None:
    """The converter covers what testledger declares: were a command to declare a kind it
    does not know, that command would import pydantic again (and this says which)."""
    import importlib
    import pkgutil

    import testledger.cli
    from testledger.cli.app import app

    for module in pkgutil.iter_modules(testledger.cli.__path__):
        importlib.import_module(f"testledger.cli.{module.name}")
    group: Any = typer.main.get_command(app)
    install_plain_coercion(group)
    uncovered = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            if param._runtime_param is None:
                uncovered.append(f"{path} {param.name}")
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(group, "testledger")
    assert uncovered == []
