"""Web app speed on a large ledger: p95 server time of every page and JSON endpoint, SQLite and
PostgreSQL; then the HTTP ingest rate (bench/web_ingest.py).

    python bench/web.py [--runs 20000] [--tests 50] [--repeat 20] [--reuse] [--pg URL]
                        [--only NAME,...] [--no-ingest] [--ingest-results 100000]

Builds (or with ``--reuse`` keeps) the ledger of ``bench/reports.py`` (``bench/_ledger_gen.py``:
20,000 runs and ~1,000,000 results by default; the same files and database, so one build
serves both benchmarks). The app (``create_app``, read-only) is called in-process through its
ASGI interface; each address is asked once to warm up, then ``--repeat`` times, and the time the
app itself took (its ``Server-Timing`` header: routing, the library calls, rendering) gives the
p95. Goal: p95 <= 100 ms on PostgreSQL and <= 300 ms on SQLite, for every page and endpoint.
The whole ledger's regression analysis is also asked by four clients at once of an app that
has not computed it: one computation serves them all (single flight, web/cache.py).
Benchmarks report; they do not gate (exit status 0 either way).

PostgreSQL: ``--pg`` or ``TESTLEDGER_TEST_PG_URL`` names a server where a database may be
created; without either, a throwaway cluster is started from the machine's server binaries.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ledger_gen import LedgerShape
from bench.record import postgres_server
from reports import pg_ledger, sqlite_ledger, subjects

SQLITE_GOAL_MS = 300.0
PG_GOAL_MS = 100.0
#: An address this slow is asked three times, not ``--repeat`` times.
SLOW_MS = 2000.0


def addresses(engine: Engine) -> dict[str, str]:
    """Every page and read endpoint, by name, asked about the latest run, a run in the middle of
    the list, the busiest issue and the most failing test."""
    with engine.connect() as conn:
        subject = subjects(conn)
        latest = conn.exec_driver_sql(
            "SELECT id FROM test_runs ORDER BY run_timestamp DESC, id DESC LIMIT 1"
        ).scalar_one()
        middle = conn.exec_driver_sql(
            "SELECT id FROM test_runs ORDER BY run_timestamp DESC, id DESC LIMIT 1 OFFSET "
            "(SELECT COUNT(*) / 2 FROM test_runs)"
        ).scalar_one()
    test = quote(subject.failing_test, safe="/")
    issue = quote(subject.busiest_issue)
    pages = {
        "page /runs": "/runs",
        "page /runs?branch=develop": "/runs?branch=develop",
        "page /runs?before=(middle)": f"/runs?before={middle}",
        "page /runs/(latest)": f"/runs/{latest}",
        "page /runs/(latest)/live": f"/runs/{latest}/live",
        "page /compare": "/compare",
        "page /trends": "/trends",
        "page /trends?split=branch": "/trends?split=branch",
        "page /trends?model=kimi-k2": "/trends?model=kimi-k2",
        "page /tests/(most failing)": f"/tests/{test}",
        "page /issues": "/issues",
        "page /issues/(busiest)": f"/issues/{issue}",
        "page /flaky": "/flaky",
        "page /regressions": "/regressions",
        "page /cost": "/cost",
    }
    endpoints = {
        "api runs": "/api/v1/runs",
        "api runs?before=(middle)": f"/api/v1/runs?before={middle}",
        "api dimensions": "/api/v1/dimensions",
        "api run": f"/api/v1/runs/{latest}",
        "api run extras": f"/api/v1/runs/{latest}/extras",
        "api run failures": f"/api/v1/runs/{latest}/failures",
        "api run live": f"/api/v1/runs/{latest}/live",
        "api run junit": f"/api/v1/runs/{latest}/junit",
        "api compare": "/api/v1/compare",
        "api trend": "/api/v1/trend",
        "api tests/history": f"/api/v1/tests/history?id={test}",
        "api tests/context": f"/api/v1/tests/context?id={test}",
        "api issues": "/api/v1/issues",
        "api issue": f"/api/v1/issues/{issue}",
        "api flaky": "/api/v1/flaky",
        "api regressions": "/api/v1/regressions",
        "api regressions/analysis?test=": f"/api/v1/regressions/analysis?test={test}",
        # The whole ledger's analysis: seconds the first time (printed as "first"), then from
        # the app's memory until another run is recorded.
        "api regressions/analysis": "/api/v1/regressions/analysis",
        "api tests/observations": f"/api/v1/tests/observations?id={test}",
        "api cost": "/api/v1/cost",
    }
    return {**pages, **endpoints}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(
    url: str, results_dir: Path, repeat: int, wanted: Callable[[str], bool], engine: Engine
) -> dict[str, float | str]:
    """Each address's p95 server milliseconds (or the status it failed with)."""
    from fastapi.testclient import TestClient

    from testledger import Ledger
    from testledger.web.app import create_app

    found: dict[str, float | str] = {}
    with Ledger(url, results_dir=results_dir) as ledger:
        with TestClient(create_app(ledger)) as client:
            for name, address in addresses(engine).items():
                if not wanted(name):
                    continue
                times: list[float] = []
                for attempt in range(repeat + 1):
                    if attempt == 3 and min(times) > SLOW_MS:
                        break  # seconds each: three tell enough, twenty would take minutes
                    response = client.get(address)
                    if response.status_code != 200:
                        found[name] = f"HTTP {response.status_code}"
                        break
                    times.append(float(response.headers["server-timing"].split("dur=")[1]))
                if name not in found:
                    # The first request warms imports and caches (the flaky verdicts are
                    # remembered for a minute, the whole ledger's regression analysis until
                    # another run is recorded): printed, left out of the p95.
                    found[name] = p95(times[1:])
                first = _cell(times[0]) if times else "-"
                print(f"  {name:<34} p95 {_cell(found[name])} ms (first {first} ms)", flush=True)
    return found


#: Dashboards asking for the whole ledger's regression analysis at the same moment.
SIMULTANEOUS = 4


def simultaneous_analysis(url: str, results_dir: Path) -> None:
    """The whole ledger's regression analysis asked by ``SIMULTANEOUS`` clients at once of an
    app that has not computed it yet, against one client alone: computed once for all of them
    (web/cache.py), the wall time of the lot is about one analysis, not ``SIMULTANEOUS``."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from testledger import Ledger
    from testledger.web.app import create_app

    def wall_ms(callers: int) -> tuple[float, int]:
        with Ledger(url, results_dir=results_dir) as ledger:
            with TestClient(create_app(ledger)) as client:
                client.get("/api/v1/runs")  # imports and connections warmed, the cache empty
                started = time.perf_counter()
                with ThreadPoolExecutor(callers) as pool:
                    answers = list(
                        pool.map(
                            lambda _: client.get("/api/v1/regressions/analysis").json(),
                            range(callers),
                        )
                    )
                elapsed = (time.perf_counter() - started) * 1000
        return elapsed, len({answer["computed_at"] for answer in answers})

    alone, _ = wall_ms(1)
    together, computed = wall_ms(SIMULTANEOUS)
    print(
        f"  regressions/analysis, {SIMULTANEOUS} first requests at once: {together:,.0f} ms wall, "
        f"{computed} computation(s) (one request alone: {alone:,.0f} ms)",
        flush=True,
    )


def _cell(value: float | str | None) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value:,.1f}"


def _verdict(value: float | str | None, goal: float) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return "NOT MET"
    return "MET" if value <= goal else "NOT MET"


def report(timings: dict[str, dict[str, float | str]]) -> None:
    print(
        f"\np95 server time (ms); goal <= {SQLITE_GOAL_MS:.0f} ms SQLite, "
        f"<= {PG_GOAL_MS:.0f} ms PostgreSQL"
    )
    print(f"{'page / endpoint':<34} {'SQLite':>9} {'goal':>8} {'PG':>9} {'goal':>8}")
    missed = 0
    for name in timings.get("sqlite", {}) | timings.get("postgresql", {}):
        lite = timings.get("sqlite", {}).get(name)
        pg = timings.get("postgresql", {}).get(name)
        verdicts = (_verdict(lite, SQLITE_GOAL_MS), _verdict(pg, PG_GOAL_MS))
        missed += sum(v == "NOT MET" for v in verdicts)
        print(f"{name:<34} {_cell(lite):>9} {verdicts[0]:>8} {_cell(pg):>9} {verdicts[1]:>8}")
    print(f"GOAL every page and endpoint: {'MET' if not missed else f'NOT MET ({missed})'}")


def ingest(args: argparse.Namespace) -> None:
    """bench/web_ingest.py's measurement, with its own arguments."""
    import web_ingest

    argv = ["web_ingest.py", "--results", str(args.ingest_results)]
    if args.pg:
        argv += ["--pg", args.pg]
    saved, sys.argv = sys.argv, argv
    try:
        print("\nHTTP ingest (bench/web_ingest.py):", flush=True)
        web_ingest.main()
    finally:
        sys.argv = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sqlite",
        type=Path,
        default=Path(tempfile.gettempdir()) / "testledger-bench" / "reports.db",
        help="the SQLite ledger file (bench/reports.py's; kept with --reuse)",
    )
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--reuse", action="store_true", help="keep a ledger already built")
    parser.add_argument("--runs", type=int, default=LedgerShape.runs)
    parser.add_argument("--tests", type=int, default=LedgerShape.tests_per_run)
    parser.add_argument("--repeat", type=int, default=20, help="requests per address")
    parser.add_argument("--only", help="comma-separated names (substring match)")
    parser.add_argument("--no-ingest", action="store_true", help="skip bench/web_ingest.py")
    parser.add_argument("--ingest-results", type=int, default=100_000)
    args = parser.parse_args()
    shape = LedgerShape(runs=args.runs, tests_per_run=args.tests)
    print(f"ledger: {shape.runs:,} runs of {shape.tests_per_run} tests")

    def wanted(name: str) -> bool:
        return not args.only or any(part in name for part in args.only.split(","))

    timings: dict[str, dict[str, float | str]] = {}
    with tempfile.TemporaryDirectory() as results:
        engine = sqlite_ledger(args.sqlite, shape, args.reuse)
        print("sqlite:")
        timings["sqlite"] = measure(
            f"sqlite:///{args.sqlite}", Path(results), args.repeat, wanted, engine
        )
        if wanted("api regressions/analysis"):
            simultaneous_analysis(f"sqlite:///{args.sqlite}", Path(results))
        engine.dispose()
        if args.no_pg:
            print("postgresql skipped (--no-pg)")
        else:
            with postgres_server(args.pg) as admin_url:
                if admin_url is None:
                    print("postgresql skipped: no server (--pg URL or server binaries)")
                else:
                    engine = pg_ledger(admin_url, shape, args.reuse)
                    url = engine.url.render_as_string(hide_password=False)
                    print("postgresql:")
                    timings["postgresql"] = measure(url, Path(results), args.repeat, wanted, engine)
                    if wanted("api regressions/analysis"):
                        simultaneous_analysis(url, Path(results))
                    engine.dispose()
    report(timings)
    if not args.no_ingest:
        ingest(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
