"""HTTP ingest speed: a run recorded through `testledger serve`'s ingest API against the runner
API writing into the same database.

    python bench/web_ingest.py [--results 100000] [--batch 1000] [--repeat 3] [--pg URL]

For SQLite and PostgreSQL: records the results through ``Ledger.start_run`` / ``Run.record``
straight into the database (the runner API's own rate), then the same results through the same
API given the URL of a real ``testledger serve --allow-writes`` (uvicorn, in a process of its
own) with a write token, in batches of ``--batch`` (each batch one POST, one transaction on the
server). Both include the run's JSON files and its finish (issue detection off: measured by
bench/fingerprint.py). The HTTP sink posts the ingest API's compact form (``result-rows``: column
names once, each result a list of values). Prints each rate and the ratio; goal: HTTP >= 0.5 of
the runner's rate.

Wall-clock rates need an otherwise idle machine. The CPU seconds each side spent are printed
too (this process's for the runner and the HTTP client, the server process's from /proc), with
the ratio they imply when client and server each have a core: a figure that holds on a busy
machine.

PostgreSQL: ``--pg`` or ``TESTLEDGER_TEST_PG_URL`` names a server where databases may be
created; without either, a throwaway cluster is started from the machine's server binaries.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.record import fresh_pg_database, make_results, postgres_server

from testledger import Ledger, TestResult, api

GOAL = 0.5


def record(
    url: str, results: list[TestResult], folder: Path, batch_size: int | None
) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process's) to record ``results`` as one run into
    ``url`` (a database or a server)."""
    with Ledger(url, results_dir=folder) as ledger:
        start = time.perf_counter()
        cpu = time.process_time()
        with ledger.start_run(
            branch="bench",
            detect_environment=False,
            detect_issues=False,
            batch_size=batch_size,
        ) as run:
            for result in results:
                run.record(result)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    assert not run.spooled, run.spool_reason
    assert run.stats is not None and run.stats.total_tests == len(results), run.stats
    return elapsed, cpu


def process_cpu(pid: int) -> float:
    """CPU seconds process ``pid`` has used (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(database_url: str, folder: Path) -> Iterator[tuple[str, str, int]]:
    """`testledger serve --allow-writes` on ``database_url``: its URL, a write token and its
    process id."""
    with Ledger(database_url, results_dir=folder / "server") as ledger:
        token = api.create_token(ledger, "write", "bench").secret
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testledger",
            "--db",
            database_url,
            "serve",
            "--allow-writes",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"the server did not start: see {folder / 'server.log'}"
                    ) from None
                time.sleep(0.2)
        yield url, token, process.pid
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def measure(
    label: str,
    make_url: Callable[[str], str],
    results: list[TestResult],
    batch: int,
    repeat: int,
) -> None:
    runner = http = (float("inf"), 0.0, 0.0)  # (wall, client cpu, server cpu) of the best
    for attempt in range(repeat):
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            direct = make_url(f"runner{attempt}")
            Ledger(direct).engine().dispose()  # connect and migrate before the clock starts
            wall, cpu = record(direct, results, folder / "runner", None)
            runner = min(runner, (wall, cpu, 0.0))
            with server(make_url(f"http{attempt}"), folder) as (url, token, pid):
                os.environ["TESTLEDGER_TOKEN"] = token
                before = process_cpu(pid)
                wall, cpu = record(url, results, folder / "http", batch)
                http = min(http, (wall, cpu, process_cpu(pid) - before))
    count = len(results)
    ratio = runner[0] / http[0]
    verdict = "MET" if ratio >= GOAL else "NOT MET"
    print(
        f"{label:<11} runner API {count / runner[0]:>9,.0f} results/s   "
        f"HTTP ingest {count / http[0]:>9,.0f} results/s   ratio {ratio:.2f}  "
        f"(goal >= {GOAL}: {verdict})",
        flush=True,
    )
    if http[2]:
        cpu_ratio = runner[1] / max(http[1], http[2])
        print(
            f"{'':<11} CPU s: runner {runner[1]:.2f}, HTTP client {http[1]:.2f}, server "
            f"{http[2]:.2f}: ratio with a core each {cpu_ratio:.2f} "
            f"({'MET' if cpu_ratio >= GOAL else 'NOT MET'})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=100_000, help="results per run")
    parser.add_argument("--batch", type=int, default=1_000, help="results per HTTP batch")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many")
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    args = parser.parse_args()
    results = make_results(args.results)
    print(f"{args.results:,} results, HTTP batches of {args.batch:,}, best of {args.repeat}")
    with tempfile.TemporaryDirectory() as sqlite_dir:
        measure(
            "sqlite",
            lambda name: f"sqlite:///{sqlite_dir}/{name}.db",
            results,
            args.batch,
            args.repeat,
        )
    with postgres_server(args.pg) as admin_url:
        if admin_url is None:
            print("postgresql  skipped: no server (--pg URL or PostgreSQL server binaries)")
            return
        measure(
            "postgresql",
            lambda name: fresh_pg_database(admin_url, f"bench_web_{name}"),
            results,
            args.batch,
            args.repeat,
        )


if __name__ == "__main__":
    main()
