"""Regression baselines: detection's cost per run flat in the history's length.

* ``regression_baselines`` (new): per suite, branch, test and metric, the latest values of the
  test's series and decayed sums of the older ones (see
  ``testledger.analyze.regressions.baselines``). Regression detection reads a run's baselines
  instead of every test's whole series, and reads the series of the few tests whose latest
  values stand out (or that have a regression issue open). Nothing is backfilled: a test without
  a baseline is analysed from its series, as before, and its baseline built from that series,
  so an upgraded ledger detects as before from its first run on. Every row is rewritten by
  every run's detection: no index but the key, no foreign key (retention deletes the rows of
  the runs it removes), and fillfactor 50 on PostgreSQL, so that the rewrite is a HOT update.
* ``idx_test_runs_suite_timestamp`` (suite, run_timestamp, id): a suite's latest runs on every
  branch without sorting them all, for the flaky rules' scope (compare, summary, gate and
  detection read it on every call).
* On PostgreSQL the table gets row level security, policies and grants as 0010 gave every table
  (its SQL, run for this table only).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TABLE = "regression_baselines"


def upgrade() -> None:
    postgres = op.get_context().dialect.name == "postgresql"
    ts: sa.types.TypeEngine[Any] = postgresql.TIMESTAMP(timezone=True) if postgres else sa.Text()
    op.create_table(
        _TABLE,
        sa.Column("suite", sa.Text(), nullable=False),
        sa.Column("branch_name", sa.Text(), nullable=False),
        sa.Column("test_id", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("last_run_id", sa.BigInteger(), nullable=False),
        sa.Column("last_run_at", ts, nullable=False),
        sa.Column("log_scale", sa.Boolean(), nullable=False),
        sa.Column("recent", sa.LargeBinary(), nullable=False),
        sa.Column("older_weight", sa.Float(), nullable=False),
        sa.Column("older_sum", sa.Float(), nullable=False),
        sa.Column("older_test_sum", sa.Float(), nullable=False),
        sa.Column("older_test_squares", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "suite", "branch_name", "test_id", "metric", name="pk_regression_baselines"
        ),
    )
    if postgres:
        # Every row is rewritten by every run: room in each page keeps that a HOT update.
        op.execute(f"ALTER TABLE {_TABLE} SET (fillfactor = 50)")
    op.create_index("idx_test_runs_suite_timestamp", "test_runs", ["suite", "run_timestamp", "id"])
    if postgres:
        # 0010's block, over this table only (no private table, no view): row level security,
        # anon revoked, the readers' SELECT and policy, service_role's everything.
        rls = importlib.import_module(
            "testledger.store.migrations.versions.0010_row_level_security"
        )
        op.execute(rls._UPGRADE.format(tables=rls._array((_TABLE,)), private="'{}'", views="'{}'"))


def downgrade() -> None:
    op.drop_index("idx_test_runs_suite_timestamp", table_name="test_runs")
    op.drop_table(_TABLE)
