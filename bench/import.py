"""Import speed: a JUnit file of 100,000 testcases into SQLite and PostgreSQL, against peers
measured in the same run.

    python bench/import.py [--n 100000] [--repeat 3] [--pg URL]

Peers: parse-only with the standard library's iterparse (the floor for reading the XML),
testledger's own JUnit parser alone, and raw inserts of the very rows the import writes
(sqlite3 executemany in one transaction; psycopg COPY). Goals: >= 40,000 results/s into SQLite
and >= 0.8 of raw COPY into PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from record import fresh_pg_database, postgres_server, raw_insert
from testledger.ingest import junit
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


def import_into(url: str, path: Path) -> None:
    engine = connect_engine(url)
    try:
        outcome = import_parsed(
            engine,
            junit.parse(path),
            ImportOptions(branch="bench", commit="x", detect_environment=False),
            content_run_key=f"bench-{time.perf_counter_ns()}",
            reparse=lambda: junit.parse(path),
        )
    finally:
        engine.dispose()
    assert outcome.results > 0


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
        results = list(junit.parse(report).results)
        counter = iter(range(1_000_000))

        def sqlite_url() -> str:
            return f"sqlite:///{folder}/db{next(counter)}.db"

        imported = best(args.repeat, lambda: import_into(sqlite_url(), report))
        raw = best(args.repeat, lambda: raw_insert(sqlite_url(), results))
        verdict = "MET" if rate(imported) >= SQLITE_GOAL else "NOT MET"
        print(
            f"sqlite     import {rate(imported):>9,.0f} results/s   raw executemany "
            f"{rate(raw):>9,.0f} rows/s   ratio {raw / imported:.2f}   "
            f"(goal >= {SQLITE_GOAL:,}/s: {verdict})"
        )
        with postgres_server(args.pg) as admin:
            if admin is None:
                print("postgresql skipped: no server (--pg URL or PostgreSQL server binaries)")
                return
            imported = best(
                args.repeat,
                lambda: import_into(fresh_pg_database(admin, f"imp{next(counter)}"), report),
            )
            raw = best(
                args.repeat,
                lambda: raw_insert(fresh_pg_database(admin, f"raw{next(counter)}"), results),
            )
            ratio = raw / imported
            verdict = "MET" if ratio >= PG_GOAL else "NOT MET"
            print(
                f"postgresql import {rate(imported):>9,.0f} results/s   raw COPY "
                f"{rate(raw):>9,.0f} rows/s   ratio {ratio:.2f}   (goal >= {PG_GOAL}: {verdict})"
            )


if __name__ == "__main__":
    main()
