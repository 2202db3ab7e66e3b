"""API tokens and idempotent ingest, branch-aware issues, retention, a live run's expected size.

* ``api_tokens`` (new): the tokens of the HTTP API, stored as a SHA-256 hash with a short prefix
  that identifies a token in listings; a scope (``read`` or ``write``); revoked, not deleted, so
  that a listing says when.
* ``ingest_batches`` (new): the keys of the result batches posted to a run over HTTP, unique per
  run, so that a retried batch is stored once.
* ``issues.branch_name``: the branch an issue belongs to when it was seen only on a branch other
  than the default one (NULL: the default branch's issue).
* ``issues.first_seen_at``: the ``run_timestamp`` of the run it was first seen in, kept when
  retention removes that run (backfilled from ``first_detected_run_id``).
* ``test_daily_stats`` (new): per day, suite, branch and test, the sums retention keeps of the
  results it removes, so that trends outlive the raw rows. Every measure is a sum or a count, so
  pruning the same day twice adds up.
* ``test_runs.expected_tests``: how many tests a run still recording expects (pytest's
  collection), for a live run's progress.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: Server default for "now" on SQLite: the fixed-width ISO-8601 UTC text testledger writes.
_SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')"


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    postgres = dialect == "postgresql"
    ts: sa.types.TypeEngine[Any] = postgresql.TIMESTAMP(timezone=True) if postgres else sa.Text()
    id_type: sa.types.TypeEngine[Any] = sa.BigInteger() if postgres else sa.Integer()
    now = sa.text("now()" if postgres else _SQLITE_NOW)

    op.create_table(
        "api_tokens",
        sa.Column("id", id_type, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("token_prefix", sa.Text(), nullable=False),
        sa.Column("created_at", ts, nullable=False, server_default=now),
        sa.Column("last_used_at", ts),
        sa.Column("revoked_at", ts),
        sa.CheckConstraint("scope IN ('read', 'write')", name="ck_api_tokens_scope"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )

    op.create_table(
        "ingest_batches",
        sa.Column("id", id_type, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey("test_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("batch_key", sa.Text(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("created_at", ts, nullable=False, server_default=now),
        sa.UniqueConstraint("run_id", "batch_key", name="uq_ingest_batches_run_key"),
    )

    op.create_table(
        "test_daily_stats",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("suite", sa.Text(), nullable=False),
        sa.Column("branch_name", sa.Text(), nullable=False),
        sa.Column("test_id", sa.Text(), nullable=False),
        sa.Column("tool_name", sa.Text(), nullable=False),
        sa.Column("results", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("errored", sa.Integer(), nullable=False),
        sa.Column("duration_secs_sum", sa.Numeric(14, 3)),
        sa.Column("duration_count", sa.Integer(), nullable=False),
        sa.Column("cost_usd_sum", sa.Numeric(14, 6)),
        sa.Column("tokens_total_sum", sa.BigInteger()),
        sa.Column("watcher_quality_sum", sa.Integer()),
        sa.Column("watcher_quality_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "suite", "branch_name", "test_id", name="pk_test_daily_stats"
        ),
    )
    op.create_index("idx_test_daily_stats_test", "test_daily_stats", ["test_id", "day"])

    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("branch_name", sa.Text()))
        batch.add_column(sa.Column("first_seen_at", ts))
    op.execute(
        "UPDATE issues SET first_seen_at = (SELECT r.run_timestamp FROM test_runs r"
        " WHERE r.id = issues.first_detected_run_id) WHERE first_detected_run_id IS NOT NULL"
    )

    with op.batch_alter_table("test_runs") as batch:
        batch.add_column(sa.Column("expected_tests", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("test_runs") as batch:
        batch.drop_column("expected_tests")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("first_seen_at")
        batch.drop_column("branch_name")
    op.drop_index("idx_test_daily_stats_test", table_name="test_daily_stats")
    op.drop_table("test_daily_stats")
    op.drop_table("ingest_batches")
    op.drop_table("api_tokens")
