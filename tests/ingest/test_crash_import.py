"""``testledger import`` killed with SIGKILL at 24 points of its life (issue 15, crashes).

One ledger takes a run a point: a JUnit file of 1,500 cases (30 failing, three kinds of
failure) dated an hour after the previous one. Its import is killed in every phase - while
the engine opens, while the rows stream into the transaction (COPY on PostgreSQL), after the
commit and before detection, during detection - at fractions of each phase measured from an
unkilled import (tests/crashes.py). Then what a user meets:

* ``runs`` never shows a partial import: the killed file's run is there whole and finished,
  or not at all (one transaction a file);
* the next command (sync, detect, or the import itself) detects every run left undetected;
* importing the file again gives exact counts: every run once, every result once, every
  failure one occurrence of one of three issues.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from testledger import Ledger, api
from testledger.analyze import pipeline
from testledger.ingest import importer, paths
from tests.crashes import (
    ERRORS,
    Death,
    Mark,
    Work,
    kill_at,
    kill_points,
    phase_lengths,
    run_unkilled,
    wrap,
)
from tests.helpers import query

#: Its kills take most of its time: its file is scheduled first (see tests/conftest.py).
pytestmark = pytest.mark.slow

CASES = 800
FAILING_EVERY = 50
FAILURES = CASES // FAILING_EVERY
#: Kill points per phase of an import: 24, for at least 20 kills (an import may end before a
#: kill late in its life, when it runs faster than the unkilled import measured).
PLAN = {"start": 2, "transaction": 10, "committed": 5, "detecting": 6, "detected": 1}
SEED = 15


def junit(folder: Path, index: int) -> Path:
    """The suite's run ``index``: the same tests, failing alike, an hour after the last."""
    cases = []
    for case in range(CASES):
        body = ""
        if case % FAILING_EVERY == 0:
            kind, message = ERRORS[case % 3]
            body = f'<failure type="{kind}" message="{message}">{kind}: {message}</failure>'
        cases.append(
            f'<testcase classname="tests.test_m{case % 40}" name="test_{case}" '
            f'time="0.01">{body}</testcase>'
        )
    stamp = (datetime(2026, 1, 1) + timedelta(hours=index)).isoformat()
    path = folder / f"report-{index}.xml"
    path.write_text(
        f'<testsuite name="suite" tests="{CASES}" failures="{FAILURES}" timestamp="{stamp}">'
        + "".join(cases)
        + "</testsuite>"
    )
    return path


def import_in_child(mark: Mark, url: str, results: Path, report: Path) -> None:
    """The child's work: ``testledger import`` of ``report``, markers around its phases."""
    wrap(importer, "create_or_join_run", before="transaction", mark=mark)
    wrap(paths, "import_parsed", after="committed", mark=mark)
    wrap(pipeline, "detect_run", before="detecting", mark=mark)
    wrap(paths, "detect_after_recording", after="detected", mark=mark)
    mark("start")
    with Ledger(url, results_dir=results) as ledger:
        outcome = api.import_paths(ledger, [report])
    assert not outcome.errors, outcome.errors
    mark("exit")


def importing(url: str, results: Path, report: Path) -> Work:
    return (import_in_child, (url, results, report))


def seen_by_users(url: str, results: Path) -> list[tuple[str, int, bool]]:
    """(status, results, detected) of every run ``runs`` lists."""
    with Ledger(url, results_dir=results) as ledger:
        runs = api.list_runs(ledger, limit=1000)
    detected = dict(query(url, "SELECT id, detected_at IS NOT NULL FROM test_runs"))
    return [(run.status, run.total_tests, bool(detected[run.id])) for run in runs]


def next_command(index: int, url: str, results: Path, report: Path) -> bool:
    """What the user runs next (in turn: import, sync, detect), then the import of the same
    file again; whether that import found the run already there."""
    with Ledger(url, results_dir=results) as ledger:
        if index % 3 == 1:
            assert api.sync(ledger).synced == []
        elif index % 3 == 2 and query(url, "SELECT count(*) FROM test_runs") != [(0,)]:
            api.detect(ledger)
        if index % 3:
            assert query(url, "SELECT count(*) FROM test_runs WHERE detected_at IS NULL") == [(0,)]
        again = api.import_paths(ledger, [report])
    assert not again.errors, again.errors
    return bool(again.already_imported)


def test_an_import_killed_anywhere_leaves_no_partial_run_and_loses_no_detection(
    db_url: str, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    unkilled = run_unkilled(importing(db_url, results, junit(tmp_path, 0)), tmp_path / "m0")
    assert unkilled.exit_code == 0 and unkilled.last_phase == "exit", unkilled
    lengths = phase_lengths(unkilled.markers)
    deaths: list[tuple[Death, list[tuple[str, int, bool]]]] = []
    index = 0
    for point in kill_points(PLAN, SEED):
        # An import that ends before its kill (on a loaded machine it can outrun the phases
        # measured above, or this process see its marker late) is checked as a whole one;
        # the point is then tried again with a new file, twice at most.
        for _attempt in range(3):
            index += 1
            report = junit(tmp_path, index)
            work = importing(db_url, results, report)
            death = kill_at(work, tmp_path / f"m{index}", point, lengths)
            assert death.killed or death.exit_code == 0, death
            runs = seen_by_users(db_url, results)
            deaths.append((death, runs))
            # Never a partial run: the earlier runs, and this one whole or not at all.
            assert len(runs) in (index, index + 1), (death, runs)
            assert {(status, total) for status, total, _ in runs} == {("finished", CASES)}
            # The killed file's run is there only once its transaction began, and surely once it
            # committed (the marker follows the commit by a few microseconds a kill may fall in).
            visible = len(runs) == index + 1
            assert death.reached("transaction") if visible else not death.reached("committed"), (
                death,
                runs,
            )
            already = next_command(index, db_url, results, report)
            assert already == visible
            runs_now = index + 1
            assert query(db_url, "SELECT count(*), count(detected_at) FROM test_runs") == [
                (runs_now, runs_now)
            ]
            assert query(db_url, "SELECT count(*) FROM test_results") == [(runs_now * CASES,)]
            assert query(db_url, "SELECT count(*) FROM issues") == [(3,)]
            occurrences = query(db_url, "SELECT count(*) FROM issue_occurrences")
            assert occurrences == [(runs_now * FAILURES,)]
            if death.killed:
                break

    killed = [death for death, _ in deaths if death.killed]
    assert len(killed) >= 20, [death.point for death, _ in deaths]
    # The kills met every state a crash can leave: rows streaming into a transaction that
    # was never committed, and a committed run whose detection was lost (between the commit
    # and detection, and during detection).
    # (The newest run listed is the killed one when it committed, and then undetected.)
    undetected = [d for d, runs in deaths if d.killed and runs and not runs[0][2]]
    mid_rows = [
        d for d, _ in deaths if d.killed and d.last_phase == "transaction" and d not in undetected
    ]
    before_detection = [d for d in undetected if d.last_phase == "committed"]
    in_detection = [d for d in undetected if d.last_phase == "detecting"]
    coverage = (len(mid_rows), len(before_detection), len(in_detection))
    assert coverage[0] >= 4 and min(coverage[1:]) >= 1 and len(undetected) >= 4, coverage
