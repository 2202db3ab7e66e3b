"""Analysis over the history: flaky tests, metric regressions, a watcher over a run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from testledger.analyze.flaky.config import FlakyConfig
from testledger.analyze.flaky.finder import FlakyTest
from testledger.analyze.flaky.finder import find_flaky as _find_flaky
from testledger.analyze.options import regression_settings
from testledger.analyze.regressions.finder import find_regressions as _find_regressions
from testledger.analyze.regressions.metrics import RegressionConfig, RegressionReport
from testledger.analyze.watcher import load_watcher, watch_run
from testledger.analyze.watcher.history import DEFAULT_HISTORY_RUNS
from testledger.analyze.watcher.service import WatchSummary
from testledger.record.ledger import Ledger
from testledger.report.issues import issue_codes_for_results
from testledger.report.runs import find_run

__all__ = ["FlakyTestReport", "find_flaky", "find_regressions", "flaky_settings", "watch"]


@dataclass(frozen=True)
class FlakyTestReport(FlakyTest):
    """A flaky test with the issue its last failure was grouped into."""

    last_failure_issue: str | None = None


def flaky_settings(ledger: Ledger) -> FlakyConfig:
    """The project's ``[tool.testledger.flaky]`` thresholds. Raises ConfigError."""
    return FlakyConfig.from_settings(ledger.settings.tool)


def find_flaky(
    ledger: Ledger,
    *,
    suite: str | None = None,
    branch: str | None = None,
    config: FlakyConfig | None = None,
) -> list[FlakyTestReport]:
    """Flaky tests with their evidence (run ids, reasons), most flaky first."""
    config = config or flaky_settings(ledger)
    with ledger.engine(create=False).connect() as connection:
        found = _find_flaky(connection, config=config, suite=suite, branch=branch)
        result_ids = [f.last_failure_result_id for f in found if f.last_failure_result_id]
        codes = issue_codes_for_results(connection, result_ids)
    return [
        FlakyTestReport(
            **{f.name: getattr(test, f.name) for f in fields(test)},
            last_failure_issue=codes.get(test.last_failure_result_id or -1),
        )
        for test in found
    ]


def find_regressions(
    ledger: Ledger,
    *,
    branch: str | None = None,
    suite: str | None = None,
    metric: str | None = None,
    test: str | None = None,
    include_improvements: bool = True,
    config: RegressionConfig | None = None,
) -> RegressionReport:
    """Lasting changes (change points confirmed by a t-test) in each test's duration, memory,
    CPU, tokens, cost and watcher quality, with the latest window's single-run outliers.
    Improvements are reported too (``kind`` "improvement") unless ``include_improvements`` is
    False. ``config`` defaults to ``[tool.testledger.regressions]``."""
    config = config or regression_settings(ledger.settings)
    with ledger.engine(create=False).connect() as connection:
        return _find_regressions(
            connection,
            config,
            branch=branch,
            suite=suite,
            metric=metric,
            test=test,
            include_improvements=include_improvements,
        )


def watch(
    ledger: Ledger,
    run: str | int | None = None,
    *,
    watcher: str | None = None,
    options: Mapping[str, Any] | None = None,
    only_missing: bool = False,
    history_runs: int = DEFAULT_HISTORY_RUNS,
    progress: Callable[[int, int], None] | None = None,
) -> WatchSummary:
    """Run a watcher over a recorded run (default the latest): one observation per result, and
    the run's average watcher quality updated. ``watcher`` defaults to
    ``[tool.testledger.watcher] name``, else heuristic; ``options`` override its settings
    (None values ignored). ``progress(done, total)`` is called as results are watched."""
    chosen = load_watcher(watcher, ledger.settings.tool, options or {})
    engine = ledger.engine(create=False)
    with engine.connect() as connection:
        run_id = find_run(connection, run).id
    return watch_run(
        engine,
        run_id,
        chosen,
        only_missing=only_missing,
        history_runs=history_runs,
        progress=progress,
    )
