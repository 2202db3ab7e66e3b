"""Processes recording at once into a database that has no schema yet (issue 15, item 1).

They all race to create the schema: one creates it under the migration lock (a PostgreSQL
advisory lock; SQLite's write lock), the others wait and find it made. Nothing may go to the
spool, and a schema that cannot be created is said to be that, never "unavailable".
At the issue's size: 8 processes x 10,000 results, in batches of 1,000 so that their
transactions interleave (bench/concurrent_first_use.py runs the same with timings).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.store import database
from tests.helpers import query

PROCESSES = 8
RESULTS = 10_000
BATCH = 1_000
#: One result in this many fails (three kinds of failure): detection is part of each run's end,
#: and a tenth failing made detecting 8,000 failures the test's whole cost.
FAILING_EVERY = 100

# Each process waits for the go file, so that all of them meet the empty database together.
RECORDER = """
import json, sys, time
from pathlib import Path
from testledger import Ledger
url, results, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
count, batch, failing = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
while not go.exists():
    time.sleep(0.005)
with Ledger(url, results_dir=results) as ledger:
    with ledger.start_run(branch="main", detect_environment=False, batch_size=batch) as run:
        for i in range(count):
            run.record(tool_name=f"tool{i % 50}", variation=f"v{i}",
                       status="FAIL" if i % failing == 0 else "PASS",
                       error_type=["ValueError", "KeyError", "OSError"][i % 3],
                       error_message=["bad value", "missing key", "disk full"][i % 3])
print(json.dumps(run.spool_reason))
"""


@pytest.mark.slow
def test_processes_recording_into_a_new_database_at_once_all_get_in(
    empty_db_url: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RECORDER,
                empty_db_url,
                str(tmp_path / f"r{i}"),
                str(go),
                str(RESULTS),
                str(BATCH),
                str(FAILING_EVERY),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(PROCESSES)
    ]
    go.touch()
    outputs = [process.communicate(timeout=300) for process in processes]
    logs = "\n".join(err for _out, err in outputs)
    assert [p.returncode for p in processes] == [0] * PROCESSES, logs
    assert [json.loads(out) for out, _err in outputs] == [None] * PROCESSES, logs
    assert "unavailable" not in logs and "skipped" not in logs, logs
    assert "Traceback" not in logs and "error" not in logs.lower(), logs
    runs = query(
        empty_db_url,
        "SELECT count(*), count(DISTINCT run_key), count(detected_at) FROM test_runs "
        "WHERE status = 'finished'",
    )
    assert runs == [(PROCESSES, PROCESSES, PROCESSES)]
    assert query(empty_db_url, "SELECT count(*) FROM test_runs") == [(PROCESSES,)]
    assert query(empty_db_url, "SELECT count(*) FROM test_results") == [(PROCESSES * RESULTS,)]
    per_run = query(empty_db_url, "SELECT total_tests, count(*) FROM test_runs GROUP BY 1")
    assert per_run == [(RESULTS, PROCESSES)]
    # Nothing in the spool: every run's JSON files say it reached the database.
    states = [
        json.loads(path.read_text())["database"]["state"]
        for path in tmp_path.glob("r*/runs/*/run.json")
    ]
    assert states == ["synced"] * PROCESSES
    # Every run detected, concurrently too: one issue per message, one occurrence per failure.
    assert query(empty_db_url, "SELECT count(*) FROM issues") == [(3,)]
    failures = PROCESSES * RESULTS // FAILING_EVERY
    assert query(empty_db_url, "SELECT count(*) FROM issue_occurrences") == [(failures,)]


def test_a_schema_that_cannot_be_created_is_not_reported_as_an_outage(
    empty_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database answered and refused the DDL (here: a duplicate, as two unlocked migrators
    got): a SchemaError naming the schema; the run still goes safely to the spool."""

    def refuse(_engine: object) -> None:
        raise sa.exc.IntegrityError(
            "CREATE TABLE test_runs", {}, Exception("duplicate key pg_type_typname_nsp_index")
        )

    monkeypatch.setattr(database, "ensure_schema", refuse)
    with Ledger(empty_db_url, results_dir=tmp_path / "results") as ledger:
        with ledger.start_run(branch="main", detect_environment=False) as run:
            run.record(tool_name="t", variation="v", status="PASS")
    assert run.spooled
    assert run.spool_reason is not None
    assert run.spool_reason.startswith("cannot create the schema in ")
    assert "pg_type_typname_nsp_index" in run.spool_reason
    messages = [record.getMessage() for record in caplog.records]
    assert any("cannot take runs" in message for message in messages), messages
    assert not any("unavailable" in message for message in messages), messages
