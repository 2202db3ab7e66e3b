"""The root of the ``testledger`` command: global options, error handling, sub-commands.

Commands stay thin: they resolve settings, call one core function and render what it returns
(a Rich table, or JSON with ``--json``). Every TestledgerError becomes one line on stderr and a
non-zero exit; a traceback is never shown for a user's mistake.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from testledger.common.jsondata import as_json
from testledger.config import Settings, load_settings
from testledger.errors import TestledgerError
from testledger.store.database import connect_engine
from testledger.store.engine import mask_urls_in

__all__ = ["CliState", "app", "connection", "emit_json", "main", "state"]

EXIT_ERROR = 1

app = typer.Typer(
    name="testledger",
    help="testledger: the history of every test run - results, issues, trends and flaky tests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

# Piped output (CI logs, files) gets a wide console instead of Rich's 80 columns, so tables
# are not squeezed into unreadable stubs; a terminal keeps its own width.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


@dataclass
class CliState:
    db: str | None = None
    results_dir: Path | None = None
    _settings: Settings | None = None
    _engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.db, self.results_dir)
        return self._settings

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = connect_engine(self.settings.database_url)
        return self._engine


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


@contextmanager
def connection(ctx: typer.Context) -> Iterator[Connection]:
    with state(ctx).engine().connect() as conn:
        yield conn


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(as_json(data), indent=2, ensure_ascii=False, default=str))


@app.callback()
def _root(
    ctx: typer.Context,
    db: str | None = typer.Option(
        None,
        "--db",
        metavar="URL",
        help="Database URL (sqlite:///path.db, postgresql://user:pass@host/db, or a file path). "
        "Default: $TESTLEDGER_DATABASE_URL, [tool.testledger] database_url, "
        "else .testledger/ledger.db.",
    ),
    results_dir: Path | None = typer.Option(
        None,
        "--results-dir",
        metavar="DIR",
        help="Folder of the runs' JSON files (default .testledger/results).",
    ),
) -> None:
    ctx.obj = CliState(db=db, results_dir=results_dir)


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from testledger.cli import compare as _compare  # noqa: F401
    from testledger.cli import db as _db  # noqa: F401
    from testledger.cli import demo as _demo  # noqa: F401
    from testledger.cli import export as _export  # noqa: F401
    from testledger.cli import html as _html  # noqa: F401
    from testledger.cli import imports as _imports  # noqa: F401
    from testledger.cli import issues as _issues  # noqa: F401
    from testledger.cli import regressions as _regressions  # noqa: F401
    from testledger.cli import runs as _runs  # noqa: F401
    from testledger.cli import trend as _trend  # noqa: F401
    from testledger.cli import watch as _watch  # noqa: F401


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``testledger`` script; returns the exit code.

    Click's standalone mode handles usage errors itself (and ends with SystemExit); what it
    lets through are our own errors, turned here into one line each. (Typer vendors its own
    copy of Click in recent versions, so no Click class is named here.)"""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="testledger", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        typer.echo(str(exc.code), err=True)
        return EXIT_ERROR
    except TestledgerError as exc:
        typer.echo(f"error: {mask_urls_in(str(exc))}", err=True)
        return EXIT_ERROR
    except SQLAlchemyError as exc:
        original = getattr(exc, "orig", None) or exc
        detail = mask_urls_in(" ".join(str(original).split()))
        typer.echo(f"error: database error: {detail}", err=True)
        return EXIT_ERROR
    return 0


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())
