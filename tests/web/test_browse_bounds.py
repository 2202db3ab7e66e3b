"""The test page's reads bounded by runs, on SQLite and PostgreSQL: a test's series is its
newest runs (of a branch), found run by run through the runs' time index; its observations
are those of its recent runs (or of the runs given)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testledger import Ledger, api


@pytest.fixture(scope="module")
def ledger(scenario: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    with Ledger(scenario, results_dir=tmp_path_factory.mktemp("results")) as opened:
        yield opened


@pytest.mark.parametrize(
    ("test_id", "branch", "limit", "durations"),
    [
        pytest.param("calc/add", "feature/x", 60, [0.4] * 3, id="a-branch-of-three-runs"),
        pytest.param("calc/slow", "main", 60, [3.0] * 6 + [1.0] * 6, id="every-main-run"),
        pytest.param("calc/slow", "main", 7, [3.0] * 6 + [1.0], id="the-newest-seven"),
        pytest.param("calc/slow", None, 2, [3.0] * 2, id="any-branch"),
        pytest.param("calc/slow", "feature/x", 60, [], id="never-on-that-branch"),
        pytest.param("no/such-test", "main", 60, [], id="unknown-test"),
    ],
)
def test_a_series_is_the_newest_runs_of_the_test(
    ledger: Ledger, test_id: str, branch: str | None, limit: int, durations: list[float]
) -> None:
    points = api.series_of_test(ledger, test_id, branch=branch, limit=limit)
    assert [p.duration_secs for p in points] == durations
    stamps = [p.run_timestamp for p in points]
    assert stamps == sorted(stamps, reverse=True)


def test_observations_are_those_of_the_recent_or_given_runs(ledger: Ledger) -> None:
    observed = api.observations_of_test(ledger, "llm/gpt-4o")
    assert [o.quality_score for o in observed] == [4]
    run_id = observed[0].run_id
    assert api.observations_of_test(ledger, "llm/gpt-4o", run_ids=[run_id])[0].run_id == run_id
    assert api.observations_of_test(ledger, "llm/gpt-4o", run_ids=[run_id - 1]) == []
    assert api.observations_of_test(ledger, "llm/gpt-4o", run_ids=[]) == []
    assert api.observations_of_test(ledger, "no/such-test") == []


def test_the_filters_walk_every_suite_and_branch(ledger: Ledger) -> None:
    dims = api.dimensions(ledger)
    assert (dims.suites, dims.branches) == (["other", "web"], ["feature/x", "main"])


def test_the_filters_of_an_empty_ledger_are_empty(db_url: str, tmp_path: Path) -> None:
    with Ledger(db_url, results_dir=tmp_path) as empty:
        dims = api.dimensions(empty)
    assert (dims.suites, dims.branches, dims.tools) == ([], [], [])
