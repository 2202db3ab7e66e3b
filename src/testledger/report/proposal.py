"""The proposal's four example queries, verbatim: the schema must run them unchanged.

They run on PostgreSQL and on SQLite; docs/schema.md reproduces them with what each answers.
``tests/report`` checks both databases against data recorded through testledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from testledger.errors import NotFound

__all__ = ["PROPOSAL_QUERIES", "ProposalQuery", "run_proposal_query"]


@dataclass(frozen=True, slots=True)
class ProposalQuery:
    name: str
    title: str
    sql: str


PROPOSAL_QUERIES: dict[str, ProposalQuery] = {
    query.name: query
    for query in (
        ProposalQuery(
            "latest-run",
            "latest test run summary",
            """SELECT 
  run_timestamp,
  branch_name,
  total_tests,
  pass_rate,
  avg_watcher_quality,
  total_cost_usd
FROM test_runs
ORDER BY run_timestamp DESC
LIMIT 1;""",
        ),
        ProposalQuery(
            "failing-tests",
            "failing tests of the latest run",
            """SELECT 
  tr.tool_name,
  tr.variation,
  tr.status,
  tr.error_message,
  tr.watcher_quality
FROM test_results tr
JOIN test_runs r ON tr.run_id = r.id
WHERE r.run_timestamp = (SELECT MAX(run_timestamp) FROM test_runs)
  AND tr.status = 'FAIL'
ORDER BY tr.watcher_quality ASC;""",
        ),
        ProposalQuery(
            "issue-resolution",
            "issue resolution tracking",
            """SELECT 
  i.issue_code,
  i.title,
  i.status,
  i.created_at,
  i.resolved_at,
  COUNT(io.id) as occurrence_count
FROM issues i
LEFT JOIN issue_occurrences io ON i.id = io.issue_id
GROUP BY i.id
ORDER BY i.priority, i.created_at DESC;""",
        ),
        ProposalQuery(
            "run-over-run",
            "run-over-run comparison",
            """SELECT 
  run_timestamp,
  pass_rate,
  avg_watcher_quality,
  total_cost_usd,
  LAG(pass_rate) OVER (ORDER BY run_timestamp) as prev_pass_rate,
  pass_rate - LAG(pass_rate) OVER (ORDER BY run_timestamp) as pass_rate_change
FROM test_runs
ORDER BY run_timestamp DESC
LIMIT 10;""",
        ),
    )
}


def run_proposal_query(connection: Connection, name: str) -> list[dict[str, Any]]:
    """Run one of the four queries by name; rows as dicts (driver types, e.g. Decimal on PG)."""
    try:
        query = PROPOSAL_QUERIES[name]
    except KeyError:
        known = ", ".join(PROPOSAL_QUERIES)
        raise NotFound(f"no query {name!r}: choose one of {known}") from None
    result = connection.exec_driver_sql(query.sql)
    return [dict(row._mapping) for row in result]
