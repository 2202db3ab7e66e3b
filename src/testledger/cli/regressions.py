"""``testledger regressions``: change points in every per-test metric."""

from __future__ import annotations

import typer
from rich.table import Table

from testledger import api
from testledger.cli.app import command, console, emit_json, ledger_of


def format_p_value(p_value: float) -> str:
    """A p-value in two significant digits. Zero is what a float underflow (or a change between
    two constant stretches, where the t statistic is infinite) leaves: it is below any printable
    p-value, not exactly zero."""
    if p_value <= 0.0:
        return "<1e-300"
    return f"{p_value:.2g}"


def _change(change: api.MetricChange) -> str:
    spec = api.REGRESSION_METRICS[change.metric]
    return f"{spec.show(change.before_mean)} -> {spec.show(change.after_mean)}"


def _percent(change: api.MetricChange) -> str:
    return "new" if change.magnitude_pct is None else f"{change.magnitude_pct:+.1f}%"


@command("regressions")
def regressions_command(
    ctx: typer.Context,
    branch: str | None = typer.Option(None, "--branch", "-b", help="Only this branch."),
    suite: str | None = typer.Option(None, "--suite", "-s", help="Only this suite."),
    metric: str | None = typer.Option(
        None, "--metric", "-m", help=f"Only this metric: {', '.join(api.REGRESSION_METRICS)}."
    ),
    test: str | None = typer.Option(None, "--test", "-t", help="Only this test id."),
    include_improvements: bool = typer.Option(
        False, "--include-improvements", help="Also list changes for the better."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List the lasting changes (E-divisive change points confirmed by a t-test) in each
    test's duration, memory, CPU, tokens, cost and watcher quality over the runs of its branch
    and suite, with the single-run outliers of the latest window. Settings:
    [tool.testledger.regressions] (p_value, window, min_magnitude, min_change, min_runs, metrics,
    history)."""
    report = api.find_regressions(
        ledger_of(ctx),
        branch=branch,
        suite=suite,
        metric=metric,
        test=test,
        include_improvements=include_improvements,
    )
    if as_json:
        emit_json(report)
        return
    what = "changes" if include_improvements else "regressions"
    if not report.changes:
        console.print(f"No {what} in {report.series_analyzed} series.")
    scopes = sorted({(change.suite, change.branch) for change in report.changes})
    for scope_suite, scope_branch in scopes:
        console.print(f"[bold]suite {scope_suite}, branch {scope_branch}[/bold]")
        table = Table(box=None, header_style="bold")
        columns = ["test", "metric"] + (["kind"] if include_improvements else [])
        columns += ["before -> after", "change", "first run", "when (UTC)", "commits"]
        columns += ["p-value", "runs", "latest", "outliers", "issue"]
        for header in columns:
            table.add_column(header, justify="right" if header == "change" else "left")
        for change in report.changes:
            if (change.suite, change.branch) != (scope_suite, scope_branch):
                continue
            cells = [change.test_id, change.metric]
            if include_improvements:
                cells.append(change.kind)
            cells += [
                _change(change),
                _percent(change),
                f"{change.first_run.id} {change.first_run.key}",
                change.first_run.at.strftime("%Y-%m-%d %H:%M"),
                change.commit_range,
                format_p_value(change.p_value),
                f"{change.n_before}/{change.n_after}",
                "yes" if change.current else "no",
                ", ".join(str(run) for run in change.outlier_runs) or "-",
                change.issue_code or "-",
            ]
            table.add_row(*cells)
        console.print(table)
    if report.changes:
        console.print(f"{len(report.changes)} {what} in {report.series_analyzed} series.")
    if report.outliers:
        table = Table(title="Outliers (latest window)", box=None, header_style="bold")
        for header in ("suite", "branch", "test", "metric", "run", "when (UTC)", "value", "median"):
            table.add_column(header)
        for outlier in report.outliers:
            spec = api.REGRESSION_METRICS[outlier.metric]
            table.add_row(
                outlier.suite,
                outlier.branch,
                outlier.test_id,
                outlier.metric,
                f"{outlier.run.id} {outlier.run.key}",
                outlier.run.at.strftime("%Y-%m-%d %H:%M"),
                spec.show(outlier.value),
                spec.show(outlier.median),
            )
        console.print(table)
