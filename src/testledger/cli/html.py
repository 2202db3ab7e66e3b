"""``testledger report --html OUT.html``: the self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from testledger import api
from testledger.cli.app import command, console, emit_json, ledger_of
from testledger.errors import ConfigError


@command("report")
def report_command(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Run id or run key (default: the latest run)."),
    html: Path | None = typer.Option(
        None, "--html", help="Write the self-contained HTML report to this file."
    ),
    runs: int = typer.Option(
        100, "--limit", "--runs", "-n", min=1, help="How many runs the trends cover."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report's data as JSON instead of writing HTML."
    ),
) -> None:
    """Build the HTML report of a run: summary, trends, failures by issue, flaky tests, the
    comparison with the previous run and the slowest/costliest tests. The file needs no network.

    Example: testledger report --html report.html --runs 200"""
    if html is None and not as_json:
        raise ConfigError("give --html OUT.html (or --json to print the data)")
    if as_json:
        emit_json(api.html_report_data(ledger_of(ctx), run, history_runs=runs))
        return
    assert html is not None
    written = api.html_report(ledger_of(ctx), html, run, history_runs=runs)
    console.print(
        f"Wrote {written.path} (run #{written.run_id}, {written.trend_runs} runs of trend)"
    )
