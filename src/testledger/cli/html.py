"""``testledger report --html OUT.html``: the self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from testledger.cli.app import app, connection, console, emit_json
from testledger.errors import ConfigError
from testledger.report.html import build_report, render_html


@app.command("report")
def report_command(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Run id or run key (default: the latest run)."),
    html: Path | None = typer.Option(
        None, "--html", help="Write the self-contained HTML report to this file."
    ),
    runs: int = typer.Option(100, "--runs", "-n", min=1, help="How many runs the trends cover."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report's data as JSON instead of writing HTML."
    ),
) -> None:
    """Build the HTML report of a run: summary, trends, failures by issue, flaky tests, the
    comparison with the previous run and the slowest/costliest tests. The file needs no network.

    Example: testledger report --html report.html --runs 200"""
    if html is None and not as_json:
        raise ConfigError("give --html OUT.html (or --json to print the data)")
    with connection(ctx) as conn:
        report = build_report(conn, run, history=runs)
    if as_json:
        emit_json(report)
        return
    assert html is not None
    html.write_text(render_html(report), encoding="utf-8")
    console.print(f"Wrote {html} (run #{report.run.id}, {len(report.trend.run_ids)} runs of trend)")
