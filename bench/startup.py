"""Start-up time of the command line (issue 19, point 5) and of the pytest plugin's writer
process (issue 18: its fixed cost per session).

    python bench/startup.py [--repeat 15] [--pg URL]

Times, as new processes the way a user starts them (the installed ``testledger`` script):

* ``testledger --help`` (goal: 150 ms);
* ``testledger runs`` and ``testledger show`` on a small SQLite ledger of 5 imported runs
  (goal: 300 ms each);
* the writer's start: a process doing what the plugin's writer does before it takes the
  session's first batch (imports, git and CI detection, connecting, the schema check, the run's
  row, the statistics' warm-up; ``writer_process.start_run`` and ``_prepare_finish``), on
  SQLite and, with ``--pg`` or ``TESTLEDGER_TEST_PG_URL`` (a server where a database may be
  created; else a throwaway cluster from the machine's PostgreSQL binaries), on PostgreSQL.
  No goal of its own: issue 18 wants it down; it is paid once per session;
* the peer, measured in the same run: ``python -c pass`` (the interpreter's own start-up), and
  the ratio of each command to it.

Each figure is given as wall clock and as CPU time (the process's user and system time, its
children's included: git for the writer). Bytecode is written and warmed first
(``PYTHONDONTWRITEBYTECODE`` is unset for every variant alike), as an installed package has it.
Prints the median and the 90th percentile of each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOALS_MS = {"--help": 150.0, "runs": 300.0, "show": 300.0}

#: What the plugin's writer process does before it reads the session's first batch (see
#: testledger.record.writer_process._session), then an exit as the writer's own (os._exit).
_WRITER_START = """
import os, sys, uuid
from datetime import datetime, timezone
from testledger.config import load_settings
from testledger.record import writer_process
settings = load_settings(sys.argv[1], sys.argv[2])
options = {
    "branch": None, "commit": None, "suite": "bench-startup", "watcher": None,
    "run_key": "startup-" + uuid.uuid4().hex, "started_at": datetime.now(timezone.utc),
    "source": "pytest", "metadata": {"pytest": {"args": ["tests"]}},
}
run = writer_process.start_run(settings, options)
writer_process._prepare_finish(run)
assert run.run_id is not None, run.spool_reason
os._exit(0)
"""


def _junit(index: int) -> str:
    cases = "".join(
        f'<testcase classname="tests.test_mod{c % 5}" name="test_{c}" time="0.01">'
        + (f'<failure message="boom {index}">trace</failure>' if c % 7 == index else "")
        + "</testcase>"
        for c in range(40)
    )
    stamp = f"2026-12-0{index + 1}T10:00:00"
    return (
        f'<testsuites><testsuite name="bench" tests="40" timestamp="{stamp}">{cases}'
        "</testsuite></testsuites>"
    )


def _small_ledger(folder: Path, env: dict[str, str], script: str) -> str:
    url = f"sqlite:///{folder / 'ledger.db'}"
    files = []
    for index in range(5):
        path = folder / f"run{index}.xml"
        path.write_text(_junit(index), encoding="utf-8")
        files.append(str(path))
    subprocess.run(
        [script, "import", *files, "--db", url, "--results-dir", str(folder / "results")],
        check=True,
        env=env,
        capture_output=True,
    )
    return url


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(argv: list[str], env: dict[str, str], repeat: int) -> tuple[list[float], list[float]]:
    """Wall clock and CPU time (ms) of ``repeat`` runs of ``argv``."""
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm: bytecode, caches
    walls, cpus = [], []
    for _ in range(repeat):
        cpu = _cpu_of_children()
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((_cpu_of_children() - cpu) * 1000)
    return walls, cpus


@contextlib.contextmanager
def _postgresql(url: str | None) -> Iterator[str | None]:
    """A fresh database on the ``--pg`` server or a throwaway cluster; None without either."""
    from record import fresh_pg_database, postgres_server

    with postgres_server(url) as admin_url:
        if admin_url is None:
            yield None
            return
        yield fresh_pg_database(admin_url, "tl_bench_startup")
        from pytest_overhead import drop_databases

        drop_databases(admin_url, ["tl_bench_startup"])


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    args = parser.parse_args()
    script = shutil.which("testledger") or str(Path(sys.executable).with_name("testledger"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["COLUMNS"] = "120"
    with (
        tempfile.TemporaryDirectory(prefix="testledger-startup-") as tmp,
        _postgresql(args.pg) as pg_url,
    ):
        folder = Path(tmp)
        url = _small_ledger(folder, env, script)
        ledger = ["--db", url, "--results-dir", str(folder / "results")]
        writer = [sys.executable, "-c", _WRITER_START]
        variants = {
            "python -c pass (peer)": [sys.executable, "-c", "pass"],
            "--help": [script, "--help"],
            "runs": [script, "runs", *ledger],
            "show": [script, "show", *ledger],
            "writer start, sqlite": [*writer, url, str(folder / "results")],
        }
        if pg_url is not None:
            variants["writer start, postgresql"] = [*writer, pg_url, str(folder / "results")]
        measured = {name: _time(argv, env, args.repeat) for name, argv in variants.items()}
    if pg_url is None:
        print("(writer start, postgresql: skipped, no server: --pg URL or PostgreSQL binaries)")
    return _report(measured, args.repeat)


def _report(measured: dict[str, tuple[list[float], list[float]]], repeat: int) -> int:
    peer = statistics.median(measured["python -c pass (peer)"][0])
    print(
        f"start-up, {repeat} runs each (ms): wall median / p90, x the interpreter's start-up;"
        " CPU median"
    )
    failed = False
    for name, (walls, cpus) in measured.items():
        median = statistics.median(walls)
        label = f"testledger {name}" if name in GOALS_MS else name
        line = f"  {label:<33}{median:7.1f} / {_p90(walls):7.1f}   x{median / peer:5.1f}"
        line += f"   cpu {statistics.median(cpus):7.1f}"
        if name in GOALS_MS:
            met = median <= GOALS_MS[name]
            failed |= not met
            line += f"   goal <= {GOALS_MS[name]:.0f} ms: {'MET' if met else 'NOT MET'}"
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
