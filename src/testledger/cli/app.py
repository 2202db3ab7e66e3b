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
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperGroup

from testledger import api
from testledger.cli.coercion import install_plain_coercion
from testledger.cli.registry import COMMANDS, SECTIONS
from testledger.common.text import visible

if TYPE_CHECKING:  # the console is made on first use (see __getattr__)
    from testledger.cli.console import console
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


class SectionedGroup(TyperGroup):
    """The root command. Its help lists the commands by section from the registry, without
    importing them; a command's module is imported when the command is looked up to run it
    (or to show its own help)."""

    def list_commands(self, ctx: Any) -> list[str]:
        known = super().list_commands(ctx)
        return [*COMMANDS, *(name for name in known if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in COMMANDS:
            import_module(f"testledger.cli.{COMMANDS[cmd_name].module}")
            found = typer.main.get_command(app).commands.get(cmd_name)  # type: ignore[attr-defined]
            if found is not None:
                _name_placeholders(found)
                install_plain_coercion(found)
                self.add_command(found, cmd_name)
        return found

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        for section in SECTIONS:
            rows = [(name, entry.summary) for name, entry in COMMANDS.items()]
            rows = [row for row in rows if COMMANDS[row[0]].section == section]
            if rows:
                with formatter.section(f"{section} commands"):
                    formatter.write_dl(rows)


app = typer.Typer(
    cls=SectionedGroup,
    name="testledger",
    help="testledger: the history of every test run - results, issues, trends and flaky tests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)


def __getattr__(name: str) -> Any:
    """``console``, made when a command first prints: Rich is not imported for ``--help``."""
    if name == "console":
        return import_module("testledger.cli.console").console
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

    def close(self) -> None:
        """Close the ledger's connections, if it was opened (SQLite checkpoints its WAL on the
        last one), rather than leave them to the interpreter's exit."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


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
    """``app.command(name)`` (or ``group``'s) for a command that takes the global options. A
    top-level command's line in the root help is its registry summary."""
    if group is None and name in COMMANDS:
        options.setdefault("short_help", COMMANDS[name].summary)

    def register(func: Command) -> Command:
        (group or app).command(name, **options)(with_global_options(func))
        return func

    return register


def _click_error(exc: Exception) -> int | None:
    """A usage error or abort from Click, said in one line; None for any other exception.

    Typer vendors its own copy of Click, so the classes are recognised by name."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    if "NoArgsIsHelpError" in kinds:  # the bare command: its help, which is no error
        typer.echo(exc.format_message())  # type: ignore[attr-defined]
        return 0
    if "Abort" in kinds:
        typer.echo("error: aborted", err=True)
        return EXIT_ERROR
    if "ClickException" not in kinds:
        return None
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    context = getattr(exc, "ctx", None)
    hint = f" (see: {context.command_path} --help)" if "UsageError" in kinds and context else ""
    typer.echo(f"error: {visible(message)}{hint}", err=True)
    return EXIT_ERROR


def _name_placeholders(command: Any) -> None:
    """Give every option and argument without a metavar a plain one (``--status STATUS``,
    ``CODE``) instead of the type names Typer shows (``<str>``, ``<int range>``)."""
    for sub in getattr(command, "commands", {}).values():
        _name_placeholders(sub)
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False):
            continue
        longest = max(getattr(param, "opts", None) or [param.name or "value"], key=len)
        if param.metavar is None:
            param.metavar = longest.lstrip("-").replace("-", "_").upper()
        if not longest.startswith("-"):  # an argument: its name says enough, no "<str>"
            param.display_type_rich = lambda ctx: None


def _is_database_error(exc: Exception) -> bool:
    """Whether ``exc`` is SQLAlchemy's. Looked up instead of imported: a command that never
    touched the database (``--help``) must not pay for importing SQLAlchemy, and then cannot
    have raised one of its errors."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


def run_app(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code: 0, 1 for any error (one line on stderr, never a
    traceback for a user's mistake), or what the command chose (``gate``: 2 for a broken rule).
    """
    group = typer.main.get_command(app)
    _name_placeholders(group)
    install_plain_coercion(group)
    cli = CliState()
    try:
        return _run_group(group, argv, cli)
    finally:
        cli.close()


def _run_group(group: Any, argv: list[str] | None, cli: CliState) -> int:
    try:
        code = group.main(args=argv, prog_name="testledger", standalone_mode=False, obj=cli)
    except TestledgerError as exc:
        typer.echo(f"error: {visible(api.mask_urls_in(str(exc)))}", err=True)
        return EXIT_ERROR
    except OverflowError:
        # A number no database column or LIMIT holds (`runs -n 99999999999999999999`), met
        # by the driver when it binds it.
        typer.echo("error: a number given is too large", err=True)
        return EXIT_ERROR
    except Exception as exc:
        if _is_database_error(exc):
            original = getattr(exc, "orig", None) or exc
            detail = visible(api.mask_urls_in(" ".join(str(original).split())))
            typer.echo(f"error: database error: {detail}", err=True)
            return EXIT_ERROR
        handled = _click_error(exc)
        if handled is None:
            raise
        return handled
    return code if isinstance(code, int) else 0
