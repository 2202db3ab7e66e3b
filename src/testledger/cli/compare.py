"""``testledger compare``, ``gate`` and ``summary``: a run against its baseline, for CI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from testledger import api
from testledger.cli.app import command, console, emit_json, ledger_of
from testledger.cli.tables import Column, fitted_table
from testledger.common.formatting import format_seconds
from testledger.errors import ConfigError

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of tables.")
BASELINE_OPTION = typer.Option(
    None,
    "--baseline",
    metavar="BRANCH",
    help="Compare with the latest run of this branch (same suite) instead of the previous run "
    "of the run's own branch.",
)
#: ``testledger gate`` exit code when a rule is broken (1 is an error: no database, no run...).
EXIT_GATE_FAILED = 2


#: A format string, or a function for figures whose precision depends on their size.
Format = str | Callable[[float], str]


def _formatted(value: float, fmt: Format) -> str:
    return fmt.format(value) if isinstance(fmt, str) else fmt(value)


def _number(value: float | int | None, fmt: Format = "{:.2f}") -> str:
    return "-" if value is None else _formatted(value, fmt)


def _delta(value: float | int | None, fmt: Format) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    text = ("+" if value > 0 else "") + _formatted(value, fmt)
    return text


_TOTAL_ROWS: tuple[tuple[str, str, Format], ...] = (
    ("total_tests", "tests", "{}"),
    ("tests_passed", "passed", "{}"),
    ("tests_failed", "failed", "{}"),
    ("tests_skipped", "skipped", "{}"),
    ("pass_rate", "pass rate %", "{:.2f}"),
    ("total_cost_usd", "cost $", "{:.4f}"),
    ("duration_secs", "duration s", format_seconds),
    ("total_tokens", "tokens", "{}"),
    ("avg_watcher_quality", "avg quality", "{:.2f}"),
)


def _render_totals(comparison: api.RunComparison) -> None:
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for header in ("before", "after", "delta"):
        table.add_column(header, justify="right")
    totals = {total.metric: total for total in comparison.totals}
    for metric, label, fmt in _TOTAL_ROWS:
        total = totals[metric]
        table.add_row(
            label, _number(total.before, fmt), _number(total.after, fmt), _delta(total.delta, fmt)
        )
    console.print(table)


def _render_tests(title: str, rows: list[api.TestChange], value_fmt: str | None = None) -> None:
    if not rows:
        return
    columns = [
        Column("test", main=True),
        Column("provider", keep=3),
        Column("model", keep=2),
        Column("before"),
        Column("after"),
        Column("issue / error" if value_fmt is None else "change", main=value_fmt is None),
    ]
    cells = []
    for row in rows:
        if value_fmt is None:
            before, after = row.status_before or "-", row.status_after or "-"
            message = (row.error_message or "").strip().splitlines()
            error = f"{row.error_type or ''}: {message[0] if message else ''}".strip(": ")
            detail = " ".join(part for part in (row.issue_code or "", error[:200]) if part)
        else:
            before, after = _number(row.before, value_fmt), _number(row.after, value_fmt)
            delta = None if row.before is None or row.after is None else row.after - row.before
            detail = _delta(delta, value_fmt)
        cells.append([row.test_id, row.provider or "-", row.model or "-", before, after, detail])
    title = f"{title} ({len(rows)})"
    console.print(fitted_table(columns, cells, width=console.width, title=title))


def _render_groups(title: str, groups: list[api.GroupChange]) -> None:
    if not groups:
        return
    table = Table(title=title, box=None, header_style="bold", title_justify="left")
    table.add_column("name")
    for header in ("tests", "passed", "failed", "cost $", "tokens", "avg quality"):
        table.add_column(header, justify="right")

    def pair(before: Any, after: Any, fmt: str) -> str:
        return f"{_number(before, fmt)} → {_number(after, fmt)}"

    for group in groups:
        b, a = group.before, group.after
        table.add_row(
            group.name,
            pair(b and b.tests, a and a.tests, "{}"),
            pair(b and b.passed, a and a.passed, "{}"),
            pair(b and b.failed, a and a.failed, "{}"),
            pair(b and b.cost_usd, a and a.cost_usd, "{:.4f}"),
            pair(b and b.tokens, a and a.tokens, "{}"),
            pair(b and b.avg_quality, a and a.avg_quality, "{:.2f}"),
        )
    console.print(table)


@command("compare")
def compare_command(
    ctx: typer.Context,
    current: str | None = typer.Argument(
        None,
        metavar="CURRENT",
        help="The run to examine, by id or key (default: the latest run).",
    ),
    baseline: str | None = typer.Argument(
        None,
        metavar="BASELINE",
        help="The run to compare it with, by id or key (default: the previous run of its "
        "branch and suite). Give the newer run first: `compare 12 11`.",
    ),
    baseline_branch: str | None = BASELINE_OPTION,
    slower_ratio: float = typer.Option(
        1.2,
        "--slower-ratio",
        min=1.0,
        help="A test is slower/faster when its time changed by this factor...",
    ),
    slower_min_secs: float = typer.Option(
        0.1, "--slower-min-secs", min=0.0, help="...and by at least this many seconds."
    ),
    cost_threshold: float = typer.Option(
        10.0, "--cost-threshold", min=0.0, help="Percent change for costlier/cheaper tests."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Compare two runs: new failures (with their issue), fixed, flaky, added and removed tests,
    slower/costlier tests, token and watcher-quality changes, per-provider and per-model
    figures. Default: the latest run against the previous run of the same branch and suite."""
    if baseline is not None and baseline_branch is not None:
        raise ConfigError("give either a BASELINE run or --baseline BRANCH, not both")
    thresholds = api.CompareThresholds(
        slower_ratio=slower_ratio,
        slower_min_secs=slower_min_secs,
        cost_change=cost_threshold / 100.0,
        token_change=cost_threshold / 100.0,
    )
    comparison = api.compare(
        ledger_of(ctx), current, baseline, baseline_branch=baseline_branch, thresholds=thresholds
    )
    if as_json:
        emit_json(comparison)
        return
    a, b = comparison.current, comparison.baseline
    console.print(
        f"Run {a.id} ({a.run_key}, {a.branch} @ {(a.commit or '-')[:10]}) vs "
        f"run {b.id} ({b.run_key}, {b.branch} @ {(b.commit or '-')[:10]})"
        f"  suite {a.suite}",
        style="bold",
    )
    if b.run_timestamp > a.run_timestamp:
        console.print(
            f"note: the baseline, run {b.id}, is newer than run {a.id}: what is listed as "
            f"new or fixed is read from run {b.id} back to run {a.id} "
            f"(swap them, `testledger compare {b.id} {a.id}`, to see what changed since run {a.id})"
        )
    _render_totals(comparison)
    _render_tests("New failures", comparison.new_failures)
    _render_tests("Flaky failures", comparison.flaky_failures)
    _render_tests("Still failing", comparison.still_failing)
    _render_tests("Fixed", comparison.fixed)
    _render_tests("Added", comparison.added)
    _render_tests("Removed", comparison.removed)
    _render_tests("Slower (s)", comparison.slower, "{:.3f}")
    _render_tests("Faster (s)", comparison.faster, "{:.3f}")
    _render_tests("Costlier ($)", comparison.costlier, "{:.4f}")
    _render_tests("Cheaper ($)", comparison.cheaper, "{:.4f}")
    _render_tests("Token changes", comparison.token_changes, "{:.0f}")
    _render_tests("Watcher quality changes", comparison.quality_changes, "{:.0f}")
    if any(g.name != "(none)" for g in comparison.providers):
        _render_groups("By provider", comparison.providers)
        _render_groups("By model", comparison.models)


def _gate_lines(result: api.GateResult) -> list[str]:
    lines = []
    for check in result.checks:
        word = "SKIP" if not check.applicable else ("PASS" if check.passed else "FAIL")
        lines.append(f"{word} {check.rule}: {check.message}")
    return lines


@command("gate")
def gate_command(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Run id or key (default: the latest run)."),
    max_new_failures: int | None = typer.Option(
        None, "--max-new-failures", min=0, metavar="N", help="At most N new failures."
    ),
    min_pass_rate: float | None = typer.Option(
        None,
        "--min-pass-rate",
        metavar="P",
        min=0.0,
        max=100.0,
        help="Pass rate at least P percent (0-100).",
    ),
    max_cost_increase: str | None = typer.Option(
        None,
        "--max-cost-increase",
        metavar="PCT",
        help="Total cost at most PCT (10% or 10) above the baseline run's.",
    ),
    max_duration_increase: str | None = typer.Option(
        None,
        "--max-duration-increase",
        metavar="PCT",
        help="Duration at most PCT above the baseline run's.",
    ),
    min_quality: float | None = typer.Option(
        None,
        "--min-quality",
        metavar="Q",
        help="Average watcher quality at least Q (not applicable when the run has no scores).",
    ),
    max_run_cost_usd: float | None = typer.Option(
        None,
        "--max-run-cost-usd",
        metavar="USD",
        help="Run cost (tests plus watcher) at most USD; default [tool.testledger] "
        "max_run_cost_usd.",
    ),
    no_new_issues: bool | None = typer.Option(
        None, "--no-new-issues", help="Fail when the run opened a new (non-flaky) issue."
    ),
    include_flaky: bool | None = typer.Option(
        None, "--include-flaky", help="Count failures of known flaky tests as new failures."
    ),
    baseline_branch: str | None = BASELINE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check a run against quality rules, for CI. Exit 0 when every rule holds, 2 when one is
    broken, 1 on an error (no database, no such run, bad configuration). Rules come from
    [tool.testledger.gate] in pyproject.toml (same names, e.g. max-new-failures = 0,
    max-cost-increase = "10%"); options override them. One PASS/FAIL/SKIP line per rule."""
    opened = ledger_of(ctx)
    rules = api.gate_rules(
        opened,
        max_new_failures=max_new_failures,
        min_pass_rate=min_pass_rate,
        max_cost_increase=max_cost_increase,
        max_duration_increase=max_duration_increase,
        min_quality=min_quality,
        max_run_cost_usd=max_run_cost_usd,
        no_new_issues=no_new_issues,
        include_flaky=include_flaky,
    )
    result = api.gate(opened, run, rules=rules, baseline_branch=baseline_branch)
    if as_json:
        emit_json(result)
    else:
        for line in _gate_lines(result):
            typer.echo(line)
    if not result.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@command("summary")
def summary_command(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Run id or key (default: the latest run)."),
    markdown: bool = typer.Option(
        True, "--markdown/--no-markdown", help="GitHub-flavoured markdown (the only text format)."
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write the markdown to FILE ('-': stdout)."
    ),
    github: bool = typer.Option(
        False,
        "--github",
        help="Append to the file named by $GITHUB_STEP_SUMMARY (the job summary of GitHub "
        "Actions); an error when it is unset. Without it, the summary is appended there too "
        "when the variable is set and no --output is given.",
    ),
    baseline_branch: str | None = BASELINE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """A concise markdown report of a run for a PR comment or CI job summary: totals against
    the previous run, new failures with their issues, fixed and flaky tests, the slowest and
    costliest changes, and the gate when [tool.testledger.gate] has rules."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if github and not step_summary:
        raise ConfigError("--github needs $GITHUB_STEP_SUMMARY (set by GitHub Actions)")
    if not markdown and not as_json:
        raise ConfigError("markdown is the only text format: drop --no-markdown or add --json")
    data = api.summary(ledger_of(ctx), run, baseline_branch=baseline_branch)
    if as_json:
        emit_json(data)
        return
    text = api.render_markdown(data)
    if output is not None and output != "-":
        Path(output).write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)
    if step_summary and (github or output in (None, "-")):
        with open(step_summary, "a", encoding="utf-8") as summary_file:
            summary_file.write(text + "\n")
