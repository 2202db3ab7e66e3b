"""testledger through a transaction pooler: a real pgbouncer in ``pool_mode = transaction``.

Supabase's transaction pooler (port 6543) gives each transaction whichever server connection is
free, so a prepared statement or a session setting made in one transaction is gone, or another
client's, in the next. testledger detects the pooler from the port or ``?pgbouncer=true`` and
then prepares nothing and sets ``statement_timeout`` per transaction. Recording (COPY), import,
spool and sync, and the reports all run through the pooler here.

Without pgbouncer these tests skip, except under ``CI=true`` or
``TESTLEDGER_REQUIRE_PGBOUNCER=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from testledger import Ledger, api
from testledger.errors import ConfigError
from testledger.model import WatcherObservation
from testledger.store.engine import create_ledger_engine, transaction_pooled
from tests.histories import record_test, scripted_run
from tests.pgbouncer import PgBouncer, find_pgbouncer
from tests.pgdatabases import drop_database, fresh_database

SUPABASE_DIRECT = "postgresql://postgres:pw@db.abcdefgh.supabase.co:5432/postgres"
SUPABASE_SESSION = (
    "postgresql://postgres.abcdefgh:pw@aws-0-eu-west-1.pooler.supabase.com:5432/postgres"
)
SUPABASE_TRANSACTION = SUPABASE_SESSION.replace(":5432/", ":6543/")


@pytest.mark.parametrize(
    ("url", "pooled"),
    [
        (SUPABASE_DIRECT, False),
        (SUPABASE_SESSION, False),
        (SUPABASE_TRANSACTION, True),
        ("postgres://u@localhost/db", False),
        ("postgresql://u@localhost:6432/db?pgbouncer=true", True),
        ("postgresql://u@localhost:6432/db?pgbouncer=1", True),
        ("postgresql://u@localhost/db?pgbouncer=false", False),
        (SUPABASE_TRANSACTION + "?pgbouncer=false", False),
        (SUPABASE_TRANSACTION + "?sslmode=require&pgbouncer=off", False),
        ("postgresql://u@localhost:6432/db?sslmode=require&pgbouncer=ON", True),
        ("sqlite:///ledger.db", False),
        ("ledger.db", False),
    ],
)
def test_a_transaction_pooler_is_known_by_its_port_or_the_url(url: str, pooled: bool) -> None:
    assert transaction_pooled(url) is pooled


def test_an_unclear_pooler_option_is_a_config_error_with_the_password_masked() -> None:
    with pytest.raises(ConfigError, match=r"pgbouncer='maybe'.*\*\*\*") as raised:
        transaction_pooled(SUPABASE_DIRECT + "?pgbouncer=maybe")
    assert ":pw@" not in str(raised.value)


def test_the_pooler_option_is_not_passed_on_to_the_driver() -> None:
    engine = create_ledger_engine(SUPABASE_DIRECT + "?sslmode=require&pgbouncer=true")
    assert dict(engine.url.query) == {"sslmode": "require"}
    engine.dispose()


# -- through a real pgbouncer ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bouncer(pg_admin_url: str) -> Iterator[PgBouncer]:
    binary = find_pgbouncer()
    if binary is None:
        reason = "no pgbouncer: install Debian's pgbouncer package (apt-get install pgbouncer)"
        required = os.environ.get("TESTLEDGER_REQUIRE_PGBOUNCER") == "1"
        if required or os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true / TESTLEDGER_REQUIRE_PGBOUNCER=1: it must run)")
        pytest.skip(reason)
    # Not under pytest's tmp_path: that folder is private to root, and pgbouncer runs as the
    # postgres user when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="testledger-pgbouncer-"))
    pooler = PgBouncer(binary, folder, pg_admin_url)
    pooler.start()
    try:
        yield pooler
    finally:
        pooler.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pooled_url(bouncer: PgBouncer, pg_admin_url: str) -> Iterator[str]:
    """An empty database, reached through the pooler, marked as pooled by the URL."""
    _, name = fresh_database(pg_admin_url)
    try:
        yield bouncer.url(name) + "?pgbouncer=true"
    finally:
        drop_database(pg_admin_url, name)


def _same_query_in_alternating_transactions(url: str, times: int = 12) -> None:
    """Two clients take turns, one transaction each: the pooler hands both the same server
    connection, so a statement one of them prepared is there when the other prepares its own."""
    engine = create_ledger_engine(url, statement_timeout_secs=0)
    try:
        with engine.connect() as first, engine.connect() as second:
            for _ in range(times):
                for connection in (first, second):
                    with connection.begin():
                        connection.execute(
                            sa.text("SELECT count(*) FROM pg_class WHERE oid > :n"), {"n": 1}
                        )
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.pgbouncer
def test_without_prepared_statements_the_pooler_serves_repeated_queries(pooled_url: str) -> None:
    _same_query_in_alternating_transactions(pooled_url)


@pytest.mark.postgres
@pytest.mark.pgbouncer
def test_with_psycopgs_prepared_statements_the_pooler_fails(pooled_url: str) -> None:
    """The failure the detection avoids, so that the test above is known to be able to fail."""
    with pytest.raises(sa.exc.DBAPIError, match="prepared statement"):
        _same_query_in_alternating_transactions(
            pooled_url.replace("pgbouncer=true", "pgbouncer=false")
        )


@pytest.mark.postgres
@pytest.mark.pgbouncer
def test_the_statement_timeout_holds_in_each_transaction_and_leaks_to_no_one(
    pooled_url: str,
) -> None:
    engine = create_ledger_engine(pooled_url, statement_timeout_secs=0.2)
    try:
        with engine.connect() as connection:
            for _ in range(3):  # each transaction, whichever server connection it gets
                with connection.begin():
                    assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
            # A transaction SQLAlchemy begins by itself, as most of testledger's do.
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
            connection.commit()
            with (
                connection.begin(),
                pytest.raises(sa.exc.OperationalError, match="statement timeout"),
            ):
                connection.exec_driver_sql("SELECT pg_sleep(2)")
    finally:
        engine.dispose()
    # Another client of the pooler, on the same server connections, has the server's default.
    plain = pooled_url.split("?")[0]
    with psycopg.connect(plain, prepare_threshold=None) as other:
        assert other.execute("SHOW statement_timeout").fetchone() == ("0",)


def _record_history(ledger: Ledger, suite: str, results: int) -> None:
    for index in range(3):
        with scripted_run(ledger, index, suite=suite, commit=f"c{index}") as run:
            for number in range(results):
                status = "FAIL" if number % 50 == 0 else "PASS"
                ref = record_test(run, f"tool{number % 7}/case{number}", status, cost_usd=0.01)
                if number % 100 == 1:
                    run.attach_watcher(ref, WatcherObservation(quality_score=8))


@pytest.mark.postgres
@pytest.mark.pgbouncer
def test_recording_and_every_report_through_the_pooler(pooled_url: str, tmp_path: Path) -> None:
    with Ledger(pooled_url, results_dir=tmp_path / "results") as ledger:
        _record_history(ledger, "pooled", results=300)  # a new run's rows: COPY
        runs = api.list_runs(ledger, suite="pooled")
        assert [(run.total_tests, run.status) for run in runs] == [(300, "finished")] * 3
        latest = api.show_run(ledger, suite="pooled")
        assert latest.run.total_tests == 300 and len(latest.failing) == 6
        assert api.trend(ledger, suite="pooled").points
        assert api.compare(ledger, runs[0].run_key).baseline.run_key == runs[1].run_key
        assert api.summary(ledger, runs[0].run_key)
        assert api.history(ledger, "tool0/case0").entries
        assert api.cost(ledger, suite="pooled")
        assert api.list_issues(ledger), "detection ran through the pooler and found the failures"
        assert api.query(ledger, "latest-run").rows
        api.find_flaky(ledger, suite="pooled")
        api.find_regressions(ledger, suite="pooled")
        assert api.runs_page(ledger).runs
        assert api.html_report_data(ledger)
        # A server-side cursor (DECLARE ... inside the transaction) streams the export.
        exported = api.export(ledger, "results", "jsonl", tmp_path / "results.jsonl")
        assert exported.rows >= 900


@pytest.mark.postgres
@pytest.mark.pgbouncer
def test_importing_a_file_through_the_pooler(pooled_url: str, tmp_path: Path) -> None:
    cases = "".join(
        f'<testcase classname="imp.mod{n % 5}" name="test_{n}" time="0.01">'
        + ("<failure message='no'>trace</failure>" if n % 40 == 0 else "")
        + "</testcase>"
        for n in range(800)
    )
    report = tmp_path / "junit.xml"
    report.write_text(f'<testsuite name="imp" tests="800">{cases}</testsuite>', encoding="utf-8")
    with Ledger(pooled_url, results_dir=tmp_path / "results") as ledger:
        imported = api.import_paths(ledger, [report])
        again = api.import_paths(ledger, [report])
    [outcome] = imported.imported
    assert outcome.results == 800 and not imported.errors
    assert again.imported == [] and len(again.already_imported) == 1
    engine = create_ledger_engine(pooled_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                sa.text(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'FAIL') FROM test_results "
                    "WHERE run_id = :run"
                ),
                {"run": outcome.run_id},
            ).one()
    finally:
        engine.dispose()
    assert tuple(stored) == (800, 20)


@pytest.mark.postgres
@pytest.mark.pgbouncer
def test_a_spooled_run_syncs_through_the_pooler(pooled_url: str, tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    with Ledger("postgresql://x:pw@127.0.0.1:9/away", results_dir=results_dir) as ledger:
        with ledger.start_run(branch="main", suite="spooled", run_key="while-away") as run:
            for number in range(300):
                run.record(tool_name="t", variation=f"v{number}", status="PASS")
    assert run.spooled
    with Ledger(pooled_url, results_dir=results_dir) as ledger:
        report = api.sync(ledger)
        assert [outcome.run_key for outcome in report.synced] == ["while-away"]
        assert api.show_run(ledger, "while-away").run.total_tests == 300
        assert api.sync(ledger).synced == []
