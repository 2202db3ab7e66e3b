"""``testledger regressions``: change points in every per-test metric."""

from __future__ import annotations

import typer

from testledger import api
from testledger.cli.app import command, console, emit_json, ledger_of
from testledger.cli.tables import Column, fitted_table


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
        True,
        "--include-improvements/--regressions-only",
        help="List changes for the better too, in a section of their own (the default).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List the lasting changes (E-divisive change points confirmed by a t-test) in each
    test's duration, memory, CPU, tokens, cost and watcher quality over the runs of its branch
    and suite: regressions, then improvements (``kind`` in --json; only regressions open
    issues), with the single-run outliers of the latest window. Settings:
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
    _print_report(report, include_improvements)


def _print_report(report: api.RegressionReport, include_improvements: bool) -> None:
    """Regressions, then improvements in a section of their own, then the outliers."""
    regressions = [c for c in report.changes if c.kind == "regression"]
    improvements = [c for c in report.changes if c.kind != "regression"]
    if not report.changes:
        what = "changes" if include_improvements else "regressions"
        console.print(f"No {what} in {report.series_analyzed} series.")
    else:
        _print_changes(regressions, "regressions")
        if improvements:
            console.print("")
            console.print("Improvements", style="bold")
            _print_changes(improvements, "improvements")
        console.print(
            f"{len(regressions)} regressions"
            + (f", {len(improvements)} improvements" if improvements else "")
            + f" in {report.series_analyzed} series."
        )
    if report.outliers:
        _print_outliers(report)


def _print_changes(changes: list[api.MetricChange], what: str) -> None:
    """One table of changes per suite and branch."""
    if not changes:
        console.print(f"No {what}.")
    for scope_suite, scope_branch in sorted({(c.suite, c.branch) for c in changes}):
        console.print(f"suite {scope_suite}, branch {scope_branch}", style="bold")
        columns = [
            Column("test", main=True),
            Column("metric"),
            Column("before -> after"),
            Column("change", justify="right"),
            Column("first run", keep=3),
            Column("when (UTC)", keep=2),
            Column("commits", keep=4),
            Column("p-value", keep=5),
            Column("runs", keep=5),
            Column("latest", keep=4),
            Column("outliers", keep=5),
            Column("issue", keep=1),
        ]
        rows = [
            [
                change.test_id,
                change.metric,
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
            for change in changes
            if (change.suite, change.branch) == (scope_suite, scope_branch)
        ]
        console.print(fitted_table(columns, rows, width=console.width))


def _print_outliers(report: api.RegressionReport) -> None:
    columns = [
        Column("suite", keep=3),
        Column("branch", keep=3),
        Column("test", main=True),
        Column("metric"),
        Column("run", keep=2),
        Column("when (UTC)", keep=1),
        Column("value"),
        Column("median"),
    ]
    rows = []
    for outlier in report.outliers:
        spec = api.REGRESSION_METRICS[outlier.metric]
        rows.append(
            [
                outlier.suite,
                outlier.branch,
                outlier.test_id,
                outlier.metric,
                f"{outlier.run.id} {outlier.run.key}",
                outlier.run.at.strftime("%Y-%m-%d %H:%M"),
                spec.show(outlier.value),
                spec.show(outlier.median),
            ]
        )
    title = "Outliers (latest window)"
    console.print(fitted_table(columns, rows, width=console.width, title=title))
