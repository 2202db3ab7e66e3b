"""Report speed on a large ledger: every report, view and proposal query, SQLite and PostgreSQL.

    python bench/reports.py [--sqlite PATH] [--pg URL] [--reuse] [--repeat 5] [--only NAME,...]

Builds a ledger of 20,000 runs and ~1,000,000 results (``bench/_ledger_gen.py``: failures
grouped into issues with occurrences, flaky tests with retries, four tools, three models with
tokens and cost, watcher quality and insights, three branches, two suites), with bulk writes.
``--reuse`` keeps the SQLite file (default under the system temp folder) and the PostgreSQL
database between runs when they already hold that ledger; they are migrated to the current
schema on open, so a new index migration is applied (and its time printed) on reuse.

Then times every report (median of ``--repeat`` after one warm-up) through its core function,
as the CLI calls it: one connection, the default options, the latest run / the busiest issue /
the most failing test where one is needed. Views are read as ``SELECT * ... LIMIT 100``, and
``v_cost_by_model`` also newest first (``ORDER BY run_timestamp DESC, run_id DESC``), as a
dashboard shows it.
Goal: every report under 100 ms on PostgreSQL and under 300 ms on SQLite. Exports are
measured once, in rows/s. Benchmarks report; they do not gate (exit status 0 either way).

PostgreSQL: ``--pg`` or ``TESTLEDGER_TEST_PG_URL`` names a server where a database
(``testledger_bench_reports``) may be created; the database is VACUUM ANALYZEd after the load,
as autovacuum would have done on a ledger that grew over months. The SQLite file is not
ANALYZEd: testledger never runs ANALYZE, so its planner works without statistics.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ledger_gen import LedgerShape, load_ledger

from testledger.store.database import open_engine
from testledger.store.engine import mask_url
from testledger.store.migrate import schema_state, upgrade

SQLITE_GOAL_MS = 300.0
PG_GOAL_MS = 100.0
PG_DATABASE = "testledger_bench_reports"

Report = Callable[[Connection], Any]


@dataclass(frozen=True)
class Subjects:
    """What the reports that need an argument are asked about."""

    busiest_issue: str
    failing_test: str


# -- building the ledger ------------------------------------------------------------------------


def _ledger_present(engine: Engine, shape: LedgerShape) -> bool:
    try:
        with engine.connect() as conn:
            runs = conn.exec_driver_sql("SELECT COUNT(*) FROM test_runs").scalar_one()
    except sa.exc.DBAPIError:
        return False
    return int(runs) == shape.runs


def _migrated(url: str) -> tuple[Engine, str]:
    """The engine with its schema current (``testledger db upgrade`` when it is behind), and
    what migrating did."""
    engine = open_engine(url)
    start = time.perf_counter()
    before, after = upgrade(engine)
    if before == after:
        return engine, f"schema {after}"
    return engine, f"migrated {before} -> {after} in {time.perf_counter() - start:.1f} s"


def _load(engine: Engine, shape: LedgerShape) -> float:
    start = time.perf_counter()
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        load_ledger(driver, engine.dialect.name, shape)
    finally:
        raw.close()
    return time.perf_counter() - start


def sqlite_ledger(path: Path, shape: LedgerShape, reuse: bool) -> Engine:
    url = f"sqlite:///{path}"
    if reuse and path.exists():
        engine = sa.create_engine(url)
        present = _ledger_present(engine, shape)
        engine.dispose()
        if present:
            engine, migration = _migrated(url)
            print(f"sqlite: reusing {path} ({migration})")
            return engine
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine, _ = _migrated(url)
    seconds = _load(engine, shape)
    size = path.stat().st_size / 1e6
    print(f"sqlite: generated {path} in {seconds:.1f} s ({size:.0f} MB)")
    return engine


def pg_ledger(admin_url: str, shape: LedgerShape, reuse: bool) -> Engine:
    admin = sa.create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    url = sa.engine.make_url(admin_url).set(database=PG_DATABASE).render_as_string(False)
    try:
        with admin.connect() as conn:
            exists = conn.exec_driver_sql(
                f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"
            ).first()
            if reuse and exists is not None:
                probe = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
                present = _ledger_present(probe, shape)
                probe.dispose()
                if present:
                    engine, migration = _migrated(url)
                    print(f"postgresql: reusing {mask_url(url)} ({migration})")
                    return engine
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    finally:
        admin.dispose()
    engine, _ = _migrated(url)
    seconds = _load(engine, shape)
    start = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    print(
        f"postgresql: generated {mask_url(url)} in {seconds:.1f} s "
        f"(+ VACUUM ANALYZE {time.perf_counter() - start:.1f} s)"
    )
    return engine


def subjects(conn: Connection) -> Subjects:
    issue = conn.exec_driver_sql(
        "SELECT i.issue_code FROM issues i JOIN issue_occurrences o ON o.issue_id = i.id "
        "GROUP BY i.issue_code ORDER BY COUNT(*) DESC, i.issue_code LIMIT 1"
    ).scalar_one()
    test = conn.exec_driver_sql(
        "SELECT test_id FROM issue_occurrences GROUP BY test_id "
        "ORDER BY COUNT(*) DESC, test_id LIMIT 1"
    ).scalar_one()
    return Subjects(str(issue), str(test))


# -- the reports --------------------------------------------------------------------------------

VIEWS = (
    "v_latest_run_summary",
    "v_latest_failing_tests",
    "v_issue_resolution",
    "v_run_over_run",
    "v_run_trend",
    "v_cost_by_model",
    "v_latest_comparison",
    "v_flaky_evidence",
)


#: How a dashboard reads a view besides its first rows: per-run views, newest first.
NEWEST_FIRST = {"v_cost_by_model": "ORDER BY run_timestamp DESC, run_id DESC"}


def _view(name: str, order: str = "") -> Report:
    sql = f"SELECT * FROM {name} {order} LIMIT 100".replace("  ", " ")
    return lambda conn: conn.exec_driver_sql(sql).fetchall()


def _optional(module: str, attribute: str) -> Any:
    """A report function another part of testledger may not have yet (None then)."""
    import importlib

    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None


def reports(subject: Subjects) -> dict[str, Report | None]:
    """Every report by name; None for those whose module is not there yet."""
    from testledger.analyze.flaky.finder import find_flaky
    from testledger.report.issues import issue_detail, list_issues
    from testledger.report.proposal import PROPOSAL_QUERIES, run_proposal_query
    from testledger.report.runs import list_runs, show_run

    found: dict[str, Report | None] = {
        "list_runs": lambda conn: list_runs(conn),
        "list_runs --branch develop": lambda conn: list_runs(conn, branch="develop"),
        "show_run (latest)": lambda conn: show_run(conn),
        "list_issues": lambda conn: list_issues(conn),
        "issue_detail": lambda conn: issue_detail(conn, subject.busiest_issue),
        "find_flaky": lambda conn: find_flaky(conn),
    }
    for name in VIEWS:
        found[name] = _view(name)
    for name, order in NEWEST_FIRST.items():
        found[f"{name} newest first"] = _view(name, order)
    for name in PROPOSAL_QUERIES:
        found[f"proposal {name}"] = lambda conn, name=name: run_proposal_query(conn, name)  # type: ignore[misc]
    compare = _optional("testledger.report.compare", "compare_runs")
    found["compare_runs (latest)"] = compare and (lambda conn: compare(conn))
    trend = _optional("testledger.report.trend", "run_trend")
    found["run_trend"] = trend and (lambda conn: trend(conn))
    found["run_trend --model kimi-k2"] = trend and (lambda conn: trend(conn, model="kimi-k2"))
    history = _optional("testledger.report.history", "result_history")
    found["result_history"] = history and (lambda conn: history(conn, subject.failing_test))
    found["result_history --branch dev"] = history and (
        lambda conn: history(conn, subject.failing_test, branch="develop")
    )
    cost = _optional("testledger.report.cost", "cost_report")
    found["cost_report"] = cost and (lambda conn: cost(conn))
    found["cost_report --branch dev"] = cost and (lambda conn: cost(conn, branch="develop"))
    gate = _optional("testledger.report.gate", "evaluate_gate")
    rules = _optional("testledger.report.gate", "GateRules")
    every_rule = rules and rules(
        max_new_failures=0,
        min_pass_rate=95,
        max_cost_increase=10,
        max_duration_increase=20,
        min_quality=5,
        no_new_issues=True,
    )
    found["evaluate_gate (all rules)"] = gate and (lambda conn: gate(conn, every_rule))
    html = _optional("testledger.report.html", "build_report")
    found["build_report"] = html and (lambda conn: html(conn))
    render = _optional("testledger.report.html", "render_html")
    found["build_report + render_html"] = html and render and (lambda conn: render(html(conn)))
    return found


def median_ms(conn: Connection, report: Report, repeat: int) -> float:
    report(conn)  # warm-up: caches, prepared plans, imports
    conn.rollback()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        report(conn)
        times.append(time.perf_counter() - start)
        conn.rollback()
    return statistics.median(times) * 1000


def export_rate(conn: Connection, table: str, fmt: str) -> tuple[int, float]:
    from testledger.report.export import export_table

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        summary = export_table(conn, table, fmt, Path(folder) / f"{table}.{fmt}")
        seconds = time.perf_counter() - start
    conn.rollback()
    return summary.rows, summary.rows / seconds


# -- the table ----------------------------------------------------------------------------------


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sqlite",
        type=Path,
        default=Path(tempfile.gettempdir()) / "testledger-bench" / "reports.db",
        help="the SQLite ledger file (kept with --reuse)",
    )
    parser.add_argument("--pg", default=os.environ.get("TESTLEDGER_TEST_PG_URL"))
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--reuse", action="store_true", help="keep a ledger already built")
    parser.add_argument("--runs", type=int, default=LedgerShape.runs)
    parser.add_argument("--tests", type=int, default=LedgerShape.tests_per_run)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", help="comma-separated report names (substring match)")
    parser.add_argument("--exports", default="jsonl", help="formats to export results in")
    args = parser.parse_args()
    shape = LedgerShape(runs=args.runs, tests_per_run=args.tests)

    engines: dict[str, Engine] = {"sqlite": sqlite_ledger(args.sqlite, shape, args.reuse)}
    if args.pg and not args.no_pg:
        engines["postgresql"] = pg_ledger(args.pg, shape, args.reuse)
    else:
        print("postgresql skipped: no server (--pg URL or TESTLEDGER_TEST_PG_URL)")

    timings: dict[str, dict[str, float | None]] = {}
    exports: dict[str, list[str]] = {}
    for label, engine in engines.items():
        with engine.connect() as conn:
            state = schema_state(conn)
            results = conn.exec_driver_sql("SELECT COUNT(*) FROM test_results").scalar_one()
            print(f"{label}: schema {state.revision}, {results:,} results")
            subject = subjects(conn)
            conn.rollback()
            for name, report in reports(subject).items():
                if args.only and not any(part in name for part in args.only.split(",")):
                    continue
                row = timings.setdefault(name, {})
                row[label] = None if report is None else median_ms(conn, report, args.repeat)
            for fmt in filter(None, args.exports.split(",")):
                if args.only and "export" not in args.only:
                    continue
                _rows, rate = export_rate(conn, "results", fmt)
                exports.setdefault(label, []).append(f"results {fmt}: {rate:,.0f} rows/s")
        engine.dispose()

    print(
        f"\nmedian of {args.repeat} after a warm-up; goal < {SQLITE_GOAL_MS:.0f} ms SQLite, "
        f"< {PG_GOAL_MS:.0f} ms PostgreSQL ('-' = not measured / report not there yet)"
    )
    print(f"{'report':<34} {'SQLite ms':>10} {'PG ms':>10}  goal met")
    missed = 0
    for name, row in timings.items():
        lite, pg = row.get("sqlite"), row.get("postgresql")
        checks = [(lite, SQLITE_GOAL_MS), (pg, PG_GOAL_MS)]
        measured = [(value, goal) for value, goal in checks if value is not None]
        met = all(value < goal for value, goal in measured)
        missed += 0 if met else 1
        verdict = "-" if not measured else ("yes" if met else "NO")
        print(f"{name:<34} {_cell(lite):>10} {_cell(pg):>10}  {verdict}")
    for label, lines in exports.items():
        print(f"export {label}: " + "; ".join(lines))
    print(f"GOAL every report: {'MET' if missed == 0 else f'NOT MET ({missed} missed)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
