"""A run's fractional duration; bounded flaky evidence; cost per model computed run by run.

* ``test_runs.duration_secs`` NUMERIC(12, 3): the run's wall-clock duration with its fractions
  (``total_duration_secs`` is whole seconds), backfilled from ``total_duration_secs``.
* ``v_run_trend`` gains ``duration_secs``; ``duration_change`` follows it.
* ``v_flaky_evidence`` (same columns) looks only at each suite and branch's last 30 finished or
  aborted runs, the window of ``testledger flaky``.
* ``v_cost_by_model`` (same columns) is computed run by run, so a newest-first read stops early.

The two rewritten views differ by dialect: ``LATERAL`` on PostgreSQL; on SQLite, which has no
``LATERAL``, ``ROW_NUMBER()`` and correlated subqueries.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Runs per suite and branch that ``v_flaky_evidence`` looks at (``FlakyConfig.window``).
FLAKY_EVIDENCE_RUNS = 30

# PostgreSQL gets LATERAL: one small query per suite and branch (or per run) that the planner
# sizes right, where it estimates a window function's ``rn <= 30`` as every run. SQLite has no
# LATERAL: ROW_NUMBER() for the flaky window, correlated subqueries for cost per model.
_RECENT_RUNS = {
    "postgresql": f"""
  SELECT r.id, r.suite, r.commit_hash
  FROM (SELECT DISTINCT suite, branch_name FROM test_runs) sb
  CROSS JOIN LATERAL (
    SELECT x.id, x.suite, x.commit_hash
    FROM test_runs x
    WHERE x.suite = sb.suite AND x.branch_name = sb.branch_name AND x.status <> 'running'
    ORDER BY x.run_timestamp DESC, x.id DESC
    LIMIT {FLAKY_EVIDENCE_RUNS}
  ) r""",
    "sqlite": f"""
  SELECT id, suite, commit_hash
  FROM (SELECT id, suite, commit_hash,
               ROW_NUMBER() OVER (PARTITION BY suite, branch_name
                                  ORDER BY run_timestamp DESC, id DESC) AS rn
        FROM test_runs
        WHERE status <> 'running') ranked
  WHERE rn <= {FLAKY_EVIDENCE_RUNS}""",
}

_FLAKY_EVIDENCE = """
WITH recent AS ({recent}
),
attempts AS (
  SELECT r.id AS run_id, r.suite, r.commit_hash, t.test_id, t.attempt, t.status
  FROM recent r JOIN test_results t ON t.run_id = r.id
),
final AS (
  SELECT a.run_id, a.suite, a.commit_hash, a.test_id, a.status
  FROM attempts a
  WHERE a.attempt = (SELECT MAX(x.attempt) FROM test_results x
                     WHERE x.run_id = a.run_id AND x.test_id = a.test_id)
)
SELECT f.suite, f.test_id, f.commit_hash, 'same_commit' AS evidence,
       COUNT(*) AS runs,
       SUM(CASE WHEN f.status IN ('FAIL', 'ERROR') THEN 1 ELSE 0 END) AS failed_runs,
       MAX(f.run_id) AS last_run_id
FROM final f
WHERE f.commit_hash IS NOT NULL AND f.status <> 'SKIP'
GROUP BY f.suite, f.test_id, f.commit_hash
HAVING SUM(CASE WHEN f.status = 'PASS' THEN 1 ELSE 0 END) > 0
   AND SUM(CASE WHEN f.status IN ('FAIL', 'ERROR') THEN 1 ELSE 0 END) > 0
UNION ALL
SELECT a.suite, a.test_id, a.commit_hash, 'retry' AS evidence,
       1 AS runs, 1 AS failed_runs, a.run_id AS last_run_id
FROM attempts a
WHERE a.status = 'PASS'
  AND EXISTS (SELECT 1 FROM test_results e
              WHERE e.run_id = a.run_id AND e.test_id = a.test_id
                AND e.attempt < a.attempt AND e.status IN ('FAIL', 'ERROR'))
"""

_PASSED = "SUM(CASE WHEN g.status = 'PASS' THEN 1 ELSE 0 END)"

_COST_BY_MODEL_POSTGRESQL = """
SELECT
  r.id AS run_id,
  r.suite,
  r.branch_name,
  r.run_timestamp,
  g.provider,
  g.model,
  g.results,
  g.passed,
  g.cost_usd,
  g.tokens_total,
  g.cost_usd / NULLIF(g.passed, 0) AS cost_per_passing_result
FROM test_runs r
CROSS JOIN LATERAL (
  SELECT t.provider, t.model, COUNT(*) AS results,
         SUM(CASE WHEN t.status = 'PASS' THEN 1 ELSE 0 END) AS passed,
         SUM(t.cost_usd) AS cost_usd,
         SUM(t.tokens_total) AS tokens_total
  FROM test_results t
  WHERE t.run_id = r.id
  GROUP BY t.provider, t.model
) g
"""


def _sqlite_cost_by_model() -> str:
    """One row per run and (provider, model): the group's first result stands for it, and each
    figure is a correlated subquery over ``idx_test_results_run_provider_model`` (``IS``: the
    provider and model of a test that calls no LLM are NULL, and NULLs form one group)."""

    def figure(expression: str, name: str) -> str:
        return (
            f"  (SELECT {expression} FROM test_results g\n"
            f"   WHERE g.run_id = t.run_id AND g.provider IS t.provider AND g.model IS t.model)"
            f" AS {name}"
        )

    figures = ",\n".join(
        [
            figure("COUNT(*)", "results"),
            figure(_PASSED, "passed"),
            figure("SUM(g.cost_usd)", "cost_usd"),
            figure("SUM(g.tokens_total)", "tokens_total"),
            figure(f"SUM(g.cost_usd) / NULLIF({_PASSED}, 0)", "cost_per_passing_result"),
        ]
    )
    return f"""
SELECT
  r.id AS run_id,
  r.suite,
  r.branch_name,
  r.run_timestamp,
  t.provider,
  t.model,
{figures}
FROM test_runs r
JOIN test_results t ON t.run_id = r.id
WHERE t.id = (SELECT MIN(f.id) FROM test_results f
              WHERE f.run_id = t.run_id AND f.provider IS t.provider AND f.model IS t.model)
"""


_RUN_TREND = """
SELECT
  id AS run_id,
  suite,
  branch_name,
  commit_hash,
  run_timestamp,
  status,
  total_tests,
  pass_rate,
  avg_watcher_quality,
  total_cost_usd,
  total_duration_secs,
  COALESCE(duration_secs, total_duration_secs) AS duration_secs,
  total_tokens,
  pass_rate - LAG(pass_rate) OVER w AS pass_rate_change,
  avg_watcher_quality - LAG(avg_watcher_quality) OVER w AS quality_change,
  total_cost_usd - LAG(total_cost_usd) OVER w AS cost_change,
  COALESCE(duration_secs, total_duration_secs)
    - LAG(COALESCE(duration_secs, total_duration_secs)) OVER w AS duration_change,
  total_tokens - LAG(total_tokens) OVER w AS tokens_change
FROM test_runs
WINDOW w AS (PARTITION BY suite, branch_name ORDER BY run_timestamp, id)
"""


def _views(dialect: str) -> dict[str, str]:
    return {
        "v_run_trend": _RUN_TREND,
        "v_cost_by_model": (
            _COST_BY_MODEL_POSTGRESQL if dialect == "postgresql" else _sqlite_cost_by_model()
        ),
        "v_flaky_evidence": _FLAKY_EVIDENCE.format(
            recent=_RECENT_RUNS["postgresql" if dialect == "postgresql" else "sqlite"]
        ),
    }


def upgrade() -> None:
    # Plain ADD COLUMN on both dialects: a batch recreate on SQLite would drop the table's
    # unnamed CHECK constraints.
    op.add_column("test_runs", sa.Column("duration_secs", sa.Numeric(12, 3, asdecimal=False)))
    op.execute(
        "UPDATE test_runs SET duration_secs = total_duration_secs "
        "WHERE duration_secs IS NULL AND total_duration_secs IS NOT NULL"
    )
    for name, sql in _views(op.get_bind().dialect.name).items():
        op.execute(f"DROP VIEW IF EXISTS {name}")
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def downgrade() -> None:
    previous = importlib.import_module(
        "testledger.store.migrations.versions.0004_report_views"
    )._VIEWS
    for name in _views(op.get_bind().dialect.name):
        op.execute(f"DROP VIEW IF EXISTS {name}")
        op.execute(f"CREATE VIEW {name} AS {previous[name].strip()}")
    # Plain DROP COLUMN (SQLite 3.35+): a batch recreate on SQLite would fail on the views that
    # read test_runs and drop its unnamed CHECK constraints.
    op.execute("ALTER TABLE test_runs DROP COLUMN duration_secs")
