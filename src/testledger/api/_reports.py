"""Reports over runs: comparison, gate, summary, trend, one test's history, cost, the
proposal's example queries, export and the HTML report."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from testledger.common.jsondata import JsonData
from testledger.config import web_base_url
from testledger.record.ledger import Ledger
from testledger.report import compare as comparing
from testledger.report import cost as costs
from testledger.report import export as exporting
from testledger.report import gate as gating
from testledger.report import history as histories
from testledger.report import html as html_reports
from testledger.report import markdown, proposal
from testledger.report import trend as trends
from testledger.report.compare import CompareThresholds
from testledger.report.markdown import render_markdown

__all__ = [
    "CompareThresholds",
    "HtmlReportFile",
    "QueryResult",
    "compare",
    "cost",
    "export",
    "gate",
    "gate_rules",
    "history",
    "html_report",
    "query",
    "query_names",
    "render_markdown",
    "summary",
    "trend",
]


def _flaky(ledger: Ledger) -> Any:
    from testledger.analyze.flaky.config import FlakyConfig

    return FlakyConfig.from_settings(ledger.settings.tool)


def compare(
    ledger: Ledger,
    current: str | int | None = None,
    baseline: str | int | None = None,
    *,
    baseline_branch: str | None = None,
    thresholds: CompareThresholds | None = None,
) -> comparing.RunComparison:
    """A run (default the latest) against a baseline run (default the previous run of its
    branch and suite; ``baseline_branch``: the latest run of that branch): new failures with
    their issue, fixed, flaky, added and removed tests, slower and costlier tests, token and
    quality changes, per provider and model. Raises NotFound, ConfigError."""
    if baseline is not None and baseline_branch is not None:
        from testledger.errors import ConfigError

        raise ConfigError("give either a baseline run or a baseline branch, not both")
    with ledger.engine(create=False).connect() as connection:
        return comparing.compare_runs(
            connection,
            current,
            baseline,
            baseline_branch=baseline_branch,
            thresholds=thresholds,
            flaky_config=_flaky(ledger),
        )


def gate_rules(ledger: Ledger, **overrides: Any) -> gating.GateRules:
    """The project's gate rules (``[tool.testledger.gate]``, with the run budget of
    ``[tool.testledger] max_run_cost_usd``), with ``overrides`` (None leaves a rule)."""
    tool = ledger.settings.tool
    table = dict(tool.get("gate", {}))
    budget = costs.budget_from_settings(tool)
    if budget is not None and not any(k in table for k in ("max_run_cost_usd", "max-run-cost-usd")):
        table["max_run_cost_usd"] = budget
    return gating.GateRules.from_config(table).merged(**overrides)


def gate(
    ledger: Ledger,
    run: str | int | None = None,
    *,
    rules: gating.GateRules | None = None,
    baseline_branch: str | None = None,
) -> gating.GateResult:
    """Whether a run (default the latest) passes the gate's rules (default the project's); one
    check per rule, each PASS, FAIL or not applicable."""
    rules = rules or gate_rules(ledger)
    with ledger.engine(create=False).connect() as connection:
        return gating.evaluate_gate(
            connection, rules, run, baseline_branch=baseline_branch, flaky_config=_flaky(ledger)
        )


def summary(
    ledger: Ledger, run: str | int | None = None, *, baseline_branch: str | None = None
) -> markdown.SummaryData:
    """What the markdown summary of a run shows (see :func:`render_markdown`): totals against
    the previous run, new failures with their issues, fixed and flaky tests, the slowest and
    costliest changes, and the gate when the project has rules."""
    rules = gate_rules(ledger)
    with ledger.engine(create=False).connect() as connection:
        return markdown.build_summary(
            connection,
            run,
            baseline_branch=baseline_branch,
            rules=rules,
            flaky_config=_flaky(ledger),
            base_url=web_base_url(ledger.settings),
        )


def trend(
    ledger: Ledger,
    *,
    limit: int = 20,
    branch: str | None = None,
    suite: str | None = None,
    tool: str | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> trends.Trend:
    """Pass rate, watcher quality, cost, duration and tokens of the last ``limit`` finished
    runs, oldest first; with tool / provider / model, over each run's matching results."""
    with ledger.engine(create=False).connect() as connection:
        return trends.run_trend(
            connection,
            limit=limit,
            branch=branch,
            suite=suite,
            tool=tool,
            provider=provider,
            model=model,
        )


def history(
    ledger: Ledger, test: str, *, limit: int = 30, branch: str | None = None
) -> histories.ResultHistory:
    """One test's last ``limit`` runs, newest first. ``test`` is its id, tool/variation, or a
    unique part of its id; raises NotFound, or AmbiguousTest listing the tests it matches."""
    with ledger.engine(create=False).connect() as connection:
        return histories.result_history(connection, test, limit=limit, branch=branch)


def cost(
    ledger: Ledger,
    *,
    runs: int = 10,
    branch: str | None = None,
    suite: str | None = None,
    budget_usd: float | None = None,
) -> costs.CostReport:
    """Cost and tokens of the last ``runs`` runs, and over them per tool, provider and model.
    ``budget_usd`` (default ``[tool.testledger] max_run_cost_usd``) marks runs over it."""
    if budget_usd is None:
        budget_usd = costs.budget_from_settings(ledger.settings.tool)
    with ledger.engine(create=False).connect() as connection:
        return costs.cost_report(
            connection, runs=runs, branch=branch, suite=suite, budget_usd=budget_usd
        )


@dataclass(frozen=True, slots=True)
class QueryResult(JsonData):
    """The rows of one of the proposal's example queries, with the same Python values on every
    database (numbers as floats to 6 decimals, timestamps as UTC datetimes)."""

    name: str
    title: str
    rows: list[dict[str, Any]]


def query_names() -> dict[str, str]:
    """The example queries' names and titles."""
    return {name: known.title for name, known in proposal.PROPOSAL_QUERIES.items()}


_ISO_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$"
)


def plain_value(value: Any) -> Any:
    """PostgreSQL's Decimals as floats, SQLite's timestamp text as UTC datetimes (raw SQL
    bypasses the column types)."""
    if isinstance(value, (Decimal, float)):
        # The schema keeps at most 6 decimals; what SQLite's float arithmetic adds beyond
        # them (100 - 66.67 = 33.329999...) is noise PostgreSQL's numerics do not have.
        return round(float(value), 6)
    if isinstance(value, str) and _ISO_TIMESTAMP.match(value):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        value = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return value


def query(ledger: Ledger, name: str) -> QueryResult:
    """Run one of the proposal's four example queries, unchanged. Raises NotFound."""
    with ledger.engine(create=False).connect() as connection:
        rows = proposal.run_proposal_query(connection, name)
    plain = [{key: plain_value(value) for key, value in row.items()} for row in rows]
    return QueryResult(name=name, title=proposal.PROPOSAL_QUERIES[name].title, rows=plain)


def export(
    ledger: Ledger,
    table: str,
    format_name: str = "jsonl",
    output: Path | None = None,
    *,
    run_from: int | None = None,
    run_to: int | None = None,
    stdout: IO[str] | None = None,
) -> exporting.ExportSummary:
    """Stream one table (runs, results, issues, occurrences, watcher insights) as CSV, JSON,
    JSON Lines or Parquet to ``output`` (else ``stdout``); a failed export leaves no partial
    file. Raises ConfigError for an unknown table or format."""
    with ledger.engine(create=False).connect() as connection:
        return exporting.export_table(
            connection, table, format_name, output, run_from=run_from, run_to=run_to, stdout=stdout
        )


@dataclass(frozen=True, slots=True)
class HtmlReportFile(JsonData):
    path: Path
    run_id: int
    trend_runs: int


def html_report(
    ledger: Ledger, output: Path, run: str | int | None = None, *, history_runs: int = 100
) -> HtmlReportFile:
    """Write the self-contained HTML report of a run (default the latest) to ``output``:
    summary, trends over ``history_runs`` runs, failures by issue, flaky tests, the comparison
    with the previous run, slowest and costliest tests. It loads nothing from the network."""
    data = html_report_data(ledger, run, history_runs=history_runs)
    output.write_text(html_reports.render_html(data), encoding="utf-8")
    return HtmlReportFile(path=output, run_id=data.run.id, trend_runs=len(data.trend.run_ids))


def html_report_data(
    ledger: Ledger, run: str | int | None = None, *, history_runs: int = 100
) -> html_reports.HtmlReport:
    """What the HTML report of a run shows, as data."""
    with ledger.engine(create=False).connect() as connection:
        return html_reports.build_report(connection, run, history=history_runs)
