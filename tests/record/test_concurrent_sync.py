"""``testledger sync`` of one spool by several processes at once: every run loaded once, and
the processes that lost the race say the run was already loaded (exit 0), not a constraint."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from testledger import Ledger
from tests.helpers import query

OFFLINE = "postgresql://x:pw@127.0.0.1:9/none"
PROCESSES = 4
RUNS = 3
RESULTS = 40


def _sync(db_url: str, results_dir: str, barrier: Any, out: Any) -> None:
    import contextlib
    import io

    from testledger.cli import main

    printed = io.StringIO()
    barrier.wait(timeout=60)
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main(["--db", db_url, "--results-dir", results_dir, "sync"])
    out.put((code, printed.getvalue()))


def test_concurrent_syncs_load_each_run_once_and_the_others_say_already_loaded(
    db_url: str, tmp_path: Path
) -> None:
    results_dir = tmp_path / "results"
    with Ledger(OFFLINE, results_dir=results_dir) as offline:
        for number in range(RUNS):
            with offline.start_run(branch="main", run_key=f"spooled-{number}") as run:
                for index in range(RESULTS):
                    run.record(tool_name="t", variation=f"v{index}", status="PASS")
    Ledger(db_url, results_dir=tmp_path / "other").close()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    out = context.Queue()
    processes = [
        context.Process(target=_sync, args=(db_url, str(results_dir), barrier, out))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reports = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(60)
    assert [code for code, _ in reports] == [0] * PROCESSES, [p for c, p in reports if c]
    text = "\n".join(printed for _, printed in reports)
    assert "UNIQUE" not in text and "unique" not in text and "could not load" not in text
    for number in range(RUNS):
        # Loaded by one process at least; a process that came late may find nothing to do.
        assert f"synced spooled-{number} " in text or f"already loaded spooled-{number}" in text
    assert query(db_url, "SELECT count(*) FROM test_runs") == [(RUNS,)]
    assert query(db_url, "SELECT count(*) FROM test_results") == [(RUNS * RESULTS,)]
