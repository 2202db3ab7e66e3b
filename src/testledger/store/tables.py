"""The current schema as SQLAlchemy Core tables, used to build queries.

The database itself is only ever created and changed by the Alembic migrations in
``store/migrations``; ``tests/store/test_schema.py`` checks that these tables and the migrated
database agree, on SQLite and on PostgreSQL.

Every column, type, default, constraint and index of the proposal's five tables is here under
its own name (docs/schema.md describes every table and view, and which columns are the
proposal's). testledger's additions are marked ``# +``. Two NOT NULLs are relaxed, and only these:

* ``test_results.provider`` / ``test_results.model``: a plain pytest test calls no LLM, so it has
  neither; NULL says so instead of an invented value.
* ``watcher_insights.quality_score``: a watcher that itself failed (the tool-validation suite
  writes a score of 0 then) gives an observation without a score. The row keeps the error in
  ``watcher_error``; a CHECK demands one of the two, and the proposal's ``BETWEEN 1 AND 10``
  CHECK stays, so no invented score ever enters the averages.
"""

from __future__ import annotations

import sqlalchemy as sa

from testledger.store.types import BigId, JsonDoc, StringArray, UtcDateTime

__all__ = [
    "api_tokens",
    "ingest_batches",
    "issue_events",
    "issue_fingerprints",
    "issue_occurrences",
    "issues",
    "metadata",
    "regression_baselines",
    "test_daily_stats",
    "test_results",
    "test_runs",
    "watcher_insights",
]

metadata = sa.MetaData()

test_runs = sa.Table(
    "test_runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_timestamp", UtcDateTime(), nullable=False),
    sa.Column("branch_name", sa.Text(), nullable=False),
    sa.Column("commit_hash", sa.Text()),
    sa.Column("watcher_model", sa.Text(), nullable=False),
    sa.Column("total_tests", sa.Integer(), nullable=False),
    sa.Column("tests_passed", sa.Integer(), nullable=False),
    sa.Column("tests_failed", sa.Integer(), nullable=False),
    sa.Column("tests_skipped", sa.Integer(), nullable=False),
    sa.Column("pass_rate", sa.Numeric(5, 2, asdecimal=False)),
    sa.Column("avg_watcher_quality", sa.Numeric(4, 2, asdecimal=False)),
    sa.Column("total_duration_secs", sa.Integer()),
    sa.Column("total_cost_usd", sa.Numeric(10, 4, asdecimal=False)),
    sa.Column("notes", sa.Text()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # + identity and life of the run
    sa.Column("run_key", sa.Text(), nullable=False),
    sa.Column("suite", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("started_at", UtcDateTime()),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("tests_errored", sa.Integer(), nullable=False),
    sa.Column("total_tokens", sa.BigInteger()),
    # + where it ran
    sa.Column("ci_provider", sa.Text()),
    sa.Column("ci_job_url", sa.Text()),
    sa.Column("host", sa.Text()),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("run_metadata", JsonDoc),
    # + when issue detection last ran over the run
    sa.Column("detected_at", UtcDateTime()),
    # + the run's wall-clock duration with its fractions (0007; total_duration_secs rounds it)
    sa.Column("duration_secs", sa.Numeric(12, 3, asdecimal=False)),
    # + how many tests a run still recording expects, for a live run's progress (0009)
    sa.Column("expected_tests", sa.Integer()),
)

test_results = sa.Table(
    "test_results",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("tool_name", sa.Text(), nullable=False),
    sa.Column("variation", sa.Text(), nullable=False),
    sa.Column("provider", sa.Text()),  # relaxed: NULL for tests that call no LLM
    sa.Column("model", sa.Text()),  # relaxed: NULL for tests that call no LLM
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("execution_status", sa.Text()),
    sa.Column("duration_secs", sa.Numeric(10, 3, asdecimal=False)),
    sa.Column("memory_mb", sa.Integer()),
    sa.Column("cpu_percent", sa.Numeric(5, 2, asdecimal=False)),
    sa.Column("tokens_total", sa.Integer()),
    sa.Column("cost_usd", sa.Numeric(10, 6, asdecimal=False)),
    sa.Column("watcher_quality", sa.Integer()),
    sa.Column("watcher_observations", JsonDoc),
    sa.Column("error_message", sa.Text()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # + identity of the test and of this attempt at it
    sa.Column("test_id", sa.Text(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("started_at", UtcDateTime()),
    # + evidence and measurements beyond the proposal's fixed columns
    sa.Column("error_type", sa.Text()),
    sa.Column("traceback", sa.Text()),
    sa.Column("output_excerpt", sa.Text()),
    sa.Column("tokens_input", sa.Integer()),
    sa.Column("tokens_output", sa.Integer()),
    sa.Column("metrics", JsonDoc),
    sa.Column("details", JsonDoc),
    # + the failure's grouping hash, with the version of the algorithm that made it
    sa.Column("fingerprint", sa.Text()),
    sa.Column("fingerprint_version", sa.Integer()),
)

issues = sa.Table(
    "issues",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("issue_code", sa.Text(), nullable=False, unique=True),
    sa.Column("title", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("category", sa.Text(), nullable=False),
    sa.Column("priority", sa.Text(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("root_cause", sa.Text()),
    sa.Column("resolution", sa.Text()),
    sa.Column("affected_tools", StringArray()),
    sa.Column("first_detected_run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id")),
    sa.Column("resolved_run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id")),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("resolved_at", UtcDateTime()),
    # + where the issue came from and where it is in its life
    sa.Column("origin", sa.Text(), nullable=False),
    sa.Column("rule_name", sa.Text()),
    sa.Column("lifecycle", sa.Text()),
    sa.Column("regressed_run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id")),
    sa.Column("last_seen_run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id")),
    sa.Column("last_seen_at", UtcDateTime()),
    sa.Column("edited_at", UtcDateTime()),
    sa.Column("backfill_source", sa.Text()),
    sa.Column("backfill_hash", sa.Text()),
    sa.Column("details", JsonDoc),
    # + the non-default branch an issue was seen only on (NULL: the default branch's), and when
    # it was first seen, kept when retention removes that run (0009)
    sa.Column("branch_name", sa.Text()),
    sa.Column("first_seen_at", UtcDateTime()),
)

issue_occurrences = sa.Table(
    "issue_occurrences",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "issue_id", sa.BigInteger(), sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "test_result_id", sa.BigInteger(), sa.ForeignKey("test_results.id", ondelete="CASCADE")
    ),
    sa.Column("severity", sa.Text()),
    sa.Column("notes", sa.Text()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # + which test and fingerprint, and whether the failure was flaky
    sa.Column("test_id", sa.Text()),
    sa.Column("fingerprint", sa.Text()),
    sa.Column("flaky", sa.Boolean(), nullable=False),
    sa.UniqueConstraint("issue_id", "run_id", "test_result_id"),
)

issue_fingerprints = sa.Table(
    "issue_fingerprints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "issue_id", sa.BigInteger(), sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("fingerprint_version", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("fingerprint", "fingerprint_version", name="uq_issue_fingerprints"),
)

issue_events = sa.Table(
    "issue_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "issue_id", sa.BigInteger(), sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id", ondelete="SET NULL")),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("status_from", sa.Text()),
    sa.Column("status_to", sa.Text()),
    sa.Column("note", sa.Text()),
    sa.Column("actor", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

watcher_insights = sa.Table(
    "watcher_insights",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "test_result_id",
        sa.BigInteger(),
        sa.ForeignKey("test_results.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("quality_score", sa.Integer()),  # relaxed: NULL when the watcher itself failed
    sa.Column("strengths", StringArray()),
    sa.Column("weaknesses", StringArray()),
    sa.Column("anomalies", StringArray()),
    sa.Column("recommendations", StringArray()),
    sa.Column("confidence_level", sa.Text()),
    sa.Column("raw_observation", JsonDoc),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    # + the number behind confidence_level, who watched, and why a watcher failed
    sa.Column("confidence", sa.Numeric(4, 3, asdecimal=False)),
    sa.Column("watcher", sa.Text()),
    sa.Column("watcher_error", sa.Text()),
    # + the watcher's own model, usage and spend, and whether its input was truncated (0005)
    sa.Column("watcher_model", sa.Text()),
    sa.Column("watcher_input_tokens", sa.BigInteger()),
    sa.Column("watcher_output_tokens", sa.BigInteger()),
    sa.Column("watcher_cost_usd", sa.Numeric(12, 6, asdecimal=False)),
    sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false()),
)

# + the HTTP API's tokens, hashed (0009)
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("scope", sa.Text(), nullable=False),
    sa.Column("token_hash", sa.Text(), nullable=False),
    sa.Column("token_prefix", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_used_at", UtcDateTime()),
    sa.Column("revoked_at", UtcDateTime()),
    sa.CheckConstraint("scope IN ('read', 'write')", name="ck_api_tokens_scope"),
    sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
)

# + the keys of result batches posted over HTTP, so that a retried batch is stored once (0009)
ingest_batches = sa.Table(
    "ingest_batches",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "run_id", sa.BigInteger(), sa.ForeignKey("test_runs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("batch_key", sa.Text(), nullable=False),
    sa.Column("result_count", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("run_id", "batch_key", name="uq_ingest_batches_run_key"),
)

# + what retention keeps of the results it removes: sums and counts per day, suite, branch and
# test, so that pruning a day twice adds up (0009)
test_daily_stats = sa.Table(
    "test_daily_stats",
    metadata,
    sa.Column("day", sa.Date(), nullable=False),
    sa.Column("suite", sa.Text(), nullable=False),
    sa.Column("branch_name", sa.Text(), nullable=False),
    sa.Column("test_id", sa.Text(), nullable=False),
    sa.Column("tool_name", sa.Text(), nullable=False),
    sa.Column("results", sa.Integer(), nullable=False),
    sa.Column("passed", sa.Integer(), nullable=False),
    sa.Column("failed", sa.Integer(), nullable=False),
    sa.Column("skipped", sa.Integer(), nullable=False),
    sa.Column("errored", sa.Integer(), nullable=False),
    sa.Column("duration_secs_sum", sa.Numeric(14, 3, asdecimal=False)),
    sa.Column("duration_count", sa.Integer(), nullable=False),
    sa.Column("cost_usd_sum", sa.Numeric(14, 6, asdecimal=False)),
    sa.Column("tokens_total_sum", sa.BigInteger()),
    sa.Column("watcher_quality_sum", sa.Integer()),
    sa.Column("watcher_quality_count", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("day", "suite", "branch_name", "test_id", name="pk_test_daily_stats"),
)

# + (0011) Per suite, branch, test and metric, what regression detection needs to tell cheaply
# that a test's latest value cannot have made a change (analyze/regressions/baselines.py): the
# latest values of its series (``recent``, little-endian float64 bytes, oldest first) and
# decayed sums of the older ones, on the change-point test's scale (logarithms while every
# value was positive).
# Folded once per run (``last_run_id``); deleted by retention with that run, then rebuilt
# from the series the next time the test is detected. Every row is rewritten every run, so no
# index but the key and no foreign key: on PostgreSQL the rewrite stays a HOT update (the table
# is created with fillfactor 50), without index maintenance.
regression_baselines = sa.Table(
    "regression_baselines",
    metadata,
    sa.Column("suite", sa.Text(), nullable=False),
    sa.Column("branch_name", sa.Text(), nullable=False),
    sa.Column("test_id", sa.Text(), nullable=False),
    sa.Column("metric", sa.Text(), nullable=False),
    sa.Column("last_run_id", sa.BigInteger(), nullable=False),
    sa.Column("last_run_at", UtcDateTime(), nullable=False),
    sa.Column("log_scale", sa.Boolean(), nullable=False),
    sa.Column("recent", sa.LargeBinary(), nullable=False),
    sa.Column("older_weight", sa.Float(), nullable=False),
    sa.Column("older_sum", sa.Float(), nullable=False),
    sa.Column("older_test_sum", sa.Float(), nullable=False),
    sa.Column("older_test_squares", sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint(
        "suite", "branch_name", "test_id", "metric", name="pk_regression_baselines"
    ),
)

# The proposal's indexes, then testledger's (uniqueness of run keys and of a test's attempts in
# a run; the suite/branch/time index behind "latest run of this branch").
sa.Index("idx_test_runs_timestamp", test_runs.c.run_timestamp.desc())
sa.Index("idx_test_runs_branch", test_runs.c.branch_name)
sa.Index("uq_test_runs_run_key", test_runs.c.run_key, unique=True)
sa.Index(
    "idx_test_runs_suite_branch_timestamp",
    test_runs.c.suite,
    test_runs.c.branch_name,
    test_runs.c.run_timestamp,
)
# A suite's latest runs on every branch, newest first, without a sort (0011): the flaky rules'
# scope (analyze/flaky: compare, summary, gate, detection) on a ledger of many runs.
sa.Index(
    "idx_test_runs_suite_timestamp",
    test_runs.c.suite,
    test_runs.c.run_timestamp,
    test_runs.c.id,
)
# The runs issue detection has not been over (0008): found first by every recording, import,
# sync and detect, so that a detection lost to a crash is completed; a handful of rows.
# Partial, ``WHERE detected_at IS NULL`` on both databases, as migration 0008 creates it. The
# condition is not declared here: ``postgresql_where`` / ``sqlite_where`` would load both of
# SQLAlchemy's dialects into every process importing this module (a command on a SQLite ledger
# paid some 30 ms for the PostgreSQL one: bench/startup.py), and neither queries nor the schema
# comparison (tests/store/test_schema.py; Alembic does not compare an index's condition) read it.
sa.Index("idx_test_runs_undetected", test_runs.c.run_timestamp, test_runs.c.id)
sa.Index("idx_test_results_run", test_results.c.run_id)
sa.Index("idx_test_results_tool", test_results.c.tool_name)
sa.Index("idx_test_results_status", test_results.c.status)
sa.Index("idx_test_results_watcher_quality", test_results.c.watcher_quality)
sa.Index(
    "uq_test_results_run_test_attempt",
    test_results.c.run_id,
    test_results.c.test_id,
    test_results.c.attempt,
    unique=True,
)
sa.Index("idx_test_results_test_id", test_results.c.test_id)
sa.Index("idx_issues_status", issues.c.status)
sa.Index("idx_issues_priority", issues.c.priority)
sa.Index("idx_issues_category", issues.c.category)
sa.Index("idx_issue_occurrences_issue", issue_occurrences.c.issue_id)
sa.Index("idx_issue_occurrences_run", issue_occurrences.c.run_id)
sa.Index("idx_watcher_insights_test_result", watcher_insights.c.test_result_id)
sa.Index("idx_watcher_insights_quality", watcher_insights.c.quality_score)
sa.Index("idx_test_results_fingerprint", test_results.c.fingerprint)
sa.Index("idx_issues_rule_name", issues.c.rule_name)
sa.Index("idx_issue_occurrences_result", issue_occurrences.c.test_result_id)
sa.Index("idx_issue_fingerprints_issue", issue_fingerprints.c.issue_id)
sa.Index("idx_issue_events_issue", issue_events.c.issue_id)
# For the reports on a large ledger (0006; measured by bench/reports.py): one run's failing
# results, and every failure's test without reading table rows; a run's results in
# (provider, model) order, so cost per model groups without sorting.
sa.Index(
    "idx_test_results_status_run_test",
    test_results.c.status,
    test_results.c.run_id,
    test_results.c.test_id,
)
sa.Index(
    "idx_test_results_run_provider_model",
    test_results.c.run_id,
    test_results.c.provider,
    test_results.c.model,
)
sa.Index("idx_test_daily_stats_test", test_daily_stats.c.test_id, test_daily_stats.c.day)
