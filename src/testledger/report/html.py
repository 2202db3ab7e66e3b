"""The self-contained HTML report: one file with inline CSS, JS and data, no network needed.

``build_report`` assembles the numbers from the other reports (runs, issues, flaky, compare,
trend) and the metric regressions seen in the run (the regression issues detection linked to
it); ``render_html`` turns them into the page. Trend data is a compact array per metric so a
history of 1,000 runs stays small, and the charts are drawn once by the same chart code as the
web dashboard's (its ``charts.js`` on the vendored uPlot, inlined into the page).

The run's badge gives its verdict (``run_verdict``, explained in the page's legend):

- green *passed*: the run finished and no test failed;
- amber *known failures*: tests failed, but each is known to be flaky or already failed in the
  previous run of the branch and suite, so nothing new broke (amber too while a run without
  failures is still recording);
- red *new failures*: a test failed that passed (or did not exist) in the previous run and is
  not known to be flaky - in a branch's first run, any failure not known to be flaky - or the
  run aborted.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any

import jinja2
import sqlalchemy as sa
from sqlalchemy import Connection

from testledger.analyze.flaky.finder import FlakyTest, find_flaky
from testledger.analyze.regressions.metrics import METRICS
from testledger.analyze.regressions.metrics import ORIGIN as REGRESSION_ORIGIN
from testledger.common.jsondata import JsonData, as_json
from testledger.errors import NotFound
from testledger.report.compare import RunComparison, compare_runs
from testledger.report.runs import RunSummary, find_run
from testledger.report.trend import TREND_METRICS, run_trend
from testledger.store.tables import issue_occurrences, issues, test_results

FAILED_STATUSES = ("FAIL", "ERROR")
TOP_N = 10
EXCERPT_CHARS = 300
# The charts the page draws, by trend metric name, in display order.
CHART_METRICS = ("pass_rate", "quality", "cost", "duration")


@dataclass(frozen=True, slots=True)
class Verdict:
    """The run's badge: ``level`` is its colour class (ok / warn / bad), ``label`` its text and
    ``reason`` the sentence that says why."""

    level: str
    label: str
    reason: str


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def run_verdict(status: str, failing: Collection[str], new_failures: Collection[str]) -> Verdict:
    """The verdict on a run in ``status`` whose ``failing`` tests (by their last attempt) include
    ``new_failures``: failures neither known to be flaky nor failing in the previous run."""
    if status == "aborted":
        return Verdict("bad", "aborted", "the run stopped before it finished")
    if new_failures:
        names = ", ".join(sorted(new_failures)[:3]) + (", ..." if len(new_failures) > 3 else "")
        return Verdict(
            "bad", "new failures", f"{_count(len(new_failures), 'new failure')}: {names}"
        )
    if failing:
        return Verdict(
            "warn",
            "known failures",
            f"{_count(len(failing), 'failing test')}, each known to be flaky or already failing",
        )
    if status == "running":
        return Verdict("warn", "running", "no failures so far; the run is still recording")
    return Verdict("ok", "passed", "no test failed")


@dataclass(frozen=True, slots=True)
class IssueGroup:
    """The run's failures of one issue (``code`` None: failures not yet grouped into one)."""

    code: str | None
    title: str
    status: str | None
    priority: str | None
    tests: list[str]
    error_excerpt: str | None


@dataclass(frozen=True, slots=True)
class RunRegression:
    """A lasting rise (or fall, for quality) in a test's metric that the run shows: the
    regression issue of its series, with the change it describes (``before``/``after``: the
    levels on each side, in the metric's unit)."""

    test_id: str
    metric: str
    before: str
    after: str
    magnitude_pct: float | None  # None: the metric rose from zero
    first_run_id: int
    first_run_key: str
    commit_range: str
    issue_code: str | None
    issue_status: str | None
    issue_priority: str | None


@dataclass(frozen=True, slots=True)
class TestCost:
    test_id: str
    status: str
    duration_secs: float | None
    cost_usd: float | None
    tokens_total: int | None


@dataclass(frozen=True, slots=True)
class TrendSeries:
    """Parallel arrays, oldest run first: one entry per run of the history."""

    run_ids: list[int]
    labels: list[str]
    #: The runs' start times, Unix seconds (the charts' x axis).
    times: list[float]
    metrics: dict[str, list[float | None]]


@dataclass(frozen=True, slots=True)
class HtmlReport(JsonData):
    run: RunSummary
    verdict: Verdict
    generated_at: datetime
    trend: TrendSeries
    failures: list[IssueGroup]
    regressions: list[RunRegression]
    flaky: list[FlakyTest]
    comparison: RunComparison | None
    slowest: list[TestCost]
    costliest: list[TestCost]


def _excerpt(message: str | None) -> str | None:
    if not message:
        return None
    text = message.strip()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _failures(connection: Connection, run_id: int) -> list[IssueGroup]:
    rows = connection.execute(
        sa.select(
            test_results.c.test_id,
            test_results.c.error_type,
            test_results.c.error_message,
            issues.c.issue_code,
            issues.c.title,
            issues.c.status,
            issues.c.priority,
        )
        .select_from(test_results)
        .outerjoin(issue_occurrences, issue_occurrences.c.test_result_id == test_results.c.id)
        .outerjoin(issues, issues.c.id == issue_occurrences.c.issue_id)
        .where(test_results.c.run_id == run_id, test_results.c.status.in_(FAILED_STATUSES))
        .order_by(test_results.c.test_id, test_results.c.attempt.desc())
    ).all()
    groups: dict[str | None, dict[str, Any]] = {}
    for test_id, error_type, message, code, title, status, priority in rows:
        group = groups.setdefault(
            code,
            {
                "title": title or "Failures not grouped into an issue",
                "status": status,
                "priority": priority,
                "tests": [],
                "excerpt": _excerpt(
                    f"{error_type}: {message}" if error_type and message else error_type or message
                ),
            },
        )
        if test_id not in group["tests"]:
            group["tests"].append(test_id)
    ordered = sorted(groups.items(), key=lambda item: (item[0] is None, -len(item[1]["tests"])))
    return [
        IssueGroup(code, g["title"], g["status"], g["priority"], g["tests"], g["excerpt"])
        for code, g in ordered
    ]


def _failing_tests(connection: Connection, run_id: int) -> set[str]:
    """The run's tests whose last attempt failed."""
    last_attempt = (
        sa.select(test_results.c.test_id, sa.func.max(test_results.c.attempt).label("attempt"))
        .where(test_results.c.run_id == run_id)
        .group_by(test_results.c.test_id)
        .subquery()
    )
    rows = connection.execute(
        sa.select(test_results.c.test_id)
        .join(
            last_attempt,
            sa.and_(
                last_attempt.c.test_id == test_results.c.test_id,
                last_attempt.c.attempt == test_results.c.attempt,
            ),
        )
        .where(test_results.c.run_id == run_id, test_results.c.status.in_(FAILED_STATUSES))
    )
    return {test_id for (test_id,) in rows}


def _verdict(
    connection: Connection,
    run: RunSummary,
    comparison: RunComparison | None,
    flaky: list[FlakyTest],
) -> Verdict:
    if run.tests_failed == 0 and run.status != "running":
        return run_verdict(run.status, [], [])  # a running run's counts are not written yet
    if comparison is not None:
        failing = [
            change.test_id
            for changes in (
                comparison.new_failures,
                comparison.still_failing,
                comparison.flaky_failures,
            )
            for change in changes
        ]
        new = [change.test_id for change in comparison.new_failures]
    else:
        failing = sorted(_failing_tests(connection, run.id))
        known = {f.test_id for f in flaky}
        new = [test_id for test_id in failing if test_id not in known]
    return run_verdict(run.status, failing, new)


_PRIORITY_ORDER = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}


def _regressions(connection: Connection, run_id: int) -> list[RunRegression]:
    """The metric regressions seen in the run: the regression issues that detection (after
    each run, :mod:`testledger.analyze.regressions`) linked to the run's results, as their
    details describe them; the highest priority first, then the largest change.

    Read from the issues rather than found again with ``find_regressions``: the change points
    of every series of a suite cost 0.45 s on a 50-test suite with 200 runs (eight times the
    rest of the report), and an issue's occurrences name the very runs that showed it, so the
    report of an older run lists what held then, not what holds now."""
    rows = connection.execute(
        sa.select(issues.c.issue_code, issues.c.status, issues.c.priority, issues.c.details)
        .join(issue_occurrences, issue_occurrences.c.issue_id == issues.c.id)
        .where(issue_occurrences.c.run_id == run_id, issues.c.origin == REGRESSION_ORIGIN)
        .distinct()
    ).all()
    found = []
    for code, status, priority, details in rows:
        metric = METRICS.get(str(details.get("metric"))) if isinstance(details, dict) else None
        if metric is None:
            continue  # not a regression issue's details: nothing to show
        found.append(
            RunRegression(
                test_id=details["test_id"],
                metric=metric.name,
                before=metric.show(float(details["before_mean"])),
                after=metric.show(float(details["after_mean"])),
                magnitude_pct=details.get("magnitude_pct"),
                first_run_id=int(details["first_run_id"]),
                first_run_key=str(details["first_run_key"]),
                commit_range=str(details["commit_range"]),
                issue_code=code,
                issue_status=status,
                issue_priority=priority,
            )
        )

    def order(row: RunRegression) -> tuple[int, float, str, str]:
        size = -abs(row.magnitude_pct) if row.magnitude_pct is not None else -float("inf")
        return (_PRIORITY_ORDER.get(row.issue_priority or "", 4), size, row.test_id, row.metric)

    return sorted(found, key=order)


def _top(connection: Connection, run_id: int, column: Any) -> list[TestCost]:
    rows = connection.execute(
        sa.select(
            test_results.c.test_id,
            test_results.c.status,
            test_results.c.duration_secs,
            test_results.c.cost_usd,
            test_results.c.tokens_total,
        )
        .where(test_results.c.run_id == run_id, column.is_not(None))
        .order_by(column.desc(), test_results.c.test_id)
        .limit(TOP_N)
    )
    return [TestCost(*row) for row in rows]


def _trend(connection: Connection, run: RunSummary, history: int) -> TrendSeries:
    trend = run_trend(connection, limit=history, branch=run.branch, suite=run.suite)
    # The history ends at the reported run, not at whatever was recorded after it.
    points = [p for p in trend.points if p.run_timestamp <= run.run_timestamp]
    metrics = {m.name: m for m in TREND_METRICS}
    return TrendSeries(
        run_ids=[p.run_id for p in points],
        labels=[f"#{p.run_id} {p.run_timestamp:%Y-%m-%d %H:%M}" for p in points],
        times=[round(p.run_timestamp.timestamp(), 3) for p in points],
        metrics={
            name: [getattr(p, metrics[name].attribute) for p in points] for name in CHART_METRICS
        },
    )


def build_report(
    connection: Connection, run: str | int | None = None, *, history: int = 100
) -> HtmlReport:
    """Everything the HTML report shows for ``run`` (default: the latest), with the trend over
    the last ``history`` runs of its branch and suite.

    The flaky tests are judged once, over the suite's history on every branch, and that one
    list serves both the page's flaky section and the comparison's flaky failures: the same
    verdict ``testledger compare`` and issue detection give."""
    summary = find_run(connection, run)
    flaky = find_flaky(connection, suite=summary.suite)
    try:
        comparison: RunComparison | None = compare_runs(
            connection, summary.id, known_flaky={f.test_id for f in flaky}
        )
    except NotFound:
        comparison = None  # the first run of its branch has nothing to compare with
    return HtmlReport(
        run=summary,
        verdict=_verdict(connection, summary, comparison, flaky),
        generated_at=datetime.now(timezone.utc).replace(microsecond=0),
        trend=_trend(connection, summary, history),
        failures=_failures(connection, summary.id),
        regressions=_regressions(connection, summary.id),
        flaky=flaky,
        comparison=comparison,
        slowest=_top(connection, summary.id, test_results.c.duration_secs),
        costliest=_top(connection, summary.id, test_results.c.cost_usd),
    )


def safe_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``</``, ``<!--`` or line separators can end it
    early or switch the parser's state, whatever the strings hold."""
    text = json.dumps(as_json(data), ensure_ascii=False, default=str, separators=(",", ":"))
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _asset(name: str) -> str:
    folder = resources.files("testledger.report").joinpath("templates")
    return folder.joinpath(name).read_text("utf-8")


# The chart code the report shares with the web dashboard: its charts.js and the vendored uPlot,
# kept once, in the web package's static files (package data, read as files: nothing of the web
# app is imported).
CHART_JS = ("vendor/uPlot.iife.min.js", "charts.js")
CHART_CSS = ("vendor/uPlot.min.css",)


def _chart_asset(name: str) -> str:
    node = resources.files("testledger.web").joinpath("static")
    for part in name.split("/"):
        node = node.joinpath(part)
    text = node.read_text("utf-8")
    if "</script" in text.lower() or "<!--" in text:
        raise ValueError(f"{name} cannot be inlined into a script element")  # never expected
    return text


def _number(value: float | int | None, fmt: str = "{:,.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def render_html(report: HtmlReport) -> str:
    """The report as one self-contained HTML page."""
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["num"] = _number
    template = environment.from_string(_asset("report.html.j2"))
    charts = [{"name": m.name, "label": m.label} for m in TREND_METRICS if m.name in CHART_METRICS]
    chart_data = {
        "labels": report.trend.labels,
        "times": report.trend.times,
        "run_ids": report.trend.run_ids,
        "metrics": report.trend.metrics,
        "charts": charts,
    }
    latest = {
        name: next((v for v in reversed(values) if v is not None), None)
        for name, values in report.trend.metrics.items()
    }
    return template.render(
        report=report,
        charts=[{**c, "latest": latest.get(c["name"])} for c in charts],
        css=_asset("report.css"),
        chart_css="\n".join(_chart_asset(name) for name in CHART_CSS),
        js="\n".join([*(_chart_asset(name) for name in CHART_JS), _asset("report.js")]),
        data_json=safe_json(chart_data),
    )
