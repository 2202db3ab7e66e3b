"""Row level security and roles on a real PostgreSQL set up as Supabase's is.

The cluster gets Supabase's roles (``anon`` and ``authenticated`` NOLOGIN, ``service_role``
NOLOGIN BYPASSRLS, ``authenticator`` LOGIN NOINHERIT granted the three, as PostgREST connects)
and an owner that is no superuser (Supabase's ``postgres`` is not one either); the database gets
Supabase's default privileges (every privilege on new tables to the three roles). It is migrated
and a small history recorded as the owner, then every role tries every verb on every table and
view: ``anon`` is refused everything, ``authenticated`` and ``testledger_reader`` (through a
login made by ``testledger db roles --apply --reader-login``) read every row of every table but
``api_tokens`` and write nothing, ``service_role`` and the owner do everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors as pgerrors

from testledger import Ledger, api
from testledger.model import WatcherObservation
from testledger.store.engine import create_ledger_engine
from testledger.store.ingest_batches import claim_batch
from testledger.store.migrate import _config, upgrade
from testledger.store.roles import (
    LEDGER_VIEWS,
    PRIVATE_TABLES,
    READER_ROLE,
    VERSION_TABLE,
    ledger_tables,
)
from testledger.store.tables import metadata, regression_baselines, test_daily_stats, test_runs
from testledger.store.tokens import insert_token, new_secret
from tests.histories import record_test, scripted_run
from tests.pgdatabases import database_name, drop_database
from tests.pgdatabases import database_url as pg_database_url

pytestmark = pytest.mark.postgres

OWNER = "tl_rls_owner"
READER_LOGIN = "tl_rls_reader"

#: Supabase's roles (supabase/postgres: roles.sql), as far as testledger is concerned.
_SUPABASE_ROLES = (
    "CREATE ROLE anon NOLOGIN NOINHERIT",
    "CREATE ROLE authenticated NOLOGIN NOINHERIT",
    "CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS",
    "CREATE ROLE authenticator LOGIN NOINHERIT",
    f"CREATE ROLE {OWNER} LOGIN CREATEROLE NOSUPERUSER",
)
_SUPABASE_GRANTS = (
    "GRANT anon, authenticated, service_role TO authenticator",
    f"GRANT anon, authenticated, service_role TO {OWNER}",
)
#: Supabase's default privileges in ``public`` for objects its ``postgres`` role creates.
_SUPABASE_DEFAULTS = (
    "GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role",
    f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public "
    "GRANT ALL ON TABLES TO anon, authenticated, service_role",
    f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public "
    "GRANT ALL ON SEQUENCES TO anon, authenticated, service_role",
)


def _admin(url: str, *statements: str, tolerate_existing: bool = False) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            try:
                conn.execute(statement.encode())
            except (pgerrors.DuplicateObject, pgerrors.UniqueViolation):
                # Roles are the cluster's: another session or xdist worker made it first.
                if not tolerate_existing:
                    raise


def _as(url: str, user: str) -> str:
    return sa.engine.make_url(url).set(username=user).render_as_string(hide_password=False)


def _record_history(url: str, results: Path) -> None:
    """Runs with failures (issues, occurrences, fingerprints, events), watcher observations, a
    token, an ingest batch and a day of retained statistics: a row in every table."""
    with Ledger(url, results_dir=results) as ledger:
        for index in range(3):
            with scripted_run(ledger, index, commit=f"c{index}") as run:
                record_test(run, "chat/basic", "FAIL", error_message="boom at step 3")
                ref = record_test(run, "chat/long", "PASS")
                run.attach_watcher(ref, WatcherObservation(quality_score=7))
        with ledger.engine().begin() as conn:
            insert_token(conn, new_secret(), "read", "dashboard")
            run_id = conn.execute(sa.select(sa.func.max(test_runs.c.id))).scalar_one()
            claim_batch(conn, run_id, "batch-1", 2)
            conn.execute(
                sa.insert(test_daily_stats).values(
                    day=date(2025, 9, 1),
                    suite="s",
                    branch_name="main",
                    test_id="chat/basic",
                    tool_name="chat",
                    results=1,
                    passed=0,
                    failed=1,
                    skipped=0,
                    errored=0,
                    duration_count=0,
                    watcher_quality_count=0,
                )
            )
            # Regression detection needs ten runs before it keeps a baseline: one written here.
            conn.execute(
                sa.insert(regression_baselines).values(
                    suite="s",
                    branch_name="main",
                    test_id="chat/long",
                    metric="duration",
                    last_run_id=run_id,
                    last_run_at=sa.select(test_runs.c.run_timestamp)
                    .where(test_runs.c.id == run_id)
                    .scalar_subquery(),
                    log_scale=True,
                    recent=bytes(24),  # three float64 zeros
                    older_weight=0.0,
                    older_sum=0.0,
                    older_test_sum=0.0,
                    older_test_squares=0.0,
                )
            )


@dataclass(frozen=True)
class SupabaseDb:
    owner_url: str
    #: relation -> its row count, as the owner reads it.
    counts: dict[str, int]
    #: table -> a new row for it (see _copy_of_a_row).
    copies: dict[str, dict[str, Any]]
    #: login -> an engine connecting as it.
    engines: dict[str, sa.Engine]


@pytest.fixture(scope="module")
def supabase_db(
    pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SupabaseDb]:
    """A migrated database with a small history, in a Supabase-like cluster."""
    admin_url = sa.engine.make_url(pg_admin_url).set(drivername="postgresql")
    admin = admin_url.render_as_string(hide_password=False)
    _admin(admin, *_SUPABASE_ROLES, tolerate_existing=True)
    _admin(admin, *_SUPABASE_GRANTS)
    name = database_name("rls")
    _admin(admin, f'CREATE DATABASE "{name}" OWNER {OWNER}')
    try:
        database_url = pg_database_url(admin, name)
        _admin(database_url, *_SUPABASE_DEFAULTS)
        owner_url = _as(database_url, OWNER)
        _record_history(owner_url, tmp_path_factory.mktemp("rls-results"))
        migrated = _access_snapshot(owner_url)
        with Ledger(owner_url, results_dir=tmp_path_factory.mktemp("rls-roles")) as ledger:
            applied = api.database_roles(ledger, apply=True, reader_login=READER_LOGIN)
        # The migration gave every table and view the access `db roles` gives: the roles below
        # test what the migration alone did (the login aside).
        assert _access_snapshot(owner_url) == migrated
        assert applied.tables_without_rls == []
        assert applied.roles == dict.fromkeys(
            ("anon", "authenticated", "service_role", READER_ROLE), True
        )
        engine = create_ledger_engine(owner_url)
        try:
            with engine.connect() as conn:
                counts = {
                    relation: int(
                        conn.exec_driver_sql(f"SELECT count(*) FROM {relation}").scalar_one()
                    )
                    for relation in (*TABLES, *LEDGER_VIEWS)
                }
                copies = {
                    name: _copy_of_a_row(conn, table) for name, table in TABLE_DEFINITIONS.items()
                }
        finally:
            engine.dispose()
        empty = [relation for relation in TABLES if not counts[relation]]
        assert empty == [], "the history must give every table a row"
        logins = {login for login, _ in CONNECTIONS.values()}
        engines = {login: create_ledger_engine(_as(owner_url, login)) for login in logins}
        yield SupabaseDb(owner_url, counts, copies, engines)
        for engine in engines.values():
            engine.dispose()
    finally:
        drop_database(pg_admin_url, name)


def _access_snapshot(url: str) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """Every relation's privileges, RLS and options; every policy."""
    with psycopg.connect(url) as conn:
        relations = {
            (name, tuple(sorted(acl or ())), secured, tuple(options or ()))
            for name, acl, secured, options in conn.execute(
                "SELECT relname, relacl::text[], relrowsecurity, reloptions FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace"
            )
        }
        policies = {
            (table, name, command, tuple(roles), using, check)
            for table, name, command, roles, using, check in conn.execute(
                "SELECT polrelid::regclass::text, polname, polcmd, polroles::regrole[]::text[], "
                "pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) "
                "FROM pg_policy"
            )
        }
    return relations, policies


# Who connects how: (login, role set inside the transaction or None).
CONNECTIONS: dict[str, tuple[str, str | None]] = {
    "owner": (OWNER, None),
    "service_role": ("authenticator", "service_role"),
    "authenticated": ("authenticator", "authenticated"),
    "testledger_reader": (READER_LOGIN, None),
    "anon": ("authenticator", "anon"),
}
READERS = ("authenticated", "testledger_reader")
WRITERS = ("owner", "service_role")
#: Every table, Alembic's too (secured: Supabase's default privileges let anon write it).
TABLE_DEFINITIONS: dict[str, sa.Table] = {
    **metadata.tables,
    VERSION_TABLE: sa.Table(
        VERSION_TABLE, sa.MetaData(), sa.Column("version_num", sa.String(32), primary_key=True)
    ),
}
TABLES = ledger_tables()
VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE")


def expected(role: str, relation: str, verb: str) -> str:
    """``all``: the verb works on every row; ``denied``: permission denied; ``refused``: an
    error of any kind (a view is not writable)."""
    if relation in LEDGER_VIEWS:
        if verb != "SELECT":
            return "refused"
        return "denied" if role == "anon" else "all"
    if role in WRITERS:
        return "all"
    if role in READERS and verb == "SELECT" and relation not in PRIVATE_TABLES:
        return "all"
    return "denied"


def _copy_of_a_row(conn: sa.Connection, table: sa.Table) -> dict[str, Any]:
    """An existing row of ``table`` made new: its serial id left to the sequence, and each unique
    key made distinct (a text column suffixed, or else a nullable column emptied)."""
    row = dict(conn.execute(sa.select(table).limit(1)).mappings().one())
    serial = [c for c in table.primary_key.columns if c.autoincrement is True or c.name == "id"]
    for column in serial:
        row.pop(column.name)
    keys = [list(c.columns) for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    keys += [list(index.columns) for index in table.indexes if index.unique]
    if not serial:
        keys.append(list(table.primary_key.columns))
    for key in keys:
        text = [c for c in key if isinstance(c.type, sa.String)]
        nullable = [c for c in key if c.nullable]
        if text:
            row[text[0].name] = f"{row[text[0].name]}-copy"
        elif nullable:
            row[nullable[0].name] = None
        else:  # a new table's unique key: teach this function how to copy its rows
            raise AssertionError(f"cannot copy a row of {table.name}: unique key {key}")
    return row


def _try(db: SupabaseDb, role: str, relation: str, verb: str) -> tuple[str, int]:
    """(outcome, rows): ``ok`` with the rows read or written, ``denied`` or ``refused``. Every
    try is rolled back."""
    login, set_role = CONNECTIONS[role]
    engine = db.engines[login]
    table = TABLE_DEFINITIONS.get(relation)
    any_row = f"(SELECT ctid FROM {relation} LIMIT 1)"
    with engine.connect() as conn, conn.begin() as transaction:
        row = db.copies.get(relation, {})
        if set_role is not None:
            conn.exec_driver_sql(f"SET LOCAL ROLE {set_role}")
        try:
            with conn.begin_nested():
                if verb == "SELECT":
                    rows = conn.exec_driver_sql(f"SELECT count(*) FROM {relation}").scalar_one()
                elif table is None:  # a view: try to write it anyway
                    statement = {
                        "INSERT": f"INSERT INTO {relation} SELECT * FROM {relation} LIMIT 1",
                        "UPDATE": f"UPDATE {relation} SET {_a_column(conn, relation)} = "
                        f"{_a_column(conn, relation)}",
                        "DELETE": f"DELETE FROM {relation}",
                    }[verb]
                    rows = conn.exec_driver_sql(statement).rowcount
                elif verb == "INSERT":
                    rows = len(conn.execute(_insert(table, row)).all())
                elif verb == "UPDATE":
                    last = list(table.columns)[-1]  # alembic_version has its key alone
                    column = next(c.name for c in table.columns if not c.primary_key or c is last)
                    rows = conn.exec_driver_sql(
                        f"UPDATE {relation} SET {column} = {column} WHERE ctid = {any_row}"
                    ).rowcount
                else:
                    # The copy is deleted (an existing row may be another's parent); a
                    # role that may not insert it tries an existing row instead.
                    try:
                        with conn.begin_nested():
                            inserted = conn.execute(_insert(table, row)).scalar_one()
                        target = f"'{inserted}'"
                    except sa.exc.DBAPIError:
                        target = any_row
                    rows = conn.exec_driver_sql(
                        f"DELETE FROM {relation} WHERE ctid = {target}"
                    ).rowcount
        except sa.exc.DBAPIError as exc:
            denied = isinstance(exc.orig, pgerrors.InsufficientPrivilege)
            return ("denied" if denied else "refused"), 0
        transaction.rollback()
        return "ok", int(rows)


def _insert(table: sa.Table, row: dict[str, Any]) -> sa.Insert:
    return sa.insert(table).values(**row).returning(sa.literal_column("ctid"))


def _a_column(conn: sa.Connection, view: str) -> str:
    return str(
        conn.exec_driver_sql(
            f"SELECT attname FROM pg_attribute WHERE attrelid = '{view}'::regclass AND attnum = 1"
        ).scalar_one()
    )


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("relation", TABLES + LEDGER_VIEWS)
@pytest.mark.parametrize("role", list(CONNECTIONS))
def test_every_role_and_verb_on_every_table_and_view(
    supabase_db: SupabaseDb, role: str, relation: str, verb: str
) -> None:
    outcome, rows = _try(supabase_db, role, relation, verb)
    want = expected(role, relation, verb)
    if want == "refused":
        assert outcome in ("refused", "denied"), (outcome, rows)
        return
    assert outcome == ("ok" if want == "all" else "denied"), (outcome, rows)
    if want == "all":
        # Every row read (the views too: security_invoker runs them with the role's policies),
        # or the one row written.
        assert rows == (supabase_db.counts[relation] if verb == "SELECT" else 1)


def test_every_table_of_the_schema_has_row_level_security(pg_url: str) -> None:
    """A table a later migration adds fails here until that migration enables RLS on it (`db
    roles --apply` would cover it, the migrations alone must too)."""
    engine = create_ledger_engine(pg_url)
    try:
        upgrade(engine)
        state = _security(engine)
    finally:
        engine.dispose()
    assert set(state.tables) == set(TABLES)
    assert [name for name, secured in state.tables.items() if not secured] == []
    assert set(state.views) == set(LEDGER_VIEWS)
    if state.version >= 150000:
        assert all(state.views.values()), state.views


def test_the_migration_alone_secures_a_database_and_its_downgrade_undoes_it(pg_url: str) -> None:
    from alembic import command

    engine = create_ledger_engine(pg_url)
    try:
        upgrade(engine)
        secured = _security(engine)
        assert all(secured.tables.values()) and secured.policies > 0
        assert all(secured.views.values()) or secured.version < 150000
        with engine.begin() as conn:
            command.downgrade(_config(conn), "0009")
        undone = _security(engine)
        assert not any(undone.tables.values()) and undone.policies == 0
        assert not any(undone.views.values())
        upgrade(engine)
        assert _security(engine) == secured
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Security:
    version: int
    #: table -> row level security on; view -> security_invoker on.
    tables: dict[str, bool]
    views: dict[str, bool]
    policies: int


def _security(engine: sa.Engine) -> Security:
    with engine.connect() as conn:
        relations = conn.exec_driver_sql(
            "SELECT relname, relkind, relrowsecurity, "
            "coalesce('security_invoker=true' = ANY(reloptions), false) FROM pg_class "
            "WHERE relkind IN ('r', 'v') AND relnamespace = 'public'::regnamespace"
        ).all()
        policies = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_policies WHERE schemaname = 'public'"
        ).scalar_one()
        version = conn.exec_driver_sql("SHOW server_version_num").scalar_one()
    return Security(
        version=int(version),
        tables={row[0]: bool(row[2]) for row in relations if row[1] == "r"},
        views={row[0]: bool(row[3]) for row in relations if row[1] == "v"},
        policies=int(policies),
    )


# -- testledger db roles ---------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from testledger.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_db_roles_prints_the_sql_without_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    code, out, _ = _cli(capsys, "--db", ledger, "db", "roles", "--reader-login", "grafana")
    assert code == 0 and out.startswith("DO $testledger$") and out.rstrip().endswith("$;")
    assert "ENABLE ROW LEVEL SECURITY" in out and "reader_login text := 'grafana'" in out
    assert not (tmp_path / "ledger.db").exists()
    code, out, _ = _cli(capsys, "db", "roles", "--json")
    assert code == 0 and json.loads(out)["applied"] is False


@pytest.mark.parametrize(
    "login", ["Grafana", "x; DROP TABLE test_runs", "anon", READER_ROLE, "9lives", "a" * 64, ""]
)
def test_db_roles_refuses_a_login_name_it_would_have_to_quote(
    login: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(capsys, "db", "roles", "--reader-login", login)
    assert code == 1 and err.startswith("error: not a login name") and len(err.splitlines()) == 1


def test_db_roles_apply_is_postgresql_s(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "--db", str(tmp_path / "l.db"), "db", "roles", "--apply")
    assert code == 1 and "PostgreSQL's" in err and "SQLite" in err


def test_db_roles_apply_secures_tables_a_later_release_adds(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_ledger_engine(pg_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:  # as a table added without RLS would be
            conn.exec_driver_sql("ALTER TABLE ingest_batches DISABLE ROW LEVEL SECURITY")
        code, out, _ = _cli(capsys, "--db", pg_url, "db", "roles", "--apply", "--json")
        assert code == 0
        done = json.loads(out)
        assert done["applied"] and done["tables_without_rls"] == [] and done["warnings"] == []
        assert done["roles"][READER_ROLE] is True
        assert all(_security(engine).tables.values())
        code, out, _ = _cli(capsys, "--db", pg_url, "db", "roles", "--apply")
        assert code == 0 and "row level security and grants applied" in out
    finally:
        engine.dispose()


def test_db_roles_apply_by_a_role_that_does_not_own_the_tables_changes_nothing(
    pg_url: str, pg_admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = "tl_rls_stranger"
    admin = sa.engine.make_url(pg_admin_url).set(drivername="postgresql")
    _admin(
        admin.render_as_string(hide_password=False),
        f"CREATE ROLE {stranger} LOGIN",
        tolerate_existing=True,
    )
    engine = create_ledger_engine(pg_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"GRANT SELECT ON alembic_version TO {stranger}")
            conn.exec_driver_sql(
                f"CREATE POLICY stranger_read ON alembic_version FOR SELECT TO {stranger} "
                "USING (true)"
            )
            conn.exec_driver_sql("ALTER TABLE ingest_batches DISABLE ROW LEVEL SECURITY")
        code, out, err = _cli(capsys, "--db", _as(pg_url, stranger), "db", "roles", "--apply")
        assert code == 1 and not out
        assert err.startswith("error: cannot apply the roles in ") and "must be owner" in err
        assert len(err.splitlines()) == 1
        assert _security(engine).tables["ingest_batches"] is False  # rolled back whole
    finally:
        engine.dispose()


def test_a_reader_login_runs_the_reports_and_cannot_record(
    supabase_db: SupabaseDb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = _as(supabase_db.owner_url, READER_LOGIN)
    code, out, _ = _cli(capsys, "--db", reader, "runs", "--json")
    assert code == 0 and len(json.loads(out)) == supabase_db.counts["test_runs"]
    code, out, _ = _cli(capsys, "--db", reader, "show", "--json")
    assert code == 0 and json.loads(out)["failing"]
    code, _, _ = _cli(capsys, "--db", reader, "trend", "--json")
    assert code == 0
    with Ledger(reader, results_dir=tmp_path / "results") as ledger:
        with ledger.start_run(branch="main", run_key="by-a-reader") as run:
            run.record(tool_name="t", variation="v", status="PASS")
    assert run.spooled  # refused by the database: kept in the spool, never half-written
    assert "by-a-reader" not in json.dumps(_cli(capsys, "--db", reader, "runs", "--json")[1])
