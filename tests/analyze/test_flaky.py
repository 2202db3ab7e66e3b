"""Flaky-test detection (testledger.analyze.flaky.finder), against SQLite and PostgreSQL.

Histories are scripted through the runner API with one explicit ``started_at`` per run. Every
run also records five steady passing tests, so that one failing test is never an outage.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from testledger import Ledger
from testledger.analyze.flaky.finder import (
    FlakyConfig,
    FlakyTest,
    find_flaky,
    flaky_test_ids,
    is_flaky_result,
)
from testledger.cli import main
from testledger.errors import ConfigError
from testledger.store.tables import test_results, test_runs
from tests.histories import scripted_run

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
STEADY = [f"steady/{i}" for i in range(5)]

#: The recent-window rules alone (the score rule off), for the tests of their definition.
WINDOW_RULES_ONLY: dict[str, Any] = {"min_confidence": 1.0}

# A test's statuses in one run: one status, or its attempts in order ("FAIL PASS" = a retry).
Outcomes = dict[str, str]
#: Each run gets a commit of its own unless told otherwise (None: a run without a commit).
OWN_COMMIT = "<own>"


class History:
    """Records runs one after another, an hour apart, and answers flaky questions."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.count = 0
        self.run_ids: list[int] = []

    def run(
        self,
        outcomes: Outcomes,
        *,
        commit: str | None = OWN_COMMIT,
        branch: str = "main",
        suite: str = "s",
        steady: bool = True,
    ) -> int:
        self.count += 1
        # Without issue detection (two thirds of the cost of recording a run): the finder reads
        # only the runs and their results, which detection leaves as they are.
        with scripted_run(
            self.ledger,
            self.count,
            start=T0,
            branch=branch,
            commit=f"c{self.count:04d}" if commit == OWN_COMMIT else commit,
            suite=suite,
            detect_issues=False,
        ) as run:
            for test_id in STEADY if steady else []:
                run.record(test_id=test_id, tool_name="steady", variation=test_id, status="PASS")
            for test_id, statuses in outcomes.items():
                for status in statuses.split():
                    run.record(test_id=test_id, tool_name="t", variation=test_id, status=status)
        assert run.run_id is not None
        self.run_ids.append(run.run_id)
        return run.run_id

    def series(self, test_id: str, statuses: Sequence[str], **start: Any) -> list[int]:
        """One run per status (letters P/F/E/S, or full words), each on its own commit."""
        letters = {"P": "PASS", "F": "FAIL", "E": "ERROR", "S": "SKIP"}
        return [self.run({test_id: letters.get(s, s)}, **start) for s in statuses]

    def flaky(self, **options: Any) -> dict[str, FlakyTest]:
        with self.ledger.engine().connect() as conn:
            found = find_flaky(conn, **options)
        return {f.test_id: f for f in found}


@pytest.fixture
def history(db_url: str, tmp_path: Path) -> Iterator[History]:
    with Ledger(db_url, results_dir=tmp_path / "r") as ledger:
        yield History(ledger)


# -- rule (a): mixed outcomes on one commit -----------------------------------------------------


def test_pass_and_fail_on_the_same_commit_is_flaky(history: History) -> None:
    sha = "abc1234def5678abc1234def5678abc1234def56"
    failed = history.run({"t/x": "FAIL"}, commit=sha)
    history.run({"t/x": "PASS"}, commit="other")
    passed = history.run({"t/x": "PASS"}, commit=sha)

    found = history.flaky()
    assert list(found) == ["t/x"]
    flaky = found["t/x"]
    assert flaky.reasons == [f"passed and failed on commit abc1234 (runs {failed}, {passed})"]
    assert flaky.evidence_run_ids == [failed, passed]
    # One commit group with two runs, and it was mixed.
    assert flaky.score == 1.0
    assert (flaky.suite, flaky.runs_considered, flaky.flips) == ("s", 3, 1)
    assert flaky.last_failure_run_id == failed
    assert flaky.consecutive_passes == 2
    with history.ledger.engine().connect() as conn:
        result_id = conn.execute(
            sa.select(test_results.c.id).where(
                test_results.c.run_id == failed, test_results.c.test_id == "t/x"
            )
        ).scalar_one()
    assert flaky.last_failure_result_id == result_id


def test_failed_then_passed_on_retry_is_flaky(history: History) -> None:
    history.series("t/x", "PPP")
    retried = history.run({"t/x": "FAIL PASS", "t/broken": "FAIL FAIL"})

    found = history.flaky()
    assert list(found) == ["t/x"]  # failing on every attempt is not flaky
    assert found["t/x"].reasons == [f"failed then passed on retry in run {retried}"]
    assert found["t/x"].evidence_run_ids == [retried]
    # A pass on retry is not a clean pass.
    assert found["t/x"].consecutive_passes == 0
    with history.ledger.engine().connect() as conn:
        assert flaky_test_ids(conn, ["t/x", "t/broken", "steady/0"], suite="s") == {"t/x"}
        first_attempt = conn.execute(
            sa.select(test_results.c.id).where(
                test_results.c.run_id == retried,
                test_results.c.test_id == "t/x",
                test_results.c.attempt == 1,
            )
        ).scalar_one()
        assert is_flaky_result(conn, first_attempt)
        assert found["t/x"].last_failure_result_id == first_attempt


def test_runs_without_a_commit_are_not_grouped(history: History) -> None:
    for status in ("FAIL", "PASS", "FAIL"):
        history.run({"t/x": status}, commit=None)
    assert history.flaky() == {}


# -- rule (b): flips ---------------------------------------------------------------------------


def test_k_flips_in_the_window_is_flaky_and_k_minus_one_is_not(history: History) -> None:
    for a, b in zip("PPFFPPFF", "PPFFPPPP", strict=True):
        history.run(
            {"t/three": "PASS" if a == "P" else "FAIL", "t/two": "PASS" if b == "P" else "FAIL"}
        )

    found = history.flaky()
    assert list(found) == ["t/three"]
    flaky = found["t/three"]
    assert flaky.reasons == ["flipped 3 times in its last 8 runs"]
    assert (flaky.flips, flaky.runs_considered) == (3, 8)
    assert flaky.score == pytest.approx(3 / 7, abs=1e-4)
    ids = history.run_ids
    # Each flip is cited by the two runs it lies between.
    assert flaky.evidence_run_ids == [ids[1], ids[2], ids[3], ids[4], ids[5], ids[6]]
    assert flaky.last_failure_run_id == ids[7]

    assert "t/two" in history.flaky(config=FlakyConfig(min_flips=2))


def test_only_the_last_window_runs_count(history: History) -> None:
    history.series("t/x", "PFPFPF")  # 5 flips, then a steady failing stretch
    history.series("t/x", "FFFFF")
    assert history.flaky(config=FlakyConfig(window=5, **WINDOW_RULES_ONLY)) == {}
    assert history.flaky(config=FlakyConfig(window=11))["t/x"].flips == 5
    # The score rule reads further back: three separate failures, the last one lasting.
    assert history.flaky(config=FlakyConfig(window=5))["t/x"].rules == ["score"]


def test_below_min_runs_is_not_flaky(history: History) -> None:
    history.series("t/x", "PFPF")  # 3 flips, but only 4 runs
    assert history.flaky() == {}
    found = history.flaky(config=FlakyConfig(min_runs=4))
    assert found["t/x"].reasons == ["flipped 3 times in its last 4 runs"]


def test_error_counts_as_a_failure(history: History) -> None:
    history.series("t/x", "PEPEP")
    assert history.flaky()["t/x"].flips == 4


# -- what is not evidence -------------------------------------------------------------------


def test_an_outage_run_gives_no_evidence(history: History) -> None:
    victims = {f"t/v{i}": "FAIL" for i in range(9)}
    history.run({"t/x": "PASS", **{v: "PASS" for v in victims}}, commit="same", steady=False)
    # 9 of 10 tests fail at once: infrastructure, not the tests.
    outage = history.run({"t/x": "PASS", **victims}, commit="same", steady=False)
    history.run({"t/x": "PASS", **{v: "PASS" for v in victims}}, commit="same", steady=False)

    assert history.flaky() == {}
    # The same history with the outage rule relaxed shows what was excluded.
    relaxed = history.flaky(config=FlakyConfig(outage_share=0.95))
    assert set(relaxed) == set(victims)
    assert relaxed["t/v0"].evidence_run_ids[1] == outage


def test_a_consistently_failing_test_is_broken_not_flaky(history: History) -> None:
    history.series("t/broken", "F" * 10)
    history.series("t/fixed", "FFFFFPPPPP")  # broken then fixed: one flip
    history.run({"t/broken": "FAIL"}, commit="c0001")  # same commit, same outcome
    assert history.flaky() == {}


def test_skips_are_ignored(history: History) -> None:
    history.series("t/x", "PSPSPSFFF")
    assert history.flaky(config=FlakyConfig(min_flips=2)) == {}
    history.series("t/y", "PSFSPSFSP")  # P F P F P once skips are dropped: 4 flips
    found = history.flaky()
    assert (found["t/y"].flips, found["t/y"].runs_considered) == (4, 5)


def test_running_runs_are_not_evidence(history: History) -> None:
    history.series("t/x", "PFPF")
    run = history.ledger.start_run(
        branch="main",
        commit="c",
        suite="s",
        started_at=T0 + timedelta(days=9),
        detect_environment=False,
    )
    run.record(test_id="t/x", tool_name="t", variation="x", status="PASS")
    run.flush(wait=True)
    assert history.flaky() == {}
    run.finish()
    assert "t/x" in history.flaky()


# -- expiry -------------------------------------------------------------------------------------


def test_flaky_status_expires_after_consecutive_passes(history: History) -> None:
    config = FlakyConfig(expire_after_passes=5, **WINDOW_RULES_ONLY)
    history.series("t/x", "PFPFPF")
    history.series("t/x", "PPPP")
    found = history.flaky(config=config)
    assert found["t/x"].consecutive_passes == 4
    history.run({"t/x": "FAIL PASS"})  # a pass on retry does not count towards expiry
    assert history.flaky(config=config)["t/x"].consecutive_passes == 0
    history.series("t/x", "PPPP")
    assert history.flaky(config=config)["t/x"].consecutive_passes == 4
    history.series("t/x", "SP")  # a skip neither breaks nor extends the streak
    assert history.flaky(config=config) == {}


def test_default_expiry_is_thirty_passes(history: History) -> None:
    """A window wider than 30 keeps the retry in view: the 30th clean pass is what ends it."""
    config = FlakyConfig(window=40, min_runs=5)
    history.run({"t/x": "FAIL PASS"})
    history.series("t/x", "P" * 29)
    assert history.flaky(config=config)["t/x"].consecutive_passes == 29
    history.run({"t/x": "PASS"})
    assert history.flaky(config=config) == {}


def test_tests_that_ran_before_the_recent_runs_are_still_judged(history: History) -> None:
    """The first pass reads only the most recent runs (4 x 5 here); tests that did not fill
    their window there are read again over the whole history."""
    config = FlakyConfig(window=5, expire_after_passes=5)
    history.series("t/old", "PFPFP")
    history.run({"t/recent": "FAIL"})
    for _ in range(20):
        history.run({})
    history.series("t/recent", "PFPF")
    found = history.flaky(config=config)
    assert set(found) == {"t/old", "t/recent"}
    assert (found["t/old"].flips, found["t/old"].runs_considered) == (4, 5)
    assert (found["t/recent"].flips, found["t/recent"].runs_considered) == (4, 5)
    assert found["t/recent"].evidence_run_ids[0] == history.run_ids[5]


# -- scope -----------------------------------------------------------------------------------


def test_suite_and_branch_filters(history: History) -> None:
    history.series("t/x", "PFPFP", branch="feature", suite="a")
    history.series("t/x", "PPPPP", branch="main", suite="a")
    history.series("t/x", "FFFFF", branch="feature", suite="b")

    with history.ledger.engine().connect() as conn:
        all_found = find_flaky(conn)
        assert [(f.suite, f.test_id) for f in all_found] == [("a", "t/x")]
        assert [f.suite for f in find_flaky(conn, suite="a", branch="feature")] == ["a"]
        assert find_flaky(conn, suite="b") == []
        assert find_flaky(conn, branch="main") == []
        assert find_flaky(conn, test_ids=["t/other"]) == []
        assert flaky_test_ids(conn, ["t/x"], suite="b") == set()
        assert flaky_test_ids(conn, ["t/x"]) == {"t/x"}
        assert flaky_test_ids(conn, []) == set()


def test_sorted_by_score_then_test_id(history: History) -> None:
    for pattern in zip("PFPFPF", "PFPPFP", "PFPFPF", "PPFFPP", strict=True):
        statuses = ["PASS" if s == "P" else "FAIL" for s in pattern]
        history.run(dict(zip(["t/b", "t/c", "t/a", "t/d"], statuses, strict=True)))
    config = FlakyConfig(min_flips=2)
    found = list(history.flaky(config=config).values())
    assert [(f.test_id, f.score) for f in found] == [
        ("t/a", 1.0),
        ("t/b", 1.0),
        ("t/c", 0.8),
        ("t/d", 0.4),
    ]


def test_is_flaky_result_judges_as_of_the_result(history: History) -> None:
    first = history.series("t/x", "PFPFP")
    history.series("t/x", "FP")
    with history.ledger.engine().connect() as conn:
        early, late = (
            conn.execute(
                sa.select(test_results.c.id).where(
                    test_results.c.run_id == run_id, test_results.c.test_id == "t/x"
                )
            ).scalar_one()
            for run_id in (first[1], history.run_ids[-2])
        )
        assert not is_flaky_result(conn, early)  # one flip so far
        assert is_flaky_result(conn, late)


# -- configuration ------------------------------------------------------------------------------


def test_config_from_settings() -> None:
    assert FlakyConfig.from_settings({}) == FlakyConfig()
    assert FlakyConfig.from_settings({"suite": "x"}) == FlakyConfig()
    config = FlakyConfig.from_settings(
        {
            "flaky": {
                "window": 50,
                "min_flips": 4,
                "min_runs": 10,
                "outage_share": 0.8,
                "expire_after_passes": 20,
            }
        }
    )
    assert config == FlakyConfig(50, 4, 10, 0.8, 20)
    assert FlakyConfig.from_settings({"flaky": {"outage_share": 1}}).outage_share == 1
    # The sub-table on its own reads the same (the CLI passes settings.tool["flaky"]).
    assert FlakyConfig.from_settings({"window": 50, "min_flips": 4}) == FlakyConfig(50, 4)
    with pytest.raises(ConfigError, match="windw"):
        FlakyConfig.from_settings({"window": 50, "windw": 4})


@pytest.mark.parametrize(
    "table",
    [
        pytest.param({"window": "30"}, id="window-text"),
        pytest.param({"window": 1}, id="window-too-small"),
        pytest.param({"window": 30.0}, id="window-float"),
        pytest.param({"min_flips": True}, id="min-flips-bool"),
        pytest.param({"min_flips": 0}, id="min-flips-zero"),
        pytest.param({"min_flips": 30}, id="min-flips-not-below-window"),
        pytest.param({"min_runs": 1}, id="min-runs-one"),
        pytest.param({"min_runs": 31}, id="min-runs-above-window"),
        pytest.param({"outage_share": 0}, id="share-zero"),
        pytest.param({"outage_share": 1.5}, id="share-above-one"),
        pytest.param({"outage_share": "half"}, id="share-text"),
        pytest.param({"expire_after_passes": 0}, id="expiry-zero"),
        pytest.param({"outage_min_tests": 0}, id="outage-min-zero"),
        pytest.param({"history": 1}, id="history-one"),
        pytest.param({"history": 10_000}, id="history-unbounded"),
        pytest.param({"half_life": 0}, id="half-life-zero"),
        pytest.param({"neighbour_share": 0}, id="neighbour-share-zero"),
        pytest.param({"neighbour_share": "most"}, id="neighbour-share-text"),
        pytest.param({"min_confidence": 1.5}, id="confidence-above-one"),
        pytest.param({"min_confidence": True}, id="confidence-bool"),
        pytest.param({"windw": 30}, id="unknown-key"),
    ],
)
def test_config_rejects_bad_values(table: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="flaky"):
        FlakyConfig.from_settings({"flaky": table})


def test_config_rejects_a_non_table() -> None:
    with pytest.raises(ConfigError, match=r"\[tool\.testledger\.flaky\] must be a table"):
        FlakyConfig.from_settings({"flaky": 3})


# -- performance ----------------------------------------------------------------------------


def _bulk_history(engine: sa.Engine, runs: int, tests: int) -> set[str]:
    """``runs`` runs of ``tests`` tests inserted raw; returns the tests made to flip."""
    flaky = {f"t/{i:03d}" for i in range(0, tests, 10)}  # every tenth test flips every 4th run
    broken = {f"t/{i:03d}" for i in range(5, tests, 10)}  # always fails
    now = T0
    with engine.begin() as conn:
        conn.execute(
            sa.insert(test_runs),
            [
                {
                    "run_timestamp": now + timedelta(minutes=n),
                    "created_at": now,
                    "branch_name": "main",
                    "commit_hash": f"c{n}",
                    "watcher_model": "none",
                    "total_tests": tests,
                    "tests_passed": 0,
                    "tests_failed": len(broken) + len(flaky) // 2,
                    "tests_skipped": 0,
                    "tests_errored": 0,
                    "run_key": f"bulk-{n}",
                    "suite": "s",
                    "status": "finished",
                    "source": "test",
                }
                for n in range(runs)
            ],
        )
        ids = list(conn.execute(sa.select(test_runs.c.id).order_by(test_runs.c.id)).scalars())
        rows = []
        for n, run_id in enumerate(ids):
            for i in range(tests):
                test_id = f"t/{i:03d}"
                failed = test_id in broken or (test_id in flaky and (n // 4) % 2 == 1)
                rows.append(
                    {
                        "run_id": run_id,
                        "test_id": test_id,
                        "tool_name": "t",
                        "variation": test_id,
                        "attempt": 1,
                        "status": "FAIL" if failed else "PASS",
                        "created_at": now,
                    }
                )
        conn.execute(sa.insert(test_results), rows)
    return flaky


def test_a_long_history_finds_exactly_its_flaky_tests(history: History) -> None:
    # Scale, not speed: 300 runs x 100 tests through the windowed SQL (speed is bench/reports.py's).
    engine = history.ledger.engine()
    flaky = _bulk_history(engine, runs=300, tests=100)
    with engine.connect() as conn:
        found = find_flaky(conn)
    assert {f.test_id for f in found} == flaky
    assert all(f.flips == 7 and f.runs_considered == 30 for f in found)


# -- the score rule: low-rate flakes over a long, decaying history --------------------------

NEIGHBOURS = [f"n/{i:02d}" for i in range(38)]


def _score_history() -> list[dict[str, Any]]:
    """120 main-branch runs of 40 tests, and 6 runs of a pull request's branch among them."""
    rng = random.Random(19)
    flake5 = {9, 31, 48, 67, 83, 104}  # 5%, never twice on a commit, no retry
    flake10 = set(rng.sample(range(0, 120), 12))
    outages = {60, 90}  # 45% of the tests fail: under the outage rule's half
    runs: list[dict[str, Any]] = []
    for n in range(120):
        tests = {name: ["PASS"] for name in NEIGHBOURS}
        tests["t/flake5"] = ["FAIL" if n in flake5 else "PASS"]
        tests["t/flake10"] = ["FAIL" if n in flake10 else "PASS"]
        tests["t/bug"] = ["FAIL" if 40 <= n < 56 else "PASS"]  # a bug, then its fix
        tests["t/pr"] = ["PASS"]
        if n in outages:
            for name in [*NEIGHBOURS[:16], "t/bug", "t/pr"]:
                tests[name] = ["FAIL"]
        runs.append({"commit": f"c{n}", "tests": tests, "branch": "main"})
    # The 10% flake's only same-commit evidence is old: a re-run of commit c5 that passed.
    old = min(flake10)
    runs.insert(old + 1, {**runs[old], "tests": {**runs[old]["tests"], "t/flake10": ["PASS"]}})
    # A pull request breaks t/pr on its own branch, its runs among main's.
    for k in range(6):
        tests = {name: ["PASS"] for name in [*NEIGHBOURS, "t/flake5", "t/flake10", "t/bug"]}
        tests["t/pr"] = ["FAIL"]
        runs.insert(100 + 2 * k, {"commit": f"pr{k}", "tests": tests, "branch": "feature"})
    for n, run in enumerate(runs):
        run.update(n=n, ts=T0 + timedelta(minutes=n), suite="s", status="finished")
    return runs


def test_the_score_rule_finds_low_rate_flakes_and_not_their_lookalikes(history: History) -> None:
    _insert(history.ledger.engine(), _score_history())
    found = history.flaky()
    assert set(found) == {"t/flake5", "t/flake10"}
    low = found["t/flake5"]
    assert low.rules == ["score"]  # no same-commit, retry or flip evidence in 30 runs
    assert 0.6 <= low.confidence < 1 and low.independence == 1.0
    assert low.history_failures == 6 and low.crowded_failures == 0
    assert 0.02 < low.failure_rate < 0.06
    assert low.reasons[-1].startswith("failed in 6 of its last 127 runs")
    assert "confidence" in low.reasons[-1]
    # The old same-commit evidence counts as one more episode, at its age's weight.
    assert "1 commit(s) passed and failed" in found["t/flake10"].reasons[-1]
    # The bug's streak is one episode for 16 failures; the outages' victims failed with 45%
    # of the run; the pull request's failures are one episode of its own branch.
    with history.ledger.engine().connect() as conn:
        every = {f.test_id: f for f in find_flaky(conn, config=FlakyConfig(min_confidence=0.01))}
        assert "t/bug" not in every or every["t/bug"].confidence < 0.2
        assert "t/pr" not in every
        assert find_flaky(conn, branch="feature") == []
        # Judged as of each failure, as detection marks occurrences.
        assert flaky_test_ids(conn, ["t/flake5", "t/bug", "t/pr", "n/00"]) == {"t/flake5"}
    # Without the score rule the 5% flake is missed: its recent window holds one failure.
    assert "t/flake5" not in history.flaky(config=FlakyConfig(**WINDOW_RULES_ONLY))


def test_the_flaky_command_shows_the_rules_and_the_confidence(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    _insert(history.ledger.engine(), _score_history())
    db_url = history.ledger.settings.database_url
    capsys.readouterr()
    assert main(["--db", db_url, "flaky", "--json"]) == 0
    shown = {f["test_id"]: f for f in json.loads(capsys.readouterr().out)}
    low = shown["t/flake5"]
    assert low["rules"] == ["score"] and 0.6 <= low["confidence"] < 1
    assert (low["history_failures"], low["crowded_failures"]) == (6, 0)
    assert main(["--db", db_url, "flaky"]) == 0
    text = capsys.readouterr().out
    assert "rules" in text and "confidence" in text and "fail rate" in text
    row = next(line for line in text.splitlines() if line.lstrip().startswith("t/flake5"))
    assert " score " in row and f"{low['confidence']:.2f}" in row


def test_the_score_rule_expires_when_passes_outlast_the_failure_rate(history: History) -> None:
    runs = []
    for n in range(60):
        failed = n in (3, 9, 16, 22)
        tests = {name: ["PASS"] for name in NEIGHBOURS}
        tests["t/x"] = ["FAIL" if failed else "PASS"]
        runs.append({"commit": f"c{n}", "tests": tests, "n": n, "suite": "s"})
        runs[-1].update(ts=T0 + timedelta(minutes=n), status="finished")
    _insert(history.ledger.engine(), runs)
    found = history.flaky()
    # Four failures in 23 runs, then 37 clean passes: below 1% for a test failing that often.
    assert found == {}
    with history.ledger.engine().connect() as conn:
        last_failure = conn.execute(
            sa.select(sa.func.max(test_results.c.id)).where(
                test_results.c.test_id == "t/x", test_results.c.status == "FAIL"
            )
        ).scalar_one()
        # As of that failure it was flaky: four separate failures in 23 runs.
        assert is_flaky_result(conn, last_failure)


# -- the SQL against a plain-Python reading of the definition -----------------------------------

# Small enough for short random histories to reach every rule, the expiry, outages (2+ tests)
# and the second pass (a first pass over the last 4 x 6 runs).
SMALL = FlakyConfig(
    window=6,
    min_flips=2,
    min_runs=3,
    outage_share=0.5,
    expire_after_passes=4,
    outage_min_tests=2,
    **WINDOW_RULES_ONLY,
)


def _reference(runs: list[dict[str, Any]], config: FlakyConfig) -> dict[tuple[str, str], Any]:
    """The definition read literally over every result, in Python: (suite, test) -> facts."""
    histories: dict[tuple[str, str], list[tuple[dict[str, Any], list[str]]]] = {}
    for run in sorted(runs, key=lambda r: (r["ts"], r["id"])):
        finals = {t: attempts[-1] for t, attempts in run["tests"].items()}
        executed = [s for s in finals.values() if s != "SKIP"]
        failed = sum(s in ("FAIL", "ERROR") for s in executed)
        outage = len(executed) >= config.outage_min_tests and failed > config.outage_share * len(
            executed
        )
        if run["status"] == "running" or outage:
            continue
        for test_id, attempts in run["tests"].items():
            if attempts[-1] != "SKIP":
                histories.setdefault((run["suite"], test_id), []).append((run, attempts))
    found = {}
    for key, seen in histories.items():
        newest = list(reversed(seen))
        fails = [any(s in ("FAIL", "ERROR") for s in a) for _, a in newest]
        streak = 0
        for (_, attempts), failed_any in zip(newest, fails, strict=True):
            if attempts[-1] != "PASS" or failed_any:
                break
            streak += 1
        if streak >= config.expire_after_passes:
            continue
        window = list(reversed(newest[: config.window]))
        outcome = ["P" if a[-1] == "PASS" else "F" for _, a in window]
        flips = sum(a != b for a, b in pairwise(outcome))
        by_commit: dict[str, set[str]] = {}
        for (run, _), o in zip(window, outcome, strict=True):
            if run["commit"]:
                by_commit.setdefault(run["commit"], set()).add(o)
        mixed_commit = any(len(v) == 2 for v in by_commit.values())
        retried = any(
            any(s in ("FAIL", "ERROR") for s in a[:i]) and a[i] == "PASS"
            for _, a in window
            for i in range(len(a))
        )
        by_flips = len(window) >= config.min_runs and flips >= config.min_flips
        if mixed_commit or retried or by_flips:
            found[key] = (flips, len(window), streak)
    return found


def _insert(engine: sa.Engine, runs: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(test_results))
        conn.execute(sa.delete(test_runs))
        for run in runs:
            finals = [a[-1] for a in run["tests"].values()]
            run["id"] = conn.execute(
                sa.insert(test_runs)
                .values(
                    run_timestamp=run["ts"],
                    created_at=T0,
                    branch_name=run.get("branch", "main"),
                    commit_hash=run["commit"],
                    watcher_model="none",
                    total_tests=len(finals),
                    tests_passed=finals.count("PASS"),
                    tests_failed=finals.count("FAIL") + finals.count("ERROR"),
                    tests_skipped=finals.count("SKIP"),
                    tests_errored=finals.count("ERROR"),
                    run_key=f"k{run['n']}",
                    suite=run["suite"],
                    status=run["status"],
                    source="test",
                )
                .returning(test_runs.c.id)
            ).scalar_one()
            rows = [
                {
                    "run_id": run["id"],
                    "test_id": test_id,
                    "tool_name": "t",
                    "variation": test_id,
                    "attempt": attempt,
                    "status": status,
                    "created_at": T0,
                }
                for test_id, attempts in run["tests"].items()
                for attempt, status in enumerate(attempts, 1)
            ]
            if rows:
                conn.execute(sa.insert(test_results), rows)


_attempts = st.one_of(
    st.sampled_from(["PASS", "FAIL", "ERROR", "SKIP"]).map(lambda s: [s]),
    st.lists(st.sampled_from(["PASS", "FAIL"]), min_size=2, max_size=3),
)
_run = st.fixed_dictionaries(
    {
        "suite": st.sampled_from(["s", "s", "u"]),
        "status": st.sampled_from(["finished", "finished", "finished", "aborted", "running"]),
        "commit": st.sampled_from([None, "a", "b", "c", "d", "e", "f", "g"]),
        # Timestamps may repeat: ties are broken by run id, as everywhere else.
        "minute": st.integers(0, 60),
        "tests": st.dictionaries(st.sampled_from(["t/1", "t/2", "t/3", "t/4"]), _attempts),
    }
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=st.lists(_run, min_size=15, max_size=45))
@pytest.mark.slow
def test_agrees_with_a_plain_reading_of_the_definition(
    history: History, runs: list[dict[str, Any]]
) -> None:
    for n, run in enumerate(runs):
        run["n"] = n
        run["ts"] = T0 + timedelta(minutes=run["minute"])
    _insert(history.ledger.engine(), runs)
    expected = _reference(runs, SMALL)
    with history.ledger.engine().connect() as conn:
        found = find_flaky(conn, config=SMALL)
    got = {(f.suite, f.test_id): (f.flips, f.runs_considered, f.consecutive_passes) for f in found}
    event(f"flaky tests: {min(len(got), 3)}+")
    event(f"second pass possible: {sum(r['status'] != 'running' for r in runs) > 24}")
    assert got == expected
    assert all(0 < f.score <= 1 and f.reasons and f.evidence_run_ids for f in found)
