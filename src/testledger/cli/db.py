"""``testledger db``: migrate, inspect and print the schema."""

from __future__ import annotations

import typer

from testledger import api
from testledger.cli.app import app, command, console, emit_json, ledger_of

db_app = typer.Typer(
    help="The database schema: upgrade, current revision, DDL.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@command("upgrade", group=db_app)
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema to the latest revision.

    A PostgreSQL database made from the proposal's schema.sql is adopted: every row is kept."""
    done = api.upgrade_schema(ledger_of(ctx))
    if not done.changed:
        console.print(f"{done.database}: already at revision {done.after}")
    else:
        before = done.before or "an empty database"
        console.print(f"{done.database}: upgraded from {before} to {done.after}")


@command("current", group=db_app)
def db_current(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the database's schema revision and whether it is current."""
    current = api.schema_status(ledger_of(ctx))
    if as_json:
        emit_json(current)
        return
    if current.proposal_schema_unmanaged:
        note = "the proposal's tables, not yet adopted: run `testledger db upgrade`"
    elif current.empty:
        note = "empty: the schema is created on first use, or by `testledger db upgrade`"
    elif current.current:
        note = "current"
    else:
        note = f"behind: run `testledger db upgrade` to reach {current.head}"
    console.print(f"{current.database}: revision {current.revision or '-'} ({note})")


@command("sql", group=db_app)
def db_sql(
    dialect: str = typer.Option(
        "postgresql", "--dialect", help="postgresql (e.g. for Supabase's SQL editor) or sqlite."
    ),
) -> None:
    """Print the full DDL of the schema, from an empty database to the latest revision."""
    typer.echo(api.schema_sql(dialect))
