"""testledger's columns on the proposal's tables.

* ``test_runs``: ``run_key`` (unique), ``suite``, ``status``, ``started_at`` / ``finished_at``,
  ``tests_errored``, ``total_tokens``, CI and host metadata, ``source``, ``run_metadata``; an
  index on (suite, branch_name, run_timestamp).
* ``test_results``: ``test_id`` and ``attempt`` (unique within a run), ``started_at``, the
  failure's evidence, input/output tokens, ``metrics``, ``details``; ``provider`` and ``model``
  become nullable.
* ``watcher_insights``: ``confidence``, ``watcher``, ``watcher_error``; ``quality_score`` becomes
  nullable, with a CHECK that a row has a score or an error.

Existing rows (an adopted database) get ``run_key`` = ``adopted-<id>``, ``test_id`` =
``tool_name/variation`` and attempts numbered by id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCORE_OR_ERROR = "quality_score IS NOT NULL OR watcher_error IS NOT NULL"


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    ts: sa.types.TypeEngine[Any] = (
        postgresql.TIMESTAMP(timezone=True) if dialect == "postgresql" else sa.Text()
    )
    json_type: sa.types.TypeEngine[Any] = (
        postgresql.JSONB() if dialect == "postgresql" else sa.Text()
    )
    concat = "||"

    # --- test_runs -----------------------------------------------------------------------
    with op.batch_alter_table("test_runs") as batch:
        batch.add_column(sa.Column("run_key", sa.Text()))
        batch.add_column(
            sa.Column("suite", sa.Text(), nullable=False, server_default=sa.text("'default'"))
        )
        batch.add_column(
            sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'finished'"))
        )
        batch.add_column(sa.Column("started_at", ts))
        batch.add_column(sa.Column("finished_at", ts))
        batch.add_column(
            sa.Column("tests_errored", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("total_tokens", sa.BigInteger()))
        batch.add_column(sa.Column("ci_provider", sa.Text()))
        batch.add_column(sa.Column("ci_job_url", sa.Text()))
        batch.add_column(sa.Column("host", sa.Text()))
        batch.add_column(
            sa.Column("source", sa.Text(), nullable=False, server_default=sa.text("'adopted'"))
        )
        batch.add_column(sa.Column("run_metadata", json_type))
    op.execute(
        f"UPDATE test_runs SET run_key = 'adopted-' {concat} CAST(id AS TEXT), "
        "started_at = run_timestamp WHERE run_key IS NULL"
    )
    with op.batch_alter_table("test_runs") as batch:
        batch.alter_column("run_key", existing_type=sa.Text(), nullable=False)
    op.create_index("uq_test_runs_run_key", "test_runs", ["run_key"], unique=True)
    op.create_index(
        "idx_test_runs_suite_branch_timestamp",
        "test_runs",
        ["suite", "branch_name", "run_timestamp"],
    )

    # --- test_results --------------------------------------------------------------------
    with op.batch_alter_table("test_results") as batch:
        batch.alter_column("provider", existing_type=sa.Text(), nullable=True)
        batch.alter_column("model", existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column("test_id", sa.Text()))
        batch.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch.add_column(sa.Column("started_at", ts))
        batch.add_column(sa.Column("error_type", sa.Text()))
        batch.add_column(sa.Column("traceback", sa.Text()))
        batch.add_column(sa.Column("output_excerpt", sa.Text()))
        batch.add_column(sa.Column("tokens_input", sa.Integer()))
        batch.add_column(sa.Column("tokens_output", sa.Integer()))
        batch.add_column(sa.Column("metrics", json_type))
        batch.add_column(sa.Column("details", json_type))
    op.execute(
        f"UPDATE test_results SET test_id = tool_name {concat} '/' {concat} variation "
        "WHERE test_id IS NULL"
    )
    # An adopted database may hold the same test twice in one run: number those as attempts,
    # oldest first, so that (run_id, test_id, attempt) can be unique.
    op.execute(
        "UPDATE test_results SET attempt = ("
        " SELECT COUNT(*) FROM test_results earlier"
        " WHERE earlier.run_id = test_results.run_id"
        " AND earlier.test_id = test_results.test_id"
        " AND earlier.id <= test_results.id)"
    )
    with op.batch_alter_table("test_results") as batch:
        batch.alter_column("test_id", existing_type=sa.Text(), nullable=False)
    op.create_index(
        "uq_test_results_run_test_attempt",
        "test_results",
        ["run_id", "test_id", "attempt"],
        unique=True,
    )
    op.create_index("idx_test_results_test_id", "test_results", ["test_id"])

    # --- watcher_insights ----------------------------------------------------------------
    # SQLite cannot change a column's nullability in place: batch mode rebuilds the table, and
    # unnamed CHECK constraints are not reflected, so the proposal's is restated here.
    table_args = (
        (sa.CheckConstraint("quality_score BETWEEN 1 AND 10"),) if dialect == "sqlite" else ()
    )
    with op.batch_alter_table("watcher_insights", table_args=table_args) as batch:
        batch.alter_column("quality_score", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("confidence", sa.Numeric(4, 3)))
        batch.add_column(sa.Column("watcher", sa.Text()))
        batch.add_column(sa.Column("watcher_error", sa.Text()))
        batch.create_check_constraint("ck_watcher_insights_score_or_error", SCORE_OR_ERROR)


def downgrade() -> None:
    op.drop_index("idx_test_results_test_id", "test_results")
    op.drop_index("uq_test_results_run_test_attempt", "test_results")
    op.drop_index("idx_test_runs_suite_branch_timestamp", "test_runs")
    op.drop_index("uq_test_runs_run_key", "test_runs")
    with op.batch_alter_table("watcher_insights") as batch:
        batch.drop_constraint("ck_watcher_insights_score_or_error", type_="check")
        for name in ("confidence", "watcher", "watcher_error"):
            batch.drop_column(name)
    with op.batch_alter_table("test_results") as batch:
        for name in (
            "test_id",
            "attempt",
            "started_at",
            "error_type",
            "traceback",
            "output_excerpt",
            "tokens_input",
            "tokens_output",
            "metrics",
            "details",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("test_runs") as batch:
        for name in (
            "run_key",
            "suite",
            "status",
            "started_at",
            "finished_at",
            "tests_errored",
            "total_tokens",
            "ci_provider",
            "ci_job_url",
            "host",
            "source",
            "run_metadata",
        ):
            batch.drop_column(name)
