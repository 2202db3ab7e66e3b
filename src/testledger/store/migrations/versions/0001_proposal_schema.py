"""The proposal's five tables with their indexes: test_runs, test_results, issues,
issue_occurrences and watcher_insights (docs/schema.md).

On PostgreSQL they are exactly the proposal's DDL; on SQLite, ids are ``INTEGER PRIMARY KEY``
and timestamps, JSON and arrays are TEXT. A database created from the proposal's DDL by hand
is stamped at this revision instead of running it (``store/migrate.py``).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import TextClause

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Server default for "now" on SQLite: the fixed-width ISO-8601 UTC text testledger writes.
_SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')"


def _now(dialect: str) -> TextClause:
    """The server default for "now", frozen here: ``now()`` on PostgreSQL."""
    return sa.text(_SQLITE_NOW if dialect == "sqlite" else "now()")


def _types(dialect: str) -> tuple[sa.types.TypeEngine[Any], ...]:
    """(id, timestamp, json, text array) for the dialect, as the proposal spells them on PG."""
    if dialect == "postgresql":
        return (
            sa.BigInteger(),
            postgresql.TIMESTAMP(timezone=True),
            postgresql.JSONB(),
            postgresql.ARRAY(sa.Text()),
        )
    # SQLite: INTEGER PRIMARY KEY is the only auto-incrementing spelling; the rest is text.
    return (sa.Integer(), sa.Text(), sa.Text(), sa.Text())


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    id_type, ts, json_type, text_array = _types(dialect)
    now = _now(dialect)

    def pk() -> sa.Column[Any]:
        return sa.Column("id", id_type, primary_key=True, autoincrement=True)

    def created_at(name: str = "created_at") -> sa.Column[Any]:
        return sa.Column(name, ts, nullable=False, server_default=now)

    op.create_table(
        "test_runs",
        pk(),
        created_at("run_timestamp"),
        sa.Column("branch_name", sa.Text(), nullable=False),
        sa.Column("commit_hash", sa.Text()),
        sa.Column("watcher_model", sa.Text(), nullable=False),
        sa.Column("total_tests", sa.Integer(), nullable=False),
        sa.Column("tests_passed", sa.Integer(), nullable=False),
        sa.Column("tests_failed", sa.Integer(), nullable=False),
        sa.Column("tests_skipped", sa.Integer(), nullable=False),
        sa.Column("pass_rate", sa.Numeric(5, 2)),
        sa.Column("avg_watcher_quality", sa.Numeric(4, 2)),
        sa.Column("total_duration_secs", sa.Integer()),
        sa.Column("total_cost_usd", sa.Numeric(10, 4)),
        sa.Column("notes", sa.Text()),
        created_at(),
    )
    op.create_index(
        "idx_test_runs_timestamp", "test_runs", [sa.text("run_timestamp DESC")], unique=False
    )
    op.create_index("idx_test_runs_branch", "test_runs", ["branch_name"])

    op.create_table(
        "test_results",
        pk(),
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey("test_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tool_name", sa.Text(), nullable=False),
        sa.Column("variation", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("execution_status", sa.Text()),
        sa.Column("duration_secs", sa.Numeric(10, 3)),
        sa.Column("memory_mb", sa.Integer()),
        sa.Column("cpu_percent", sa.Numeric(5, 2)),
        sa.Column("tokens_total", sa.Integer()),
        sa.Column("cost_usd", sa.Numeric(10, 6)),
        sa.Column("watcher_quality", sa.Integer()),
        sa.Column("watcher_observations", json_type),
        sa.Column("error_message", sa.Text()),
        created_at(),
    )
    op.create_index("idx_test_results_run", "test_results", ["run_id"])
    op.create_index("idx_test_results_tool", "test_results", ["tool_name"])
    op.create_index("idx_test_results_status", "test_results", ["status"])
    op.create_index("idx_test_results_watcher_quality", "test_results", ["watcher_quality"])

    op.create_table(
        "issues",
        pk(),
        sa.Column("issue_code", sa.Text(), nullable=False, unique=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'OPEN'")),
        sa.Column("root_cause", sa.Text()),
        sa.Column("resolution", sa.Text()),
        sa.Column("affected_tools", text_array),
        sa.Column("first_detected_run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id")),
        sa.Column("resolved_run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id")),
        created_at(),
        created_at("updated_at"),
        sa.Column("resolved_at", ts),
    )
    op.create_index("idx_issues_status", "issues", ["status"])
    op.create_index("idx_issues_priority", "issues", ["priority"])
    op.create_index("idx_issues_category", "issues", ["category"])

    op.create_table(
        "issue_occurrences",
        pk(),
        sa.Column(
            "issue_id",
            sa.BigInteger(),
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "run_id",
            sa.BigInteger(),
            sa.ForeignKey("test_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "test_result_id",
            sa.BigInteger(),
            sa.ForeignKey("test_results.id", ondelete="CASCADE"),
        ),
        sa.Column("severity", sa.Text()),
        sa.Column("notes", sa.Text()),
        created_at(),
        sa.UniqueConstraint("issue_id", "run_id", "test_result_id"),
    )
    op.create_index("idx_issue_occurrences_issue", "issue_occurrences", ["issue_id"])
    op.create_index("idx_issue_occurrences_run", "issue_occurrences", ["run_id"])

    op.create_table(
        "watcher_insights",
        pk(),
        sa.Column(
            "test_result_id",
            sa.BigInteger(),
            sa.ForeignKey("test_results.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "quality_score",
            sa.Integer(),
            sa.CheckConstraint("quality_score BETWEEN 1 AND 10"),
            nullable=False,
        ),
        sa.Column("strengths", text_array),
        sa.Column("weaknesses", text_array),
        sa.Column("anomalies", text_array),
        sa.Column("recommendations", text_array),
        sa.Column("confidence_level", sa.Text()),
        sa.Column("raw_observation", json_type),
        created_at(),
    )
    op.create_index("idx_watcher_insights_test_result", "watcher_insights", ["test_result_id"])
    op.create_index("idx_watcher_insights_quality", "watcher_insights", ["quality_score"])


def downgrade() -> None:
    for table in ("watcher_insights", "issue_occurrences", "issues", "test_results", "test_runs"):
        op.drop_table(table)
