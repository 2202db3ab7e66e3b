"""The names a caller may pass where the API takes a choice (a table, a sort, a metric)."""

from __future__ import annotations

from testledger.analyze.regressions.metrics import METRICS as REGRESSION_METRICS
from testledger.analyze.watcher.history import DEFAULT_HISTORY_RUNS as WATCH_HISTORY_RUNS
from testledger.ingest.registry import BUILT_IN_FORMATS as BUILT_IN_IMPORT_FORMATS
from testledger.report.export import EXPORT_FORMATS, EXPORT_TABLES
from testledger.report.issues import SORTS as ISSUE_SORTS
from testledger.report.trend import TREND_METRICS

__all__ = [
    "BUILT_IN_IMPORT_FORMATS",
    "EXPORT_FORMATS",
    "EXPORT_TABLES",
    "ISSUE_SORTS",
    "REGRESSION_METRICS",
    "TREND_METRICS",
    "WATCH_HISTORY_RUNS",
]
