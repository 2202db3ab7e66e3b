"""docs/schema.md describes the real schema, and the frozen view SQL is the proposal's."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from testledger.report.proposal import PROPOSAL_QUERIES
from testledger.store.database import connect_engine
from testledger.store.engine import create_ledger_engine
from testledger.store.migrate import PROPOSAL_COLUMNS, upgrade
from testledger.store.tables import metadata

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
MIGRATIONS = Path(__file__).resolve().parents[2] / "src/testledger/store/migrations/versions"
REVISIONS = sorted(path.name[:4] for path in MIGRATIONS.glob("0*.py"))

# A column row: | `name` | TYPE | NOT NULL or nothing | default | since | meaning |
_ROW = re.compile(r"^\| `(\w+)` \| ([^|]+?) \| (NOT NULL)? *\| ([^|]*?) *\| (\w+) \|")


def _sections(text: str) -> dict[str, str]:
    """Each ``### `name``` heading's text, up to the next heading."""
    parts = re.split(r"^### `([\w-]+)`.*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _pg_type(column: sa.Column[object]) -> str:
    if column.primary_key and len(column.table.primary_key.columns) == 1:
        return "BIGSERIAL"
    compiled = column.type.compile(dialect=postgresql.dialect())
    return compiled.replace("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ").replace(", ", ",")


def _sqlite_default(raw: str | None, type_name: str) -> str:
    """A SQLite column default as the doc spells it (PostgreSQL's spelling)."""
    if raw is None:
        return ""
    if "strftime(" in raw:
        return "`now()`"
    if type_name == "BOOLEAN":
        return "`false`" if raw in ("0", "false") else "`true`"
    return f"`{raw}`"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[str, str]]:
    """(table, column) -> (the revision that added it, its SQLite default), migrating a SQLite
    file one revision at a time."""
    engine = create_ledger_engine(f"sqlite:///{tmp_path_factory.mktemp('doc') / 'doc.db'}")
    found: dict[tuple[str, str], tuple[str, str]] = {}
    try:
        for revision in REVISIONS:
            upgrade(engine, revision)
            with engine.connect() as conn:
                for table in sa.inspect(conn).get_table_names():
                    for row in conn.exec_driver_sql(f"PRAGMA table_info({table})"):
                        default = _sqlite_default(row[4], row[2])
                        found.setdefault((table, row[1]), (revision, default))
    finally:
        engine.dispose()
    return found


def test_the_column_lists_are_the_schema(
    migrated: dict[tuple[str, str], tuple[str, str]],
) -> None:
    sections = _sections(DOC.read_text(encoding="utf-8"))
    for name, table in metadata.tables.items():
        assert name in sections, f"docs/schema.md has no section for {name}"
        documented = [
            (column, type_.strip(), bool(not_null), default, since)
            for line in sections[name].splitlines()
            if (m := _ROW.match(line))
            for column, type_, not_null, default, since in [m.groups()]
        ]
        actual = []
        for column in table.columns:
            revision, default = migrated[(name, column.name)]
            proposal = column.name in PROPOSAL_COLUMNS.get(name, ())
            since = "proposal" if proposal else revision
            actual.append((column.name, _pg_type(column), not column.nullable, default, since))
        assert documented == actual, name


def test_the_view_columns_are_the_views(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = {
        m.group(1): re.findall(r"`(\w+)`", m.group(2))
        for m in re.finditer(r"^\| `(v_\w+)` \| [^|]+ \| ([^|]+) \|$", text, flags=re.MULTILINE)
    }
    engine = connect_engine(f"sqlite:///{tmp_path / 'doc.db'}")
    try:
        with engine.connect() as conn:
            views = sa.inspect(conn).get_view_names()
            actual = {
                view: [row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({view})")]
                for view in views
            }
    finally:
        engine.dispose()
    assert documented == actual


def test_the_example_queries_are_reproduced_verbatim() -> None:
    text = DOC.read_text(encoding="utf-8")
    reproduced = dict(re.findall(r"^### `([\w-]+)`:.*?```sql\n(.*?)\n```", text, re.M | re.S))
    assert reproduced == {name: query.sql for name, query in PROPOSAL_QUERIES.items()}


def test_the_frozen_proposal_views_are_the_proposal_queries() -> None:
    """0004 keeps its own copy of the four queries (a migration imports no live code); the copy
    must be the proposal's text, which report/proposal.py holds."""
    views = importlib.import_module("testledger.store.migrations.versions.0004_report_views")
    frozen = {
        "v_latest_run_summary": "latest-run",
        "v_latest_failing_tests": "failing-tests",
        "v_issue_resolution": "issue-resolution",
        "v_run_over_run": "run-over-run",
    }
    for view, name in frozen.items():
        assert views._VIEWS[view] == PROPOSAL_QUERIES[name].sql.rstrip().rstrip(";"), view
