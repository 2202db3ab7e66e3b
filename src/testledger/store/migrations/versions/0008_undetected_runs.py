"""An index on the runs issue detection has not been over yet.

* ``idx_test_runs_undetected`` (run_timestamp, id) ``WHERE detected_at IS NULL``: every recording,
  import, sync and ``testledger detect`` first looks for finished runs whose detection was lost
  (a process killed between committing a run and detecting it), oldest first. Nearly every run
  has been detected, so the partial index holds a handful of rows and that look-up reads only
  them, whatever the ledger's size. (The predicate is a constant, not a bound parameter, so
  generic plans use the index too: the reason 0006's indexes are not partial does not apply.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WHERE = sa.text("detected_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "idx_test_runs_undetected",
        "test_runs",
        ["run_timestamp", "id"],
        postgresql_where=_WHERE,
        sqlite_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("idx_test_runs_undetected", table_name="test_runs")
