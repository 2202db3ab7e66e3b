"""Recording speed: the runner API against raw inserts of the same rows, in the same run.

    python bench/record.py [--n 100000] [--pg URL]

For SQLite and PostgreSQL, records N results through ``Ledger.start_run`` / ``Run.record``
(batched, JSON files included: that is the API's real cost), then inserts the same rows into a
fresh database of the same schema with the bare driver (sqlite3 ``executemany`` in one
transaction; psycopg ``COPY``), and prints results/s and the ratio. Goal: >= 0.7 of raw.

On PostgreSQL it then records a run of ``--large`` (300,000) results after two earlier runs and
times its finish, statistics included (goal: within 2 s; issue 18: the statistics' correlated
subquery ran for 15 minutes at that size).

PostgreSQL: ``--pg`` or ``TESTLEDGER_TEST_PG_URL`` names a server where databases may be
created; without either, a throwaway cluster is started from the machine's server binaries.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testledger import Ledger, TestResult
from testledger.model import utcnow
from testledger.store.database import connect_engine
from testledger.store.types import format_utc
from testledger.store.writer import RESULT_COLUMNS, encode_result

GOAL = 0.7


def make_results(count: int) -> list[TestResult]:
    rng = random.Random(42)
    results = []
    for index in range(count):
        failed = rng.random() < 0.1
        results.append(
            TestResult(
                test_id=f"tests/test_mod{index % 200}.py::TestTool::test_case[{index}]",
                tool_name=f"tests/test_mod{index % 200}.py::TestTool",
                variation=f"test_case[{index}]",
                status="FAIL" if failed else "PASS",
                provider=("glm", "kimi")[index % 2],
                model=("glm-4.5-air", "kimi-k2")[index % 2],
                execution_status="consensus_failed" if failed else "success",
                duration_secs=round(rng.uniform(0.001, 3.0), 3),
                memory_mb=rng.randint(40, 400),
                cpu_percent=round(rng.uniform(0, 100), 2),
                tokens_total=rng.randint(100, 5000),
                cost_usd=round(rng.uniform(0, 0.01), 6),
                error_type="AssertionError" if failed else None,
                error_message=("assert response.ok, 'truncated at 4096 bytes' " * 4)
                if failed
                else None,
                metrics={"latency_ms": round(rng.uniform(50, 900), 1)},
            )
        )
    return results


def via_api(url: str, results: list[TestResult], folder: Path) -> float:
    with Ledger(url, results_dir=folder / "results") as ledger:
        ledger.engine()  # connect and migrate before the clock starts
        start = time.perf_counter()
        # Recording alone: issue detection at finish is measured by bench/fingerprint.py.
        with ledger.start_run(branch="bench", detect_environment=False, detect_issues=False) as run:
            for result in results:
                run.record(result)
        elapsed = time.perf_counter() - start
    assert not run.spooled and run.stats is not None
    assert run.stats.total_tests == len(results)
    return elapsed


def raw_insert(
    url: str, results: list[TestResult], *, sqlite_pragmas: tuple[str, ...] = ()
) -> float:
    """Seconds to insert the rows of ``results`` with the bare driver (``sqlite_pragmas`` run
    first on SQLite, untimed)."""
    engine = connect_engine(url)
    with engine.begin() as conn:
        run_id = conn.execute(
            sa.text(
                "INSERT INTO test_runs (branch_name, watcher_model, total_tests, tests_passed, "
                "tests_failed, tests_skipped, run_key) VALUES ('raw', 'none', 0, 0, 0, 0, 'raw') "
                "RETURNING id"
            )
        ).scalar_one()
    sqlite = engine.dialect.name == "sqlite"
    now = format_utc(utcnow())
    columns = ", ".join(RESULT_COLUMNS)
    raw = engine.raw_connection()
    driver = raw.driver_connection
    try:
        if sqlite:
            for pragma in sqlite_pragmas:
                driver.execute(pragma)
        start = time.perf_counter()
        # The same tuples the writer builds are built here, inside the timing: a raw insert
        # of these rows has to make them too.
        rows = [(run_id, *encode_result(r), now) for r in results]
        if sqlite:
            marks = ", ".join("?" * len(RESULT_COLUMNS))
            driver.execute("BEGIN")
            driver.executemany(f"INSERT INTO test_results ({columns}) VALUES ({marks})", rows)
            driver.execute("COMMIT")
        else:
            with driver.cursor() as cursor:
                with cursor.copy(f"COPY test_results ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            driver.commit()
        elapsed = time.perf_counter() - start
    finally:
        raw.close()
        engine.dispose()
    return elapsed


@contextmanager
def postgres_server(url: str | None) -> Iterator[str | None]:
    if url:
        yield url
        return
    from tests.pgcluster import PgCluster, find_pg_bindir

    bindir = find_pg_bindir()
    if bindir is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="testledger-bench-pg-"))
    cluster = PgCluster(bindir, folder)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def fresh_pg_database(admin_url: str, name: str) -> str:
    admin = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(False)


def report(label: str, count: int, api: float, raw: float) -> None:
    ratio = raw / api
    verdict = "MET" if ratio >= GOAL else "NOT MET"
    print(
        f"{label:<11} api {count / api:>9,.0f} results/s   raw {count / raw:>9,.0f} rows/s   "
        f"ratio {ratio:.2f}  (goal >= {GOAL}: {verdict})"
    )


def measure(
    label: str, make_url: Callable[[str], str], results: list[TestResult], repeat: int
) -> None:
    best_api = best_raw = float("inf")
    for attempt in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            best_api = min(best_api, via_api(make_url(f"api{attempt}"), results, Path(folder)))
            best_raw = min(best_raw, raw_insert(make_url(f"raw{attempt}"), results))
    report(label, len(results), best_api, best_raw)


FINISH_GOAL_SECS = 2.0


def finish_large_run(url: str, count: int, folder: Path) -> tuple[float, float]:
    """Seconds to finish a run of ``count`` results on a ledger that already holds two runs
    (its last batch, its statistics and its status: what the pytest session waits for), and
    then what follows it (ANALYZE when due; issue detection is off, bench/fingerprint.py
    measures it)."""
    results = make_results(count)
    with Ledger(url, results_dir=folder / "results") as ledger:
        for index in range(2):
            with ledger.start_run(
                branch="bench", run_key=f"earlier-{index}", detect_environment=False
            ) as run:
                for result in results[:5000]:
                    run.record(replace(result, attempt=None))
        run = ledger.start_run(branch="bench", detect_environment=False, detect_issues=False)
        run.defer_after_finish = True  # as the plugin's writer finishes a run
        for result in results:
            run.record(result)
        start = time.perf_counter()
        stats = run.finish()
        finished = time.perf_counter() - start
        start = time.perf_counter()
        run.run_deferred()
        after = time.perf_counter() - start
    assert stats.total_tests == count, stats
    return finished, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="results per run")
    parser.add_argument(
        "--large", type=int, default=300_000, help="results of the run finished on PostgreSQL"
    )
    parser.add_argument("--repeat", type=int, default=5, help="best of this many")
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    args = parser.parse_args()
    results = make_results(args.n)
    print(f"{args.n:,} results, best of {args.repeat}")
    with tempfile.TemporaryDirectory() as sqlite_dir:
        measure("sqlite", lambda name: f"sqlite:///{sqlite_dir}/{name}.db", results, args.repeat)
    with postgres_server(args.pg) as admin_url:
        if admin_url is None:
            print("postgresql  skipped: no server (--pg URL or PostgreSQL server binaries)")
            return
        measure(
            "postgresql",
            lambda name: fresh_pg_database(admin_url, f"bench_{name}"),
            results,
            args.repeat,
        )
        with tempfile.TemporaryDirectory() as folder:
            url = fresh_pg_database(admin_url, "bench_large")
            finished, after = finish_large_run(url, args.large, Path(folder))
        verdict = "MET" if finished <= FINISH_GOAL_SECS else "NOT MET"
        print(
            f"postgresql  finishing a {args.large:,}-result run (last batch, statistics, status) "
            f"{finished:.2f} s (goal <= {FINISH_GOAL_SECS:.0f} s: {verdict}); "
            f"then ANALYZE when due {after:.2f} s"
        )


if __name__ == "__main__":
    main()
