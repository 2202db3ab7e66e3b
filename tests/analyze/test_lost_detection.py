"""Issue detection lost to a crash is completed by whatever detects next (issue 15, item 2).

A process killed after a run's rows committed and before its detection did leaves the run
``finished`` with ``detected_at`` NULL. The crash is simulated deterministically: detection
raises a BaseException (as a kill would end it: nothing of it commits) after the rows are in.
Then each of import (of the same file again), sync, ``detect`` and the recorder's next run must
detect the lost run, oldest first, with exact issue counts; SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger, api
from testledger.analyze import pipeline
from testledger.cli import main
from tests.helpers import query

FAILURES = 30
#: Three kinds of failure: three issues.
ERRORS = [
    ("ValueError", "bad value"),
    ("KeyError", "missing key"),
    ("TimeoutError", "gave up waiting"),
]


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it, nothing after it runs."""


def junit(path: Path, name: str = "suite") -> Path:
    cases = "".join(
        f'<testcase classname="tests.test_{name}" name="test_{i}" time="0.1">'
        f'<failure type="{ERRORS[i % 3][0]}" message="{ERRORS[i % 3][1]}">'
        f"{ERRORS[i % 3][0]}: {ERRORS[i % 3][1]}</failure></testcase>"
        for i in range(FAILURES)
    )
    passing = '<testcase classname="tests.test_ok" name="test_ok" time="0.1"/>'
    path.write_text(
        f'<testsuite name="{name}" tests="{FAILURES + 1}" failures="{FAILURES}" '
        f'timestamp="2026-01-0{1 if name == "suite" else 2}T10:00:00">'
        f"{cases}{passing}</testsuite>"
    )
    return path


def state(url: str) -> tuple[list[tuple[Any, ...]], int, int]:
    """(run id, status, detected) of every run; issues; occurrences."""
    runs = query(url, "SELECT id, status, detected_at IS NOT NULL FROM test_runs ORDER BY id")
    issues = query(url, "SELECT count(*) FROM issues")[0][0]
    occurrences = query(url, "SELECT count(*) FROM issue_occurrences")[0][0]
    return [(r[0], r[1], bool(r[2])) for r in runs], int(issues), int(occurrences)


def _die(*_args: Any, **_kwargs: Any) -> Any:
    raise Killed("killed between the run's commit and its detection")


def crash_an_import(ledger: Ledger, tmp_path: Path) -> Path:
    report_file = junit(tmp_path / "report.xml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "detect_run", _die)
        with pytest.raises(Killed):
            api.import_paths(ledger, [report_file])
    assert state(ledger.settings.database_url) == ([(1, "finished", False)], 0, 0)
    return report_file


def test_importing_the_file_again_completes_the_lost_detection(
    ledger: Ledger, tmp_path: Path
) -> None:
    report_file = crash_an_import(ledger, tmp_path)
    again = api.import_paths(ledger, [report_file])
    assert again.new_runs() == []  # "already imported, nothing added"...
    # ...and yet the run is detected: three issues, one occurrence per failure.
    assert state(ledger.settings.database_url) == ([(1, "finished", True)], 3, FAILURES)


def test_sync_completes_the_lost_detection(ledger: Ledger, tmp_path: Path) -> None:
    crash_an_import(ledger, tmp_path)
    assert api.sync(ledger).synced == []  # nothing in the spool
    assert state(ledger.settings.database_url) == ([(1, "finished", True)], 3, FAILURES)


def test_detect_of_the_latest_run_completes_earlier_lost_ones(
    ledger: Ledger, tmp_path: Path
) -> None:
    crash_an_import(ledger, tmp_path)
    later = junit(tmp_path / "later.xml", name="later")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "detect_run", _die)
        with pytest.raises(Killed):
            api.import_paths(ledger, [later])
    url = ledger.settings.database_url
    assert state(url)[0] == [(1, "finished", False), (2, "finished", False)]
    main(["--db", url, "detect"])  # the default: the latest run
    runs, issues, occurrences = state(url)
    # The same three errors in both files: three issues, seen in both runs.
    assert (runs, issues, occurrences) == ([(1, "finished", True), (2, "finished", True)], 3, 60)
    # Oldest first: the issues were first seen in run 1 (run 2 first would have opened them).
    first_seen = query(url, "SELECT first_detected_run_id, count(*) FROM issues GROUP BY 1")
    assert first_seen == [(1, 3)]


def test_the_next_recorded_run_detects_the_lost_one_first(ledger: Ledger, tmp_path: Path) -> None:
    crash_an_import(ledger, tmp_path)
    with ledger.start_run(branch="main", detect_environment=False) as run:
        run.record(tool_name="t", variation="v", status="FAIL", error_message="new problem")
    url = ledger.settings.database_url
    assert state(url) == ([(1, "finished", True), (2, "finished", True)], 4, FAILURES + 1)
    assert sorted(query(url, "SELECT first_detected_run_id, count(*) FROM issues GROUP BY 1")) == [
        (1, 3),
        (2, 1),
    ]


def test_with_nothing_lost_the_look_up_is_one_indexed_query(ledger: Ledger) -> None:
    """Every recording pays for this look-up: it reads the partial index (whose rows are only
    the undetected runs), never the table."""
    engine = ledger.engine()
    with engine.begin() as connection:
        assert pipeline.undetected_runs(connection) == []
        dialect = connection.dialect.name
        compiled = pipeline.undetected_query().compile(
            dialect=connection.dialect, compile_kwargs={"literal_binds": True}
        )
        sql = str(compiled)
        if dialect == "postgresql":
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(connection.exec_driver_sql(f"EXPLAIN {sql}").scalars())
        else:
            plan = "\n".join(
                str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            )
    assert "idx_test_runs_undetected" in plan, plan
