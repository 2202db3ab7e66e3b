"""Turning a database URL into a SQLAlchemy engine, and URLs into text safe to print.

Accepted URLs: ``sqlite:///path/to/ledger.db``, a bare file path (taken as SQLite),
``postgresql://...`` and ``postgres://...`` (what Supabase hands out), which both use psycopg 3.

Behind a transaction pooler (pgbouncer in transaction mode, Supabase's pooler on port 6543) each
transaction may run on another server session, so nothing may rely on the session: psycopg's
automatic prepared statements are turned off and ``statement_timeout`` is set per transaction
(``SET LOCAL``) instead of at connect. That mode is taken on port 6543, or when the URL says
``?pgbouncer=true`` (``?pgbouncer=false`` turns it off, e.g. for a session pooler on 6543); the
option is testledger's and is not passed on to the driver.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError

from testledger.config import DEFAULT_STATEMENT_TIMEOUT_SECS
from testledger.errors import ConfigError

__all__ = [
    "POOLER_OPTION",
    "TRANSACTION_POOLER_PORT",
    "create_ledger_engine",
    "dialect_insert",
    "mask_url",
    "mask_urls_in",
    "normalize_url",
    "sqlite_path",
    "transaction_pooled",
]

#: A word and a colon, as URLs start (``htp:/x``, ``postgres:x``): not taken for a file name. A
#: single letter is a Windows drive (``C:\\ledger.db``), which is a path.
_LOOKS_LIKE_A_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")

#: A libpq keyword/value connection string (``host=db user=me password=...``) starts so.
_LIBPQ_KEYWORDS = re.compile(
    r"^(?:host|hostaddr|port|dbname|user|password|passfile|sslmode|service|connect_timeout"
    r"|options|application_name|target_session_attrs)\s*=",
    re.IGNORECASE,
)

_SCHEMES_WITHOUT_DRIVER = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


def normalize_url(url: str | URL) -> URL:
    """Parse a user's database URL (or SQLite file path) into a URL with testledger's drivers."""
    if isinstance(url, URL):
        parsed = url
    else:
        text = url.strip()
        if not text:
            raise ConfigError("the database URL is empty")
        if "://" not in text:
            if _LIBPQ_KEYWORDS.match(text):
                # Taken as a file name, it made a SQLite ledger named after the password.
                raise ConfigError(
                    "a keyword connection string (host=... dbname=...) is not supported: "
                    "use a postgresql:// URL (postgresql://user:password@host:5432/db)"
                )
            if _LOOKS_LIKE_A_SCHEME.match(text):
                raise ConfigError(
                    f"not a database URL: {mask_urls_in(text)!r} (use sqlite:///PATH, a file "
                    "path, or postgresql://user@host:5432/db)"
                )
            text = "sqlite:///" + str(Path(text).expanduser())
        try:
            parsed = make_url(text)
            parsed.port  # noqa: B018 - a non-numeric port raises only when read
        except (ArgumentError, ValueError) as exc:
            reason = "its port is not a number" if isinstance(exc, ValueError) else str(exc)
            raise ConfigError(f"not a database URL: {mask_urls_in(text)!r}: {reason}") from None
    driver = _SCHEMES_WITHOUT_DRIVER.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {backend!r} in {mask_url(parsed)}: use sqlite or postgresql"
        )
    if backend == "postgresql" and parsed.get_driver_name() not in ("psycopg", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def mask_url(url: str | URL) -> str:
    """The URL as text with its password replaced by ``***``: the only way URLs are printed."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return mask_urls_in(str(url))
    return parsed.render_as_string(hide_password=True)


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)", re.I)
_PASSWORD_IN_DSN = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\S+)", re.I)


def mask_urls_in(text: str) -> str:
    """Mask passwords in any text that may quote a URL or a libpq DSN (error messages, logs)."""
    text = _PASSWORD_IN_URL.sub(lambda m: m.group("head") + "***", text)
    return _PASSWORD_IN_DSN.sub(lambda m: m.group("head") + "***", text)


#: How long a connection keeps trying to switch a new SQLite file to WAL while another
#: process holds its lock (the same as the busy timeout writers wait for).
_WAL_SWITCH_SECS = 30.0


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode. Switching needs the file's exclusive lock, and SQLite answers
    "database is locked" at once, without its busy handler, while another connection holds it
    (several processes opening a new ledger together): so retry until the switch is made or
    the file is found in WAL mode already. A file in WAL mode stays so: no lock is needed."""
    deadline = time.monotonic() + _WAL_SWITCH_SECS
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (reports, the dashboard) work while a run is being recorded; NORMAL
    # synchronous is durable across application crashes in WAL mode and far faster than FULL.
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint every ~40 MB of WAL instead of SQLite's 4 MB: a run writes in batches, and
    # each checkpoint rewrites the same index pages and syncs the file; at the default,
    # checkpoints cost more than the inserts themselves (bench/record.py).
    cursor.execute("PRAGMA wal_autocheckpoint=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (None for other databases, memory and ``file:`` URIs)."""
    parsed = normalize_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None
    return Path(database).expanduser()


#: The port of Supabase's transaction pooler (its session pooler and the database use 5432).
TRANSACTION_POOLER_PORT = 6543
#: The URL query option saying whether a transaction pooler is in front of the database:
#: ``pgbouncer=true`` (the spelling Prisma reads, in Supabase's ORM examples) or ``false``.
POOLER_OPTION = "pgbouncer"
_YES = ("true", "1", "yes", "on")
_NO = ("false", "0", "no", "off")


def transaction_pooled(url: str | URL) -> bool:
    """Whether the PostgreSQL URL goes through a transaction pooler: its ``pgbouncer`` option
    when given, else whether its port is Supabase's transaction pooler's (6543)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql":
        return False
    value = parsed.query.get(POOLER_OPTION)
    if value is None:
        return parsed.port == TRANSACTION_POOLER_PORT
    said = (value if isinstance(value, str) else value[-1]).strip().lower()
    if said not in _YES + _NO:
        raise ConfigError(
            f"{POOLER_OPTION}={said!r} in {mask_url(parsed)}: use {POOLER_OPTION}=true (behind "
            f"a transaction pooler: pgbouncer, Supabase's port 6543) or {POOLER_OPTION}=false"
        )
    return said in _YES


def _statement_timeout_per_transaction(milliseconds: int) -> Callable[[Connection], None]:
    """A ``begin`` listener setting ``statement_timeout`` for the transaction alone: behind a
    transaction pooler a session setting would stay on a server connection other clients get
    next, and the next transaction of this one may run elsewhere without it."""

    def set_local(connection: Connection) -> None:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(f"SET LOCAL statement_timeout = {int(milliseconds)}")
        finally:
            cursor.close()

    return set_local


def create_ledger_engine(
    url: str | URL,
    *,
    connect_timeout: int = 10,
    create_folder: bool = True,
    statement_timeout_secs: float = DEFAULT_STATEMENT_TIMEOUT_SECS,
) -> Engine:
    """An engine for the URL; SQLite files get sane pragmas (and their folder created, unless
    ``create_folder`` is False); PostgreSQL sessions a ``statement_timeout`` (0: none), set per
    transaction and without prepared statements behind a transaction pooler."""
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(parsed)
        if path is not None and create_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        # How long a writer waits for another's lock before giving up (the recorder then
        # spools). sqlite3's own ``timeout``, so ``?timeout=SECONDS`` in the URL overrides it.
        if "timeout" not in parsed.query:
            kwargs["connect_args"] = {"timeout": 30.0}
        engine = sa.create_engine(parsed, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    pooled = transaction_pooled(parsed)
    parsed = parsed.difference_update_query([POOLER_OPTION])
    kwargs["connect_args"] = {"connect_timeout": connect_timeout}
    milliseconds = max(1, round(statement_timeout_secs * 1000))
    if pooled and parsed.get_driver_name() == "psycopg":
        # psycopg prepares a statement it has run 5 times on a connection; behind a transaction
        # pooler the next transaction may be on a server session that never saw it ("prepared
        # statement "_pg3_0" does not exist"), unless the pooler tracks them (pgbouncer 1.21+).
        kwargs["connect_args"]["prepare_threshold"] = None
    if statement_timeout_secs > 0 and not pooled:
        # Sent with the connection (not a SET afterwards), so it holds from the first statement;
        # before the URL's own ``options``, so that a statement_timeout set there wins. (A
        # pooler refuses or drops the ``options`` startup parameter: see below.)
        own = parsed.query.get("options")
        kwargs["connect_args"]["options"] = f"-c statement_timeout={milliseconds}" + (
            f" {own}" if isinstance(own, str) else ""
        )
    kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        if exc.name not in ("psycopg", "psycopg2"):
            raise
        raise ConfigError(
            "PostgreSQL needs the psycopg driver: pip install 'testledger[postgres]'"
        ) from None
    if pooled and statement_timeout_secs > 0:
        sa.event.listen(engine, "begin", _statement_timeout_per_transaction(milliseconds))
    return engine


def dialect_insert(connection: Connection) -> Callable[..., Any]:
    """The ``insert`` of the connection's own dialect (PostgreSQL's or SQLite's), whose
    ``ON CONFLICT`` clauses are spelt alike. Its dialect is imported only then: importing
    SQLAlchemy's PostgreSQL dialect costs a process on SQLite some 30 ms."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
