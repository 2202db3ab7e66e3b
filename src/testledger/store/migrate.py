"""Running testledger's Alembic migrations programmatically, and adopting proposal databases.

A team that followed the proposal already has its five tables (docs/schema.md), created from
its DDL (``schema.sql``) by hand, with rows in them and no ``alembic_version``. ``upgrade``
recognises that state, checks the tables really are the proposal's, stamps the database at
revision ``0001`` (the proposal's schema) and migrates on from there, so every existing row is
kept as it was.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from testledger.common.jsondata import JsonData
from testledger.errors import SchemaError

if TYPE_CHECKING:  # Alembic is imported only when a migration has to run (it is slow to load).
    from alembic.config import Config

__all__ = [
    "SchemaState",
    "ensure_schema",
    "head_revision",
    "is_at_head",
    "render_sql",
    "schema_state",
    "upgrade",
]

_MIGRATIONS = Path(__file__).with_name("migrations")
PROPOSAL_REVISION = "0001"
#: The newest migration's revision; ``tests/store`` checks it against the migration scripts.
#: Every session of a recorder checks it, so it is known without loading Alembic's scripts.
HEAD_REVISION = "0011"

#: The proposal's tables and the columns each must have for an adoption to be safe.
PROPOSAL_COLUMNS: dict[str, frozenset[str]] = {
    "test_runs": frozenset(
        [
            "id",
            "run_timestamp",
            "branch_name",
            "commit_hash",
            "watcher_model",
            "total_tests",
            "tests_passed",
            "tests_failed",
            "tests_skipped",
            "pass_rate",
            "avg_watcher_quality",
            "total_duration_secs",
            "total_cost_usd",
            "notes",
            "created_at",
        ]
    ),
    "test_results": frozenset(
        [
            "id",
            "run_id",
            "tool_name",
            "variation",
            "provider",
            "model",
            "status",
            "execution_status",
            "duration_secs",
            "memory_mb",
            "cpu_percent",
            "tokens_total",
            "cost_usd",
            "watcher_quality",
            "watcher_observations",
            "error_message",
            "created_at",
        ]
    ),
    "issues": frozenset(
        [
            "id",
            "issue_code",
            "title",
            "description",
            "category",
            "priority",
            "status",
            "root_cause",
            "resolution",
            "affected_tools",
            "first_detected_run_id",
            "resolved_run_id",
            "created_at",
            "updated_at",
            "resolved_at",
        ]
    ),
    "issue_occurrences": frozenset(
        ["id", "issue_id", "run_id", "test_result_id", "severity", "notes", "created_at"]
    ),
    "watcher_insights": frozenset(
        [
            "id",
            "test_result_id",
            "quality_score",
            "strengths",
            "weaknesses",
            "anomalies",
            "recommendations",
            "confidence_level",
            "raw_observation",
            "created_at",
        ]
    ),
}


def _config(connection: Connection | None = None, dialect_name: str | None = None) -> Config:
    from alembic.config import Config

    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    if dialect_name is not None:
        config.attributes["dialect_name"] = dialect_name
    return config


def head_revision() -> str:
    """The head revision according to the migration scripts themselves."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True, slots=True)
class SchemaState(JsonData):
    """What a database holds: its Alembic revision, and whether it is empty or adoptable."""

    revision: str | None
    head: str
    proposal_tables: frozenset[str]

    @property
    def is_empty(self) -> bool:
        return self.revision is None and not self.proposal_tables

    @property
    def is_current(self) -> bool:
        return self.revision == self.head

    @property
    def is_proposal_database(self) -> bool:
        return self.revision is None and bool(self.proposal_tables)


def _stored_revision(connection: Connection) -> str | None:
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def is_at_head(engine: Engine) -> bool:
    """Whether the database's schema is the current one, known from a single query: what every
    command and every recording session asks first (on PostgreSQL, the reflection behind
    :func:`schema_state` costs tens of milliseconds more). False when the revision is another,
    or the query fails (no ``alembic_version`` yet, or no connection): :func:`schema_state`
    and :func:`ensure_schema` then decide, and say why."""
    with engine.connect() as connection:
        try:
            revision = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return bool(revision.scalar() == HEAD_REVISION)
        except sa.exc.DBAPIError:
            return False


def schema_state(connection: Connection) -> SchemaState:
    revision = _stored_revision(connection)
    present = frozenset(sa.inspect(connection).get_table_names()) & PROPOSAL_COLUMNS.keys()
    return SchemaState(revision=revision, head=HEAD_REVISION, proposal_tables=present)


def _check_adoptable(connection: Connection, state: SchemaState) -> None:
    missing_tables = sorted(PROPOSAL_COLUMNS.keys() - state.proposal_tables)
    if missing_tables:
        raise SchemaError(
            "the database has some of the proposal's tables but not "
            f"{', '.join(missing_tables)}: testledger will not guess how to adopt it"
        )
    inspector = sa.inspect(connection)
    for table, wanted in PROPOSAL_COLUMNS.items():
        have = {column["name"] for column in inspector.get_columns(table)}
        lacking = sorted(wanted - have)
        if lacking:
            raise SchemaError(
                f"table {table} lacks the proposal's column(s) {', '.join(lacking)}: "
                "it was not created from schema.sql, so testledger will not adopt it"
            )


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to ``revision``; returns (revision before, revision after).

    A database created from the proposal's DDL (docs/schema.md) is stamped at ``0001`` first.
    All of it happens in one transaction (PostgreSQL and SQLite both have transactional DDL),
    serialised with any other process migrating the same database.
    """
    return _upgrade(engine, revision, first_use=False)


#: The key of the PostgreSQL advisory lock that serialises migrations of one database (any
#: 64-bit number no other application on the database uses: "testledger" in ASCII).
SCHEMA_LOCK_KEY = 0x746573746C6564


def _upgrade(engine: Engine, revision: str, *, first_use: bool) -> tuple[str | None, str]:
    """:func:`upgrade`; with ``first_use``, only an empty database is migrated: one that
    another process migrated meanwhile is left as it is, and any other raises SchemaError."""
    from alembic import command

    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        driver: Any = connection.connection.driver_connection
        legacy_isolation = driver.isolation_level if sqlite else None
        if sqlite:
            # Batch migrations rebuild SQLite tables (copy, drop, rename); with foreign keys
            # enforced, dropping a parent table would cascade-delete its children's rows.
            # The pragma only takes effect outside a transaction, hence before begin().
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
            # Python's sqlite3 opens a transaction before INSERT/UPDATE/DELETE only: CREATE
            # and ALTER would each commit on their own, and an upgrade killed half way would
            # leave half a schema. The transaction is opened here instead: BEGIN IMMEDIATE,
            # which takes the write lock first, so that a second process migrating the same
            # new file waits for the first and then finds its schema.
            driver.isolation_level = None
        try:
            with connection.begin():
                if sqlite:
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    # PostgreSQL's DDL takes no lock that keeps two processes from creating
                    # the same tables at once (the second fails on pg_type's unique index):
                    # this lock makes the second wait, then read the schema the first made.
                    # Held to the end of the transaction, so released even on failure.
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY}
                    )
                state = schema_state(connection)
                if first_use and not state.is_empty:
                    _refuse_unless_current(state)
                    return state.revision, state.head
                before = state.revision
                config = _config(connection)
                if state.is_proposal_database:
                    _check_adoptable(connection, state)
                    command.stamp(config, PROPOSAL_REVISION)
                    before = "proposal schema.sql (unversioned)"
                command.upgrade(config, revision)
                if sqlite:
                    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if problems:
                        raise SchemaError(f"migration broke foreign keys: {problems[:5]}")
                after = _stored_revision(connection)
        finally:
            if sqlite:
                driver.isolation_level = legacy_isolation
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    assert after is not None
    return before, after


def ensure_schema(engine: Engine) -> None:
    """Make the database usable: migrate an empty one; refuse one that needs a manual upgrade.

    Upgrading a database that already holds data is a decision for its owner (it may be shared
    by a team and other tools), so it is never done implicitly.
    """
    with engine.connect() as connection:
        state = schema_state(connection)
    if state.is_empty:
        # Checked again under the migration lock: other processes may be creating it too.
        _upgrade(engine, "head", first_use=True)
        return
    _refuse_unless_current(state)


def _refuse_unless_current(state: SchemaState) -> None:
    if state.is_current:
        return
    if state.is_proposal_database:
        raise SchemaError(
            "this database has the proposal's tables but is not yet managed by testledger: "
            "run `testledger db upgrade` to adopt it (every existing row is kept)"
        )
    raise SchemaError(
        f"the database schema is at revision {state.revision}, testledger needs {state.head}: "
        "run `testledger db upgrade`"
    )


def render_sql(dialect_name: str = "postgresql") -> str:
    """The full DDL from an empty database to head, for pasting into e.g. Supabase's SQL editor."""
    if dialect_name not in ("postgresql", "sqlite"):
        raise SchemaError(f"unknown dialect {dialect_name!r}: use postgresql or sqlite")
    from alembic import command

    config = _config(dialect_name=dialect_name)
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()
