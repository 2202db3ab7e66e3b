"""Import speed: a JUnit file of 100,000 testcases into SQLite and PostgreSQL, against peers
measured in the same run.

    python bench/import.py [--n 100000] [--repeat 3] [--pg URL]

Peers: parse-only with the standard library's iterparse (the floor for reading the XML),
testledger's own JUnit parser alone, and raw inserts of the very rows the import writes
(sqlite3 executemany in one transaction, with the import's page cache; psycopg COPY). A file
this large is parsed by a second process while the import writes (ingest.parse_ahead).
Goals: >= 40,000 results/s into SQLite and >= 0.8 of raw COPY into PostgreSQL.

Both sides of a comparison are timed alike: from the first row to the commit, leaving out
creating the schema of the fresh database and closing the connection; they run in turns and
the best of ``--repeat`` counts. ``ratio`` is the import's rate over the peer's.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import fresh_pg_database, postgres_server, raw_insert
from testledger.ingest import importer
from testledger.ingest.formats import junit
from testledger.ingest.importer import ImportOptions, import_parsed
from testledger.store.database import connect_engine

SQLITE_GOAL = 40_000
PG_GOAL = 0.8


def generate(path: Path, count: int) -> None:
    rng = random.Random(1)
    frame = '  File "/src/app/module_{0}.py", line {1}, in handler_{0}\n    result = call(x)\n'
    with path.open("w") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>')
        out.write(
            f'<testsuite name="pytest" tests="{count}" timestamp="2025-10-07T12:00:00" '
            'hostname="ci-1">'
        )
        for index in range(count):
            name = f'test_case[{index}]" classname="tests.test_mod{index % 300}.TestTool'
            time_ = f"{rng.uniform(0.001, 2):.3f}"
            if index % 10 == 0:
                trace = "Traceback (most recent call last):\n" + "".join(
                    frame.format(k, rng.randint(1, 900)) for k in range(12)
                )
                trace += f"AssertionError: expected 200, got 500 for request {index}\n"
                out.write(
                    f'<testcase name="{name}" time="{time_}"><failure '
                    f'message="AssertionError: expected 200, got 500">{trace}</failure></testcase>'
                )
            else:
                out.write(f'<testcase name="{name}" time="{time_}"/>')
        out.write("</testsuite></testsuites>\n")


def best(repeat: int, action) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_pair(
    repeat: int, ours: Callable[[], float], peer: Callable[[], float]
) -> tuple[float, float]:
    """The best times of two actions that time themselves, run in turns so that a burst of load
    on the machine hits both alike."""
    our_times, peer_times = [], []
    for _ in range(repeat):
        our_times.append(ours())
        peer_times.append(peer())
    return min(our_times), min(peer_times)


def raw_insert_of(url: str, path: Path) -> float:
    """The raw peer on the rows of ``path``. They are parsed before its timing starts and exist
    only during it, so that they never weigh on the import's garbage collections. On SQLite it
    gets the page cache the import sets itself (``importer._SQLITE_IMPORT_CACHE_KIB``)."""
    pragma = f"PRAGMA cache_size = -{importer._SQLITE_IMPORT_CACHE_KIB}"
    return raw_insert(url, list(junit.parse(path).results), sqlite_pragmas=(pragma,))


def iterparse_only(path: Path) -> None:
    count = 0
    for _event, element in ET.iterparse(path, events=("end",)):
        if element.tag == "testcase":
            count += 1
            element.clear()
    assert count > 0


def parser_only(path: Path) -> None:
    for _ in junit.parse(path).results:
        pass


#: The CPU seconds of every import_into call, this process's and its parse-ahead child's
#: (ingest.parse_ahead): on SQLite, where the import is all done by the two, they say what the
#: import costs when the machine is shared with other work.
IMPORT_CPU_SECONDS: list[float] = []


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def import_into(url: str, path: Path) -> float:
    """Seconds to import ``path`` into a fresh ledger at ``url``. Like the raw peer's, the timing
    leaves out creating the schema and closing the connection (a WAL checkpoint on SQLite)."""
    engine = connect_engine(url)
    try:
        cpu_start = _cpu_seconds()
        start = time.perf_counter()
        outcome = import_parsed(
            engine,
            junit.parse(path),
            ImportOptions(branch="bench", commit="x", detect_environment=False),
            content_run_key=f"bench-{time.perf_counter_ns()}",
            reparse=lambda: junit.parse(path),
        )
        elapsed = time.perf_counter() - start
        IMPORT_CPU_SECONDS.append(_cpu_seconds() - cpu_start)
    finally:
        engine.dispose()
    assert outcome.results > 0
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "big.xml"
        generate(report, args.n)
        size = report.stat().st_size / 1e6
        print(f"{args.n:,} testcases, {size:.0f} MB, 10% failing with ~1 KB tracebacks")
        rate = lambda seconds: args.n / seconds  # noqa: E731
        peer = best(args.repeat, lambda: iterparse_only(report))
        print(f"iterparse only      {rate(peer):>9,.0f} cases/s   (peer)")
        ours = best(args.repeat, lambda: parser_only(report))
        print(f"testledger parser   {rate(ours):>9,.0f} cases/s   ({peer / ours:.2f} of iterparse)")
        counter = iter(range(1_000_000))

        def sqlite_url() -> str:
            return f"sqlite:///{folder}/db{next(counter)}.db"

        imported, raw = best_of_pair(
            args.repeat,
            lambda: import_into(sqlite_url(), report),
            lambda: raw_insert_of(sqlite_url(), report),
        )
        verdict = "MET" if rate(imported) >= SQLITE_GOAL else "NOT MET"
        print(
            f"sqlite     import {rate(imported):>9,.0f} results/s   raw executemany "
            f"{rate(raw):>9,.0f} rows/s   ratio {raw / imported:.2f}   "
            f"(goal >= {SQLITE_GOAL:,}/s: {verdict})"
        )
        cpu = min(IMPORT_CPU_SECONDS)
        print(
            f"sqlite     import {rate(cpu):>9,.0f} results per CPU second (this process and the "
            "one parsing the file for it)"
        )
        with postgres_server(args.pg) as admin:
            if admin is None:
                print("postgresql skipped: no server (--pg URL or PostgreSQL server binaries)")
                return
            imported, raw = best_of_pair(
                args.repeat,
                lambda: import_into(fresh_pg_database(admin, f"imp{next(counter)}"), report),
                lambda: raw_insert_of(fresh_pg_database(admin, f"raw{next(counter)}"), report),
            )
            ratio = raw / imported
            verdict = "MET" if ratio >= PG_GOAL else "NOT MET"
            print(
                f"postgresql import {rate(imported):>9,.0f} results/s   raw COPY "
                f"{rate(raw):>9,.0f} rows/s   ratio {ratio:.2f}   (goal >= {PG_GOAL}: {verdict})"
            )


if __name__ == "__main__":
    main()
