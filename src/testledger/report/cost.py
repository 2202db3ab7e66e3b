"""What the runs cost: per run, and over the selected runs per tool, provider and model, with
the cost of each passing test.

Every attempt counts towards cost and tokens (a retry is paid for); a test counts as passing
when its last attempt passed - the rules of ``store.runs.compute_stats`` and of the
``v_cost_by_model`` view. The watcher's own spend (``watcher_insights``, migration 0005) is
reported apart from the system under test's, and a run's budget check counts both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError
from testledger.store.tables import test_results, test_runs, watcher_insights

__all__ = [
    "BUDGET_KEY",
    "CostGroup",
    "CostReport",
    "CostTotals",
    "RunCost",
    "budget_from_settings",
    "cost_report",
    "watcher_spend_by_run",
]

BUDGET_KEY = "max_run_cost_usd"


@dataclass(frozen=True, slots=True)
class RunCost:
    """One run's spend. ``cost_usd``/``tokens_total`` are the system under test's (the
    results'); ``watcher_*`` the watcher's own (None when not recorded). ``over_budget``: the
    run's total spend is above the budget."""

    run_id: int
    run_key: str
    run_timestamp: datetime
    suite: str
    branch: str
    status: str
    results: int
    tests: int
    passed: int
    cost_usd: float | None
    tokens_total: int | None
    cost_per_passing_test: float | None
    watcher_cost_usd: float | None
    watcher_tokens: int | None
    total_cost_usd: float | None
    over_budget: bool


@dataclass(frozen=True, slots=True)
class CostGroup:
    """Spend of one tool, provider or model over the selected runs. ``name`` is None for results
    without one (tests that call no LLM); for models, ``provider`` says whose model it is.
    ``share`` is the group's part of the selected runs' cost (0-1)."""

    name: str | None
    provider: str | None
    results: int
    passed: int
    cost_usd: float | None
    tokens_total: int | None
    cost_per_passing_test: float | None
    share: float | None


@dataclass(frozen=True, slots=True)
class CostTotals:
    runs: int
    results: int
    tests: int
    passed: int
    cost_usd: float | None
    tokens_total: int | None
    cost_per_passing_test: float | None
    watcher_cost_usd: float | None
    watcher_tokens: int | None
    total_cost_usd: float | None


@dataclass(frozen=True, slots=True)
class CostReport(JsonData):
    """Runs newest first; groups by cost, highest first. ``watcher_*`` None: no watcher spend
    was recorded for those runs."""

    runs: list[RunCost]
    by_tool: list[CostGroup]
    by_provider: list[CostGroup]
    by_model: list[CostGroup]
    total: CostTotals
    budget_usd: float | None
    runs_over_budget: int
    branch: str | None
    suite: str | None
    limit: int


def budget_from_settings(tool: dict[str, Any]) -> float | None:
    """``max_run_cost_usd`` from ``[tool.testledger]`` (or its ``[tool.testledger.cost]``
    sub-table); None when unset. Raises ConfigError for a value that is not a positive number."""
    nested = tool.get("cost")
    value = tool.get(BUDGET_KEY)
    if value is None and isinstance(nested, dict):
        value = nested.get(BUDGET_KEY)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"[tool.testledger] {BUDGET_KEY} must be a positive number of dollars")
    return float(value)


def _money(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def _per_pass(cost: float | None, passed: int) -> float | None:
    return None if cost is None or passed == 0 else round(cost / passed, 6)


def _add(*values: float | None) -> float | None:
    present = [value for value in values if value is not None]
    return round(sum(present), 6) if present else None


@dataclass(slots=True)
class _Spend:
    """Spend being added up: result rows, tests (last attempts), passing tests, cost, tokens."""

    results: int = 0
    tests: int = 0
    passed: int = 0
    cost: float | None = None
    tokens: int | None = None

    def add(self, row: Any) -> None:
        self.results += int(row.results)
        self.tests += int(row.tests or 0)
        self.passed += int(row.passed or 0)
        if row.cost is not None:
            self.cost = (self.cost or 0.0) + float(row.cost)
        if row.tokens is not None:
            self.tokens = (self.tokens or 0) + int(row.tokens)


def _spend_rows(connection: Connection, run_ids: list[int]) -> list[Any]:
    """The runs' spend per run, tool, provider and model - few rows, from one pass over the
    results, which the report then adds up along each dimension."""
    if not run_ids:
        return []
    last_attempt = sa.func.max(test_results.c.attempt).over(
        partition_by=(test_results.c.run_id, test_results.c.test_id)
    )
    attempts = (
        sa.select(
            test_results.c.run_id,
            test_results.c.tool_name,
            test_results.c.provider,
            test_results.c.model,
            test_results.c.status,
            test_results.c.cost_usd,
            test_results.c.tokens_total,
            sa.case((test_results.c.attempt == last_attempt, 1), else_=0).label("is_last"),
        )
        .where(test_results.c.run_id.in_(run_ids))
        .subquery()
    )
    passed = sa.case((sa.and_(attempts.c.is_last == 1, attempts.c.status == "PASS"), 1), else_=0)
    keys = (attempts.c.run_id, attempts.c.tool_name, attempts.c.provider, attempts.c.model)
    return list(
        connection.execute(
            sa.select(
                *keys,
                sa.func.count().label("results"),
                sa.func.sum(attempts.c.is_last).label("tests"),
                sa.func.sum(passed).label("passed"),
                sa.func.sum(attempts.c.cost_usd).label("cost"),
                sa.func.sum(attempts.c.tokens_total).label("tokens"),
            ).group_by(*keys)
        )
    )


def _add_up(rows: list[Any], key: Callable[[Any], Any]) -> dict[Any, _Spend]:
    spends: dict[Any, _Spend] = {}
    for row in rows:
        spends.setdefault(key(row), _Spend()).add(row)
    return spends


def watcher_spend_by_run(
    connection: Connection, run_ids: list[int]
) -> dict[int, tuple[float | None, int | None]]:
    """Each run's watcher cost and tokens (input + output), over every observation of its
    results."""
    if not run_ids:
        return {}
    insights = watcher_insights.c
    # The run ids as a VALUES table the query starts from, not ``run_id IN (...)``: given an IN
    # list of 30 runs PostgreSQL hashes the runs' results and scans every watcher insight of the
    # ledger (80,000 in bench/web.py's: 35 ms); driven by VALUES it probes each result's insight
    # by index (1.5 ms). A CTE because SQLite has no column list on a VALUES in FROM; PostgreSQL
    # inlines it.
    wanted = (
        sa.values(sa.column("run_id", sa.BigInteger), name="wanted_runs")
        .data([(run_id,) for run_id in run_ids])
        .cte("wanted_runs")
    )
    rows = connection.execute(
        sa.select(
            test_results.c.run_id,
            sa.func.sum(insights.watcher_cost_usd).label("cost"),
            sa.func.sum(insights.watcher_input_tokens).label("tokens_in"),
            sa.func.sum(insights.watcher_output_tokens).label("tokens_out"),
        )
        .select_from(wanted)
        .join(test_results, test_results.c.run_id == wanted.c.run_id)
        .join(watcher_insights, watcher_insights.c.test_result_id == test_results.c.id)
        .group_by(test_results.c.run_id)
    )
    spend: dict[int, tuple[float | None, int | None]] = {}
    for row in rows:
        used = [int(value) for value in (row.tokens_in, row.tokens_out) if value is not None]
        spend[int(row.run_id)] = (_money(row.cost), sum(used) if used else None)
    return spend


def _groups(
    spends: dict[Any, _Spend], total_cost: float | None, *, model: bool = False
) -> list[CostGroup]:
    groups = []
    for key, spend in spends.items():
        cost = _money(spend.cost)
        groups.append(
            CostGroup(
                name=key[1] if model else key,
                provider=key[0] if model else None,
                results=spend.results,
                passed=spend.passed,
                cost_usd=cost,
                tokens_total=spend.tokens,
                cost_per_passing_test=_per_pass(cost, spend.passed),
                share=round(cost / total_cost, 4) if cost is not None and total_cost else None,
            )
        )
    # Highest spend first; results without a name last among equals, then by name.
    groups.sort(
        key=lambda g: (-(g.cost_usd or 0.0), g.name is None, g.name or "", g.provider or "")
    )
    return groups


def _latest_runs(
    connection: Connection, runs: int, branch: str | None, suite: str | None
) -> list[Any]:
    """The last ``runs`` runs (of a branch / suite), newest first."""
    query = sa.select(
        test_runs.c.id,
        test_runs.c.run_key,
        test_runs.c.run_timestamp,
        test_runs.c.suite,
        test_runs.c.branch_name,
        test_runs.c.status,
    )
    if branch is not None:
        query = query.where(test_runs.c.branch_name == branch)
    if suite is not None:
        query = query.where(test_runs.c.suite == suite)
    return list(
        connection.execute(
            query.order_by(test_runs.c.run_timestamp.desc(), test_runs.c.id.desc()).limit(runs)
        )
    )


def _run_cost(
    run: Any,
    spend: _Spend,
    watcher: tuple[float | None, int | None],
    budget_usd: float | None,
) -> RunCost:
    """One run's spend; over budget counts the watcher's spend too, since the run pays it."""
    cost = _money(spend.cost)
    passed = spend.passed
    watcher_cost, watcher_tokens = watcher
    total = _add(cost, watcher_cost)
    return RunCost(
        run_id=int(run.id),
        run_key=run.run_key,
        run_timestamp=run.run_timestamp,
        suite=run.suite,
        branch=run.branch_name,
        status=run.status,
        results=spend.results,
        tests=spend.tests,
        passed=passed,
        cost_usd=cost,
        tokens_total=spend.tokens,
        cost_per_passing_test=_per_pass(cost, passed),
        watcher_cost_usd=watcher_cost,
        watcher_tokens=watcher_tokens,
        total_cost_usd=total,
        over_budget=budget_usd is not None and total is not None and total > budget_usd,
    )


def _totals(run_costs: list[RunCost]) -> CostTotals:
    """The selected runs added up; a cost or token count stays None only when no run has one."""
    sut_cost = _add(*(run.cost_usd for run in run_costs))
    passed_total = sum(run.passed for run in run_costs)
    tokens = [run.tokens_total for run in run_costs if run.tokens_total is not None]
    watcher_tokens_all = [run.watcher_tokens for run in run_costs if run.watcher_tokens is not None]
    watcher_cost_all = _add(*(run.watcher_cost_usd for run in run_costs))
    return CostTotals(
        runs=len(run_costs),
        results=sum(run.results for run in run_costs),
        tests=sum(run.tests for run in run_costs),
        passed=passed_total,
        cost_usd=sut_cost,
        tokens_total=sum(tokens) if tokens else None,
        cost_per_passing_test=_per_pass(sut_cost, passed_total),
        watcher_cost_usd=watcher_cost_all,
        watcher_tokens=sum(watcher_tokens_all) if watcher_tokens_all else None,
        total_cost_usd=_add(sut_cost, watcher_cost_all),
    )


def cost_report(
    connection: Connection,
    *,
    runs: int = 10,
    branch: str | None = None,
    suite: str | None = None,
    budget_usd: float | None = None,
) -> CostReport:
    """Spend of the last ``runs`` runs (of a branch / suite), newest first, and over them per
    tool, provider and model. Runs above ``budget_usd`` (their total spend) are marked."""
    selected = _latest_runs(connection, runs, branch, suite)
    run_ids = [int(row.id) for row in selected]
    spend_rows = _spend_rows(connection, run_ids)
    per_run = _add_up(spend_rows, lambda row: int(row.run_id))
    watcher = watcher_spend_by_run(connection, run_ids)
    run_costs = [
        _run_cost(
            run,
            per_run.get(int(run.id), _Spend()),
            watcher.get(int(run.id), (None, None)),
            budget_usd,
        )
        for run in selected
    ]
    totals = _totals(run_costs)
    # The groups' shares are of what the tests cost: the watcher's spend is no tool's.
    sut_cost = totals.cost_usd
    by_tool = _add_up(spend_rows, lambda row: row.tool_name)
    by_provider = _add_up(spend_rows, lambda row: row.provider)
    by_model = _add_up(spend_rows, lambda row: (row.provider, row.model))
    return CostReport(
        runs=run_costs,
        by_tool=_groups(by_tool, sut_cost),
        by_provider=_groups(by_provider, sut_cost),
        by_model=_groups(by_model, sut_cost, model=True),
        total=totals,
        budget_usd=budget_usd,
        runs_over_budget=sum(1 for run in run_costs if run.over_budget),
        branch=branch,
        suite=suite,
        limit=runs,
    )
