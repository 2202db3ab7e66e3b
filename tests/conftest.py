"""Shared fixtures: every behaviour runs against SQLite and a real PostgreSQL.

PostgreSQL comes from ``TESTLEDGER_TEST_PG_URL`` (a server where the tests may create and drop
databases; ``.ci/run`` starts one and sets it). Without it, a throwaway cluster is started from
the machine's PostgreSQL server binaries when there are any; when there are none, the
PostgreSQL variants skip with that reason - except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger.record.runner import Ledger
from tests.pgcluster import PgCluster, find_pg_bindir

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
_counter = itertools.count()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "browser: opens pages in a real headless chromium")


# What happened to the tests that need a service (a PostgreSQL server, a browser), so that CI
# can insist they really ran. Under pytest-xdist the controller receives every worker's reports
# through this same hook. marker -> (environment switch, what to call it)
_REQUIRED_SERVICES = {
    "postgres": ("TESTLEDGER_REQUIRE_PG", "PostgreSQL"),
    "browser": ("TESTLEDGER_REQUIRE_BROWSER", "browser"),
}
_OUTCOMES: dict[str, dict[str, Any]] = {
    marker: {"passed": 0, "failed": 0, "skipped": []} for marker in _REQUIRED_SERVICES
}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for marker, outcomes in _OUTCOMES.items():
        if marker not in report.keywords:
            continue
        if report.skipped:
            outcomes["skipped"].append(report.nodeid)
        elif report.when == "call":
            outcomes["passed" if report.passed else "failed"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With TESTLEDGER_REQUIRE_PG=1 / TESTLEDGER_REQUIRE_BROWSER=1 (set by .ci/run), a skipped
    or absent PostgreSQL / browser test fails the session."""
    if hasattr(session.config, "workerinput"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for marker, (switch, name) in _REQUIRED_SERVICES.items():
        if os.environ.get(switch) != "1":
            continue
        outcomes = _OUTCOMES[marker]
        ran = outcomes["passed"] + outcomes["failed"]
        problems = []
        if outcomes["skipped"]:
            problems.append(f"{len(outcomes['skipped'])} {name} test(s) were skipped")
        if ran == 0:
            problems.append(f"no {name} test ran")
        if problems:
            if reporter is not None:
                reporter.write_line(f"{switch}: " + "; ".join(problems), red=True)
                for nodeid in outcomes["skipped"][:20]:
                    reporter.write_line(f"  skipped: {nodeid}", red=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif reporter is not None:
            reporter.write_line(f"{switch}: {ran} {name} test(s) ran, none skipped")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("TESTLEDGER_TEST_PG_URL")
    if url:
        yield url
        return
    bindir = find_pg_bindir()
    if bindir is None:
        reason = "no PostgreSQL: set TESTLEDGER_TEST_PG_URL or install PostgreSQL's server binaries"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)
    # Not under pytest's tmp_path: that folder is private to root, and the server runs as
    # the postgres user when the tests run as root.
    folder = Path(tempfile.mkdtemp(prefix="testledger-pg-"))
    cluster = PgCluster(bindir, folder)
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _fresh_pg_database(admin_url: str) -> tuple[str, str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"tl_{worker}_{os.getpid()}_{next(_counter)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.engine.make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False), name


def drop_pg_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def new_pg_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty PostgreSQL databases (all dropped afterwards)."""
    made: list[str] = []

    def make() -> str:
        url, name = _fresh_pg_database(pg_admin_url)
        made.append(name)
        return url

    yield make
    for name in made:
        drop_pg_database(pg_admin_url, name)


@pytest.fixture
def pg_url(new_pg_database: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database."""
    return new_pg_database()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind: the one fixture every behaviour suite uses."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(db_url, results_dir=tmp_path / "results") as opened:
        yield opened


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (it sits beside the checkout in CI)")
    return SHARED
