"""``testledger db``: migrate, inspect and print the schema."""

from __future__ import annotations

import typer

from testledger.cli.app import app, console, emit_json, state
from testledger.store.database import open_engine
from testledger.store.engine import mask_url
from testledger.store.migrate import render_sql, schema_state, upgrade

db_app = typer.Typer(
    help="The database schema: upgrade, current revision, DDL.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema to the latest revision.

    A PostgreSQL database made from the proposal's schema.sql is adopted: every row is kept."""
    settings = state(ctx).settings
    engine = open_engine(settings.database_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = mask_url(settings.database_url)
    if before == after:
        console.print(f"{where}: already at revision {after}")
    else:
        console.print(f"{where}: upgraded from {before or 'an empty database'} to {after}")


@db_app.command("current")
def db_current(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show the database's schema revision and whether it is current."""
    settings = state(ctx).settings
    engine = open_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            current = schema_state(connection)
    finally:
        engine.dispose()
    data = {
        "database": mask_url(settings.database_url),
        "revision": current.revision,
        "head": current.head,
        "current": current.is_current,
        "proposal_schema_unmanaged": current.is_proposal_database,
    }
    if as_json:
        emit_json(data)
        return
    if current.is_proposal_database:
        note = "the proposal's tables, not yet adopted: run `testledger db upgrade`"
    elif current.is_empty:
        note = "empty: the schema is created on first use, or by `testledger db upgrade`"
    elif current.is_current:
        note = "current"
    else:
        note = f"behind: run `testledger db upgrade` to reach {current.head}"
    console.print(f"{data['database']}: revision {current.revision or '-'} ({note})")


@db_app.command("sql")
def db_sql(
    dialect: str = typer.Option(
        "postgresql", "--dialect", help="postgresql (e.g. for Supabase's SQL editor) or sqlite."
    ),
) -> None:
    """Print the full DDL of the schema, from an empty database to the latest revision."""
    typer.echo(render_sql(dialect))
