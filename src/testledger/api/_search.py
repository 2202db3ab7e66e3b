"""Finding things for an agent (or a person) asking the ledger: a run's failures grouped by
issue, text search over results and issues, and one test's context as the watcher sees it."""

from __future__ import annotations

from testledger.analyze.watcher.history import DEFAULT_HISTORY_RUNS, TestContext, load_test_context
from testledger.record.ledger import Ledger
from testledger.report import failures as failure_reports
from testledger.report import search as searching
from testledger.report.history import resolve_test

__all__ = ["run_failures", "search", "test_context"]


def run_failures(
    ledger: Ledger,
    run: str | int | None = None,
    *,
    limit: int = 20,
    tests_per_group: int = 10,
) -> failure_reports.RunFailures:
    """A run's failures (default the latest run's) grouped by the issue each was grouped into,
    largest group first, each with its tests and one representative failure's message and
    traceback: at most ``limit`` groups of ``tests_per_group`` tests. Raises NotFound,
    ConfigError."""
    with ledger.engine(create=False).connect() as connection:
        return failure_reports.run_failures(
            connection, run, limit=limit, tests_per_group=tests_per_group
        )


def search(ledger: Ledger, text: str, *, limit: int = 20) -> searching.SearchResults:
    """Tests whose name or error holds ``text`` (one hit per test, its latest matching result
    shown) and issues whose code, title, description, root cause or resolution holds it,
    case-insensitive; at most ``limit`` of each. Raises ConfigError for empty text."""
    with ledger.engine(create=False).connect() as connection:
        return searching.search(connection, text, limit=limit)


def test_context(
    ledger: Ledger,
    test: str,
    *,
    runs: int = DEFAULT_HISTORY_RUNS,
    branch: str | None = None,
    suite: str | None = None,
) -> TestContext:
    """One test as the LLM watcher sees it, in the latest run of its suite and branch that has
    it (of ``branch`` and ``suite`` when given): its last ``runs`` results, its open issues and
    the change points recorded for its metrics. ``test`` is its id, tool/variation, or a
    unique part of its id; raises NotFound, or AmbiguousTest listing the tests it matches."""
    with ledger.engine(create=False).connect() as connection:
        test_id = resolve_test(connection, test)
        return load_test_context(connection, test_id, runs=runs, branch=branch, suite=suite)


test_context.__test__ = False  # type: ignore[attr-defined]  # a library call, not a pytest test
