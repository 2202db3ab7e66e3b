"""Connecting to a ledger database, with errors a user can act on (passwords masked)."""

from __future__ import annotations

import logging
import sqlite3
import sys

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from testledger.config import DEFAULT_STATEMENT_TIMEOUT_SECS
from testledger.errors import DatabaseUnavailable, NotFound, SchemaError, TestledgerError
from testledger.store.engine import create_ledger_engine, mask_url, mask_urls_in, sqlite_path
from testledger.store.migrate import ensure_schema, is_at_head, schema_state

__all__ = [
    "DATABASE_ERRORS",
    "connect_engine",
    "database_errors",
    "open_engine",
    "skipped_work_level",
]


_ERRORS: tuple[type[BaseException], ...] = (
    TestledgerError,
    SQLAlchemyError,
    OSError,
    sqlite3.Error,
)


def database_errors() -> tuple[type[BaseException], ...]:
    """Everything that means "the database did not take this write": catch these to fall back
    to the spool. The bulk writers talk to the drivers directly, so the drivers' own exception
    classes count too. psycopg's are included once psycopg is imported (a PostgreSQL engine
    imports it before any of its errors can be raised), so that recording into SQLite never
    pays for importing psycopg (about 45 ms)."""
    psycopg = sys.modules.get("psycopg")
    return _ERRORS if psycopg is None else (*_ERRORS, psycopg.Error)


def skipped_work_level(exc: BaseException) -> int:
    """The logging level for work that follows a run (detection, retention) and was skipped
    over one of :func:`database_errors`: a warning for the database's trouble, which passes
    (the next command completes the work); an error for a problem someone must fix first, met
    again after every run until then: a setting, a rules file, a schema (every
    TestledgerError but DatabaseUnavailable)."""
    outage = not isinstance(exc, TestledgerError) or isinstance(exc, DatabaseUnavailable)
    return logging.WARNING if outage else logging.ERROR


#: :func:`database_errors` as it stood when this module was imported: psycopg's errors are in
#: it only if psycopg had been imported by then. Code that catches errors raised by psycopg
#: directly (not through SQLAlchemy) calls :func:`database_errors` instead.
DATABASE_ERRORS: tuple[type[BaseException], ...] = database_errors()


def open_engine(
    url: str,
    *,
    create: bool = True,
    statement_timeout_secs: float = DEFAULT_STATEMENT_TIMEOUT_SECS,
) -> Engine:
    """An engine whose database answered a first connection (no schema check). With ``create``
    False a SQLite file that does not exist is not created: NotFound.

    Raises DatabaseUnavailable naming the database with its password masked."""
    path = sqlite_path(url)
    if not create and path is not None and not path.is_file():
        raise NotFound(f"no ledger at {path}: {_HOW_TO_START}")
    engine = create_ledger_engine(
        url, create_folder=create, statement_timeout_secs=statement_timeout_secs
    )
    try:
        with engine.connect():
            pass
    except (DBAPIError, SQLAlchemyError, OSError) as exc:
        engine.dispose()
        original = getattr(exc, "orig", None) or exc
        detail = mask_urls_in(" ".join(str(original).split()))
        raise DatabaseUnavailable(f"cannot connect to {mask_url(url)}: {detail}") from None
    return engine


_HOW_TO_START = (
    "record a run first (pytest --ledger, testledger import), or name the ledger with --db"
)


def connect_engine(
    url: str,
    *,
    create: bool = True,
    statement_timeout_secs: float = DEFAULT_STATEMENT_TIMEOUT_SECS,
) -> Engine:
    """An engine on a usable ledger: reachable, and its schema current (an empty database is
    migrated on first use). With ``create`` False, for reading, nothing is created: a missing
    SQLite file or a database without testledger's schema is NotFound. Raises
    DatabaseUnavailable or SchemaError."""
    engine = open_engine(url, create=create, statement_timeout_secs=statement_timeout_secs)
    try:
        if is_at_head(engine):
            return engine  # the common case, in one query
        if not create:
            with engine.connect() as connection:
                if schema_state(connection).is_empty:
                    raise NotFound(f"no ledger in {mask_url(url)}: {_HOW_TO_START}")
        ensure_schema(engine)
    except (OperationalError, InterfaceError):
        engine.dispose()
        raise  # the connection failed: an outage, which the recorder spools through
    except DBAPIError as exc:
        engine.dispose()
        # The database answered and refused the schema (a constraint, a permission): not an
        # outage, and never to be reported as one.
        detail = mask_urls_in(" ".join(str(getattr(exc, "orig", None) or exc).split()))
        raise SchemaError(f"cannot create the schema in {mask_url(url)}: {detail}") from exc
    except BaseException:
        engine.dispose()
        raise
    return engine
