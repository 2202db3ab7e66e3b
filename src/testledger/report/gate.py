"""The quality gate: rules a run must meet for CI to go on (``testledger gate``).

Rules come from ``[tool.testledger.gate]`` in pyproject.toml, each overridable on the command
line. Rules that compare with a baseline (new failures, cost and duration increase) use
``compare_runs``; when there is no earlier run to compare with they are reported as not
applicable rather than failed, since a first run has nothing to regress from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.flaky.config import FlakyConfig
from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError, NotFound
from testledger.report.compare import RunComparison, compare_runs, find_baseline
from testledger.report.cost import watcher_spend_by_run
from testledger.report.runs import RunSummary, find_run
from testledger.store.tables import issue_occurrences, issues

__all__ = ["GateCheck", "GateResult", "GateRules", "evaluate_gate", "parse_percent"]

#: How many test ids a failed rule's message lists before "...".
_NAMES_SHOWN = 10


def parse_percent(value: Any, name: str) -> float:
    """``"10%"``, ``"10"`` or ``10`` as 10.0; ConfigError otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a percentage like 10%, not {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().removesuffix("%").strip()
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a percentage like 10%, not {value!r}") from None


@dataclass(frozen=True, slots=True)
class GateRules:
    """The rules; None (or False for the switches) means the rule is not configured. A value
    of 0 is a rule like any other (``--min-pass-rate 0``, ``--max-new-failures 0``)."""

    max_new_failures: int | None = None
    min_pass_rate: float | None = None
    max_cost_increase: float | None = None  # percent over the baseline's total cost
    max_duration_increase: float | None = None  # percent over the baseline's duration
    min_quality: float | None = None
    # The run's budget in USD: what the tests spent plus what the watcher spent judging them.
    max_run_cost_usd: float | None = None
    no_new_issues: bool = False
    include_flaky: bool = False

    @property
    def configured(self) -> bool:
        # Identity, not equality: ``0 in (None, False)`` is true, and a rule whose value is 0
        # would read as absent.
        return any(
            (value := getattr(self, f.name)) is not None and value is not False
            for f in dataclasses.fields(self)
            if f.name != "include_flaky"
        )

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> GateRules:
        """From ``[tool.testledger.gate]``: the keys are the option names with ``-`` or ``_``
        (``max-new-failures = 0``, ``max_cost_increase = "10%"``). Raises ConfigError."""
        if not isinstance(table, Mapping):
            raise ConfigError("[tool.testledger.gate] must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in table.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(f"unknown [tool.testledger.gate] key: {key}")
            values[name] = value
        return cls().merged(**values)

    def merged(self, **overrides: Any) -> GateRules:
        """These rules with the given values (None leaves a rule as it is), checked."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in overrides.items():
            if value is None:
                continue
            option = "--" + name.replace("_", "-")
            if name in ("max_cost_increase", "max_duration_increase"):
                value = parse_percent(value, option)
            elif name in ("no_new_issues", "include_flaky"):
                if not isinstance(value, bool):
                    raise ConfigError(f"{option} must be true or false, not {value!r}")
            elif name == "max_new_failures":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"{option} must be a whole number >= 0, not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{option} must be a number, not {value!r}")
            else:
                value = float(value)
            values[name] = value
        return GateRules(**values)


@dataclass(frozen=True, slots=True)
class GateCheck:
    rule: str
    passed: bool
    applicable: bool
    actual: float | None
    limit: float | None
    message: str


@dataclass(frozen=True, slots=True)
class GateResult(JsonData):
    passed: bool
    run: RunSummary
    baseline: RunSummary | None
    checks: list[GateCheck]


def _names(test_ids: list[str]) -> str:
    shown = ", ".join(test_ids[:_NAMES_SHOWN])
    more = len(test_ids) - _NAMES_SHOWN
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _not_applicable(rule: str, limit: float | None, why: str) -> GateCheck:
    return GateCheck(rule, True, False, None, limit, f"not applicable: {why}")


def _increase_check(
    rule: str, what: str, before: float | None, after: float | None, limit: float
) -> GateCheck:
    if before is None or after is None:
        return _not_applicable(rule, limit, f"{what} unknown in one of the runs")
    if before == 0:
        return _not_applicable(rule, limit, f"baseline {what} is zero")
    increase = round(100.0 * (after - before) / before, 2)
    passed = increase <= limit
    return GateCheck(
        rule,
        passed,
        True,
        increase,
        limit,
        f"{what} {before:g} -> {after:g} ({increase:+g}%, limit +{limit:g}%)",
    )


def _minimum_check(
    rule: str, what: str, actual: float | None, minimum: float, unit: str = "", *, missing: str
) -> GateCheck:
    """A floor rule: ``actual`` must reach ``minimum``; not applicable when ``actual`` is
    unknown (``missing`` says why)."""
    if actual is None:
        return _not_applicable(rule, minimum, missing)
    return GateCheck(
        rule,
        actual >= minimum,
        True,
        actual,
        minimum,
        f"{what} {actual:g}{unit} (minimum {minimum:g}{unit})",
    )


def _new_issue_codes(connection: Connection, run_id: int, include_flaky: bool) -> list[str]:
    """Issues first detected in this run; without ``include_flaky``, not those whose every
    occurrence in the run is flaky (a flaky test's first failure is not a regression)."""
    non_flaky = sa.func.sum(sa.case((issue_occurrences.c.flaky.is_(False), 1), else_=0))
    query = (
        sa.select(issues.c.issue_code, sa.func.count(issue_occurrences.c.id), non_flaky)
        .select_from(
            issues.outerjoin(
                issue_occurrences,
                sa.and_(
                    issue_occurrences.c.issue_id == issues.c.id,
                    issue_occurrences.c.run_id == run_id,
                ),
            )
        )
        .where(issues.c.first_detected_run_id == run_id)
        .group_by(issues.c.issue_code)
        .order_by(issues.c.issue_code)
    )
    return [
        code
        for code, occurrences, not_flaky in connection.execute(query)
        if include_flaky or occurrences == 0 or (not_flaky or 0) > 0
    ]


def _baseline_comparison(
    connection: Connection,
    rules: GateRules,
    current: RunSummary,
    baseline: str | int | None,
    baseline_branch: str | None,
    flaky_config: FlakyConfig | None,
) -> tuple[RunComparison | None, str]:
    """The comparison the baseline rules judge, and why there is none (empty when there is).

    Only compared when a rule needs it. A missing default baseline (a first run) makes those
    rules not applicable, while an explicitly named baseline that does not exist raises
    NotFound: the caller asked for it."""
    needs_baseline = any(
        value is not None
        for value in (rules.max_new_failures, rules.max_cost_increase, rules.max_duration_increase)
    )
    if not needs_baseline:
        return None, ""
    missing_baseline = ""
    if baseline is None:
        try:
            find_baseline(connection, current, baseline_branch=baseline_branch)
        except NotFound as exc:
            missing_baseline = str(exc)
    if missing_baseline:
        return None, missing_baseline
    comparison = compare_runs(
        connection,
        current.id,
        baseline,
        baseline_branch=baseline_branch,
        flaky_config=flaky_config,
    )
    return comparison, ""


def _new_failures_check(
    limit: int, include_flaky: bool, comparison: RunComparison | None, missing_baseline: str
) -> GateCheck:
    """At most ``limit`` tests failing now that passed (or were absent) in the baseline; flaky
    failures count only with ``include_flaky``, and the message says how many were left out."""
    rule = "max-new-failures"
    if comparison is None:
        return _not_applicable(rule, limit, missing_baseline)
    failures = list(comparison.new_failures)
    if include_flaky:
        failures += comparison.flaky_failures
    ids = sorted(f.test_id for f in failures)
    flaky_note = (
        f"; {len(comparison.flaky_failures)} flaky not counted"
        if comparison.flaky_failures and not include_flaky
        else ""
    )
    message = f"{len(ids)} new failure(s) (limit {limit})" + (f": {_names(ids)}" if ids else "")
    return GateCheck(rule, len(ids) <= limit, True, len(ids), limit, message + flaky_note)


def _increase_checks(
    rules: GateRules,
    current: RunSummary,
    comparison: RunComparison | None,
    missing_baseline: str,
) -> list[GateCheck]:
    """The configured ones of max-cost-increase and max-duration-increase, in that order:
    the run's total against the baseline's, in percent."""
    checks: list[GateCheck] = []
    for rule, limit_pct, what, field in (
        ("max-cost-increase", rules.max_cost_increase, "cost $", "total_cost_usd"),
        ("max-duration-increase", rules.max_duration_increase, "duration s", "duration_secs"),
    ):
        if limit_pct is None:
            continue
        if comparison is None:
            checks.append(_not_applicable(rule, limit_pct, missing_baseline))
        else:
            before = getattr(comparison.baseline, field)
            checks.append(_increase_check(rule, what, before, getattr(current, field), limit_pct))
    return checks


def _run_cost_check(connection: Connection, current: RunSummary, budget: float) -> GateCheck:
    """The run's spend within ``budget``: what its tests cost plus what the watcher spent
    judging them, since both are paid for by the run."""
    watcher_cost, _ = watcher_spend_by_run(connection, [current.id]).get(current.id, (None, None))
    spent = (current.total_cost_usd or 0.0) + (watcher_cost or 0.0)
    return GateCheck(
        "max-run-cost-usd",
        spent <= budget,
        True,
        round(spent, 6),
        budget,
        f"run cost ${spent:.4f} incl. watcher (budget ${budget:.4f})",
    )


def _new_issues_check(connection: Connection, run_id: int, include_flaky: bool) -> GateCheck:
    """No issue first detected in this run."""
    codes = _new_issue_codes(connection, run_id, include_flaky)
    message = f"{len(codes)} new issue(s)" + (f": {_names(codes)}" if codes else "")
    return GateCheck("no-new-issues", not codes, True, len(codes), 0, message)


def _checks(
    connection: Connection,
    rules: GateRules,
    current: RunSummary,
    comparison: RunComparison | None,
    missing_baseline: str,
) -> list[GateCheck]:
    """One check per configured rule, always in this order (the report lists them so)."""
    checks: list[GateCheck] = []
    if rules.max_new_failures is not None:
        checks.append(
            _new_failures_check(
                rules.max_new_failures, rules.include_flaky, comparison, missing_baseline
            )
        )
    if rules.min_pass_rate is not None:
        checks.append(
            _minimum_check(
                "min-pass-rate",
                "pass rate",
                current.pass_rate,
                rules.min_pass_rate,
                "%",
                missing="the run executed no tests",
            )
        )
    checks += _increase_checks(rules, current, comparison, missing_baseline)
    if rules.min_quality is not None:
        checks.append(
            _minimum_check(
                "min-quality",
                "average watcher quality",
                current.avg_watcher_quality,
                rules.min_quality,
                missing="the run has no watcher scores",
            )
        )
    if rules.max_run_cost_usd is not None:
        checks.append(_run_cost_check(connection, current, rules.max_run_cost_usd))
    if rules.no_new_issues:
        checks.append(_new_issues_check(connection, current.id, rules.include_flaky))
    return checks


def evaluate_gate(
    connection: Connection,
    rules: GateRules,
    run: str | int | None = None,
    baseline: str | int | None = None,
    *,
    baseline_branch: str | None = None,
    flaky_config: FlakyConfig | None = None,
) -> GateResult:
    """Check ``run`` (default: the latest) against ``rules``. Raises ConfigError when no rule
    is configured, NotFound when the run (or an explicitly named baseline) does not exist."""
    if not rules.configured:
        raise ConfigError(
            "no gate rules configured: pass options such as --max-new-failures 0 or add them"
            " to pyproject.toml, e.g. [tool.testledger.gate] max-new-failures = 0,"
            " min-pass-rate = 95"
        )
    current = find_run(connection, run)
    comparison, missing_baseline = _baseline_comparison(
        connection, rules, current, baseline, baseline_branch, flaky_config
    )
    checks = _checks(connection, rules, current, comparison, missing_baseline)
    return GateResult(
        passed=all(check.passed for check in checks),
        run=current,
        baseline=comparison.baseline if comparison else None,
        checks=checks,
    )
