"""Column types: the schema's PostgreSQL types (docs/schema.md), faithful equivalents on SQLite.

PostgreSQL keeps JSONB, TEXT[], NUMERIC, TIMESTAMPTZ and BIGSERIAL. SQLite stores JSON as text,
arrays as JSON text arrays, numbers with numeric affinity, timestamps as fixed-width ISO-8601 UTC
text (``2025-10-07T13:47:15.894173Z``: fixed width, so text order is time order and the
example queries' ``ORDER BY run_timestamp`` / ``MAX(run_timestamp)`` work unchanged), and ids as
``INTEGER PRIMARY KEY`` (SQLite only auto-increments that exact spelling).

SQLAlchemy's PostgreSQL dialect (with the asyncpg and asyncio modules it pulls in, about 50 ms)
is imported only when a PostgreSQL connection asks for a type's implementation: a command on a
SQLite ledger never loads it (``tests/cli/test_startup.py``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import TextClause

# Defined without SQLAlchemy (for processes that must not import it), used and exported here.
from testledger.store.encoding import format_utc, parse_utc

__all__ = [
    "BigId",
    "JsonDoc",
    "StringArray",
    "UtcDateTime",
    "format_utc",
    "now_default",
    "parse_utc",
]

#: ``BIGSERIAL`` / ``BIGINT`` on PostgreSQL, ``INTEGER`` (rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class _JsonDoc(sa.types.TypeDecorator[Any]):
    """JSONB on PostgreSQL, whose driver encodes and decodes the values itself; JSON kept as
    TEXT on SQLite (whose json functions read it as it is)."""

    impl = sa.Text()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value  # JSONB's own processor serialises it
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value  # decoded by the driver
        return json.loads(value)


#: JSONB on PostgreSQL, JSON text on SQLite.
JsonDoc = _JsonDoc()

_SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')"


def now_default(dialect_name: str) -> TextClause:
    """Server default for "now": ``now()`` on PostgreSQL, the same ISO text format on SQLite."""
    if dialect_name == "sqlite":
        return sa.text(_SQLITE_NOW)
    return sa.text("now()")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """TIMESTAMPTZ on PostgreSQL; ISO-8601 UTC text on SQLite. Always returns aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        from sqlalchemy.dialects.postgresql import TIMESTAMP

        return dialect.type_descriptor(TIMESTAMP(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format_utc(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return parse_utc(value)
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class StringArray(sa.types.TypeDecorator[list[str]]):
    """TEXT[] on PostgreSQL; a JSON text array on SQLite."""

    impl = sa.Text()
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY

            return dialect.type_descriptor(ARRAY(sa.Text()))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return list(value)
        return json.dumps(list(value), ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: Dialect) -> list[str] | None:
        if value is None:
            return None
        if isinstance(value, str):
            loaded = json.loads(value)
            return [str(item) for item in loaded]
        return [str(item) for item in value]
