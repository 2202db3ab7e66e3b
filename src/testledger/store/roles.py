"""Row level security and roles on PostgreSQL: the SQL that gives read-only reporting access.

Migration ``0010`` applies the same rules once, to the tables and views that existed then; this
module builds them from the live schema (``tables.metadata`` and :data:`LEDGER_VIEWS`), so
``testledger db roles --apply`` also covers tables added since, and creates a login for a
reporting tool. The SQL is one idempotent ``DO`` block (it can be run any number of times, and
pasted into Supabase's SQL editor) that decides at run time what exists:

* every ledger table, ``alembic_version`` included (Supabase's default privileges would let
  ``anon`` rewrite the schema's revision), gets ROW LEVEL SECURITY (not FORCE: the tables'
  owner, which records and migrates, is not subject to it);
* ``anon`` (Supabase's role for requests without a user): no privilege on anything;
* ``authenticated`` (a signed-in Supabase user) and ``testledger_reader`` (created NOLOGIN if
  missing; grant it to logins): SELECT on every table but ``api_tokens`` (token hashes) and on
  every view, a SELECT policy, and no other privilege;
* ``service_role`` (Supabase's server key; it has BYPASSRLS there): everything, with a policy
  too in case it lacks BYPASSRLS;
* views run with the invoker's rights (``security_invoker``, PostgreSQL 15+), so a view never
  shows a role rows its tables' policies hide. On PostgreSQL 14 and older a view runs with its
  owner's rights, bypassing RLS: only roles granted SELECT on it (above) read it, and a warning
  says so.

Roles that are absent are skipped, so the same SQL serves Supabase and a plain PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError
from testledger.store.tables import metadata

__all__ = [
    "LEDGER_VIEWS",
    "PRIVATE_TABLES",
    "READER_ROLE",
    "SUPABASE_ROLES",
    "VERSION_TABLE",
    "RoleAccess",
    "access_sql",
    "check_role_name",
    "ledger_tables",
    "role_access",
]

READER_ROLE = "testledger_reader"
#: Supabase's API roles, which the rules cover when the database has them.
SUPABASE_ROLES = ("anon", "authenticated", "service_role")
#: Alembic's table of the schema's revision: secured like the ledger's own tables.
VERSION_TABLE = "alembic_version"
#: Tables no reader may see: ``api_tokens`` holds the hashes of the HTTP API's tokens.
PRIVATE_TABLES = frozenset({"api_tokens"})
#: The views the migrations create (``tests/store/test_rls.py`` checks the list against them).
LEDGER_VIEWS = (
    "v_latest_run_summary",
    "v_latest_failing_tests",
    "v_issue_resolution",
    "v_run_over_run",
    "v_run_trend",
    "v_cost_by_model",
    "v_latest_comparison",
    "v_flaky_evidence",
)
#: PostgreSQL's unquoted identifiers; a login name is written into SQL, so nothing else passes.
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ledger_tables() -> tuple[str, ...]:
    """Every table of the schema: testledger's, and Alembic's revision table."""
    return (*metadata.tables, VERSION_TABLE)


def _array(names: tuple[str, ...] | list[str]) -> str:
    # Every name here is one of ours or checked against _ROLE_NAME: no quote can occur.
    return "ARRAY[" + ", ".join(f"'{name}'" for name in names) + "]"


def check_role_name(name: str) -> str:
    if not _ROLE_NAME.match(name) or name in SUPABASE_ROLES or name == READER_ROLE:
        raise ConfigError(
            f"not a login name testledger will create: {name!r} (lower-case letters, digits and "
            "_, starting with a letter or _, at most 63; not one of the roles it configures)"
        )
    return name


# PL/pgSQL, without % or :name (the text goes through SQLAlchemy's text(), online and offline).
_ACCESS_SQL = """\
DO $testledger$
DECLARE
    ledger_tables text[] := {tables};
    private_tables text[] := {private};
    ledger_views text[] := {views};
    reader_login text := {login};
    relation text;
    reader text;
    readers text[] := '{{}}';
    id_sequence text;
    invoker_views boolean := CAST(current_setting('server_version_num') AS integer) >= 150000;
    has_anon boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon');
    has_service boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'service_role');
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'testledger_reader') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            BEGIN
                CREATE ROLE testledger_reader NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- roles are the cluster's: another database's migration made it meanwhile
            END;
        ELSE
            RAISE WARNING USING MESSAGE = 'testledger: role ' || current_user
                || ' may not create roles: testledger_reader not created';
        END IF;
    END IF;
    FOREACH reader IN ARRAY ARRAY['authenticated', 'testledger_reader'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
            readers := readers || reader;
        END IF;
    END LOOP;
    IF 'testledger_reader' = ANY (readers) THEN
        BEGIN
            EXECUTE 'GRANT USAGE ON SCHEMA ' || quote_ident(current_schema())
                || ' TO testledger_reader';
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING USING MESSAGE = 'testledger: cannot grant USAGE on schema '
                || current_schema() || ' to testledger_reader';
        END;
    END IF;
    FOREACH relation IN ARRAY ledger_tables LOOP
        CONTINUE WHEN to_regclass(quote_ident(relation)) IS NULL;
        EXECUTE 'ALTER TABLE ' || quote_ident(relation) || ' ENABLE ROW LEVEL SECURITY';
        id_sequence := NULL;
        IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass(quote_ident(relation))
                   AND attname = 'id' AND NOT attisdropped) THEN
            id_sequence := pg_get_serial_sequence(quote_ident(relation), 'id');
        END IF;
        IF has_anon THEN
            EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(relation) || ' FROM anon';
            IF id_sequence IS NOT NULL THEN
                EXECUTE 'REVOKE ALL ON SEQUENCE ' || id_sequence || ' FROM anon';
            END IF;
        END IF;
        IF has_service THEN
            EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ' || quote_ident(relation)
                || ' TO service_role';
            IF id_sequence IS NOT NULL THEN
                EXECUTE 'GRANT USAGE, SELECT ON SEQUENCE ' || id_sequence || ' TO service_role';
            END IF;
            IF NOT EXISTS (SELECT FROM pg_policy WHERE polname = 'service_role_all'
                           AND polrelid = to_regclass(quote_ident(relation))) THEN
                EXECUTE 'CREATE POLICY service_role_all ON ' || quote_ident(relation)
                    || ' FOR ALL TO service_role USING (true) WITH CHECK (true)';
            END IF;
        END IF;
        FOREACH reader IN ARRAY readers LOOP
            EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(relation) || ' FROM ' || reader;
            IF id_sequence IS NOT NULL THEN
                EXECUTE 'REVOKE ALL ON SEQUENCE ' || id_sequence || ' FROM ' || reader;
            END IF;
            CONTINUE WHEN relation = ANY (private_tables);
            EXECUTE 'GRANT SELECT ON TABLE ' || quote_ident(relation) || ' TO ' || reader;
            IF NOT EXISTS (SELECT FROM pg_policy WHERE polname = reader || '_read'
                           AND polrelid = to_regclass(quote_ident(relation))) THEN
                EXECUTE 'CREATE POLICY ' || reader || '_read ON '
                    || quote_ident(relation) || ' FOR SELECT TO ' || reader || ' USING (true)';
            END IF;
        END LOOP;
    END LOOP;
    FOREACH relation IN ARRAY ledger_views LOOP
        CONTINUE WHEN to_regclass(quote_ident(relation)) IS NULL;
        IF invoker_views THEN
            EXECUTE 'ALTER VIEW ' || quote_ident(relation) || ' SET (security_invoker = true)';
        END IF;
        IF has_anon THEN
            EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(relation) || ' FROM anon';
        END IF;
        IF has_service THEN
            EXECUTE 'GRANT SELECT ON TABLE ' || quote_ident(relation) || ' TO service_role';
        END IF;
        FOREACH reader IN ARRAY readers LOOP
            EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(relation) || ' FROM ' || reader;
            EXECUTE 'GRANT SELECT ON TABLE ' || quote_ident(relation) || ' TO ' || reader;
        END LOOP;
    END LOOP;
    IF NOT invoker_views THEN
        RAISE WARNING USING MESSAGE = 'testledger: PostgreSQL before 15 has no security_invoker '
            || 'views: a view reads its tables with its owner''s rights, bypassing row level '
            || 'security; grant SELECT on the views only to roles that may read every row';
    END IF;
    IF reader_login IS NOT NULL THEN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = reader_login) THEN
            EXECUTE 'CREATE ROLE ' || quote_ident(reader_login) || ' LOGIN';
        END IF;
        EXECUTE 'GRANT testledger_reader TO ' || quote_ident(reader_login);
    END IF;
END
$testledger$"""


def access_sql(*, reader_login: str | None = None) -> str:
    """The idempotent SQL (one ``DO`` block) that enables row level security on every ledger
    table and gives each role its access; with ``reader_login``, also a LOGIN role of that name
    granted ``testledger_reader`` (its password is set apart: ``ALTER ROLE name PASSWORD ...``)."""
    login = "NULL" if reader_login is None else f"'{check_role_name(reader_login)}'"
    return _ACCESS_SQL.format(
        tables=_array(ledger_tables()),
        private=_array(sorted(PRIVATE_TABLES)),
        views=_array(LEDGER_VIEWS),
        login=login,
    )


@dataclass(frozen=True, slots=True)
class RoleAccess(JsonData):
    """Which of the roles the rules name exist in the database, and whether RLS is on."""

    roles: dict[str, bool]
    tables_with_rls: int
    tables_without_rls: list[str]


_ACCESS_STATE = """
SELECT c.relname, c.relrowsecurity FROM pg_class c
WHERE c.relnamespace = to_regnamespace(current_schema()) AND c.relkind = 'r'
"""


def role_access(connection: Connection) -> RoleAccess:
    """What :func:`access_sql` left in the database the connection is on (PostgreSQL)."""
    wanted = (*SUPABASE_ROLES, READER_ROLE)
    present = {
        row[0]
        for row in connection.execute(
            sa.text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:names)"),
            {"names": list(wanted)},
        )
    }
    security: dict[str, bool] = {
        str(name): bool(enabled) for name, enabled in connection.execute(sa.text(_ACCESS_STATE))
    }
    ours = [name for name in ledger_tables() if name in security]
    return RoleAccess(
        roles={name: name in present for name in wanted},
        tables_with_rls=len([name for name in ours if security[name]]),
        tables_without_rls=[name for name in ours if not security[name]],
    )
