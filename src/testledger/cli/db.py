"""``testledger db``: migrate, inspect and print the schema."""

from __future__ import annotations

import typer

from testledger import api
from testledger.cli.app import app, command, console, emit_json, ledger_of

db_app = typer.Typer(
    help="The database schema: upgrade, current revision, DDL, roles.", no_args_is_help=True
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


@command("roles", group=db_app)
def db_roles(
    ctx: typer.Context,
    apply: bool = typer.Option(
        False, "--apply", help="Run the SQL on the ledger's PostgreSQL database (as its owner)."
    ),
    reader_login: str | None = typer.Option(
        None,
        "--reader-login",
        metavar="NAME",
        help="Also create a LOGIN role NAME granted testledger_reader (set its password apart).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print (or --apply) the SQL giving read-only reporting access on PostgreSQL.

    Row level security on every ledger table; Supabase's anon: nothing; authenticated and the
    testledger_reader role: read everything but api_tokens, write nothing; service_role and the
    tables' owner: everything. Idempotent: run it again after an upgrade."""
    done = api.database_roles(ledger_of(ctx), apply=apply, reader_login=reader_login)
    if as_json:
        emit_json(done)
        return
    if not done.applied:
        typer.echo(done.sql + ";")
        return
    for warning in done.warnings:
        console.print(f"warning: {warning}")
    present = ", ".join(name for name, exists in (done.roles or {}).items() if exists) or "none"
    console.print(f"{done.database}: row level security and grants applied (roles: {present})")
    if done.tables_without_rls:
        console.print(
            "tables still without row level security: " + ", ".join(done.tables_without_rls)
        )
    if done.reader_login:
        console.print(
            f"login {done.reader_login} reads the ledger: set its password with "
            f"ALTER ROLE {done.reader_login} PASSWORD '...'"
        )
