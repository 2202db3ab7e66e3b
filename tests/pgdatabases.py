"""The tests' PostgreSQL databases: copies of a migrated template, made ahead and used again.

Each PostgreSQL test starts from a database of its own. CREATE DATABASE ... TEMPLATE writes
some 8 MB and creates hundreds of files: 0.19 s of the server's time per test, and the
server's CPU, most of it in the kernel, was about a third of the suite's on a 2-core machine.
So a test's database is reset for the next test instead of being dropped, when it can be:

* every other connection to it is ended (a test's engine may still hold some);
* every table is emptied (``TRUNCATE ... RESTART IDENTITY``: ids start again from 1), except
  Alembic's version table, and the planner's statistics of its rows are forgotten;
* its schema (tables, columns, defaults, constraints, indexes, views, policies, triggers,
  functions, grants, the migration revision) must read exactly as it did when the database
  was first copied from the template; a test that changed it (a downgrade, a dropped policy)
  gets its database dropped as before;
* the database is renamed, so that a process the test left running (a writer still
  detecting issues after its session) cannot reach the next test's database by name.

Anything that goes wrong while resetting drops the database instead: a reset is only ever
an optimisation. All of this runs on one thread of its own, so that tests wait only when
they need a database that is not ready yet.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
import sqlalchemy as sa

__all__ = [
    "PgDatabases",
    "admin_execute",
    "database_name",
    "database_url",
    "drop_database",
    "fresh_database",
]

_counter = itertools.count()

#: Everything a test could change about a database besides its rows, as one digest. The
#: schemas are the database's own: every one but PostgreSQL's catalogs.
_OWN = (
    "NOT IN (SELECT oid FROM pg_namespace"
    " WHERE nspname LIKE 'pg\\_%' OR nspname = 'information_schema')"
)
_SHAPE = f"""
SELECT md5(string_agg(item, E'\\n' ORDER BY item)) FROM (
  SELECT concat_ws(' ', 'schema', nspname, nspacl::text) FROM pg_namespace WHERE oid {_OWN}
  UNION ALL
  SELECT concat_ws(' ', 'relation', c.oid::regclass::text, c.relkind::text,
                   c.relrowsecurity::text, c.relforcerowsecurity::text, c.relacl::text,
                   CASE WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid)) END)
    FROM pg_class c WHERE c.relnamespace {_OWN}
  UNION ALL
  SELECT concat_ws(' ', 'column', a.attrelid::regclass::text, a.attname::text,
                   format_type(a.atttypid, a.atttypmod), a.attnotnull::text,
                   pg_get_expr(d.adbin, d.adrelid), a.attacl::text)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relnamespace {_OWN}
  UNION ALL
  SELECT concat_ws(' ', 'constraint', conrelid::regclass::text, conname::text,
                   pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace {_OWN}
  UNION ALL
  SELECT concat_ws(' ', 'index', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace {_OWN}
  UNION ALL
  SELECT concat_ws(' ', 'policy', polrelid::regclass::text, polname::text, polcmd::text,
                   polpermissive::text, polroles::text, pg_get_expr(polqual, polrelid),
                   pg_get_expr(polwithcheck, polrelid))
    FROM pg_policy
  UNION ALL
  SELECT concat_ws(' ', 'trigger', tgrelid::regclass::text, tgname::text, tgenabled::text,
                   pg_get_triggerdef(oid))
    FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
  SELECT concat_ws(' ', 'function', p.oid::regprocedure::text, md5(p.prosrc), p.proacl::text,
                   p.proconfig::text)
    FROM pg_proc p WHERE p.pronamespace {_OWN}
  UNION ALL
  SELECT concat_ws(' ', 'extension', extname::text, extversion) FROM pg_extension
  UNION ALL
  SELECT concat_ws(' ', 'database', datacl::text) FROM pg_database
   WHERE datname = current_database()
  UNION ALL
  SELECT concat_ws(' ', 'settings', setrole::text, setconfig::text) FROM pg_db_role_setting
   WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL
  SELECT concat_ws(' ', 'revision', version_num) FROM alembic_version
) AS shape(item)
"""

_TABLES = f"""
SELECT c.oid::regclass::text FROM pg_class c
 WHERE c.relkind IN ('r', 'p') AND c.relnamespace {_OWN} AND c.relname <> 'alembic_version'
"""

_RELATIONS = f"SELECT oid FROM pg_class WHERE relnamespace {_OWN}"

_OTHERS = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


def database_name(prefix: str) -> str:
    """A database name no other session, xdist worker or earlier test of this one uses."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}_{worker}_{os.getpid()}_{next(_counter)}"


def admin_execute(admin_url: str, sql: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        admin.dispose()


def database_url(admin_url: str, name: str) -> str:
    url = sa.engine.make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False)


def fresh_database(admin_url: str, template: str | None = None) -> tuple[str, str]:
    """A new database (its URL and name): empty, or a copy of ``template`` (which nobody may be
    connected to)."""
    name = database_name("tl")
    copy = f' TEMPLATE "{template}"' if template else ""
    admin_execute(admin_url, f'CREATE DATABASE "{name}"{copy}')
    return database_url(admin_url, name), name


def drop_database(admin_url: str, name: str) -> None:
    admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PgDatabases:
    """Creates, resets and drops the tests' PostgreSQL databases in a thread of its own: the
    next copy of a database is made while a test runs (the first of each is waited for), and
    a test's database is reset (or dropped) after it."""

    def __init__(self, admin_url: str) -> None:
        self._admin_url = admin_url
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-databases")
        self._ahead: dict[str, Future[str]] = {}  # source database -> its next copy
        #: source -> databases being reset for a next test (None: dropped instead).
        self._reset: dict[str, list[Future[str | None]]] = {}
        #: source -> the digest of its schema (_SHAPE), read from its first copy.
        self._shapes: dict[str, str] = {}
        #: database -> the source it was copied from, for the copies that may be reset.
        self._sources: dict[str, str] = {}
        self._closed = False
        self.counts = {"created": 0, "reset": 0, "dropped": 0}

    def _make(self, source: str) -> str:
        _, name = fresh_database(self._admin_url, template=source)
        self.counts["created"] += 1
        return name

    def _drop(self, name: str) -> None:
        drop_database(self._admin_url, name)
        self.counts["dropped"] += 1

    def take_copy(self, source: str, *, reusable: bool = False) -> str:
        """The name of a copy of ``source``, the caller's to use and :meth:`drop_later`.
        ``reusable``: ``source`` is a migrated template (no rows), so that a reset copy of it
        is as good as a new one."""
        for pending in self._reset.pop(source, []) if reusable else []:
            name = pending.result()
            if name is not None:
                self._sources[name] = source
                return name
        ahead = self._ahead.pop(source, None)
        name = ahead.result() if ahead is not None else self._make(source)
        if reusable:
            self._sources[name] = source
            if source not in self._shapes:
                self._shapes[source] = _read(database_url(self._admin_url, name), _SHAPE)
        if not self._closed and not reusable:
            self._ahead[source] = self._worker.submit(self._make, source)
        return name

    def drop_later(self, name: str) -> None:
        """Reset ``name`` for a next test when it is a copy of a template, else drop it (and
        the copy made ahead of it, if any; one thread: in that order)."""
        source = self._sources.pop(name, None)
        if source is not None and not self._closed:
            self._reset.setdefault(source, []).append(
                self._worker.submit(self._reset_or_drop, name, source)
            )
            return
        ahead = self._ahead.pop(name, None)
        if self._closed:
            self._drop(name)
            return
        if ahead is not None:
            self._worker.submit(lambda: self._drop(ahead.result()))
        self._worker.submit(self._drop, name)

    def _reset_or_drop(self, name: str, source: str) -> str | None:
        """``name`` emptied and renamed (its new name), or dropped (None)."""
        try:
            url = database_url(self._admin_url, name)
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                conn.execute("SET lock_timeout = '2s'")
                conn.execute(_OTHERS)
                tables = [row[0] for row in conn.execute(_TABLES)]
                if tables:
                    conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
                # The planner's statistics of the last test's rows, which TRUNCATE keeps: a
                # test that reads a plan gets the template's (none), as a new copy has.
                conn.execute(f"DELETE FROM pg_statistic WHERE starelid IN ({_RELATIONS})")
                shape = conn.execute(_SHAPE).fetchone()
            if shape is None or shape[0] != self._shapes.get(source):
                raise ValueError("the test changed its database's schema")
            renamed = database_name("tl")
            with psycopg.connect(self._admin_url, autocommit=True, connect_timeout=10) as admin:
                admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{renamed}"')
        except Exception:  # anything at all: a reset is only an optimisation
            with contextlib.suppress(Exception):
                self._drop(name)
            return None
        self.counts["reset"] += 1
        return renamed

    def close(self) -> None:
        """Drops the copies made ahead and those reset, once every pending task is done."""
        self._closed = True
        self._worker.shutdown(wait=True)
        for ahead in self._ahead.values():
            if ahead.exception() is None:
                self._drop(ahead.result())
        self._ahead.clear()
        for pending in self._reset.values():
            for future in pending:
                name = future.result()
                if name is not None:
                    self._drop(name)
        self._reset.clear()


def _read(url: str, sql: str) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None and isinstance(row[0], str), row
    return row[0]
