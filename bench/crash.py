"""SIGKILL at many points of an import and of a recording process, then the next command.

    python bench/crash.py [--points 44] [--cases 1500] [--results 2000] [--pg URL]
                          [--only import|record]

Runs the suite's crash scenarios (tests/ingest/test_crash_import.py and
tests/record/test_crash.py, whose checks it calls: every assertion of the tests holds here
too) with as many kill points and as large runs as asked, on a new SQLite file and on a new
PostgreSQL database (of ``--pg``, a server where databases may be created, else
``TESTLEDGER_TEST_PG_URL``, else a throwaway cluster from the server binaries). Prints, per
scenario and backend, the points, how many really killed the child, the phases the kills
fell in, the wall time and the CPU time of this process and its children (the database
server's own is not in it).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import crashes
from tests.ingest import test_crash_import as imports
from tests.record import test_crash as records

from testledger.store.database import connect_engine

IMPORT_TEST = "test_an_import_killed_anywhere_leaves_no_partial_run_and_loses_no_detection"
RECORD_TEST = "test_a_recording_killed_anywhere_shows_no_partial_finished_run_and_loads_exactly"


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def stop_fork_server() -> None:
    """Stop multiprocessing's fork server (the next scenario starts another): the children it
    forked are its own to reap, and their CPU time reaches this process's only once the server
    itself is reaped. (A private function; without it the figure leaves the children out.)"""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()


def scaled(plan: dict[str, int], points: int) -> dict[str, int]:
    """The suite's plan, its proportions kept, grown to ``points`` in all."""
    total = sum(plan.values())
    scaled_plan = {phase: max(1, round(count * points / total)) for phase, count in plan.items()}
    return scaled_plan


@contextmanager
def database(kind: str, folder: Path, pg: str | None) -> Iterator[str]:
    """A new, migrated ledger database of ``kind``."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / f'ledger-{uuid.uuid4().hex[:8]}.db'}"
        connect_engine(url).dispose()
        yield url
        return
    assert pg is not None
    admin = sa.create_engine(
        pg.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    name = f"tl_crash_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(pg).set(database=name).render_as_string(hide_password=False)
    connect_engine(url).dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def watch_deaths() -> list[crashes.Death]:
    """Every Death kill_at returns from now on (the tests keep theirs to themselves)."""
    deaths: list[crashes.Death] = []
    original = crashes.kill_at

    def recorded(*args: object, **kwargs: object) -> crashes.Death:
        death = original(*args, **kwargs)  # type: ignore[arg-type]
        deaths.append(death)
        return death

    for module in (imports, records):
        module.kill_at = recorded  # type: ignore[attr-defined]
    return deaths


def run(name: str, scenario: Callable[[str, Path], None], kind: str, pg: str | None) -> None:
    deaths = watch_deaths()
    with tempfile.TemporaryDirectory(prefix="tl-crash-") as folder:
        with database(kind, Path(folder), pg) as url:
            started, cpu = time.perf_counter(), cpu_seconds()
            scenario(url, Path(folder))
            wall = time.perf_counter() - started
            stop_fork_server()
            used = cpu_seconds() - cpu
    killed = [death for death in deaths if death.killed]
    where: dict[str, int] = {}
    for death in killed:
        where[death.last_phase or "-"] = where.get(death.last_phase or "-", 0) + 1
    print(
        f"{name:7} {kind:10} points {len(deaths)}, killed {len(killed)}, died in {where}; "
        f"{wall:.1f} s wall, {used:.1f} s CPU  ok"
    )


@contextmanager
def postgres_server(url: str | None) -> Iterator[str | None]:
    """``url``, else a throwaway cluster from the machine's server binaries (None: none)."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=44)
    parser.add_argument("--cases", type=int, default=imports.CASES)
    parser.add_argument("--results", type=int, default=records.RESULTS)
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    parser.add_argument("--only", choices=("import", "record"))
    args = parser.parse_args()
    imports.CASES, imports.FAILURES = args.cases, args.cases // imports.FAILING_EVERY
    imports.PLAN = scaled(imports.PLAN, args.points)
    records.RESULTS = args.results
    records.PLAN = scaled(records.PLAN, args.points)
    scenarios = {
        "import": getattr(imports, IMPORT_TEST),
        "record": getattr(records, RECORD_TEST),
    }
    with postgres_server(args.pg) as pg:
        kinds = ["sqlite", "postgresql"] if pg else ["sqlite"]
        for name, scenario in scenarios.items():
            if args.only not in (None, name):
                continue
            for kind in kinds:
                run(name, scenario, kind, pg)


if __name__ == "__main__":
    main()
