"""Connecting to a ledger database, with errors a user can act on (passwords masked)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from testledger.errors import DatabaseUnavailable, TestledgerError
from testledger.store.engine import create_ledger_engine, mask_url, mask_urls_in
from testledger.store.migrate import ensure_schema

__all__ = ["DATABASE_ERRORS", "connect_engine", "open_engine"]


def _driver_errors() -> tuple[type[BaseException], ...]:
    # The bulk writers talk to the drivers directly, so their own exception classes surface
    # too; psycopg is optional (the ``postgres`` extra).
    import sqlite3

    errors: list[type[BaseException]] = [sqlite3.Error]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - without the postgres extra
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


#: Everything that means "the database did not take this write": catch these to fall back to
#: the spool.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    TestledgerError,
    SQLAlchemyError,
    OSError,
    *_driver_errors(),
)


def open_engine(url: str) -> Engine:
    """An engine whose database answered a first connection (no schema check).

    Raises DatabaseUnavailable naming the database with its password masked."""
    engine = create_ledger_engine(url)
    try:
        with engine.connect():
            pass
    except (DBAPIError, SQLAlchemyError, OSError) as exc:
        engine.dispose()
        original = getattr(exc, "orig", None) or exc
        detail = mask_urls_in(" ".join(str(original).split()))
        raise DatabaseUnavailable(f"cannot connect to {mask_url(url)}: {detail}") from None
    return engine


def connect_engine(url: str) -> Engine:
    """An engine on a usable ledger: reachable, and its schema current (an empty database is
    migrated on first use). Raises DatabaseUnavailable or SchemaError."""
    engine = open_engine(url)
    try:
        ensure_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
