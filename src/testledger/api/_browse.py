"""What the web dashboard reads beyond the other calls: runs by keyset pages, a run's extras and
live state, a test's observations, and a run as JUnit XML."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from testledger.analyze.flaky.config import FlakyConfig
from testledger.analyze.flaky.finder import FlakyTest, find_flaky
from testledger.record.ledger import Ledger
from testledger.report import browse, browse_series
from testledger.report.browse import (
    Dimensions,
    LiveRun,
    Observation,
    RunExtras,
    RunFilters,
    RunsPage,
    TopTest,
)
from testledger.report.browse_series import RegressionIssue, SeriesPoint
from testledger.report.junit_export import run_junit as _run_junit

__all__ = [
    "Dimensions",
    "LiveRun",
    "Observation",
    "RegressionIssue",
    "RunExtras",
    "RunFilters",
    "RunsPage",
    "SeriesPoint",
    "TopTest",
    "dimensions",
    "flakiness_of_test",
    "live_run",
    "observations_of_test",
    "regression_issues",
    "run_extras",
    "run_junit",
    "runs_page",
    "series_of_test",
]


def runs_page(
    ledger: Ledger,
    filters: RunFilters | None = None,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> RunsPage:
    """One page of runs, newest first, matching ``filters``: the newest, or those just older
    than run ``before`` / just newer than run ``after`` (keyset paging on time and id, as
    cheap on the last page as on the first). Raises ConfigError, NotFound."""
    with ledger.engine(create=False).connect() as connection:
        return browse.runs_page(
            connection, filters or RunFilters(), before=before, after=after, limit=limit
        )


def run_extras(
    ledger: Ledger, run: str | int | None = None, *, observations: int = 50
) -> RunExtras:
    """A run's CI link, expected total, slowest and costliest tests, the badge of each issue
    among its failures (new, regressed, flaky, known) and its watcher observations (lowest
    quality first). Raises NotFound."""
    with ledger.engine(create=False).connect() as connection:
        return browse.run_extras(connection, run, observations=observations)


def live_run(
    ledger: Ledger, run: str | int | None = None, *, after: int | None = None, limit: int = 50
) -> LiveRun:
    """A run as it records: counts so far, progress when its expected total is known, and its
    failures after result id ``after`` (newest first). Raises NotFound."""
    with ledger.engine(create=False).connect() as connection:
        return browse.live_run(connection, run, after=after, limit=limit)


def observations_of_test(
    ledger: Ledger, test_id: str, *, limit: int = 20, run_ids: Sequence[int] | None = None
) -> list[Observation]:
    """What watchers said about one test's results in its last 60 runs (or in ``run_ids``),
    lowest quality first."""
    with ledger.engine(create=False).connect() as connection:
        return browse.observations_of_test(connection, test_id, limit=limit, run_ids=run_ids)


def run_junit(ledger: Ledger, run: str | int | None = None) -> str:
    """A run (default the latest) as JUnit XML: a testcase per test's last attempt. Raises
    NotFound."""
    with ledger.engine(create=False).connect() as connection:
        pieces: Iterator[str] = _run_junit(connection, run)
        return "".join(pieces)


def dimensions(ledger: Ledger, *, recent_runs: int = 20) -> Dimensions:
    """What the dashboard's filters offer: every suite and branch, and the tools, providers
    and models of the last ``recent_runs`` runs."""
    with ledger.engine(create=False).connect() as connection:
        return browse.dimensions(connection, recent_runs=recent_runs)


def flakiness_of_test(
    ledger: Ledger, test_id: str, *, suite: str | None = None
) -> FlakyTest | None:
    """Whether one test (an exact id) is flaky by the project's thresholds, with the evidence;
    None when it is not. Judges that test alone (``find_flaky`` judges a whole suite)."""
    config = FlakyConfig.from_settings(ledger.settings.tool)
    with ledger.engine(create=False).connect() as connection:
        found = find_flaky(connection, config=config, suite=suite, test_ids=[test_id])
    return found[0] if found else None


def regression_issues(
    ledger: Ledger,
    *,
    statuses: Sequence[str] = ("OPEN", "IN_PROGRESS"),
    suite: str | None = None,
    branch: str | None = None,
    metric: str | None = None,
) -> list[RegressionIssue]:
    """The lasting metric changes issue detection recorded (regression issues in ``statuses``),
    with their evidence: what :func:`find_regressions` found when each run was detected,
    without analysing every series again."""
    with ledger.engine(create=False).connect() as connection:
        return browse_series.regression_issues(
            connection, statuses=statuses, suite=suite, branch=branch, metric=metric
        )


def series_of_test(
    ledger: Ledger, test_id: str, *, branch: str | None = None, limit: int = 60
) -> list[SeriesPoint]:
    """One test's last ``limit`` runs (of ``branch`` when given), newest first, by its last
    attempt: status, duration, memory, cost and watcher quality."""
    with ledger.engine(create=False).connect() as connection:
        return browse_series.series_of_test(connection, test_id, branch=branch, limit=limit)
