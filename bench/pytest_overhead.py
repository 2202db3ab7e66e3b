"""What the pytest plugin costs per test, next to pytest's own reporters.

    python bench/pytest_overhead.py [--n 5000] [--repeat 5] [--pg URL] [--no-one-core]

Generates a suite of N trivial tests (one parametrised test) and runs, interleaved (every
variant once per round, so that drift in the machine's speed hits all alike), each as
``python -m pytest -q -p no:cacheprovider -p no:randomly ...`` in a subprocess:

* plain pytest, ``--junitxml``, pytest-json-report;
* ``--ledger`` into a fresh SQLite / PostgreSQL ledger;
* ``--ledger`` into a ledger that already holds the same suite's 20 earlier runs ("history");
* "one core": plain, junitxml and both ledgers under ``taskset -c 0``, where the writer
  process finds no idle core to hide its work on.

For each: the wall clock per test over plain pytest (best of the rounds, and the median of each
round's difference from the same round's plain pytest), and the CPU time per test over plain
pytest (the median of the rounds' differences likewise) of every process of the session: pytest,
and with ``--ledger`` its writer process, including the issue detection the writer finishes
after pytest has exited (this script adopts it as a child subreaper and waits for it). Then the
goals of issue 18, each MET or NOT MET, judged on the medians: wall overhead on SQLite at most
20 µs/test and on PostgreSQL at most junitxml's, with and without history; on one core at most
junitxml's (on one core); CPU per test at most junitxml's; history adding at most 10% to any
figure. Then the part of each ledger's CPU that is a fixed cost per session whatever the suite's
size: a process that starts and imports what the writer imports (SQLAlchemy and the driver;
with history, numpy and the regression modules), measured alone; and what is left per test
without it, beside junitxml's. Last, the ledger's peak RSS at 1,000 and N tests (it should not
grow with the suite).

PostgreSQL: ``--pg`` or ``TESTLEDGER_TEST_PG_URL`` names a server where databases may be created;
without one a throwaway cluster is started from the machine's PostgreSQL binaries.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from record import fresh_pg_database, postgres_server
from testledger import Ledger
from testledger.record.writer_process import expand_passing
from testledger.store.database import connect_engine

SQLITE_GOAL_US = 20.0
HISTORY_RUNS = 20
HISTORY_GOAL = 0.10
#: Every ledger session and the history are one suite on one branch.
LEDGER_ARGS = ["--ledger-suite=bench", "--ledger-branch=bench"]


def drop_databases(admin_url: str, names: list[str]) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def copy_pg_database(admin_url: str, template: str, name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    admin.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(False)


def write_suite(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_trivial.py").write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('i', range({count}))\n"
        "def test_trivial(i):\n"
        "    assert i >= 0\n"
    )


def record_history(url: str, results: Path, count: int, runs: int = HISTORY_RUNS) -> None:
    """``runs`` earlier runs of the suite (the node ids pytest gives it, run from its folder),
    one a day, recorded as the plugin's writer records them, issue detection included."""
    with Ledger(url, results_dir=results) as ledger:
        start = datetime.now(timezone.utc) - timedelta(days=runs + 1)
        for index in range(runs):
            started = start + timedelta(days=index)
            with ledger.start_run(
                branch="bench",
                suite="bench",
                started_at=started,
                source="pytest",
                detect_environment=False,
            ) as run:
                epoch = started.timestamp()
                for test in range(count):
                    compact = (
                        f"test_trivial.py::test_trivial[{test}]",
                        1,
                        0.0002 + (test % 7) * 1e-5,
                        epoch + test * 1e-4,
                        41.0 + index * 0.01,
                        95.0,
                    )
                    run.record_row(expand_passing(compact))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Every variant alike: bytecode may be written (and reused after the first round).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("TESTLEDGER_DATABASE_URL", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


# The session's own child: it becomes the child subreaper of what pytest leaves running (the
# writer finishing issue detection after the session), waits for it, and reports the CPU time
# of everything. The wall clock stops when pytest exits: that is what the user waits for.
_WRAPPER = """
import ctypes, os, resource, subprocess, sys, time
try:
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (OSError, AttributeError):
    pass
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
t = time.perf_counter() - t
after = time.perf_counter()
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
after = time.perf_counter() - after
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(t, u.ru_maxrss, rc, u.ru_utime + u.ru_stime, after)
"""


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    cpu: float
    after: float  # how long the writer worked on after pytest exited


def run_once(suite: Path, extra: list[str], prefix: Sequence[str] = ()) -> Sample:
    """One pytest session in a fresh child process (a child of its own for each session, so
    that RUSAGE_CHILDREN's maximum RSS is this one's)."""
    command = [
        *prefix,
        sys.executable,
        "-c",
        _WRAPPER,
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
    seconds, maxrss_kib, rc, cpu, after = (
        float(out[0]),
        int(out[1]),
        int(out[2]),
        float(out[3]),
        float(out[4]),
    )
    if rc != 0:
        raise SystemExit(f"pytest {' '.join(extra)} exited {rc}")
    return Sample(seconds, maxrss_kib / 1024, cpu, after)


@dataclass
class Variant:
    make_extra: Callable[[int], list[str]]
    prefix: list[str] = field(default_factory=list)
    baseline: str = "plain"  # the plain pytest it is compared with
    samples: list[Sample] = field(default_factory=list)

    def wall(self, pick: Callable[[list[float]], float]) -> float:
        return pick([s.seconds for s in self.samples])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="tests in the suite")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (best and median)")
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    parser.add_argument("--no-one-core", action="store_true", help="skip the taskset variants")
    args = parser.parse_args()
    n, repeat = args.n, args.repeat
    work = Path(tempfile.mkdtemp(prefix="testledger-bench-pytest-"))
    suite = work / "suite"
    write_suite(suite, n)
    results = str(work / "results")
    one_core = [] if args.no_one_core or shutil.which("taskset") is None else ["taskset", "-c", "0"]

    def ledger(url: str) -> list[str]:
        return [f"--ledger={url}", f"--ledger-results-dir={results}", *LEDGER_ARGS]

    def sqlite(attempt: int) -> list[str]:
        return ledger(f"sqlite:///{work}/ledger-{attempt}.db")

    def sqlite_history(attempt: int) -> list[str]:
        return ledger(f"sqlite:///{work}/history-{attempt}.db")

    variants: dict[str, Variant] = {
        "plain": Variant(lambda _: []),
        "junitxml": Variant(lambda a: [f"--junitxml={work}/junit-{a}.xml"]),
        "json-report": Variant(
            lambda a: ["--json-report", f"--json-report-file={work}/report-{a}.json"]
        ),
        "ledger-sqlite": Variant(sqlite),
        "ledger-sqlite-history": Variant(sqlite_history),
    }
    pg_names: list[str] = []
    with postgres_server(args.pg) as admin_url:
        # A ledger's first session creates its schema, once; every later session finds it.
        # The timed sessions are such later ones: their databases get the schema here, and
        # the history variants a copy of one ledger holding the suite's earlier runs.
        print(f"recording {HISTORY_RUNS} earlier runs of the suite ...", flush=True)
        record_history(f"sqlite:///{work}/history.db", work / "history-results", n)
        for attempt in range(repeat):
            connect_engine(sqlite(attempt)[0].removeprefix("--ledger=")).dispose()
            shutil.copy(work / "history.db", work / f"history-{attempt}.db")
        if admin_url is not None:
            pg_names = [f"bench_pytest_{i}" for i in range(repeat)]
            pg_names += [f"bench_pytest_history_{i}" for i in range(repeat)]
            pg_names.append("bench_pytest_history")
            urls = [fresh_pg_database(admin_url, f"bench_pytest_{i}") for i in range(repeat)]
            for url in urls:
                connect_engine(url).dispose()
            template = fresh_pg_database(admin_url, "bench_pytest_history")
            record_history(template, work / "history-results", n)
            history_urls = [
                copy_pg_database(admin_url, "bench_pytest_history", f"bench_pytest_history_{i}")
                for i in range(repeat)
            ]
            variants["ledger-postgresql"] = Variant(lambda a: ledger(urls[a]))
            variants["ledger-postgresql-history"] = Variant(lambda a: ledger(history_urls[a]))
        if one_core:
            core = "plain@1core"
            variants[core] = Variant(lambda _: [], one_core, core)
            variants["junitxml@1core"] = Variant(
                lambda a: [f"--junitxml={work}/junit-1core-{a}.xml"],
                one_core,
                core,
            )
            # Fresh ledgers of their own, as the spare-core variants have.
            variants["ledger-sqlite@1core"] = Variant(
                lambda a: ledger(f"sqlite:///{work}/ledger-1core-{a}.db"),
                one_core,
                core,
            )
            for attempt in range(repeat):
                connect_engine(f"sqlite:///{work}/ledger-1core-{attempt}.db").dispose()
            if admin_url is not None:
                core_urls = [
                    fresh_pg_database(admin_url, f"bench_pytest_1core_{i}") for i in range(repeat)
                ]
                pg_names += [f"bench_pytest_1core_{i}" for i in range(repeat)]
                for url in core_urls:
                    connect_engine(url).dispose()
                variants["ledger-postgresql@1core"] = Variant(
                    lambda a: ledger(core_urls[a]),
                    one_core,
                    core,
                )
        # Warm-up: bytecode for pytest, the plugins and the suite.
        run_once(suite, ledger(f"sqlite:///{work}/warm-up.db"))
        try:
            for attempt in range(repeat):
                for variant in variants.values():
                    variant.samples.append(
                        run_once(suite, variant.make_extra(attempt), variant.prefix)
                    )
                print(f"round {attempt + 1}/{repeat} done", flush=True)
        finally:
            if admin_url is not None:
                drop_databases(admin_url, pg_names)
    floor = writer_import_floor(repeat, "ledger-postgresql" in variants)
    report(variants, n, repeat)
    report_floor(variants, floor, n)
    memory_check(work, n, variants)
    shutil.rmtree(work, ignore_errors=True)


#: What the writer process imports (testledger.record.writer_process and what it imports as
#: it records, finishes and detects), per ledger: its fixed cost per session.
WRITER_IMPORTS = {
    "sqlite": [
        "testledger.record.writer_process",
        "testledger.record.runner",
        "testledger.record.ledger",
        "testledger.store.database",
        "testledger.analyze.pipeline",
        "testledger.record.pruning",
        "sqlalchemy.dialects.sqlite.pysqlite",
    ],
    "postgresql": ["psycopg", "sqlalchemy.dialects.postgresql.psycopg"],
    # With history enough for regression detection.
    "history": ["testledger.analyze.regressions.metric_series"],
}


def import_cpu(modules: list[str]) -> float:
    """CPU seconds of a process that starts as the writer does and imports ``modules``."""
    code = (
        "from testledger.common.own_process import tune_own_process\n"
        "tune_own_process()\n"
        + "".join(f"import {name}\n" for name in modules)
        # As the writer ends: without the interpreter's teardown.
        + "import os\nos._exit(0)\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def writer_import_floor(repeat: int, with_pg: bool) -> dict[str, float]:
    """Median CPU seconds of the writer's imports alone, for each ledger variant."""
    sqlite, pg, history = (WRITER_IMPORTS[k] for k in ("sqlite", "postgresql", "history"))
    sets = {"ledger-sqlite": sqlite, "ledger-sqlite-history": sqlite + history}
    if with_pg:
        sets["ledger-postgresql"] = sqlite + pg
        sets["ledger-postgresql-history"] = sqlite + pg + history
    samples: dict[str, list[float]] = {name: [] for name in sets}
    for _ in range(max(repeat, 5)):
        for name, modules in sets.items():
            samples[name].append(import_cpu(modules))
    return {name: statistics.median(values) for name, values in samples.items()}


def report_floor(variants: dict[str, Variant], floor: dict[str, float], n: int) -> None:
    """The writer's imports against each ledger's CPU: fixed per session, and what is left."""
    junit_cpu = per_test(variants, "junitxml", n)[2]
    print(
        "\nfixed cost per session: a process that starts and imports what the writer "
        "imports, alone (median CPU); and each ledger's CPU per test without it "
        f"(junitxml: {junit_cpu:+.1f})"
    )
    for name, seconds in floor.items():
        if name not in variants:
            continue
        cpu = per_test(variants, name, n)[2]
        print(
            f"  {name:<26} imports {seconds * 1000:6.1f} ms = {seconds / n * 1e6:+6.1f} µs/test"
            f" at {n:,} tests;  without them {cpu - seconds / n * 1e6:+7.1f} µs/test"
        )


def per_test(variants: dict[str, Variant], name: str, n: int) -> tuple[float, float, float]:
    """Wall overhead per test (best, median) and CPU overhead per test (median), in µs."""
    variant, base = variants[name], variants[variants[name].baseline]
    best = (variant.wall(min) - base.wall(min)) / n * 1e6
    # Medians of each round's difference from the same round's plain pytest: the rounds are
    # interleaved, so the machine's drift from round to round cancels out.
    pairs = list(zip(variant.samples, base.samples, strict=True))
    median = statistics.median(v.seconds - b.seconds for v, b in pairs) / n * 1e6
    cpu = statistics.median(v.cpu - b.cpu for v, b in pairs) / n * 1e6
    return best, median, cpu


def report(variants: dict[str, Variant], n: int, repeat: int) -> None:
    print(
        f"\n{n:,} trivial tests, {repeat} rounds; per test against plain pytest (on one core: "
        "against plain pytest on one core): wall clock best, and median of the rounds' "
        "differences; CPU time of every process of the session (median of the rounds' "
        "differences; --ledger: its writer too, after pytest's exit included), and how long "
        "the writer worked on after pytest exited (median)"
    )
    figures = {name: per_test(variants, name, n) for name in variants}
    for name, variant in variants.items():
        best, median, cpu = figures[name]
        after = statistics.median(s.after for s in variant.samples)
        print(
            f"{name:<26} best {variant.wall(min):7.2f} s {best:+8.1f} µs  "
            f"median {variant.wall(statistics.median):7.2f} s {median:+8.1f} µs  "
            f"CPU {cpu:+8.1f} µs/test  after exit {after:5.2f} s  "
            f"peak RSS {max(s.rss_mb for s in variant.samples):6.1f} MB"
        )
    print("\ngoals (on the medians):")
    goals(figures)


def goals(figures: dict[str, tuple[float, float, float]]) -> None:
    def verdict(label: str, value: float, limit: float) -> None:
        state = "MET" if value <= limit else "NOT MET"
        print(f"  {label:<62} {value:+8.1f} <= {limit:+8.1f}  {state}")

    junit_wall, junit_cpu = figures["junitxml"][1], figures["junitxml"][2]
    ledgers = [name for name in figures if name.startswith("ledger-") and "@" not in name]
    for name in ledgers:
        wall = figures[name][1]
        if "sqlite" in name:
            verdict(f"{name} wall µs/test <= {SQLITE_GOAL_US:.0f}", wall, SQLITE_GOAL_US)
        else:
            verdict(f"{name} wall µs/test <= junitxml's", wall, junit_wall)
    for name in figures:
        if name.startswith("ledger-") and name.endswith("@1core"):
            limit = figures["junitxml@1core"][1] if "junitxml@1core" in figures else junit_wall
            verdict(f"{name} wall µs/test <= junitxml@1core's", figures[name][1], limit)
    for name in figures:
        if name.startswith("ledger-"):
            on_one = name.endswith("@1core") and "junitxml@1core" in figures
            limit = figures["junitxml@1core"][2] if on_one else junit_cpu
            whose = "junitxml@1core's" if on_one else "junitxml's"
            verdict(f"{name} CPU µs/test <= {whose}", figures[name][2], limit)
    for name in ledgers:
        if name.endswith("-history"):
            fresh = name.removesuffix("-history")
            for index, what in ((1, "wall"), (2, "CPU")):
                added = figures[name][index] - figures[fresh][index]
                limit = HISTORY_GOAL * abs(figures[fresh][index])
                verdict(f"history adds to {fresh}'s {what} µs/test <= 10%", added, limit)
    if "ledger-postgresql" not in figures:
        print("  ledger-postgresql: skipped, no server (--pg URL or PostgreSQL server binaries)")


def memory_check(work: Path, n: int, variants: dict[str, Variant]) -> None:
    """Memory flat in suite size: the ledger variant at 1,000 tests and at N."""
    small = work / "small"
    write_suite(small, 1000)
    rss_small = run_once(small, [f"--ledger=sqlite:///{work}/small.db"]).rss_mb
    plain_small = run_once(small, []).rss_mb
    rss_large = max(s.rss_mb for s in variants["ledger-sqlite"].samples)
    plain_large = max(s.rss_mb for s in variants["plain"].samples)
    print(
        f"\npeak RSS ledger-sqlite: {rss_small:.1f} MB at 1,000 tests, {rss_large:.1f} MB at "
        f"{n:,} (plain pytest: {plain_small:.1f} -> {plain_large:.1f} MB); growth beyond "
        f"pytest's own {(rss_large - rss_small) - (plain_large - plain_small):+.1f} MB"
    )


if __name__ == "__main__":
    main()
