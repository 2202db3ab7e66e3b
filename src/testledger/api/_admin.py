"""The database's schema (upgrade, revision, DDL) and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testledger.common.jsondata import JsonData
from testledger.demo.runner import DEFAULT_RUNS, DemoResult, Progress, build_demo, check_target
from testledger.record.runner import Ledger
from testledger.store.database import open_engine
from testledger.store.engine import mask_url, sqlite_path
from testledger.store.migrate import head_revision, render_sql, schema_state, upgrade

__all__ = [
    "SchemaStatus",
    "SchemaUpgrade",
    "check_demo_target",
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
