"""testledger's library API: every operation the command line, the web app and the MCP server
offer, as one typed call.

Each function takes a :class:`~testledger.Ledger` (a database URL and a results folder; see
:func:`open_ledger`) and returns dataclasses whose ``as_json()`` gives JSON-ready data::

    from testledger import api

    with api.open_ledger("sqlite:///.testledger/ledger.db") as ledger:
        api.import_paths(ledger, ["junit.xml"])
        latest = api.show_run(ledger)
        for issue in api.list_issues(ledger, api.IssueFilter(statuses=["OPEN"])):
            print(issue.code, issue.title)

Thresholds travel as small option objects (:class:`CompareThresholds`, :class:`FlakyConfig`,
:class:`RegressionConfig`, :class:`GateRules`); left out, they come from the project's
``[tool.testledger]`` settings. Errors are :class:`~testledger.TestledgerError` subclasses with a
message fit for a user. Only the names in ``__all__`` are stable; the modules below them are not.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from testledger.analyze.detect import DetectionReport
    from testledger.analyze.flaky.config import FlakyConfig
    from testledger.analyze.regressions.metrics import (
        MetricChange,
        RegressionConfig,
        RegressionReport,
    )
    from testledger.analyze.watcher.history import TestContext
    from testledger.analyze.watcher.service import RecordedObservation, WatchSummary
    from testledger.api._admin import (
        DatabaseRoles,
        SchemaStatus,
        SchemaUpgrade,
        check_demo_target,
        database_roles,
        run_demo,
        schema_sql,
        schema_status,
        upgrade_schema,
    )
    from testledger.api._analysis import (
        FlakyTestReport,
        find_flaky,
        find_regressions,
        flaky_settings,
        watch,
    )
    from testledger.api._browse import (
        dimensions,
        flakiness_of_test,
        live_run,
        observations_of_test,
        regression_issues,
        run_extras,
        run_junit,
        runs_page,
        series_of_test,
    )
    from testledger.api._constants import (
        EXPORT_FORMATS,
        EXPORT_TABLES,
        ISSUE_SORTS,
        REGRESSION_METRICS,
        TREND_METRICS,
        WATCH_HISTORY_RUNS,
    )
    from testledger.api._imports import (
        ImportFailure,
        ImportOptions,
        ImportProgress,
        ImportReport,
        import_formats,
        import_paths,
        sync,
    )
    from testledger.api._ingest import (
        MAX_BATCH_RESULTS,
        ROW_BATCH_COLUMNS,
        IngestBatch,
        IngestFinish,
        IngestObservation,
        IngestRun,
        ingest_finish_run,
        ingest_observations,
        ingest_result_rows,
        ingest_results,
        ingest_start_run,
        set_expected_tests,
    )
    from testledger.api._issues import (
        FingerprintExplanation,
        IssueChange,
        IssueFilter,
        backfill,
        detect,
        explain_result,
        issue_detail,
        list_issues,
        update_issue,
    )
    from testledger.api._observations import record_observation
    from testledger.api._reports import (
        HtmlReportFile,
        QueryResult,
        compare,
        cost,
        export,
        gate,
        gate_rules,
        history,
        html_report,
        html_report_data,
        query,
        query_names,
        render_markdown,
        summary,
        trend,
    )
    from testledger.api._retention import PruneReport, prune
    from testledger.api._runs import list_runs, show_run
    from testledger.api._search import run_failures, search, test_context
    from testledger.api._tokens import (
        TOKEN_SCOPES,
        CreatedToken,
        TokenInfo,
        create_token,
        list_tokens,
        revoke_token,
        verify_token,
    )
    from testledger.config import RetentionPolicy, parse_age
    from testledger.demo.runner import DemoResult
    from testledger.ingest.backfill import BackfillReport
    from testledger.ingest.importer import ImportOutcome
    from testledger.model import WatcherObservation
    from testledger.record.ledger import Ledger, open_ledger
    from testledger.record.sync import SyncReport
    from testledger.report.browse import (
        Dimensions,
        LiveRun,
        Observation,
        RunExtras,
        RunFilters,
        RunsPage,
        TopTest,
    )
    from testledger.report.browse_series import RegressionIssue, SeriesPoint
    from testledger.report.compare import (
        CompareThresholds,
        GroupChange,
        RunComparison,
        TestChange,
    )
    from testledger.report.cost import CostGroup, CostReport
    from testledger.report.explain import ExplainedPart
    from testledger.report.export import ExportSummary
    from testledger.report.failures import RunFailures
    from testledger.report.gate import GateResult, GateRules
    from testledger.report.history import AmbiguousTest, ResultHistory
    from testledger.report.html import HtmlReport
    from testledger.report.issues import IssueDetail, IssueSummary
    from testledger.report.markdown import SummaryData
    from testledger.report.runs import RunDetail, RunSummary
    from testledger.report.search import SearchResults
    from testledger.report.trend import Trend, TrendMetric
    from testledger.store.engine import mask_url, mask_urls_in
    from testledger.store.retention import PruneProgress

# Loaded on first use (PEP 562), like the package's own names: importing the API is free until
# a function is called, and each call pulls in only what it needs.
_EXPORTS = {
    # handles and runs
    "Ledger": "testledger.record.ledger",
    "open_ledger": "testledger.record.ledger",
    "list_runs": "testledger.api._runs",
    "show_run": "testledger.api._runs",
    "RunSummary": "testledger.report.runs",
    "RunDetail": "testledger.report.runs",
    # retention
    "prune": "testledger.api._retention",
    "PruneReport": "testledger.api._retention",
    "PruneProgress": "testledger.store.retention",
    "RetentionPolicy": "testledger.config",
    "parse_age": "testledger.config",
    # importing and syncing
    "import_paths": "testledger.api._imports",
    "sync": "testledger.api._imports",
    "ImportOptions": "testledger.api._imports",
    "ImportProgress": "testledger.api._imports",
    "ImportReport": "testledger.api._imports",
    "ImportFailure": "testledger.api._imports",
    "ImportOutcome": "testledger.ingest.importer",
    "SyncReport": "testledger.record.sync",
    # issues
    "detect": "testledger.api._issues",
    "list_issues": "testledger.api._issues",
    "issue_detail": "testledger.api._issues",
    "update_issue": "testledger.api._issues",
    "explain_result": "testledger.api._issues",
    "backfill": "testledger.api._issues",
    "IssueFilter": "testledger.api._issues",
    "IssueChange": "testledger.api._issues",
    "FingerprintExplanation": "testledger.api._issues",
    "DetectionReport": "testledger.analyze.detect",
    "IssueSummary": "testledger.report.issues",
    "IssueDetail": "testledger.report.issues",
    "BackfillReport": "testledger.ingest.backfill",
    # analysis
    "find_flaky": "testledger.api._analysis",
    "find_regressions": "testledger.api._analysis",
    "watch": "testledger.api._analysis",
    "FlakyConfig": "testledger.analyze.flaky.config",
    "FlakyTestReport": "testledger.api._analysis",
    "RegressionConfig": "testledger.analyze.regressions.metrics",
    "RegressionReport": "testledger.analyze.regressions.metrics",
    "WatchSummary": "testledger.analyze.watcher.service",
    # reports
    "compare": "testledger.api._reports",
    "gate": "testledger.api._reports",
    "summary": "testledger.api._reports",
    "render_markdown": "testledger.api._reports",
    "trend": "testledger.api._reports",
    "history": "testledger.api._reports",
    "cost": "testledger.api._reports",
    "query": "testledger.api._reports",
    "query_names": "testledger.api._reports",
    "export": "testledger.api._reports",
    "html_report": "testledger.api._reports",
    "html_report_data": "testledger.api._reports",
    "gate_rules": "testledger.api._reports",
    "HtmlReport": "testledger.report.html",
    "flaky_settings": "testledger.api._analysis",
    "CompareThresholds": "testledger.report.compare",
    "QueryResult": "testledger.api._reports",
    "HtmlReportFile": "testledger.api._reports",
    "RunComparison": "testledger.report.compare",
    "GateRules": "testledger.report.gate",
    "GateResult": "testledger.report.gate",
    "SummaryData": "testledger.report.markdown",
    "Trend": "testledger.report.trend",
    "ResultHistory": "testledger.report.history",
    "CostReport": "testledger.report.cost",
    "ExportSummary": "testledger.report.export",
    # the schema and the demo
    "upgrade_schema": "testledger.api._admin",
    "schema_status": "testledger.api._admin",
    "schema_sql": "testledger.api._admin",
    "database_roles": "testledger.api._admin",
    "DatabaseRoles": "testledger.api._admin",
    "run_demo": "testledger.api._admin",
    "check_demo_target": "testledger.api._admin",
    "SchemaStatus": "testledger.api._admin",
    "SchemaUpgrade": "testledger.api._admin",
    "DemoResult": "testledger.demo.runner",
    # names for choices and rendering
    "BUILT_IN_IMPORT_FORMATS": "testledger.api._constants",
    "EXPORT_FORMATS": "testledger.api._constants",
    "EXPORT_TABLES": "testledger.api._constants",
    "ISSUE_SORTS": "testledger.api._constants",
    "REGRESSION_METRICS": "testledger.api._constants",
    "TREND_METRICS": "testledger.api._constants",
    "WATCH_HISTORY_RUNS": "testledger.api._constants",
    "import_formats": "testledger.api._imports",
    "TestChange": "testledger.report.compare",
    "GroupChange": "testledger.report.compare",
    "CostGroup": "testledger.report.cost",
    "MetricChange": "testledger.analyze.regressions.metrics",
    "TrendMetric": "testledger.report.trend",
    "ExplainedPart": "testledger.report.explain",
    "mask_url": "testledger.store.engine",
    "mask_urls_in": "testledger.store.engine",
    # what an agent asks (the MCP server): failures by issue, search, a test's context, and
    # observations recorded for results
    "run_failures": "testledger.api._search",
    "search": "testledger.api._search",
    "test_context": "testledger.api._search",
    "record_observation": "testledger.api._observations",
    "RunFailures": "testledger.report.failures",
    "SearchResults": "testledger.report.search",
    "TestContext": "testledger.analyze.watcher.history",
    "RecordedObservation": "testledger.analyze.watcher.service",
    "WatcherObservation": "testledger.model",
    # API tokens (the web app and the HTTP ingest API)
    "create_token": "testledger.api._tokens",
    "list_tokens": "testledger.api._tokens",
    "revoke_token": "testledger.api._tokens",
    "verify_token": "testledger.api._tokens",
    "CreatedToken": "testledger.api._tokens",
    "TokenInfo": "testledger.api._tokens",
    "TOKEN_SCOPES": "testledger.api._tokens",
    # recording piece by piece (the HTTP ingest API)
    "ingest_start_run": "testledger.api._ingest",
    "ingest_results": "testledger.api._ingest",
    "ingest_result_rows": "testledger.api._ingest",
    "ingest_observations": "testledger.api._ingest",
    "ingest_finish_run": "testledger.api._ingest",
    "set_expected_tests": "testledger.api._ingest",
    "IngestRun": "testledger.api._ingest",
    "IngestBatch": "testledger.api._ingest",
    "IngestFinish": "testledger.api._ingest",
    "IngestObservation": "testledger.api._ingest",
    "MAX_BATCH_RESULTS": "testledger.api._ingest",
    "ROW_BATCH_COLUMNS": "testledger.api._ingest",
    # what the web dashboard's pages read: runs by keyset pages, a run's extras and live
    # state, a test's observations, a run as JUnit XML
    "runs_page": "testledger.api._browse",
    "run_extras": "testledger.api._browse",
    "live_run": "testledger.api._browse",
    "observations_of_test": "testledger.api._browse",
    "flakiness_of_test": "testledger.api._browse",
    "regression_issues": "testledger.api._browse",
    "series_of_test": "testledger.api._browse",
    "SeriesPoint": "testledger.report.browse_series",
    "RegressionIssue": "testledger.report.browse_series",
    "run_junit": "testledger.api._browse",
    "dimensions": "testledger.api._browse",
    "Dimensions": "testledger.report.browse",
    "AmbiguousTest": "testledger.report.history",
    "RunFilters": "testledger.report.browse",
    "RunsPage": "testledger.report.browse",
    "RunExtras": "testledger.report.browse",
    "LiveRun": "testledger.report.browse",
    "Observation": "testledger.report.browse",
    "TopTest": "testledger.report.browse",
}

__all__ = [
    "BUILT_IN_IMPORT_FORMATS",
    "EXPORT_FORMATS",
    "EXPORT_TABLES",
    "ISSUE_SORTS",
    "MAX_BATCH_RESULTS",
    "REGRESSION_METRICS",
    "ROW_BATCH_COLUMNS",
    "TOKEN_SCOPES",
    "TREND_METRICS",
    "WATCH_HISTORY_RUNS",
    "AmbiguousTest",
    "BackfillReport",
    "CompareThresholds",
    "CostGroup",
    "CostReport",
    "CreatedToken",
    "DatabaseRoles",
    "DemoResult",
    "DetectionReport",
    "Dimensions",
    "ExplainedPart",
    "ExportSummary",
    "FingerprintExplanation",
    "FlakyConfig",
    "FlakyTestReport",
    "GateResult",
    "GateRules",
    "GroupChange",
    "HtmlReport",
    "HtmlReportFile",
    "ImportFailure",
    "ImportOptions",
    "ImportOutcome",
    "ImportProgress",
    "ImportReport",
    "IngestBatch",
    "IngestFinish",
    "IngestObservation",
    "IngestRun",
    "IssueChange",
    "IssueDetail",
    "IssueFilter",
    "IssueSummary",
    "Ledger",
    "LiveRun",
    "MetricChange",
    "Observation",
    "PruneProgress",
    "PruneReport",
    "QueryResult",
    "RecordedObservation",
    "RegressionConfig",
    "RegressionIssue",
    "RegressionReport",
    "ResultHistory",
    "RetentionPolicy",
    "RunComparison",
    "RunDetail",
    "RunExtras",
    "RunFailures",
    "RunFilters",
    "RunSummary",
    "RunsPage",
    "SchemaStatus",
    "SchemaUpgrade",
    "SearchResults",
    "SeriesPoint",
    "SummaryData",
    "SyncReport",
    "TestChange",
    "TestContext",
    "TokenInfo",
    "TopTest",
    "Trend",
    "TrendMetric",
    "WatchSummary",
    "WatcherObservation",
    "backfill",
    "check_demo_target",
    "compare",
    "cost",
    "create_token",
    "database_roles",
    "detect",
    "dimensions",
    "explain_result",
    "export",
    "find_flaky",
    "find_regressions",
    "flakiness_of_test",
    "flaky_settings",
    "gate",
    "gate_rules",
    "history",
    "html_report",
    "html_report_data",
    "import_formats",
    "import_paths",
    "ingest_finish_run",
    "ingest_observations",
    "ingest_result_rows",
    "ingest_results",
    "ingest_start_run",
    "issue_detail",
    "list_issues",
    "list_runs",
    "list_tokens",
    "live_run",
    "mask_url",
    "mask_urls_in",
    "observations_of_test",
    "open_ledger",
    "parse_age",
    "prune",
    "query",
    "query_names",
    "record_observation",
    "regression_issues",
    "render_markdown",
    "revoke_token",
    "run_demo",
    "run_extras",
    "run_failures",
    "run_junit",
    "runs_page",
    "schema_sql",
    "schema_status",
    "search",
    "series_of_test",
    "set_expected_tests",
    "show_run",
    "summary",
    "sync",
    "test_context",
    "trend",
    "update_issue",
    "upgrade_schema",
    "verify_token",
    "watch",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'testledger.api' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
