"""A process recording through the runner API killed with SIGKILL at 24 points of its life
(issue 15, crashes).

One ledger takes a run a point: 2,000 results in batches of 200 (40 failing, three kinds of
failure; a watcher observation attached to every hundredth), under a run key of its own and
an hour after the previous run. The recorder is killed in every phase - while it opens the
run, while it records and its batches commit, while it finishes the run, during detection,
while it writes the run's JSON files - at fractions of each phase measured from an unkilled
recording (tests/crashes.py). Then what a user meets:

* ``runs`` never shows partial data as a finished run: the killed run is finished with every
  result, or ``running`` (what it holds is on its way), or not there at all;
* the next command (sync, detect) detects every completed run left undetected;
* ``testledger sync --include-unfinished``, the recorder's "import again",
  loads the killed run from its JSON files: every result and observation there exactly once,
  the run aborted - or finished, when it had finished before it was killed - and detected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger, WatcherObservation, api
from testledger.analyze import pipeline
from testledger.model import TestResult
from testledger.record import runner
from testledger.record.archive import folder_name, read_events
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

RESULTS = 1_000
BATCH = 100
FAILING_EVERY = 50
WATCHED_EVERY = 100
#: Kill points per phase of a recording: 24, for at least 20 kills (a recorder may end before
#: a kill late in its life, when it runs faster than the unkilled recording measured).
PLAN = {"start": 2, "recording": 9, "finishing": 5, "detecting": 6, "detected": 2}
SEED = 15


def run_key(index: int) -> str:
    return f"crash-{index:02d}"


@dataclass(frozen=True)
class Sizes:
    """How large a run the child records (a bench may change RESULTS)."""

    results: int
    batch: int


def record_in_child(mark: Mark, url: str, results: Path, index: int, sizes: Sizes) -> None:
    """The child's work: one run recorded through the runner API, markers around its phases."""
    wrap(runner, "finish_run", before="finishing", mark=mark)
    wrap(pipeline, "detect_after_recording", before="detecting", after="detected", mark=mark)
    mark("start")
    started = datetime(2026, 1, 1) + timedelta(hours=index)
    with (
        Ledger(url, results_dir=results) as ledger,
        ledger.start_run(
            branch="main",
            suite="suite",
            run_key=run_key(index),
            started_at=started,
            detect_environment=False,
            batch_size=sizes.batch,
        ) as run,
    ):
        mark("recording")
        for case in range(sizes.results):
            failing = case % FAILING_EVERY == 0
            kind, message = ERRORS[case % 3]
            ref = run.record(
                tool_name=f"tool{case % 40}",
                variation=f"v{case}",
                status="FAIL" if failing else "PASS",
                error_type=kind if failing else None,
                error_message=message if failing else None,
                duration_secs=0.01,
            )
            if case % WATCHED_EVERY == 0:
                run.attach_watcher(ref, WatcherObservation(quality_score=7, watcher="w"))
    mark("exit")


def recording(url: str, results: Path, index: int) -> Work:
    return (record_in_child, (url, results, index, Sizes(RESULTS, BATCH)))


def runs_as_users_see_them(url: str, results: Path) -> dict[str, tuple[str, int, bool]]:
    """run key -> (status, results it says it has, detected), as ``runs`` lists them."""
    with Ledger(url, results_dir=results) as ledger:
        runs = api.list_runs(ledger, limit=1000)
    detected = dict(query(url, "SELECT id, detected_at IS NOT NULL FROM test_runs"))
    return {run.run_key: (run.status, run.total_tests, bool(detected[run.id])) for run in runs}


def in_the_files(results: Path, index: int) -> tuple[int, int] | None:
    """(results, attached observations) the killed run's JSON files hold; None: no files."""
    folder = results / "runs" / folder_name(run_key(index))
    events_path = folder / "results.jsonl"
    if not (folder / "run.json").exists():
        # Killed before its first run.json (written whole or not at all): no run to load,
        # and none in the database either (the files come first).
        return None
    events = list(read_events(events_path))
    recorded = sum(1 for event in events if isinstance(event, TestResult))
    return recorded, len(events) - recorded


def stored(url: str, index: int) -> list[tuple[Any, ...]]:
    """(status, total_tests, rows, observations, detected) of the run in the database."""
    return query(
        url,
        "SELECT r.status, r.total_tests, "
        "(SELECT count(*) FROM test_results t WHERE t.run_id = r.id), "
        "(SELECT count(*) FROM watcher_insights w JOIN test_results t "
        " ON t.id = w.test_result_id WHERE t.run_id = r.id), "
        "r.detected_at IS NOT NULL "
        f"FROM test_runs r WHERE r.run_key = '{run_key(index)}'",
    )


def next_command(index: int, url: str, results: Path) -> None:
    """What the user runs next (in turn: sync, detect): every completed run is detected."""
    with Ledger(url, results_dir=results) as ledger:
        if index % 2:
            report = api.sync(ledger)
            assert report.synced == [] and report.failed == []
        elif query(url, "SELECT count(*) FROM test_runs WHERE status <> 'running'") != [(0,)]:
            api.detect(ledger)
    undetected = query(
        url, "SELECT run_key FROM test_runs WHERE status <> 'running' AND detected_at IS NULL"
    )
    assert undetected == []


def load_what_is_left(url: str, results: Path) -> None:
    """``testledger sync --include-unfinished``: the killed run loaded from its files."""
    with Ledger(url, results_dir=results) as ledger:
        report = api.sync(ledger, include_unfinished=True)
    assert report.failed == [], report.failed


def check_one_point(url: str, results: Path, index: int, death: Death) -> tuple[str, ...]:
    """The run killed at point ``index`` as users meet it, then loaded again; the state the
    kill left it in (for the coverage check)."""
    seen = runs_as_users_see_them(url, results)
    earlier = {key: value for key, value in seen.items() if key != run_key(index)}
    for key, (status, total, detected) in earlier.items():
        # The earlier points' runs, each loaded by the sync --include-unfinished after its kill.
        assert detected and (status == "aborted" or (status, total) == ("finished", RESULTS)), (
            key,
            seen[key],
        )
    left = seen.get(run_key(index))
    rows_before = stored(url, index)
    if left is not None:
        status, total, _detected = left
        # Never a finished run short of results: finished is whole, else still "running".
        assert status in ("finished", "running"), (death, left)
        if status == "finished":
            assert total == RESULTS and rows_before[0][2] == RESULTS, (death, left, rows_before)
    state = ("absent",) if left is None else (left[0], "detected" if left[2] else "undetected")
    if left is not None and left[0] == "running":
        state = ("running", "rows" if rows_before[0][2] else "no rows")
    next_command(index, url, results)
    load_what_is_left(url, results)
    files = in_the_files(results, index)
    after = stored(url, index)
    if files is None:
        assert after == [] and left is None, (death, after)
        return state
    recorded, observations = files
    assert len(after) == 1, (death, after)
    status, total, rows, observed, detected = after[0]
    # Exactly what the files hold, once; finished only when the recorder finished it.
    assert (rows, observed, detected) == (recorded, observations, True), (death, after, files)
    expected_status = "finished" if left is not None and left[0] == "finished" else "aborted"
    assert (status, total) == (expected_status, recorded), (death, after, left)
    return state


def test_a_recording_killed_anywhere_shows_no_partial_finished_run_and_loads_exactly(
    db_url: str, tmp_path: Path
) -> None:
    results = tmp_path / "results"
    unkilled = run_unkilled(recording(db_url, results, 0), tmp_path / "m0")
    assert unkilled.exit_code == 0 and unkilled.last_phase == "exit", unkilled
    assert stored(db_url, 0) == [("finished", RESULTS, RESULTS, RESULTS // WATCHED_EVERY, True)]
    lengths = phase_lengths(unkilled.markers)
    states: list[tuple[Death, tuple[str, ...]]] = []
    index = 0
    for point in kill_points(PLAN, SEED):
        # A recorder that ends before its kill (on a loaded machine it can outrun the phases
        # measured above, or this process see its marker late) leaves a whole run, which is
        # checked as such; the point is then tried again with a new run, twice at most.
        for _attempt in range(3):
            index += 1
            work = recording(db_url, results, index)
            death = kill_at(work, tmp_path / f"m{index}", point, lengths)
            assert death.killed or death.exit_code == 0, death
            states.append((death, check_one_point(db_url, results, index, death)))
            if death.killed:
                break
    # Every run loaded: none left running, all detected, each result once.
    assert query(db_url, "SELECT count(*) FROM test_runs WHERE status = 'running'") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM test_runs WHERE detected_at IS NULL") == [(0,)]
    killed = [death for death, _ in states if death.killed]
    assert len(killed) >= 20, [death.point for death, _ in states]
    # The kills met every state a killed recorder can leave: before its first batch (no run
    # yet, or a running one without rows), between batches (running, some rows committed),
    # and after its run's finish committed (finished, not detected), during detection too.
    met = {state for death, state in states if death.killed}
    in_detection = {
        state for death, state in states if death.killed and death.last_phase == "detecting"
    }
    shown = (met, [(d.point, d.last_phase, s) for d, s in states])
    assert met & {("absent",), ("running", "no rows")}, shown
    assert {("running", "rows"), ("finished", "undetected")} <= met, shown
    assert ("finished", "undetected") in in_detection, shown


def test_a_run_finished_in_the_database_but_not_in_its_files_stays_finished(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The recorder was killed after its run's finish committed and before its files said so
    (seen above as ("finished", "undetected")): loading the files as an unfinished run keeps
    the status, end and statistics the recorder gave the run; it used to turn it aborted."""
    with ledger.start_run(branch="main", run_key="whole", detect_environment=False) as run:
        for case in range(3):
            run.record(tool_name="t", variation=f"v{case}", status="PASS", duration_secs=1.0)
    columns = "status, total_tests, finished_at, duration_secs"
    before = query(ledger.settings.database_url, f"SELECT {columns} FROM test_runs")
    run_json = run.archive.run_path
    files = json.loads(run_json.read_text())
    files.update(status="running", finished_at=None, stats=None, database={"state": "pending"})
    run_json.write_text(json.dumps(files))
    report = api.sync(ledger, include_unfinished=True)
    assert report.failed == []
    assert [(s.run_key, s.results_written, s.status) for s in report.synced] == [
        ("whole", 0, "finished")
    ]
    assert query(ledger.settings.database_url, f"SELECT {columns} FROM test_runs") == before
    assert before[0][:2] == ("finished", 3)
    assert json.loads(run_json.read_text())["status"] == "finished"
