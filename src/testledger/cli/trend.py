"""``testledger trend``, ``history``, ``cost`` and ``query``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from testledger import api
from testledger.cli.app import command, console, emit_json, ledger_of, visible
from testledger.cli.tables import Cell, Column, fitted_table
from testledger.common.formatting import format_seconds, sparkline

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
BRANCH_OPTION = typer.Option(None, "--branch", "-b", help="Only runs of this branch.")
SUITE_OPTION = typer.Option(None, "--suite", "-s", help="Only runs of this suite.")

# How each trended metric is written in the table (its change uses the same format).
_METRIC_FORMATS: dict[str, Callable[[float], str]] = {
    "pass_rate": "{:.2f}".format,
    "quality": "{:.2f}".format,
    "cost": "{:.4f}".format,
    "duration": format_seconds,
    "tokens": lambda value: f"{round(value):,}",
}


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _or_dash(value: Any, fmt: Callable[[Any], str] = str) -> str:
    return "-" if value is None else fmt(value)


def _money(value: float | None) -> str:
    return _or_dash(value, "{:.4f}".format)


def _tokens(value: int | None) -> str:
    return _or_dash(value, "{:,}".format)


def _delta(metric: api.TrendMetric, change: float | None) -> Text:
    """▲/▼ and the size of the change, green when it went the good way, red when the bad."""
    if change is None:
        return Text("")
    if change == 0:
        return Text("=", style="dim")
    up = change > 0
    style = "" if metric.higher_is_better is None else "green"
    if metric.higher_is_better is not None and up != metric.higher_is_better:
        style = "red"
    shown = _METRIC_FORMATS[metric.name](abs(change))
    if not shown.strip("0.,"):  # a real change too small for the format: not written as 0
        shown = "<" + shown[:-1] + "1"
    return Text(("▲" if up else "▼") + shown, style=style)


def _describe_filters(trend: api.Trend) -> str:
    f = trend.filters
    parts = [
        f"{label} {value}"
        for label, value in (
            ("suite", f.suite),
            ("branch", f.branch),
            ("tool", f.tool),
            ("provider", f.provider),
            ("model", f.model),
        )
        if value is not None
    ]
    return (" - " + ", ".join(parts)) if parts else ""


def render_trend(trend: api.Trend) -> None:
    count = len(trend.points)
    console.print(f"Trend of the last {count} run(s){_describe_filters(trend)}", style="bold")
    if trend.filters.per_result:
        console.print("numbers over the matching results of each run")
    # At 80 columns the changes go first, then when, commit and tests: the figures stay.
    columns = [
        Column("run", justify="right"),
        Column("when (UTC)", keep=4),
        Column("commit", keep=5),
        Column("tests", justify="right", keep=3),
    ]
    for metric in api.TREND_METRICS:
        columns.append(Column(metric.label, justify="right"))
        columns.append(Column("Δ", justify="right", keep=2 if metric.name == "pass_rate" else 1))
    rows: list[list[Cell]] = []
    for point in trend.points:
        cells: list[Cell] = [
            str(point.run_id),
            _when(point.run_timestamp),
            (point.commit or "-")[:10],
            str(point.tests),
        ]
        for metric in api.TREND_METRICS:
            value = getattr(point, metric.attribute)
            cells.append(_or_dash(value, _METRIC_FORMATS[metric.name]))
            cells.append(_delta(metric, getattr(point, metric.change_attribute)))
        rows.append(cells)
    spark_cells: list[Cell] = ["", "trend", "", ""]
    for metric in api.TREND_METRICS:
        spark_cells.extend([Text(sparkline(trend.series(metric)), style="cyan"), ""])
    rows.append(spark_cells)
    console.print(fitted_table(columns, rows, width=console.width))


@command("trend")
def trend_command(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs (the last N)."),
    branch: str | None = BRANCH_OPTION,
    suite: str | None = SUITE_OPTION,
    tool: str | None = typer.Option(None, "--tool", help="Only the results of this tool."),
    provider: str | None = typer.Option(
        None, "--provider", help="Only the results of this provider."
    ),
    model: str | None = typer.Option(None, "--model", help="Only the results of this model."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Pass rate, watcher quality, cost, duration and tokens of the last runs, oldest first,
    each with its change from the run before (▲/▼, green good, red bad) and a sparkline.

    With --tool, --provider or --model the numbers are aggregated over each run's matching
    results (the last attempt decides a test's status; every attempt's cost and tokens count).
    Runs still recording are left out."""
    trend = api.trend(
        ledger_of(ctx),
        limit=limit,
        branch=branch,
        suite=suite,
        tool=tool,
        provider=provider,
        model=model,
    )
    if as_json:
        emit_json(trend)
        return
    if not trend.points:
        console.print("No runs match.")
        return
    render_trend(trend)


def render_history(history: api.ResultHistory) -> None:
    runs = len(history.entries)
    on_branch = f" on branch {history.branch}" if history.branch else ""
    console.print(
        f"{history.test_id}  (tool {history.tool_name}, variation "
        f"{history.variation}) - {runs} run(s){on_branch}, newest first",
        style="bold",
    )
    if not history.entries:
        return
    columns = [
        Column("run", justify="right"),
        Column("when (UTC)", keep=4),
        Column("branch", keep=5),
        Column("commit", keep=6),
        Column("tries", justify="right", keep=3),
        Column("status"),
        Column("secs", justify="right", keep=2),
        Column("cost $", justify="right", keep=3),
        Column("tokens", justify="right", keep=4),
        Column("quality", justify="right", keep=3),
        Column("issue", keep=1),
        Column("error", main=True),
    ]
    status_styles = {"PASS": "green", "FAIL": "red", "ERROR": "red", "SKIP": "yellow"}
    rows: list[list[Cell]] = []
    for entry in history.entries:
        first_line = (entry.error_message or "").splitlines()[0] if entry.error_message else ""
        error = f"{entry.error_type}: {first_line}" if entry.error_type else first_line
        rows.append(
            [
                str(entry.run_id),
                _when(entry.run_timestamp),
                entry.branch,
                (entry.commit or "-")[:10],
                str(entry.attempts),
                Text(visible(entry.status), style=status_styles.get(entry.status, "")),
                _or_dash(entry.duration_secs, "{:.2f}".format),
                _money(entry.cost_usd),
                _tokens(entry.tokens_total),
                _or_dash(entry.watcher_quality),
                entry.issue_code or "",
                error[:200],
            ]
        )
    console.print(fitted_table(columns, rows, width=console.width))


@command("history")
def history_command(
    ctx: typer.Context,
    test: str = typer.Argument(
        ...,
        metavar="TEST",
        help="The test: its full id, its tool/variation, or any unique part of its id "
        "(ignoring case); an ambiguous part lists the tests it matches.",
    ),
    limit: int = typer.Option(30, "--limit", "-n", min=1, help="How many runs (newest first)."),
    branch: str | None = BRANCH_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One test's results over time: per run its attempts, final status, duration, cost, tokens,
    watcher quality and the issue its failure belongs to."""
    history = api.history(ledger_of(ctx), test, limit=limit, branch=branch)
    if as_json:
        emit_json(history)
        return
    render_history(history)


def _group_table(title: str, groups: list[api.CostGroup], *, models: bool = False) -> Table:
    columns = [Column("provider", keep=3)] if models else []
    columns += [
        Column("model" if models else title.split()[-1], main=True),
        Column("results", justify="right", keep=2),
        Column("passed", justify="right", keep=2),
        Column("cost $", justify="right"),
        Column("share", justify="right", keep=1),
        Column("tokens", justify="right", keep=1),
        Column("$ / pass", justify="right"),
    ]
    rows = []
    for group in groups:
        cells = [group.provider or "(none)"] if models else []
        cells += [
            group.name or "(none)",
            str(group.results),
            str(group.passed),
            _money(group.cost_usd),
            _or_dash(group.share, "{:.0%}".format),
            _tokens(group.tokens_total),
            _money(group.cost_per_passing_test),
        ]
        rows.append(cells)
    return fitted_table(columns, rows, width=console.width, title=title)


def render_cost(report: api.CostReport) -> None:
    total = report.total
    scope = ", ".join(
        f"{label} {value}"
        for label, value in (("suite", report.suite), ("branch", report.branch))
        if value is not None
    )
    console.print(
        f"Cost of the last {total.runs} run(s){' - ' + scope if scope else ''}: "
        f"${_money(total.cost_usd)} for {total.passed} passing test(s) "
        f"(${_money(total.cost_per_passing_test)} each), {_tokens(total.tokens_total)} tokens",
        style="bold",
    )
    if total.watcher_cost_usd is None and total.watcher_tokens is None:
        watcher = "watcher: no spend recorded"
    else:
        watcher = (
            f"watcher: ${_money(total.watcher_cost_usd)}, {_tokens(total.watcher_tokens)} tokens"
        )
    console.print(f"{watcher}; total ${_money(total.total_cost_usd)}")
    if report.budget_usd is not None:
        console.print(
            f"budget ${report.budget_usd:.4f} per run: {report.runs_over_budget} run(s) over"
        )
    columns = [
        Column("run", justify="right"),
        Column("when (UTC)", keep=3),
        Column("suite", keep=5),
        Column("branch", keep=4),
        Column("status", keep=6),
        Column("results", justify="right", keep=2),
        Column("passed", justify="right", keep=2),
        Column("cost $", justify="right"),
        Column("tokens", justify="right", keep=1),
        Column("$ / pass", justify="right", keep=2),
        Column("watcher $", justify="right", keep=3),
        Column("watcher tokens", justify="right", keep=4),
        Column("total $", justify="right"),
    ]
    if report.budget_usd is not None:
        columns.append(Column("budget"))
    rows: list[list[Cell]] = []
    for run in report.runs:
        cells: list[Cell] = [
            str(run.run_id),
            _when(run.run_timestamp),
            run.suite,
            run.branch,
            run.status,
            str(run.results),
            str(run.passed),
            _money(run.cost_usd),
            _tokens(run.tokens_total),
            _money(run.cost_per_passing_test),
            _money(run.watcher_cost_usd),
            _tokens(run.watcher_tokens),
            _money(run.total_cost_usd),
        ]
        if report.budget_usd is not None:
            cells.append(Text("OVER", style="bold red") if run.over_budget else Text("ok"))
        rows.append(cells)
    console.print(fitted_table(columns, rows, width=console.width))
    for title, groups in (("By tool", report.by_tool), ("By provider", report.by_provider)):
        console.print()
        console.print(_group_table(title, groups))
    console.print()
    console.print(_group_table("By model", report.by_model, models=True))


@command("cost")
def cost_command(
    ctx: typer.Context,
    runs: int = typer.Option(
        10, "--limit", "--runs", "-n", min=1, help="How many runs (the last N)."
    ),
    branch: str | None = BRANCH_OPTION,
    suite: str | None = SUITE_OPTION,
    budget: float | None = typer.Option(
        None,
        "--budget",
        metavar="USD",
        help="Mark runs that cost more than this (default: [tool.testledger] max_run_cost_usd).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cost and tokens per run, and over those runs per tool, provider and model, with the cost
    of each passing test. Every attempt is paid for; a test passes when its last attempt does."""
    report = api.cost(ledger_of(ctx), runs=runs, branch=branch, suite=suite, budget_usd=budget)
    if as_json:
        emit_json(report)
        return
    if not report.runs:
        console.print("No runs match.")
        return
    render_cost(report)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        # Trailing zeros say nothing; 50 and 50.00 are the same pass rate on either database.
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


def _query_help() -> str:
    names = api.query_names()
    width = max(len(name) for name in names)
    listed = "\n".join(f"  {name.ljust(width)}  {title}" for name, title in names.items())
    return (
        "Run one of the proposal's example queries, unchanged, and show its rows.\n\n"
        "NAME is one of (also: testledger query --list):\n\n"
        f"\b\n{listed}"
    )


@command("query", help=_query_help())
def query_command(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, metavar="NAME", help="The query's name (see --list)."),
    list_names: bool = typer.Option(False, "--list", help="List the queries' names."),
    as_json: bool = JSON_OPTION,
) -> None:
    names = api.query_names()
    if list_names or name is None:
        if as_json:
            emit_json([{"name": known, "title": title} for known, title in names.items()])
            return
        width = max(len(known) for known in names)
        for known, title in names.items():
            console.print(f"{known.ljust(width)}  {title}")
        return
    result = api.query(ledger_of(ctx), name)
    rows = result.rows
    if as_json:
        emit_json(rows)
        return
    console.print(f"{result.title}", style="bold")
    if not rows:
        console.print("No rows.")
        return
    table = Table(box=None, header_style="bold")
    for column in rows[0]:
        numeric = any(
            isinstance(row[column], (int, float)) and not isinstance(row[column], bool)
            for row in rows
        )
        table.add_column(column, overflow="fold", justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(value) for value in row.values()))
    console.print(table)
