"""The root of the ``testledger`` command: the Typer app, its global options, the console, and
what every command shares (the ledger named by ``--db``, JSON output).

Commands stay thin: they parse options, call one function of :mod:`testledger.api` and render
what it returns (a Rich table, or JSON with ``--json``). The commands live in sibling modules;
:mod:`testledger.cli.main` assembles them and turns errors into one line each.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from testledger import api
from testledger.common.jsondata import as_json
from testledger.errors import TestledgerError

__all__ = [
    "EXIT_ERROR",
    "CliState",
    "app",
    "command",
    "console",
    "emit_json",
    "ledger_of",
    "run_app",
    "state",
    "visible",
]

EXIT_ERROR = 1

app = typer.Typer(
    name="testledger",
    help="testledger: the history of every test run - results, issues, trends and flaky tests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with its control characters (terminal escape sequences, NUL, bell...) written
    out as ``\\x1b``: shown to the reader, never sent raw to their terminal."""
    return _CONTROL_CHARACTERS.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


class TextConsole(Console):
    """A console that prints every string as text. Test ids (``test_x[a-b]``), messages
    (``[red]x[/red]``), branches and notes are data, so no string is read as Rich markup or
    emoji codes, and control characters are shown visibly. Styling is given with ``style=``
    and Text objects instead of markup."""

    def render_str(self, text: str, **options: Any) -> Text:
        options.update(markup=False, emoji=False, highlight=False)
        return super().render_str(visible(text), **options)


# Piped output (CI logs, files) gets a wide console instead of Rich's 80 columns, so tables
# are not squeezed into unreadable stubs; a terminal keeps its own width, and $COLUMNS wins.
console = TextConsole(
    highlight=False,
    markup=False,
    emoji=False,
    width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160,
)

DB_HELP = (
    "Database URL (sqlite:///path.db, postgresql://user:pass@host/db, or a file path). "
    "Default: $TESTLEDGER_DATABASE_URL, [tool.testledger] database_url, "
    "else .testledger/ledger.db."
)
RESULTS_DIR_HELP = "Folder of the runs' JSON files (default .testledger/results)."


@dataclass
class CliState:
    """The global options, given before or after the command's name, and the ledger they name
    (opened on first use: commands that need no database never read settings)."""

    db: str | None = None
    results_dir: Path | None = None
    _ledger: api.Ledger | None = None

    def ledger(self) -> api.Ledger:
        if self._ledger is None:
            self._ledger = api.Ledger(self.db, results_dir=self.results_dir)
        return self._ledger


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def ledger_of(ctx: typer.Context) -> api.Ledger:
    """The ledger the command works on."""
    return state(ctx).ledger()


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(as_json(data), indent=2, ensure_ascii=False, default=str))


@app.callback()
def _root(
    ctx: typer.Context,
    db: str | None = typer.Option(None, "--db", metavar="URL", help=DB_HELP),
    results_dir: Path | None = typer.Option(
        None, "--results-dir", metavar="DIR", help=RESULTS_DIR_HELP
    ),
) -> None:
    cli = state(ctx)
    cli.db = db if db is not None else cli.db
    cli.results_dir = results_dir if results_dir is not None else cli.results_dir


Command = TypeVar("Command", bound=Callable[..., Any])

_GLOBAL_OPTIONS = (
    inspect.Parameter(
        "global_db",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, "--db", metavar="URL", help=DB_HELP),
        annotation="str | None",
    ),
    inspect.Parameter(
        "global_results_dir",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(None, "--results-dir", metavar="DIR", help=RESULTS_DIR_HELP),
        annotation="Path | None",
    ),
)
_CONTEXT = inspect.Parameter(
    "global_ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="typer.Context"
)


def with_global_options(func: Command) -> Command:
    """``func`` accepting ``--db`` and ``--results-dir`` after the command's name too, as new
    users type them (``testledger import x.xml --db URL``); given there, they win."""
    signature = inspect.signature(func)
    takes_context = "ctx" in signature.parameters
    parameters = list(signature.parameters.values())
    if not takes_context:
        parameters.insert(0, _CONTEXT)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs["ctx"] if takes_context else kwargs.pop("global_ctx")
        db, results_dir = kwargs.pop("global_db"), kwargs.pop("global_results_dir")
        cli = state(ctx)
        cli.db = db if db is not None else cli.db
        cli.results_dir = results_dir if results_dir is not None else cli.results_dir
        return func(*args, **kwargs)

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*parameters, *_GLOBAL_OPTIONS]
    )
    wrapper.__annotations__ = {
        **func.__annotations__,
        "global_ctx": typer.Context,
        "global_db": str | None,
        "global_results_dir": Path | None,
    }
    return wrapper  # type: ignore[return-value]


def command(
    name: str, *, group: typer.Typer | None = None, **options: Any
) -> Callable[[Command], Command]:
    """``app.command(name)`` (or ``group``'s) for a command that takes the global options."""

    def register(func: Command) -> Command:
        (group or app).command(name, **options)(with_global_options(func))
        return func

    return register


def run_app(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code.

    Click's standalone mode handles usage errors itself (and ends with SystemExit); what it
    lets through are our own errors, turned here into one line each. (Typer vendors its own
    copy of Click, so no Click class is named here.)"""
    group = typer.main.get_command(app)
    try:
        group.main(args=argv, prog_name="testledger", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        typer.echo(str(exc.code), err=True)
        return EXIT_ERROR
    except TestledgerError as exc:
        typer.echo(f"error: {visible(api.mask_urls_in(str(exc)))}", err=True)
        return EXIT_ERROR
    except SQLAlchemyError as exc:
        original = getattr(exc, "orig", None) or exc
        detail = visible(api.mask_urls_in(" ".join(str(original).split())))
        typer.echo(f"error: database error: {detail}", err=True)
        return EXIT_ERROR
    return 0
