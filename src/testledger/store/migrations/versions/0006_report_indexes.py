"""Indexes for the reports on a large ledger (``bench/reports.py``: 20,000 runs, 1M results).

* ``idx_test_results_status_run_test`` (status, run_id, test_id): the failing results of one
  run (the proposal's ``failing-tests`` query, ``v_latest_failing_tests``) are one range of it
  instead of every failure in the ledger filtered by run; and ``testledger flaky``'s "which
  tests ever failed" reads only this index, no table rows. Measured: ``find_flaky`` 110 -> 45 ms
  on PostgreSQL, 105 -> 66 ms on SQLite; ``failing-tests`` on SQLite 35 -> 6 ms.
* ``idx_test_results_run_provider_model`` (run_id, provider, model): a run's results already in
  (provider, model) order, so ``v_cost_by_model`` groups as it reads instead of sorting the
  whole table on SQLite (its first 100 rows, as a SQLite browser such as datasette reads a
  view: 697 -> 1 ms).

Plain b-tree indexes on both databases. Not partial indexes: a generic plan of a prepared
statement on PostgreSQL, and SQLite with bound parameters, could not use them. They cost
writes: raw inserts of 100,000 results into a fresh ledger (bench/record.py's peer) are ~23%
slower with both (status index ~15%, provider/model ~7%); the runner API ~5-10%.

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
