"""What the pytest plugin costs per test, next to pytest's own reporters.

    python bench/pytest_overhead.py [--n 5000] [--repeat 5] [--pg URL]

Generates a suite of N trivial tests (one parametrised test) and times, in the same run, plain
pytest, ``--junitxml``, pytest-json-report and ``--ledger`` into SQLite and into PostgreSQL,
each as ``python -m pytest -q -p no:cacheprovider -p no:randomly ...`` in a subprocess, best of
``--repeat``. Prints the overhead per test against plain pytest and the goals (testledger <= 20
µs/test on SQLite; on PostgreSQL no more than junitxml's overhead), the CPU time per test of
the session's processes together (with ``--ledger``: pytest and the writer process that does the
database work on another core; the wall clock hides that work only where a core is idle), the
peak RSS of each variant, and the ledger variant's peak RSS at 1,000 and N tests (it should not
grow with the suite).

PostgreSQL: ``--pg`` or ``TESTLEDGER_TEST_PG_URL`` names a server where databases may be created;
without one a throwaway cluster is started from the machine's PostgreSQL binaries.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from record import fresh_pg_database, postgres_server
from testledger.store.database import connect_engine

SQLITE_GOAL_US = 20.0


def drop_databases(admin_url: str, names: list[str]) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def write_suite(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_trivial.py").write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('i', range({count}))\n"
        "def test_trivial(i):\n"
        "    assert i >= 0\n"
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Every variant alike: bytecode may be written (and reused after the first round).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("TESTLEDGER_DATABASE_URL", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_once(suite: Path, extra: list[str]) -> tuple[float, float, float]:
    """Seconds, peak RSS (MB) and CPU seconds (user + system, the session's processes
    together: pytest and, with --ledger, its writer process) of one pytest session in a fresh
    child process."""
    command = [
        sys.executable,
        "-c",
        # A child of its own for each session, so that RUSAGE_CHILDREN's maximum is this one's.
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
        "t = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(t, u.ru_maxrss, rc, u.ru_utime + u.ru_stime)\n",
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        *extra,
        str(suite),
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, cwd=suite, env=_env()
    ).stdout.split()
    seconds, maxrss_kib, rc, cpu = float(out[0]), int(out[1]), int(out[2]), float(out[3])
    if rc != 0:
        raise SystemExit(f"pytest {' '.join(extra)} exited {rc}")
    return seconds, maxrss_kib / 1024, cpu


def best_of(
    repeat: int, suite: Path, make_extra: Callable[[int], list[str]]
) -> tuple[float, float]:
    best, peak = float("inf"), 0.0
    for attempt in range(repeat):
        seconds, rss, _ = run_once(suite, make_extra(attempt))
        best, peak = min(best, seconds), max(peak, rss)
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="tests in the suite")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many")
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    args = parser.parse_args()
    n, repeat = args.n, args.repeat
    work = Path(tempfile.mkdtemp(prefix="testledger-bench-pytest-"))
    suite = work / "suite"
    write_suite(suite, n)
    results = str(work / "results")

    def sqlite(attempt: int) -> list[str]:
        return [f"--ledger=sqlite:///{work}/ledger-{attempt}.db", f"--ledger-results-dir={results}"]

    variants: dict[str, Callable[[int], list[str]]] = {
        "plain": lambda _: [],
        "junitxml": lambda a: [f"--junitxml={work}/junit-{a}.xml"],
        "json-report": lambda a: ["--json-report", f"--json-report-file={work}/report-{a}.json"],
        "ledger-sqlite": sqlite,
    }
    # Interleaved rounds (every variant once per round), so that drift in the machine's speed
    # hits every variant alike; each variant's best round counts.
    with postgres_server(args.pg) as admin_url:
        names = [f"bench_pytest_{i}" for i in range(repeat)]
        if admin_url is not None:
            urls = [fresh_pg_database(admin_url, name) for name in names]
            variants["ledger-postgresql"] = lambda a: [
                f"--ledger={urls[a]}",
                f"--ledger-results-dir={results}",
            ]
        # A ledger's first session creates its schema, once; every later session finds it.
        # The timed sessions are such later ones: their databases get the schema here.
        for attempt in range(repeat):
            for ledger_variant in ("ledger-sqlite", "ledger-postgresql"):
                if ledger_variant in variants:
                    url = variants[ledger_variant](attempt)[0].removeprefix("--ledger=")
                    connect_engine(url).dispose()
        # Warm-up: bytecode for pytest, the plugins and the suite.
        run_once(suite, sqlite(99))
        best: dict[str, float] = dict.fromkeys(variants, float("inf"))
        peak: dict[str, float] = dict.fromkeys(variants, 0.0)
        least_cpu: dict[str, float] = dict.fromkeys(variants, float("inf"))
        try:
            for attempt in range(repeat):
                for name, make_extra in variants.items():
                    seconds, rss, cpu = run_once(suite, make_extra(attempt))
                    best[name], peak[name] = min(best[name], seconds), max(peak[name], rss)
                    least_cpu[name] = min(least_cpu[name], cpu)
        finally:
            if admin_url is not None:
                drop_databases(admin_url, names)
    timings = {name: (best[name], peak[name]) for name in variants}

    plain = timings["plain"][0]
    junit_us = (timings["junitxml"][0] - plain) / n * 1e6
    print(
        f"{n:,} trivial tests, best of {repeat}; overhead per test against plain pytest "
        "(wall clock; and CPU time of the session's processes together, which the wall clock "
        "hides where --ledger's writer process finds an idle core)"
    )
    for name, (seconds, rss) in timings.items():
        overhead = (seconds - plain) / n * 1e6
        cpu_overhead = (least_cpu[name] - least_cpu["plain"]) / n * 1e6
        line = (
            f"{name:<18} {seconds:7.2f} s  {overhead:+8.1f} µs/test  "
            f"CPU {cpu_overhead:+7.1f} µs/test  peak RSS {rss:6.1f} MB"
        )
        if name == "ledger-sqlite":
            verdict = "MET" if overhead <= SQLITE_GOAL_US else "NOT MET"
            line += f"   goal <= {SQLITE_GOAL_US:.0f} µs: {verdict}"
        elif name == "ledger-postgresql":
            verdict = "MET" if overhead <= junit_us else "NOT MET"
            line += f"   goal <= junitxml ({junit_us:.1f} µs): {verdict}"
        print(line)
    if "ledger-postgresql" not in timings:
        print("ledger-postgresql  skipped: no server (--pg URL or PostgreSQL server binaries)")

    # Memory flat in suite size: the ledger variant at 1,000 tests and at N.
    small = work / "small"
    write_suite(small, 1000)
    rss_small = best_of(1, small, lambda _: [f"--ledger=sqlite:///{work}/small.db"])[1]
    plain_small = best_of(1, small, lambda _: [])[1]
    rss_large, plain_large = timings["ledger-sqlite"][1], timings["plain"][1]
    print(
        f"peak RSS ledger-sqlite: {rss_small:.1f} MB at 1,000 tests, {rss_large:.1f} MB at {n:,} "
        f"(plain pytest: {plain_small:.1f} -> {plain_large:.1f} MB); growth beyond pytest's own "
        f"{(rss_large - rss_small) - (plain_large - plain_small):+.1f} MB"
    )


if __name__ == "__main__":
    main()
