"""The shapes of the MCP tools' structured answers: each tool publishes one as its output
schema, and every answer is checked against it before it is sent.

Every answer has ``summary`` (the short text the tool also answers as its first content block)
and ``truncated`` (list name -> how many items were left out; empty when nothing was). Items are
the library's results as JSON (``as_json``: ISO-8601 UTC timestamps), their long texts cut
(see :mod:`testledger.mcp.bounds`); each tool's description names their fields.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "CompareAnswer",
    "CostAnswer",
    "FailuresAnswer",
    "FlakyAnswer",
    "GateAnswer",
    "IssueAnswer",
    "IssuesAnswer",
    "ObservationAnswer",
    "RegressionsAnswer",
    "RunAnswer",
    "RunsAnswer",
    "SearchAnswer",
    "TestHistoryAnswer",
]

Item = dict[str, Any]


class RunAnswer(TypedDict):
    summary: str
    run: Item
    failing: list[Item]
    failing_total: int
    retried_tests: int
    truncated: dict[str, int]


class RunsAnswer(TypedDict):
    summary: str
    runs: list[Item]
    more: bool
    truncated: dict[str, int]


class CompareAnswer(TypedDict):
    summary: str
    current: Item
    baseline: Item
    totals: list[Item]
    counts: dict[str, int]
    new_failures: list[Item]
    fixed: list[Item]
    still_failing: list[Item]
    flaky_failures: list[Item]
    slower: list[Item]
    costlier: list[Item]
    quality_down: list[Item]
    added: list[Item]
    removed: list[Item]
    providers: list[Item]
    models: list[Item]
    truncated: dict[str, int]


class FailuresAnswer(TypedDict):
    summary: str
    run: Item
    failures: int
    groups_total: int
    groups: list[Item]
    truncated: dict[str, int]


class TestHistoryAnswer(TypedDict):
    summary: str
    test_id: str
    suite: str
    branch: str
    latest_run_id: int
    outcomes: list[Item]
    open_issues: list[Item]
    changes: list[Item]
    truncated: dict[str, int]


class IssueAnswer(TypedDict):
    summary: str
    issue: Item
    description: str | None
    root_cause: str | None
    resolution: str | None
    fingerprints: list[str]
    first_seen: str | None
    last_seen: str | None
    affected_tests: list[Item]
    occurrences: list[Item]
    events: list[Item]
    fingerprint_explanation: Item | None
    truncated: dict[str, int]


class IssuesAnswer(TypedDict):
    summary: str
    issues: list[Item]
    more: bool
    truncated: dict[str, int]


class FlakyAnswer(TypedDict):
    summary: str
    flaky_total: int
    flaky: list[Item]
    truncated: dict[str, int]


class RegressionsAnswer(TypedDict):
    summary: str
    series_analyzed: int
    changes_total: int
    changes: list[Item]
    outliers: list[Item]
    truncated: dict[str, int]


class CostAnswer(TypedDict):
    summary: str
    total: Item
    budget_usd: float | None
    runs_over_budget: int
    runs: list[Item]
    by_provider: list[Item]
    by_model: list[Item]
    by_tool: list[Item]
    truncated: dict[str, int]


class SearchAnswer(TypedDict):
    summary: str
    text: str
    tests_total: int
    tests: list[Item]
    issues_total: int
    issues: list[Item]
    truncated: dict[str, int]


class GateAnswer(TypedDict):
    summary: str
    passed: bool
    run: Item
    baseline: Item | None
    checks: list[Item]
    truncated: dict[str, int]


class ObservationAnswer(TypedDict):
    summary: str
    observation: Item
    truncated: dict[str, int]
