"""The report views, plain SQL that PostgreSQL and SQLite (3.25+) both run.

* ``v_latest_run_summary``, ``v_latest_failing_tests``, ``v_issue_resolution``,
  ``v_run_over_run``: the proposal's four example queries, verbatim;
* ``v_run_trend``: each run's figures and their change from the previous run of its suite and
  branch;
* ``v_cost_by_model``: cost, tokens, results and cost per passing result by run, provider and
  model;
* ``v_latest_comparison``: each test of a suite and branch's latest run against the run before;
* ``v_flaky_evidence``: tests that passed and failed on one commit, or passed on a retry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

# The proposal's queries are kept byte for byte, trailing spaces included.
# ruff: noqa: W291

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The proposal's "latest test run summary" query.
_LATEST_RUN_SUMMARY = """SELECT 
  run_timestamp,
  branch_name,
  total_tests,
  pass_rate,
  avg_watcher_quality,
  total_cost_usd
FROM test_runs
ORDER BY run_timestamp DESC
LIMIT 1"""

#: The proposal's "failing tests of the latest run" query.
_LATEST_FAILING_TESTS = """SELECT 
  tr.tool_name,
  tr.variation,
  tr.status,
  tr.error_message,
  tr.watcher_quality
FROM test_results tr
JOIN test_runs r ON tr.run_id = r.id
WHERE r.run_timestamp = (SELECT MAX(run_timestamp) FROM test_runs)
  AND tr.status = 'FAIL'
ORDER BY tr.watcher_quality ASC"""

#: The proposal's "issue resolution tracking" query.
_ISSUE_RESOLUTION = """SELECT 
  i.issue_code,
  i.title,
  i.status,
  i.created_at,
  i.resolved_at,
  COUNT(io.id) as occurrence_count
FROM issues i
LEFT JOIN issue_occurrences io ON i.id = io.issue_id
GROUP BY i.id
ORDER BY i.priority, i.created_at DESC"""

#: The proposal's "run-over-run comparison" query.
_RUN_OVER_RUN = """SELECT 
  run_timestamp,
  pass_rate,
  avg_watcher_quality,
  total_cost_usd,
  LAG(pass_rate) OVER (ORDER BY run_timestamp) as prev_pass_rate,
  pass_rate - LAG(pass_rate) OVER (ORDER BY run_timestamp) as pass_rate_change
FROM test_runs
ORDER BY run_timestamp DESC
LIMIT 10"""

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
  total_tokens,
  pass_rate - LAG(pass_rate) OVER w AS pass_rate_change,
  avg_watcher_quality - LAG(avg_watcher_quality) OVER w AS quality_change,
  total_cost_usd - LAG(total_cost_usd) OVER w AS cost_change,
  total_duration_secs - LAG(total_duration_secs) OVER w AS duration_change,
  total_tokens - LAG(total_tokens) OVER w AS tokens_change
FROM test_runs
WINDOW w AS (PARTITION BY suite, branch_name ORDER BY run_timestamp, id)
"""

_COST_BY_MODEL = """
SELECT
  r.id AS run_id,
  r.suite,
  r.branch_name,
  r.run_timestamp,
  t.provider,
  t.model,
  COUNT(*) AS results,
  SUM(CASE WHEN t.status = 'PASS' THEN 1 ELSE 0 END) AS passed,
  SUM(t.cost_usd) AS cost_usd,
  SUM(t.tokens_total) AS tokens_total,
  SUM(t.cost_usd) / NULLIF(SUM(CASE WHEN t.status = 'PASS' THEN 1 ELSE 0 END), 0)
    AS cost_per_passing_result
FROM test_results t
JOIN test_runs r ON r.id = t.run_id
GROUP BY r.id, r.suite, r.branch_name, r.run_timestamp, t.provider, t.model
"""

_LATEST_COMPARISON = """
WITH ranked AS (
  SELECT id, suite, branch_name,
         ROW_NUMBER() OVER (PARTITION BY suite, branch_name
                            ORDER BY run_timestamp DESC, id DESC) AS rn
  FROM test_runs
  WHERE status <> 'running'
),
pairs AS (
  SELECT b.suite, b.branch_name, b.id AS run_id, a.id AS previous_run_id
  FROM ranked b JOIN ranked a
    ON a.suite = b.suite AND a.branch_name = b.branch_name AND a.rn = 2
  WHERE b.rn = 1
),
final AS (
  SELECT t.run_id, t.test_id, t.status
  FROM test_results t
  WHERE t.run_id IN (SELECT run_id FROM pairs UNION SELECT previous_run_id FROM pairs)
    AND t.attempt = (SELECT MAX(x.attempt) FROM test_results x
                     WHERE x.run_id = t.run_id AND x.test_id = t.test_id)
),
tests AS (
  SELECT p.suite, p.branch_name, p.run_id, p.previous_run_id, f.test_id
  FROM pairs p JOIN final f ON f.run_id IN (p.run_id, p.previous_run_id)
  GROUP BY p.suite, p.branch_name, p.run_id, p.previous_run_id, f.test_id
)
SELECT
  s.suite,
  s.branch_name,
  s.run_id,
  s.previous_run_id,
  s.test_id,
  prev.status AS previous_status,
  cur.status AS status,
  CASE
    WHEN prev.status IS NULL THEN 'added'
    WHEN cur.status IS NULL THEN 'removed'
    WHEN cur.status IN ('FAIL', 'ERROR') AND prev.status IN ('FAIL', 'ERROR')
      THEN 'still_failing'
    WHEN cur.status IN ('FAIL', 'ERROR') THEN 'new_failure'
    WHEN prev.status IN ('FAIL', 'ERROR') AND cur.status = 'PASS' THEN 'fixed'
    ELSE 'unchanged'
  END AS change
FROM tests s
LEFT JOIN final cur ON cur.run_id = s.run_id AND cur.test_id = s.test_id
LEFT JOIN final prev ON prev.run_id = s.previous_run_id AND prev.test_id = s.test_id
"""

_FLAKY_EVIDENCE = """
WITH final AS (
  SELECT t.run_id, t.test_id, t.status
  FROM test_results t
  WHERE t.attempt = (SELECT MAX(x.attempt) FROM test_results x
                     WHERE x.run_id = t.run_id AND x.test_id = t.test_id)
)
SELECT r.suite, f.test_id, r.commit_hash, 'same_commit' AS evidence,
       COUNT(*) AS runs,
       SUM(CASE WHEN f.status IN ('FAIL', 'ERROR') THEN 1 ELSE 0 END) AS failed_runs,
       MAX(r.id) AS last_run_id
FROM final f JOIN test_runs r ON r.id = f.run_id
WHERE r.commit_hash IS NOT NULL AND r.status <> 'running' AND f.status <> 'SKIP'
GROUP BY r.suite, f.test_id, r.commit_hash
HAVING SUM(CASE WHEN f.status = 'PASS' THEN 1 ELSE 0 END) > 0
   AND SUM(CASE WHEN f.status IN ('FAIL', 'ERROR') THEN 1 ELSE 0 END) > 0
UNION ALL
SELECT r.suite, t.test_id, r.commit_hash, 'retry' AS evidence,
       1 AS runs, 1 AS failed_runs, r.id AS last_run_id
FROM test_results t JOIN test_runs r ON r.id = t.run_id
WHERE t.status = 'PASS' AND r.status <> 'running'
  AND EXISTS (SELECT 1 FROM test_results e
              WHERE e.run_id = t.run_id AND e.test_id = t.test_id
                AND e.attempt < t.attempt AND e.status IN ('FAIL', 'ERROR'))
"""

_VIEWS = {
    "v_latest_run_summary": _LATEST_RUN_SUMMARY,
    "v_latest_failing_tests": _LATEST_FAILING_TESTS,
    "v_issue_resolution": _ISSUE_RESOLUTION,
    "v_run_over_run": _RUN_OVER_RUN,
    "v_run_trend": _RUN_TREND,
    "v_cost_by_model": _COST_BY_MODEL,
    "v_latest_comparison": _LATEST_COMPARISON,
    "v_flaky_evidence": _FLAKY_EVIDENCE,
}


def upgrade() -> None:
    for name, sql in _VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def downgrade() -> None:
    for name in reversed(list(_VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
