"""Shared fixtures: every behaviour runs against SQLite and a real PostgreSQL.

PostgreSQL comes from ``TESTLEDGER_TEST_PG_URL`` (a server where the tests may create and drop
databases; ``.ci/run`` starts one and sets it). Without it, a throwaway cluster is started from
the machine's PostgreSQL server binaries when there are any; when there are none, the
PostgreSQL variants skip with that reason - except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# The PostgreSQL driver and its SQLAlchemy dialect are imported before any test: pytester takes
# back the modules imported during each of its tests, and a driver first imported inside one
# would be imported again after it, while the session's template copies (made in a thread of
# their own) and SQLAlchemy's dialect registry would still hold the first import's classes.
import psycopg  # noqa: F401
import pytest
import sqlalchemy as sa
import sqlalchemy.dialects.postgresql.psycopg

from testledger.record.ledger import Ledger
from testledger.store.database import connect_engine
from testledger.store.migrate import head_revision, schema_state
from tests.pgcluster import PgCluster, find_pg_bindir
from tests.pgdatabases import (
    PgDatabases,
    admin_execute,
    database_name,
    database_url,
    drop_database,
    fresh_database,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "browser: opens pages in a real headless chromium")
    config.addinivalue_line("markers", "pgbouncer: goes through a real pgbouncer")
    if getattr(config.option, "loadscopereorder", False):
        # pytest-xdist hands out the files (--dist loadfile) in the order given by
        # pytest_collection_modifyitems below, rather than by how many tests each holds.
        config.option.loadscopereorder = False
    # Once, in the session's first process; only where processes write no caches themselves.
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not hasattr(config, "workerinput"):
        _write_bytecode_caches()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with a ``slow`` test first, then the others by how many tests they hold (the
    order pytest-xdist would give them itself). Under ``--dist loadfile`` (the README's
    command) a worker takes a whole file at a time, in this order, and a long file taken last
    kept one worker busy for half a minute while the other had nothing left to do."""
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)

    def longest_first(tests: list[pytest.Item]) -> tuple[bool, int]:
        if any(test.get_closest_marker("slow") for test in tests):
            return (False, 0)  # in their own order: sorted() keeps it
        return (True, -len(tests))

    items[:] = [test for tests in sorted(files.values(), key=longest_first) for test in tests]


def _write_bytecode_caches() -> None:
    """Let a pytest session and testledger start once with bytecode caching on, before any
    test starts a process of its own. The suite starts hundreds (pytest sessions, testledger
    commands, writers, the demo's twelve runs), and where PYTHONDONTWRITEBYTECODE is set (as in
    CI here) none would leave a cache behind: each pytest would rewrite the assertions of every
    module of its plugins' packages again (pytest rewrites installed plugins; hypothesis alone
    took 0.7 s a session) and each process compile testledger's sources again. That was a
    third of the suite's time on a fresh checkout. What is current is only checked."""
    import compileall
    import subprocess
    import sys

    import testledger

    compileall.compile_dir(Path(testledger.__file__).parent, quiet=1, workers=1)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS")
    }
    with tempfile.TemporaryDirectory() as folder:
        # A session like the ones the tests start: recording (the plugin's modules), on a
        # worker of pytest-xdist (its modules and execnet's).
        Path(folder, "test_warm.py").write_text("def test_warm():\n    pass\n")
        subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "1"),
                *(f"--ledger=sqlite:///{folder}/warm.db", f"--ledger-results-dir={folder}"),
                "--ledger-wait-detection",
            ],
            cwd=folder,
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
        )


# What happened to the tests that need a service (a PostgreSQL server, a browser), so that CI
# can insist they really ran. Under pytest-xdist the controller receives every worker's reports
# through this same hook. marker -> (environment switch, what to call it)
_REQUIRED_SERVICES = {
    "postgres": ("TESTLEDGER_REQUIRE_PG", "PostgreSQL"),
    "browser": ("TESTLEDGER_REQUIRE_BROWSER", "browser"),
    "pgbouncer": ("TESTLEDGER_REQUIRE_PGBOUNCER", "pgbouncer"),
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
    """With TESTLEDGER_REQUIRE_PG=1 / TESTLEDGER_REQUIRE_BROWSER=1 /
    TESTLEDGER_REQUIRE_PGBOUNCER=1 (set by .ci/run), a skipped or absent PostgreSQL / browser /
    pgbouncer test fails the session."""
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


@pytest.fixture
def new_pg_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty PostgreSQL databases (all dropped afterwards)."""
    made: list[str] = []

    def make() -> str:
        url, name = fresh_database(pg_admin_url)
        made.append(name)
        return url

    yield make
    for name in made:
        drop_database(pg_admin_url, name)


@pytest.fixture
def pg_url(new_pg_database: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database."""
    return new_pg_database()


# -- migrated templates, and copies of recorded databases -----------------------------------
# Migrating an empty database through every revision costs 0.1-0.2 s, and nearly every test
# starts from a migrated ledger; each test gets a copy of a database migrated once per session
# (per xdist worker) instead. The template is migrated by the product's own first-use path
# (connect_engine -> ensure_schema -> upgrade) and named after the migration scripts' head, so
# a changed migration can never be served from a stale template. Tests about migrating itself
# (first use, adoption, upgrades from an old revision) take ``empty_db_url`` / ``pg_url``.
# The same copying serves a module whose tests all start from one recorded scenario: it is
# recorded once (``module_db_url``) and each test gets a copy (``copy_database``).


def _copy_database(
    request: pytest.FixtureRequest, source_url: str, copy: Path, *, template: bool = False
) -> str:
    """A copy of the database at ``source_url``: the SQLite file copied to ``copy``, or a
    PostgreSQL database created from it (dropped when the requesting fixture's scope ends, or
    with ``template``, a migrated template's copy, reset for a next test: see pgdatabases).
    Nothing may be connected to the source: every engine on it must have been disposed."""
    source = sa.engine.make_url(source_url)
    assert source.database
    if source.get_backend_name() == "sqlite":
        # SQLite folds its WAL into the file when the last connection closes; a WAL still
        # there means an open connection, and a copy of the file alone would miss its writes.
        assert not Path(f"{source.database}-wal").exists(), f"{source_url} is still open"
        shutil.copyfile(source.database, copy)
        return f"sqlite:///{copy}"
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    name = databases.take_copy(source.database, reusable=template)
    request.addfinalizer(lambda: databases.drop_later(name))
    return database_url(request.getfixturevalue("pg_admin_url"), name)


def _migrate(url: str) -> str:
    """Migrate the empty database at ``url`` exactly as a first use of the ledger does."""
    engine = connect_engine(url)
    try:
        with engine.connect() as conn:
            assert schema_state(conn).revision == head_revision()
    finally:
        engine.dispose()  # nothing stays connected to a template
    return url


@pytest.fixture(scope="session")
def pg_databases(pg_admin_url: str) -> Iterator[PgDatabases]:
    databases = PgDatabases(pg_admin_url)
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a SQLite ledger migrated to head, copied for each test."""
    path = tmp_path_factory.mktemp("template") / f"ledger-{head_revision()}.db"
    return _migrate(f"sqlite:///{path}")


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str, pg_databases: PgDatabases) -> Iterator[str]:
    """The URL of a PostgreSQL database migrated to head, copied for each test. It depends on
    ``pg_databases`` so as to be dropped first (with the copy made ahead of it)."""
    name = database_name(f"tl_template_{head_revision()}")
    admin_execute(pg_admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield _migrate(database_url(pg_admin_url, name))
    finally:
        pg_databases.drop_later(name)


def _migrated_database(request: pytest.FixtureRequest, backend: str, copy: Path) -> str:
    template = request.getfixturevalue("sqlite_template" if backend == "sqlite" else "pg_template")
    return _copy_database(request, template, copy, template=True)


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger database of each kind, migrated to head: the one fixture every behaviour
    suite uses."""
    return _migrated_database(request, request.param, tmp_path / "ledger.db")


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind (no schema at all): for the tests of migrating."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(scope="module", params=BACKENDS)
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh ledger database of each kind for one module to record a scenario into once;
    its tests each take a ``copy_database`` of it (recording it for every test cost seconds)."""
    return _migrated_database(request, request.param, tmp_path_factory.mktemp("module") / "m.db")


@pytest.fixture
def copy_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Copies a database recorded earlier (a ``module_db_url``) for this test alone: whatever
    the test writes stays in its copy. Close every engine on the source before copying."""
    copies = itertools.count()
    return lambda url: _copy_database(request, url, tmp_path / f"copy-{next(copies)}.db")


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(db_url, results_dir=tmp_path / "results") as opened:
        yield opened


@pytest.fixture(scope="session")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """``testledger demo`` run once per session into its embedded SQLite ledger: the folder,
    the exit code and what it printed. The demo takes 20 s, so the modules that read it share
    it, across xdist workers too (the first builds it under a lock in the folder the workers
    share; the others wait for it); a test that changes a demo makes its own."""
    from testledger.cli import main

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, holding each worker's own
    directory, built = root / "demo" / "testledger-demo", root / "demo.json"
    with open(root / "demo.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["demo", "--dir", str(directory)])
            built.write_text(json.dumps([code, out.getvalue() + err.getvalue()]))
        code, output = json.loads(built.read_text())
    return directory, code, output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by playwright, for a module's browser tests (they skip
    without it, and CI, TESTLEDGER_REQUIRE_BROWSER=1, fails the session if they do)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (it sits beside the checkout in CI)")
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def _console_width() -> None:
    """The command line's tables laid out for 160 columns, as when output is piped, whatever
    $COLUMNS says where the tests run; a test can monkeypatch another width."""
    from testledger.cli.app import console

    console.width = 160
