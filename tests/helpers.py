"""Small helpers shared by the test modules."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from testledger.store.database import connect_engine


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the ledger at ``url``, as plain tuples."""
    engine = connect_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()
