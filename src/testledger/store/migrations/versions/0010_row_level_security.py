"""Row level security and roles on PostgreSQL (nothing on SQLite).

Supabase serves every table of the ``public`` schema over its HTTP API to the roles ``anon``
(no user) and ``authenticated`` (a signed-in user), and grants them every privilege on new tables
by default: without row level security, anyone holding the project's anon key could read and
write the ledger, ``api_tokens`` (token hashes) included. So, on PostgreSQL:

* every testledger table gets ROW LEVEL SECURITY (not FORCE: the tables' owner, which migrates
  and records, keeps bypassing it; so does a role that is a member of the owner role), and so
  does ``alembic_version``: with Supabase's default privileges ``anon`` could rewrite the
  schema's revision;
* ``anon``: every privilege revoked on the tables, their id sequences and the views;
* ``authenticated`` and ``testledger_reader`` (created here, NOLOGIN, when missing and the
  migrating role may create roles; otherwise a warning, and ``testledger db roles --apply``
  later): SELECT on every table but ``api_tokens`` and on every view, a SELECT policy
  (``<role>_read``), every other privilege revoked;
* ``service_role`` (Supabase's server-side key, which has BYPASSRLS): every privilege, and a
  policy (``service_role_all``) in case it lacks BYPASSRLS;
* the views get ``security_invoker = true`` (PostgreSQL 15+), so they read their tables with the
  reader's rights and policies, not their owner's. PostgreSQL 14 and older have no such option:
  the views keep running with their owner's rights (bypassing RLS), only the roles above may
  select from them, and the migration raises a warning saying so.

Roles the database lacks are skipped: the same migration serves Supabase and a plain
PostgreSQL. The tables and views are the ones testledger had at this revision, each touched only
if it exists: not every table of the schema, because on Supabase the ``public`` schema is shared
with a team's own tables, whose access is not testledger's to change. **A later migration that
creates a table must enable row level security on it and give it the same policies and grants**
(``testledger.store.roles`` builds them from the live schema: ``testledger db roles --apply``),
and one that recreates a view must set ``security_invoker`` again (a new view does not inherit
it); ``tests/store/test_rls.py`` fails for a table without row level security.

The SQL is one PL/pgSQL ``DO`` block that looks roles, tables and the server version up when it
runs, so ``testledger db sql`` renders the same thing for Supabase's SQL editor. Roles are the
cluster's, not the database's: the downgrade drops the policies, disables row level security,
resets ``security_invoker`` and revokes ``testledger_reader``'s grants, but keeps the role (other
databases and logins may use it) and does not give ``anon`` or ``authenticated`` back the
privileges revoked here.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: The tables and views at this revision (frozen: a migration imports no live code).
_TABLES = (
    "test_runs",
    "test_results",
    "issues",
    "issue_occurrences",
    "issue_fingerprints",
    "issue_events",
    "watcher_insights",
    "api_tokens",
    "ingest_batches",
    "test_daily_stats",
    "alembic_version",
)
_PRIVATE_TABLES = ("api_tokens",)
_VIEWS = (
    "v_latest_run_summary",
    "v_latest_failing_tests",
    "v_issue_resolution",
    "v_run_over_run",
    "v_run_trend",
    "v_cost_by_model",
    "v_latest_comparison",
    "v_flaky_evidence",
)


def _array(names: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join(f"'{name}'" for name in names) + "]"


# PL/pgSQL, without % or :name (the text goes through SQLAlchemy's text(), online and offline).
_UPGRADE = """\
DO $testledger$
DECLARE
    ledger_tables text[] := {tables};
    private_tables text[] := {private};
    ledger_views text[] := {views};
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
END
$testledger$"""

_DOWNGRADE = """\
DO $testledger$
DECLARE
    ledger_tables text[] := {tables};
    ledger_views text[] := {views};
    relation text;
    policy text;
    has_reader boolean := EXISTS (SELECT FROM pg_roles WHERE rolname = 'testledger_reader');
BEGIN
    FOREACH relation IN ARRAY ledger_tables LOOP
        CONTINUE WHEN to_regclass(quote_ident(relation)) IS NULL;
        FOREACH policy IN ARRAY ARRAY['service_role_all',
                'authenticated_read', 'testledger_reader_read'] LOOP
            EXECUTE 'DROP POLICY IF EXISTS ' || policy || ' ON ' || quote_ident(relation);
        END LOOP;
        EXECUTE 'ALTER TABLE ' || quote_ident(relation) || ' DISABLE ROW LEVEL SECURITY';
        IF has_reader THEN
            EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(relation) || ' FROM testledger_reader';
        END IF;
    END LOOP;
    FOREACH relation IN ARRAY ledger_views LOOP
        CONTINUE WHEN to_regclass(quote_ident(relation)) IS NULL;
        IF CAST(current_setting('server_version_num') AS integer) >= 150000 THEN
            EXECUTE 'ALTER VIEW ' || quote_ident(relation) || ' RESET (security_invoker)';
        END IF;
        IF has_reader THEN
            EXECUTE 'REVOKE ALL ON TABLE ' || quote_ident(relation) || ' FROM testledger_reader';
        END IF;
    END LOOP;
END
$testledger$"""


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        _UPGRADE.format(
            tables=_array(_TABLES), private=_array(_PRIVATE_TABLES), views=_array(_VIEWS)
        )
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(_DOWNGRADE.format(tables=_array(_TABLES), views=_array(_VIEWS)))
