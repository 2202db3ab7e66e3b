"""Change-point detection over 1,000,000 results: 5,000 tests x 200 runs (goal: <= 5 s).

(a) the pure algorithm on an in-memory (5000, 200) array;
(b) end to end from a SQLite ledger: ``find_regressions`` (read every passing result of the
    latest 200 runs, pivot, detect, describe), and ``detect_regressions`` for the latest run
    (what ``testledger detect`` adds after every run).

Half of the series get one known change (+/-20..80% at a random run), the rest stay flat;
noise is lognormal (5%) with 1% spikes. Accuracy (change found within +/-2 runs) and false
alarms are printed with the timings: (a) with no absolute minimum, (b) with the default one of
durations (0.05 s, which the changes of the shortest tests, from 0.05 s, can fall under).

Run: ``env -u PYTHONDONTWRITEBYTECODE python bench/regressions.py [--tests 5000] [--runs 200]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from testledger.analyze.issues.rules import load_rules
from testledger.analyze.regressions.changepoint import ChangePointParams, analyze_batch
from testledger.analyze.regressions.finder import (
    RegressionConfig,
    detect_regressions,
    find_regressions,
)
from testledger.store.database import connect_engine
from testledger.store.types import format_utc

GOAL_SECS = 5.0
START = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)


def generate(tests: int, runs: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, change position or -1, factor) per test."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 20.0, tests)[:, None]
    values = base * rng.lognormal(0.0, 0.05, (tests, runs))
    spikes = rng.random((tests, runs)) < 0.01
    values[spikes] *= rng.uniform(2.0, 4.0, int(spikes.sum()))
    changed = rng.random(tests) < 0.5
    where = np.where(changed, rng.integers(20, runs - 20, tests), -1)
    factor = np.where(changed, 1.0 + rng.choice([-1, 1], tests) * rng.uniform(0.2, 0.8, tests), 1)
    for row in np.flatnonzero(changed):
        values[row, where[row] :] *= factor[row]
    return np.round(values, 3), where, factor


def accuracy(found: list[list[int]], where: np.ndarray) -> tuple[float, float]:
    changed = where >= 0
    hits = sum(
        any(abs(i - int(w)) <= 2 for i in points)
        for points, w, c in zip(found, where, changed, strict=True)
        if c
    )
    alarms = sum(bool(points) for points, c in zip(found, changed, strict=True) if not c)
    return hits / max(int(changed.sum()), 1), alarms / max(int((~changed).sum()), 1)


def write_ledger(path: Path, values: np.ndarray) -> None:
    tests, runs = values.shape
    url = f"sqlite:///{path}"
    connect_engine(url).dispose()  # creates the schema
    db = sqlite3.connect(path)
    run_rows = []
    for r in range(runs):
        at = format_utc(START + timedelta(hours=r))
        run_rows.append(
            (r + 1, at, "main", f"c{r:04d}", "none", tests, tests, 0, 0, at, f"bench-{r:04d}")
        )
    db.executemany(
        "INSERT INTO test_runs (id, run_timestamp, branch_name, commit_hash, watcher_model,"
        " total_tests, tests_passed, tests_failed, tests_skipped, created_at, run_key, suite,"
        " status, tests_errored, source) VALUES (?,?,?,?,?,?,?,?,?,?,?,'bench','finished',0,"
        "'bench')",
        run_rows,
    )
    names = [f"tool{t % 20}/case{t:05d}" for t in range(tests)]
    created = format_utc(START)

    def rows() -> object:
        for r in range(runs):
            column = values[:, r].tolist()
            for t in range(tests):
                name = names[t]
                yield (r + 1, name, name.split("/")[0], name.split("/")[1], column[t], created)

    db.executemany(
        "INSERT INTO test_results (run_id, test_id, tool_name, variation, duration_secs,"
        " created_at, status, attempt) VALUES (?,?,?,?,?,?,'PASS',1)",
        rows(),  # type: ignore[arg-type]
    )
    db.commit()
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    values, where, _ = generate(args.tests, args.runs)
    total = values.size
    print(f"{args.tests} tests x {args.runs} runs = {total:,} results")

    started = time.perf_counter()
    analyses = analyze_batch(values, ChangePointParams())
    pure = time.perf_counter() - started
    found = [[cp.index for cp in a.change_points] for a in analyses]
    hit, alarm = accuracy(found, where)
    print(
        f"(a) algorithm, in memory: {pure:.2f} s ({pure / GOAL_SECS:.0%} of the {GOAL_SECS:.0f} s"
        f" goal); changes found within 2 runs: {hit:.1%}; flat series with an alarm: {alarm:.2%}"
    )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        started = time.perf_counter()
        write_ledger(path, values)
        print(f"    (ledger written in {time.perf_counter() - started:.1f} s)")
        engine = connect_engine(f"sqlite:///{path}")
        config = RegressionConfig(metrics=("duration",), history=args.runs)
        with engine.connect() as conn:
            started = time.perf_counter()
            report = find_regressions(conn, config, include_improvements=True)
            e2e = time.perf_counter() - started
        column = {f"tool{t % 20}/case{t:05d}": t for t in range(args.tests)}
        found_e2e: list[list[int]] = [[] for _ in range(args.tests)]
        for change in report.changes:
            found_e2e[column[change.test_id]].append(change.first_run.id - 1)
        hit, alarm = accuracy(found_e2e, where)
        print(
            f"(b) end to end from SQLite (find_regressions): {e2e:.2f} s ({e2e / GOAL_SECS:.0%}"
            f" of the goal); {report.series_analyzed} series, {len(report.changes)} changes;"
            f" found within 2 runs: {hit:.1%}; flat series with an alarm: {alarm:.2%}"
        )
        with engine.connect() as conn:
            started = time.perf_counter()
            find_regressions(conn, RegressionConfig(history=args.runs))
            every = time.perf_counter() - started
        print(f"    every metric configured (5 empty ones skipped): {every:.2f} s")
        with engine.begin() as conn:
            started = time.perf_counter()
            sync = detect_regressions(
                conn, args.runs, rules=load_rules(None), config=config, now=START
            )
            hook = time.perf_counter() - started
        print(
            f"    detect_regressions for the latest run (issues opened: {len(sync.opened)}):"
            f" {hook:.2f} s"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
