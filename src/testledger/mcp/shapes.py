"""The library's results as the MCP tools answer them: bounded JSON-ready data with a short text
summary (see :mod:`testledger.mcp.answers` for the shapes, :mod:`testledger.mcp.bounds` for the
bounds). Nothing here reads the ledger: each function turns one ``testledger.api`` result into
one answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

from testledger import api
from testledger.common.jsondata import as_json
from testledger.mcp import answers
from testledger.mcp.bounds import (
    REPRESENTATIVE_BYTES,
    TRACEBACK_BYTES,
    cut,
    first_line,
    fit,
    take,
)

__all__ = [
    "compare_answer",
    "cost_answer",
    "failures_answer",
    "flaky_answer",
    "gate_answer",
    "history_answer",
    "issue_answer",
    "issues_answer",
    "observation_answer",
    "regressions_answer",
    "run_answer",
    "runs_answer",
    "search_answer",
]

#: How many items a summary names before "...".
_NAMED = 3


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def _named(parts: Sequence[str], total: int | None = None) -> str:
    """The first few of ``parts`` joined, with how many more there are."""
    total = len(parts) if total is None else total
    shown = parts[:_NAMED]
    more = total - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _with_message(item: Any, key: str = "error_message") -> dict[str, Any]:
    """``item`` as JSON with its message cut to its first line."""
    data: dict[str, Any] = as_json(item)
    data[key] = first_line(data.get(key))
    return data


def _run_title(run: api.RunSummary) -> str:
    commit = f" @ {run.commit[:12]}" if run.commit else ""
    where = f"suite {run.suite}, branch {run.branch}{commit}"
    return f"Run {run.id} ({run.run_key}; {where}, {run.status})"


def run_answer(detail: api.RunDetail, limit: int) -> answers.RunAnswer:
    truncated: dict[str, int] = {}
    r = detail.run
    summary = (
        f"{_run_title(r)}: {r.total_tests} tests, {r.tests_passed} passed, {r.tests_failed}"
        f" failed ({r.tests_errored} errors), {r.tests_skipped} skipped; pass rate"
        f" {_number(r.pass_rate, '%')}; cost {_money(r.total_cost_usd)};"
        f" {_number(r.total_tokens)} tokens; watcher quality {_number(r.avg_watcher_quality)}."
    )
    failing = [_with_message(f) for f in take(detail.failing, limit, "failing", truncated)]
    if failing:
        summary += " Failing: " + _named([f["test_id"] for f in failing], len(detail.failing)) + "."
    answer: dict[str, Any] = {
        "summary": summary,
        "run": as_json(r),
        "failing": failing,
        "failing_total": len(detail.failing),
        "retried_tests": detail.retried_tests,
        "truncated": truncated,
    }
    return cast(answers.RunAnswer, fit(answer))


def runs_answer(runs: list[api.RunSummary], limit: int) -> answers.RunsAnswer:
    shown = runs[:limit]
    more = len(runs) > limit
    if shown:
        newest, oldest = shown[0], shown[-1]
        summary = (
            f"{len(shown)} run(s), newest first{' (more exist)' if more else ''}: run {newest.id}"
            f" ({newest.status}, {newest.tests_passed} of {newest.total_tests} passed) back to"
            f" run {oldest.id}."
        )
    else:
        summary = "No runs match."
    answer: dict[str, Any] = {
        "summary": summary,
        "runs": [as_json(run) for run in shown],
        "more": more,
        "truncated": {},
    }
    return cast(answers.RunsAnswer, fit(answer))


def _failure_name(change: api.TestChange) -> str:
    issue = f" ({change.issue_code})" if change.issue_code else ""
    return f"{change.test_id}{issue}"


def _compare_summary(c: api.RunComparison, counts: dict[str, int]) -> str:
    cur, base = c.current, c.baseline
    new = _named([_failure_name(t) for t in c.new_failures])
    return (
        f"Run {cur.id} vs run {base.id} (suite {cur.suite}, branch {cur.branch}"
        + (f" vs {base.branch}" if base.branch != cur.branch else "")
        + f"): {counts['new_failures']} new failure(s){': ' + new if new else ''};"
        f" {counts['fixed']} fixed, {counts['still_failing']} still failing,"
        f" {counts['flaky_failures']} flaky, {counts['slower']} slower,"
        f" {counts['costlier']} costlier, {counts['quality_down']} with lower watcher quality;"
        f" pass rate {_number(base.pass_rate, '%')} -> {_number(cur.pass_rate, '%')},"
        f" cost {_money(base.total_cost_usd)} -> {_money(cur.total_cost_usd)},"
        f" tokens {_number(base.total_tokens)} -> {_number(cur.total_tokens)}."
    )


def compare_answer(c: api.RunComparison, limit: int) -> answers.CompareAnswer:
    lists: dict[str, list[api.TestChange]] = {
        "new_failures": c.new_failures,
        "fixed": c.fixed,
        "still_failing": c.still_failing,
        "flaky_failures": c.flaky_failures,
        "slower": c.slower,
        "costlier": c.costlier,
        "quality_down": [t for t in c.quality_changes if (t.after or 0.0) < (t.before or 0.0)],
        "added": c.added,
        "removed": c.removed,
    }
    truncated: dict[str, int] = {}
    shown = {
        name: [_with_message(t) for t in take(items, limit, name, truncated)]
        for name, items in lists.items()
    }
    counts = {name: len(items) for name, items in lists.items()}
    answer: dict[str, Any] = {
        "summary": _compare_summary(c, counts),
        "current": as_json(c.current),
        "baseline": as_json(c.baseline),
        "totals": as_json(c.totals),
        "counts": counts,
        **shown,
        "providers": as_json(take(c.providers, limit, "providers", truncated)),
        "models": as_json(take(c.models, limit, "models", truncated)),
        "truncated": truncated,
    }
    return cast(answers.CompareAnswer, fit(answer))


def _group(group: Any) -> dict[str, Any]:
    data: dict[str, Any] = as_json(group)
    first = data["representative"]
    first["error_message"] = cut(first["error_message"], REPRESENTATIVE_BYTES)
    first["traceback"] = cut(first["traceback"], TRACEBACK_BYTES)
    data["title"] = first_line(data["title"])
    return data


def failures_answer(f: api.RunFailures) -> answers.FailuresAnswer:
    truncated: dict[str, int] = {}
    if f.groups_total > len(f.groups):
        truncated["groups"] = f.groups_total - len(f.groups)
    named = [
        f"{g.issue_code or '(no issue)'} x{g.failures}: "
        f"{first_line(g.title or g.representative.error_message, 80) or g.representative.test_id}"
        for g in f.groups
    ]
    summary = f"{_run_title(f.run)}: {f.failures} failure(s) in {f.groups_total} group(s)" + (
        ": " + _named(named, f.groups_total) + "." if named else "."
    )
    answer: dict[str, Any] = {
        "summary": summary,
        "run": as_json(f.run),
        "failures": f.failures,
        "groups_total": f.groups_total,
        "groups": [_group(g) for g in f.groups],
        "truncated": truncated,
    }
    fit(answer)
    # The tests left out of the groups still listed (the group's failures beyond its tests).
    hidden_tests = sum(g["failures"] - len(g["tests"]) for g in answer["groups"])
    if hidden_tests:
        truncated["groups.tests"] = hidden_tests
    return cast(answers.FailuresAnswer, answer)


def _history_summary(ctx: api.TestContext) -> str:
    statuses = Counter(point.status for point in ctx.points)
    latest = ctx.points[0] if ctx.points else None
    tally = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    issues = _named([f"{i.code} [{i.status}] {first_line(i.title, 80)}" for i in ctx.open_issues])
    changes = _named(
        [
            f"{c.metric} {c.before_mean:g} -> {c.after_mean:g} from run {c.first_run_id}"
            f" ({c.issue_code} {c.status})"
            for c in ctx.changes
        ]
    )
    return (
        f"{ctx.test_id} (suite {ctx.suite}, branch {ctx.branch}): last {len(ctx.points)}"
        f" result(s): {tally or 'none'}"
        + (f"; latest {latest.status} in run {latest.run_id}" if latest else "")
        + f"; open issues: {issues or 'none'}; change points: {changes or 'none'}."
    )


def history_answer(ctx: api.TestContext, limit: int) -> answers.TestHistoryAnswer:
    truncated: dict[str, int] = {}
    answer: dict[str, Any] = {
        "summary": _history_summary(ctx),
        "test_id": ctx.test_id,
        "suite": ctx.suite,
        "branch": ctx.branch,
        "latest_run_id": ctx.latest_run_id,
        "outcomes": as_json(take(ctx.points, limit, "outcomes", truncated)),
        "open_issues": as_json(take(ctx.open_issues, limit, "open_issues", truncated)),
        "changes": as_json(take(ctx.changes, limit, "changes", truncated)),
        "truncated": truncated,
    }
    return cast(answers.TestHistoryAnswer, fit(answer))


def _explanation(explained: api.FingerprintExplanation | None) -> dict[str, Any] | None:
    if explained is None:
        return None
    data: dict[str, Any] = as_json(explained)
    for part in data["components"]:
        part["raw"] = cut(part["raw"])
        part["normalized"] = cut(part["normalized"])
    return data


def issue_answer(
    detail: api.IssueDetail, explained: api.FingerprintExplanation | None, limit: int
) -> answers.IssueAnswer:
    truncated: dict[str, int] = {}
    i = detail.issue
    issue: dict[str, Any] = as_json(i)
    issue["title"] = first_line(i.title)
    tests = list(detail.affected_tests.items())
    events = detail.events[-limit:]
    if len(detail.events) > limit:
        truncated["events"] = len(detail.events) - limit
    summary = (
        f"{i.code} [{i.status}, {i.priority}, {i.category}"
        + (f", {i.lifecycle}" if i.lifecycle else "")
        + f"]: {first_line(i.title, 160)}. {i.occurrences} occurrence(s) in {len(tests)} test(s)"
        + (f", last seen in run {i.last_seen_run_id}" if i.last_seen_run_id else "")
        + f"; root cause: {first_line(detail.root_cause, 160) or 'not recorded'}."
    )
    answer: dict[str, Any] = {
        "summary": summary,
        "issue": issue,
        "description": cut(detail.description, REPRESENTATIVE_BYTES),
        "root_cause": cut(detail.root_cause, REPRESENTATIVE_BYTES),
        "resolution": cut(detail.resolution, REPRESENTATIVE_BYTES),
        "fingerprints": take(detail.fingerprints, limit, "fingerprints", truncated),
        "first_seen": as_json(detail.first_seen),
        "last_seen": as_json(detail.last_seen),
        "affected_tests": [
            {"test_id": test_id, "occurrences": n}
            for test_id, n in take(tests, limit, "affected_tests", truncated)
        ],
        "occurrences": as_json(take(detail.occurrences, limit, "occurrences", truncated)),
        "events": [_with_message(e, "note") for e in events],
        "fingerprint_explanation": _explanation(explained),
        "truncated": truncated,
    }
    return cast(answers.IssueAnswer, fit(answer))


def issues_answer(found: list[api.IssueSummary], limit: int) -> answers.IssuesAnswer:
    shown = found[:limit]
    more = len(found) > limit
    named = [f"{i.code} [{i.status}, {i.priority}] {first_line(i.title, 80)}" for i in shown]
    summary = (
        f"{len(shown)} issue(s){' (more exist)' if more else ''}: {_named(named)}."
        if shown
        else "No issues match."
    )
    items = []
    for issue in shown:
        data: dict[str, Any] = as_json(issue)
        data["title"] = first_line(issue.title)
        items.append(data)
    answer: dict[str, Any] = {"summary": summary, "issues": items, "more": more, "truncated": {}}
    return cast(answers.IssuesAnswer, fit(answer))


def flaky_answer(found: list[api.FlakyTestReport], limit: int) -> answers.FlakyAnswer:
    truncated: dict[str, int] = {}
    shown = take(found, limit, "flaky", truncated)
    named = [
        f"{t.test_id} (score {t.score:g}, {t.flips} flip(s) in {t.runs_considered} runs"
        + (f", last failure {t.last_failure_issue}" if t.last_failure_issue else "")
        + ")"
        for t in shown
    ]
    summary = (
        f"{len(found)} flaky test(s), most flaky first: {_named(named, len(found))}."
        if found
        else "No flaky tests."
    )
    answer: dict[str, Any] = {
        "summary": summary,
        "flaky_total": len(found),
        "flaky": as_json(shown),
        "truncated": truncated,
    }
    return cast(answers.FlakyAnswer, fit(answer))


def _change_name(c: api.MetricChange) -> str:
    magnitude = f" ({c.magnitude_pct:+g}%)" if c.magnitude_pct is not None else ""
    issue = f" [{c.issue_code}]" if c.issue_code else ""
    return (
        f"{c.test_id} {c.metric} {c.before_mean:g} -> {c.after_mean:g}{magnitude}"
        f" from run {c.first_run.id} ({c.commit_range}){issue}"
    )


def regressions_answer(report: api.RegressionReport, limit: int) -> answers.RegressionsAnswer:
    truncated: dict[str, int] = {}
    # The changes that still hold first, the most recent first.
    ordered = sorted(report.changes, key=lambda c: (not c.current, -c.first_run.id, c.test_id))
    shown = take(ordered, limit, "changes", truncated)
    summary = (
        f"{len(ordered)} change point(s) over {report.series_analyzed} series, those that still"
        f" hold first: {_named([_change_name(c) for c in shown], len(ordered))}."
        if ordered
        else f"No change points over {report.series_analyzed} series."
    )
    answer: dict[str, Any] = {
        "summary": summary,
        "series_analyzed": report.series_analyzed,
        "changes_total": len(ordered),
        "changes": as_json(shown),
        "outliers": as_json(take(report.outliers, limit, "outliers", truncated)),
        "truncated": truncated,
    }
    return cast(answers.RegressionsAnswer, fit(answer))


def _spend(groups: Sequence[api.CostGroup]) -> str:
    return _named(
        [
            f"{g.name or '(none)'} {_money(g.cost_usd)}"
            + (f" ({g.share * 100:.0f}%)" if g.share is not None else "")
            for g in groups
            if g.cost_usd is not None
        ]
    )


def cost_answer(report: api.CostReport, limit: int) -> answers.CostAnswer:
    truncated: dict[str, int] = {}
    t = report.total
    summary = (
        f"The last {t.runs} run(s) cost {_money(t.cost_usd)} ({_number(t.tokens_total)} tokens)"
        f" for {t.passed} passing test(s), {_money(t.cost_per_passing_test)} each; watcher"
        f" {_money(t.watcher_cost_usd)}; by provider: {_spend(report.by_provider) or 'none'};"
        f" by model: {_spend(report.by_model) or 'none'}."
    )
    if report.budget_usd is not None:
        summary += f" {report.runs_over_budget} run(s) over the {_money(report.budget_usd)} budget."
    answer: dict[str, Any] = {
        "summary": summary,
        "total": as_json(t),
        "budget_usd": report.budget_usd,
        "runs_over_budget": report.runs_over_budget,
        "runs": as_json(take(report.runs, limit, "runs", truncated)),
        "by_provider": as_json(take(report.by_provider, limit, "by_provider", truncated)),
        "by_model": as_json(take(report.by_model, limit, "by_model", truncated)),
        "by_tool": as_json(take(report.by_tool, limit, "by_tool", truncated)),
        "truncated": truncated,
    }
    return cast(answers.CostAnswer, fit(answer))


def search_answer(found: api.SearchResults) -> answers.SearchAnswer:
    truncated: dict[str, int] = {}
    for name, total, shown in (
        ("tests", found.tests_total, found.tests),
        ("issues", found.issues_total, found.issues),
    ):
        if total > len(shown):
            truncated[name] = total - len(shown)
    tests = _named([f"{t.test_id} ({t.status} in run {t.run_id})" for t in found.tests])
    issues = _named([f"{i.code} [{i.status}] {first_line(i.title, 80)}" for i in found.issues])
    summary = (
        f"{found.text!r}: {found.tests_total} test(s) and {found.issues_total} issue(s) match"
        + (f"; tests: {tests}" if tests else "")
        + (f"; issues: {issues}" if issues else "")
        + "."
    )
    hits = [_with_message(t) for t in found.tests]
    issue_hits = []
    for issue in found.issues:
        data: dict[str, Any] = as_json(issue)
        data["title"] = first_line(issue.title)
        issue_hits.append(data)
    answer: dict[str, Any] = {
        "summary": summary,
        "text": found.text,
        "tests_total": found.tests_total,
        "tests": hits,
        "issues_total": found.issues_total,
        "issues": issue_hits,
        "truncated": truncated,
    }
    return cast(answers.SearchAnswer, fit(answer))


def gate_answer(result: api.GateResult) -> answers.GateAnswer:
    checks = [_with_message(check, "message") for check in result.checks]
    failed = [f"{c.rule}: {first_line(c.message, 160)}" for c in result.checks if not c.passed]
    summary = (
        f"Gate {'passed' if result.passed else 'FAILED'} for run {result.run.id}"
        + (f" against run {result.baseline.id}" if result.baseline else "")
        + f": {len(result.checks) - len(failed)} of {len(result.checks)} check(s) passed"
        + (f"; failed: {_named(failed)}" if failed else "")
        + "."
    )
    answer: dict[str, Any] = {
        "summary": summary,
        "passed": result.passed,
        "run": as_json(result.run),
        "baseline": as_json(result.baseline),
        "checks": checks,
        "truncated": {},
    }
    return cast(answers.GateAnswer, fit(answer))


def observation_answer(recorded: api.RecordedObservation) -> answers.ObservationAnswer:
    judged = (
        f"quality {recorded.quality_score}"
        if recorded.quality_score is not None
        else f"no score: {first_line(recorded.error, 160)}"
    )
    summary = (
        f"Recorded {recorded.watcher or 'an'} observation ({judged}) for result"
        f" {recorded.result_id} ({recorded.test_id}, attempt {recorded.attempt}, run"
        f" {recorded.run_id}); the run's average watcher quality is now"
        f" {_number(recorded.avg_watcher_quality)}."
    )
    answer: dict[str, Any] = {
        "summary": summary,
        "observation": as_json(recorded),
        "truncated": {},
    }
    return cast(answers.ObservationAnswer, fit(answer))
