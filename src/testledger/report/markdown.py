"""A run as a short GitHub-flavoured markdown report, for a PR comment or a CI job summary.

``build_summary`` gathers the data (the run, its comparison with the previous run, the gate
when rules are configured); ``render_markdown`` is a pure function of that data, so the exact
text is tested without a database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.engine import Connection

from testledger.analyze.flaky.config import FlakyConfig
from testledger.common.formatting import format_seconds
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound
from testledger.report.compare import RunComparison, TestChange, compare_runs, find_baseline
from testledger.report.gate import GateResult, GateRules, evaluate_gate
from testledger.report.runs import RunSummary, find_run

__all__ = ["SummaryData", "build_summary", "render_markdown"]

#: Failures listed before "and N more": a PR comment should stay readable.
MAX_FAILURES = 20
#: Slower / costlier tests shown.
TOP = 5


@dataclass(frozen=True, slots=True)
class SummaryData(JsonData):
    run: RunSummary
    comparison: RunComparison | None
    no_comparison_reason: str | None
    gate: GateResult | None
    #: Where the team's ``testledger serve`` is reached: the summary links to its pages.
    base_url: str | None = None


def build_summary(
    connection: Connection,
    run: str | int | None = None,
    *,
    baseline_branch: str | None = None,
    rules: GateRules | None = None,
    flaky_config: FlakyConfig | None = None,
    base_url: str | None = None,
) -> SummaryData:
    """The summary of ``run`` (default: the latest): compared with the previous run of its
    branch (or the latest of ``baseline_branch``) when there is one; with the gate's result
    when ``rules`` has any rule configured."""
    current = find_run(connection, run)
    comparison: RunComparison | None = None
    reason: str | None = None
    try:
        baseline = find_baseline(connection, current, baseline_branch=baseline_branch)
    except NotFound as exc:
        reason = str(exc)
    else:
        comparison = compare_runs(connection, current.id, baseline.id, flaky_config=flaky_config)
    gate = None
    if rules is not None and rules.configured:
        gate = evaluate_gate(
            connection,
            rules,
            current.id,
            baseline_branch=baseline_branch,
            flaky_config=flaky_config,
        )
    return SummaryData(
        run=current,
        comparison=comparison,
        no_comparison_reason=reason,
        gate=gate,
        base_url=base_url,
    )


#: A format string, or a function for figures whose precision depends on their size.
Format = str | Callable[[float], str]


def _formatted(value: float, fmt: Format) -> str:
    return fmt.format(value) if isinstance(fmt, str) else fmt(value)


def _number(value: float | int | None, fmt: Format) -> str:
    return "-" if value is None else _formatted(value, fmt)


def _seconds(value: float) -> str:
    return f"{format_seconds(value)} s"


def _delta(value: float | int | None, fmt: Format) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return ("+" if value > 0 else "") + _formatted(value, fmt)


_TOTALS: tuple[tuple[str, str, Format, Format], ...] = (
    # (metric, label, value format, delta format)
    ("total_tests", "Tests", "{}", "{}"),
    ("tests_passed", "Passed", "{}", "{}"),
    ("tests_failed", "Failed", "{}", "{}"),
    ("tests_skipped", "Skipped", "{}", "{}"),
    ("pass_rate", "Pass rate", "{:.2f}%", "{:.2f}"),
    ("total_cost_usd", "Cost", "${:.4f}", "{:.4f}"),
    ("duration_secs", "Duration", _seconds, format_seconds),
    ("total_tokens", "Tokens", "{}", "{}"),
    ("avg_watcher_quality", "Avg quality", "{:.2f}", "{:.2f}"),
)


def _one_line(text: str | None, limit: int = 120) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    line = line.replace("`", "'")
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Links:
    """Links to the web dashboard's pages (none without a base URL)."""

    def __init__(self, base: str | None) -> None:
        self.base = base.rstrip("/") if base else None

    def wrap(self, text: str, path: str) -> str:
        return f"[{text}]({self.base}{path})" if self.base else text

    def test(self, test_id: str) -> str:
        return self.wrap(f"`{test_id}`", "/tests/" + quote(test_id, safe="/:"))

    def issue(self, code: str) -> str:
        return self.wrap(code, "/issues/" + quote(code, safe=""))


def _failure(change: TestChange, links: _Links) -> str:
    parts = [f"- {links.test(change.test_id)}"]
    message = _one_line(change.error_message)
    error = f"{change.error_type}: {message}" if change.error_type else message
    if error:
        parts.append(f"— {error}")
    if change.issue_code:
        parts.append(f"(issue {links.issue(change.issue_code)})")
    return " ".join(parts)


def _limited(rows: list[str], limit: int) -> list[str]:
    if len(rows) <= limit:
        return rows
    return [*rows[:limit], f"- … and {len(rows) - limit} more"]


def _percent_change(change: TestChange) -> str:
    if not change.before:
        return ""
    return f" ({100.0 * ((change.after or 0.0) - change.before) / change.before:+.0f}%)"


def _section(title: str, rows: list[str]) -> list[str]:
    return [f"#### {title}", "", *rows, ""] if rows else []


def _heading(run: RunSummary) -> list[str]:
    """The title (marked failed when any test failed) and the run's counts."""
    marker = "❌" if run.tests_failed else "✅"
    return [
        f"### {marker} testledger: {run.suite} on {run.branch}",
        "",
        f"✅ {run.tests_passed} passed · ❌ {run.tests_failed} failed"
        f" · ⏭️ {run.tests_skipped} skipped · {run.total_tests} tests",
        "",
    ]


def _run_line(run: RunSummary, intro: str) -> str:
    """Which run this is, by key, id, branch and short commit (without the final period)."""
    line = f"{intro} `{run.run_key}` (id {run.id}), branch `{run.branch}`"
    if run.commit:
        line += f", commit `{run.commit[:12]}`"
    return line


def _run_alone(run: RunSummary, reason: str | None) -> list[str]:
    """The run's own totals, when there is no baseline to compare with (and why not)."""
    lines = [_run_line(run, "Run") + ".", "", f"_{reason or 'no baseline'}._", ""]
    lines += ["| | This run |", "|---|---:|"]
    for metric, label, fmt, _ in _TOTALS:
        lines.append(f"| {label} | {_number(getattr(run, metric), fmt)} |")
    lines.append("")
    return lines


def _totals_table(comparison: RunComparison) -> list[str]:
    """Both runs' totals side by side, with the change of each."""
    lines = ["| | Before | After | Δ |", "|---|---:|---:|---:|"]
    totals = {total.metric: total for total in comparison.totals}
    for metric, label, fmt, delta_fmt in _TOTALS:
        total = totals[metric]
        lines.append(
            f"| {label} | {_number(total.before, fmt)} | {_number(total.after, fmt)}"
            f" | {_delta(total.delta, delta_fmt)} |"
        )
    lines.append("")
    return lines


def _failure_sections(comparison: RunComparison, links: _Links) -> list[str]:
    """New, flaky and still failing tests with their error and issue, then the fixed ones;
    each list cut at MAX_FAILURES so that a PR comment stays readable."""
    lines: list[str] = []
    for title, changes in (
        ("❌ New failures", comparison.new_failures),
        ("🎲 Flaky failures", comparison.flaky_failures),
        ("🔁 Still failing", comparison.still_failing),
    ):
        lines += _section(
            f"{title} ({len(changes)})",
            _limited([_failure(c, links) for c in changes], MAX_FAILURES),
        )
    lines += _section(
        f"✅ Fixed ({len(comparison.fixed)})",
        _limited([f"- {links.test(c.test_id)}" for c in comparison.fixed], MAX_FAILURES),
    )
    return lines


def _slower_and_costlier_sections(comparison: RunComparison) -> list[str]:
    """The TOP slower and costlier tests, before and after."""
    slower = [
        f"- `{c.test_id}` {c.before:.2f} s → {c.after:.2f} s{_percent_change(c)}"
        for c in comparison.slower
    ]
    costlier = [
        f"- `{c.test_id}` ${c.before:.4f} → ${c.after:.4f}{_percent_change(c)}"
        for c in comparison.costlier
    ]
    return [
        *_section(f"🐢 Slower ({len(comparison.slower)})", _limited(slower, TOP)),
        *_section(f"💸 Costlier ({len(comparison.costlier)})", _limited(costlier, TOP)),
    ]


def _compared(run: RunSummary, comparison: RunComparison, links: _Links) -> list[str]:
    """The run against its baseline: which runs, the totals, then what changed."""
    lines = [
        _run_line(run, "Run") + ".",
        _run_line(comparison.baseline, "Compared with run") + ".",
        "",
    ]
    lines += _totals_table(comparison)
    lines += _failure_sections(comparison, links)
    lines += _slower_and_costlier_sections(comparison)
    return lines


def _gate_section(gate: GateResult) -> list[str]:
    """The gate's verdict and one line per check (➖: not applicable)."""
    rows = []
    for check in gate.checks:
        mark = "➖" if not check.applicable else ("✅" if check.passed else "❌")
        rows.append(f"- {mark} {check.rule}: {check.message}")
    return _section(f"Gate: {'✅ passed' if gate.passed else '❌ failed'}", rows)


def render_markdown(data: SummaryData) -> str:
    """The markdown text of a summary (ends with one newline)."""
    links = _Links(data.base_url)
    lines = _heading(data.run)
    if links.base:
        run = data.run
        pages = [links.wrap(f"run #{run.id}", f"/runs/{run.id}")]
        if data.comparison is not None:
            baseline = data.comparison.baseline
            path = f"/compare?current={run.id}&baseline={baseline.id}"
            pages.append(links.wrap("the comparison", path))
        pages.append(
            links.wrap("trends", f"/trends?suite={quote(run.suite)}&branch={quote(run.branch)}")
        )
        lines += ["In testledger: " + " · ".join(pages), ""]
    if data.comparison is None:
        lines += _run_alone(data.run, data.no_comparison_reason)
    else:
        lines += _compared(data.run, data.comparison, links)
    if data.gate is not None:
        lines += _gate_section(data.gate)
    # Sections end with a blank line; the text ends with exactly one newline.
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"
