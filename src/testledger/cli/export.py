"""``testledger export``: a table of the ledger as CSV, JSON, JSON Lines or Parquet."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from testledger import api
from testledger.cli.app import command, ledger_of


@command("export")
def export_command(
    ctx: typer.Context,
    table: str = typer.Argument("results", help=f"What to export: {', '.join(api.EXPORT_TABLES)}."),
    format_name: str = typer.Option(
        "jsonl", "--format", "-f", help=f"One of {', '.join(api.EXPORT_FORMATS)}."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File to write (default: standard output; Parquet needs one)."
    ),
    run_from: int | None = typer.Option(None, "--from", help="First run id to include."),
    run_to: int | None = typer.Option(None, "--to", help="Last run id to include."),
) -> None:
    """Export runs, results, issues, occurrences or watcher insights, streamed (memory does not
    grow with the ledger). A failed export leaves no partial file behind."""
    summary = api.export(
        ledger_of(ctx),
        table,
        format_name,
        output,
        run_from=run_from,
        run_to=run_to,
        stdout=sys.stdout,
    )
    if output is not None:
        typer.echo(f"exported {summary.rows} {table} row(s) as {format_name} to {output}", err=True)
