"""The watcher's own model, usage and spend on ``watcher_insights``.

``watcher_model``, ``watcher_input_tokens``, ``watcher_output_tokens``, ``watcher_cost_usd``
(kept apart from the test's own model, tokens and cost) and ``truncated`` (the watcher's input
was cut to fit its bound).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects: a batch recreate on SQLite would drop the table's unnamed
    # CHECK constraints (the proposal's quality_score BETWEEN 1 AND 10 among them).
    op.add_column("watcher_insights", sa.Column("watcher_model", sa.Text()))
    op.add_column("watcher_insights", sa.Column("watcher_input_tokens", sa.BigInteger()))
    op.add_column("watcher_insights", sa.Column("watcher_output_tokens", sa.BigInteger()))
    op.add_column(
        "watcher_insights", sa.Column("watcher_cost_usd", sa.Numeric(12, 6, asdecimal=False))
    )
    op.add_column(
        "watcher_insights",
        sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("watcher_insights") as batch:
        batch.drop_column("truncated")
        batch.drop_column("watcher_cost_usd")
        batch.drop_column("watcher_output_tokens")
        batch.drop_column("watcher_input_tokens")
        batch.drop_column("watcher_model")
