"""Issue detection and lifecycle.

* ``test_results``: ``fingerprint`` / ``fingerprint_version`` (indexed), a failure's grouping hash.
* ``test_runs``: ``detected_at``, when issue detection last ran over the run.
* ``issues``: ``origin``, ``rule_name`` (indexed), ``lifecycle``, ``regressed_run_id``,
  ``last_seen_run_id`` / ``last_seen_at``, ``edited_at``, ``backfill_source`` / ``backfill_hash``,
  ``details``.
* ``issue_occurrences``: ``test_id``, ``fingerprint``, ``flaky``; an index on ``test_result_id``.
* New tables ``issue_fingerprints`` (the fingerprints that attach failures to an issue, unique
  per version) and ``issue_events`` (every change to an issue, with its run and actor).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import TextClause

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Server default for "now" on SQLite: the fixed-width ISO-8601 UTC text testledger writes.
_SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')"


def _now(dialect: str) -> TextClause:
    """The server default for "now", frozen here: ``now()`` on PostgreSQL."""
    return sa.text(_SQLITE_NOW if dialect == "sqlite" else "now()")


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    postgres = dialect == "postgresql"
    ts: sa.types.TypeEngine[Any] = postgresql.TIMESTAMP(timezone=True) if postgres else sa.Text()
    json_type: sa.types.TypeEngine[Any] = postgresql.JSONB() if postgres else sa.Text()
    id_type: sa.types.TypeEngine[Any] = sa.BigInteger() if postgres else sa.Integer()
    now = _now(dialect)

    with op.batch_alter_table("test_results") as batch:
        batch.add_column(sa.Column("fingerprint", sa.Text()))
        batch.add_column(sa.Column("fingerprint_version", sa.Integer()))
    op.create_index("idx_test_results_fingerprint", "test_results", ["fingerprint"])

    with op.batch_alter_table("test_runs") as batch:
        batch.add_column(sa.Column("detected_at", ts))

    with op.batch_alter_table("issues") as batch:
        batch.add_column(
            sa.Column("origin", sa.Text(), nullable=False, server_default=sa.text("'manual'"))
        )
        batch.add_column(sa.Column("rule_name", sa.Text()))
        batch.add_column(sa.Column("lifecycle", sa.Text()))
        batch.add_column(
            sa.Column(
                "regressed_run_id",
                sa.BigInteger(),
                sa.ForeignKey("test_runs.id", name="fk_issues_regressed_run_id"),
            )
        )
        batch.add_column(
            sa.Column(
                "last_seen_run_id",
                sa.BigInteger(),
                sa.ForeignKey("test_runs.id", name="fk_issues_last_seen_run_id"),
            )
        )
        batch.add_column(sa.Column("last_seen_at", ts))
        batch.add_column(sa.Column("edited_at", ts))
        batch.add_column(sa.Column("backfill_source", sa.Text()))
        batch.add_column(sa.Column("backfill_hash", sa.Text()))
        batch.add_column(sa.Column("details", json_type))
    op.create_index("idx_issues_rule_name", "issues", ["rule_name"])

    with op.batch_alter_table("issue_occurrences") as batch:
        batch.add_column(sa.Column("test_id", sa.Text()))
        batch.add_column(sa.Column("fingerprint", sa.Text()))
        batch.add_column(
            sa.Column("flaky", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("idx_issue_occurrences_result", "issue_occurrences", ["test_result_id"])

    op.create_table(
        "issue_fingerprints",
        sa.Column("id", id_type, primary_key=True, autoincrement=True),
        sa.Column(
            "issue_id",
            sa.BigInteger(),
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("fingerprint_version", sa.Integer(), nullable=False),
        sa.Column("created_at", ts, nullable=False, server_default=now),
        sa.UniqueConstraint("fingerprint", "fingerprint_version", name="uq_issue_fingerprints"),
    )
    op.create_index("idx_issue_fingerprints_issue", "issue_fingerprints", ["issue_id"])

    op.create_table(
        "issue_events",
        sa.Column("id", id_type, primary_key=True, autoincrement=True),
        sa.Column(
            "issue_id",
            sa.BigInteger(),
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id", ondelete="SET NULL")),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status_from", sa.Text()),
        sa.Column("status_to", sa.Text()),
        sa.Column("note", sa.Text()),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("created_at", ts, nullable=False, server_default=now),
    )
    op.create_index("idx_issue_events_issue", "issue_events", ["issue_id"])


def downgrade() -> None:
    op.drop_table("issue_events")
    op.drop_table("issue_fingerprints")
    op.drop_index("idx_issue_occurrences_result", "issue_occurrences")
    with op.batch_alter_table("issue_occurrences") as batch:
        for name in ("test_id", "fingerprint", "flaky"):
            batch.drop_column(name)
    op.drop_index("idx_issues_rule_name", "issues")
    with op.batch_alter_table("issues") as batch:
        for name in (
            "origin",
            "rule_name",
            "lifecycle",
            "regressed_run_id",
            "last_seen_run_id",
            "last_seen_at",
            "edited_at",
            "backfill_source",
            "backfill_hash",
            "details",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("test_runs") as batch:
        batch.drop_column("detected_at")
    op.drop_index("idx_test_results_fingerprint", "test_results")
    with op.batch_alter_table("test_results") as batch:
        batch.drop_column("fingerprint")
        batch.drop_column("fingerprint_version")
