"""Two ``test_results`` indexes for the reports on a large ledger.

* ``idx_test_results_status_run_test`` (status, run_id, test_id): one run's failing results
  (``v_latest_failing_tests``), and the tests that ever failed read from the index alone.
* ``idx_test_results_run_provider_model`` (run_id, provider, model): a run's results in the
  order ``v_cost_by_model`` groups them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Plain b-tree indexes, not partial ones: PostgreSQL's generic plan of a prepared statement, and
# SQLite with bound parameters, could not use a partial index.
_INDEXES = {
    "idx_test_results_status_run_test": ("test_results", ["status", "run_id", "test_id"]),
    "idx_test_results_run_provider_model": ("test_results", ["run_id", "provider", "model"]),
}


def upgrade() -> None:
    for name, (table, columns) in _INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in reversed(list(_INDEXES.items())):
        op.drop_index(name, table_name=table)
