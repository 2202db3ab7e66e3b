"""The database's schema (upgrade, revision, DDL), its roles (PostgreSQL) and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from testledger.common.jsondata import JsonData
from testledger.demo.runner import DEFAULT_RUNS, DemoResult, Progress, build_demo, check_target
from testledger.errors import ConfigError, SchemaError
from testledger.record.ledger import Ledger
from testledger.store.database import connect_engine, open_engine
from testledger.store.engine import mask_url, mask_urls_in, normalize_url, sqlite_path
from testledger.store.migrate import head_revision, render_sql, schema_state, upgrade
from testledger.store.roles import access_sql, check_role_name, role_access

__all__ = [
    "DatabaseRoles",
    "SchemaStatus",
    "SchemaUpgrade",
    "check_demo_target",
    "database_roles",
    "run_demo",
    "schema_sql",
    "schema_status",
    "upgrade_schema",
]


@dataclass(frozen=True, slots=True)
class SchemaUpgrade(JsonData):
    """``before`` is None for a database that was empty."""

    database: str
    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(frozen=True, slots=True)
class SchemaStatus(JsonData):
    database: str
    revision: str | None
    head: str
    current: bool
    empty: bool
    #: The proposal's tables made by its schema.sql, not yet adopted by ``upgrade_schema``.
    proposal_schema_unmanaged: bool


def upgrade_schema(ledger: Ledger) -> SchemaUpgrade:
    """Create or migrate the schema to the latest revision; a database made from the
    proposal's schema.sql is adopted with every row kept."""
    url = ledger.settings.database_url
    engine = open_engine(url, statement_timeout_secs=ledger.settings.statement_timeout_secs)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    return SchemaUpgrade(database=mask_url(url), before=before, after=after)


def schema_status(ledger: Ledger) -> SchemaStatus:
    """The database's schema revision and whether it is current (nothing is created)."""
    url = ledger.settings.database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():  # said as empty, and left uncreated
        return SchemaStatus(
            database=mask_url(url),
            revision=None,
            head=head_revision(),
            current=False,
            empty=True,
            proposal_schema_unmanaged=False,
        )
    engine = open_engine(url, create=False)
    try:
        with engine.connect() as connection:
            state = schema_state(connection)
    finally:
        engine.dispose()
    return SchemaStatus(
        database=mask_url(url),
        revision=state.revision,
        head=state.head,
        current=state.is_current,
        empty=state.is_empty,
        proposal_schema_unmanaged=state.is_proposal_database,
    )


def schema_sql(dialect: str = "postgresql") -> str:
    """The full DDL of the schema, from an empty database to the latest revision."""
    return render_sql(dialect)


@dataclass(frozen=True, slots=True)
class DatabaseRoles(JsonData):
    """The SQL giving read-only reporting access (row level security, grants, policies, the
    ``testledger_reader`` role) and, once applied, what the database then has."""

    database: str
    sql: str
    applied: bool
    reader_login: str | None
    #: After ``apply``: which of anon, authenticated, service_role, testledger_reader exist.
    roles: dict[str, bool] | None = None
    #: After ``apply``: ledger tables still without row level security (none when it worked).
    tables_without_rls: list[str] | None = None
    #: The server's warnings while applying (e.g. no role may be created, PostgreSQL < 15).
    warnings: tuple[str, ...] = ()


def database_roles(
    ledger: Ledger, *, apply: bool = False, reader_login: str | None = None
) -> DatabaseRoles:
    """The SQL that enables row level security on every ledger table and gives Supabase's roles
    and ``testledger_reader`` their access (with ``reader_login``, also a LOGIN role granted
    ``testledger_reader``); with ``apply``, run it on the ledger's PostgreSQL database (as the
    tables' owner). Idempotent. Raises ConfigError for SQLite or a bad login name."""
    if reader_login is not None:
        check_role_name(reader_login)
    url = ledger.settings.database_url
    sql = access_sql(reader_login=reader_login)
    if not apply:
        return DatabaseRoles(
            database=mask_url(url), sql=sql, applied=False, reader_login=reader_login
        )
    if normalize_url(url).get_backend_name() != "postgresql":
        raise ConfigError("roles and row level security are PostgreSQL's: this ledger is SQLite")
    engine = connect_engine(
        url, create=False, statement_timeout_secs=ledger.settings.statement_timeout_secs
    )
    warnings: list[str] = []
    try:
        with engine.begin() as connection:
            driver: Any = connection.connection.driver_connection

            def keep(notice: Any) -> None:
                warnings.append(str(notice.message_primary))

            driver.add_notice_handler(keep)
            try:
                connection.exec_driver_sql(sql)
            finally:
                driver.remove_notice_handler(keep)
            state = role_access(connection)
    except DBAPIError as exc:
        # Refused (not the tables' owner, may not create roles): the transaction took nothing.
        detail = mask_urls_in(" ".join(str(exc.orig or exc).split()))
        raise SchemaError(f"cannot apply the roles in {mask_url(url)}: {detail}") from None
    finally:
        engine.dispose()
    return DatabaseRoles(
        database=mask_url(url),
        sql=sql,
        applied=True,
        reader_login=reader_login,
        roles=state.roles,
        tables_without_rls=state.tables_without_rls,
        warnings=tuple(warnings),
    )


def check_demo_target(
    directory: Path, *, force: bool = False, database_url: str | None = None
) -> None:
    """Refuse (ConfigError) a demo folder that is neither new, empty nor an earlier demo (with
    ``force``), or a database that already holds runs: what :func:`run_demo` checks first."""
    check_target(directory.resolve(), force=force, database_url=database_url)


def run_demo(
    directory: Path,
    *,
    runs: int = DEFAULT_RUNS,
    force: bool = False,
    database_url: str | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Record a realistic history: a small example suite really run with ``pytest --ledger``,
    commit after commit, into a fresh ledger in ``directory`` (or the empty database at
    ``database_url``). Raises ConfigError when the target is not empty or an earlier demo."""
    check_demo_target(directory, force=force, database_url=database_url)
    return build_demo(
        directory, runs=runs, force=force, database_url=database_url, progress=progress
    )
