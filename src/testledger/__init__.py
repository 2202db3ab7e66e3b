"""testledger: the history of every test run.

Record runs from any runner (:func:`open_ledger`, :meth:`Ledger.start_run`), keep them in
SQLite or PostgreSQL and as JSON files, and query their history.
"""

from testledger.config import Settings, load_settings
from testledger.errors import (
    ConfigError,
    DatabaseUnavailable,
    NotFound,
    SchemaError,
    TestledgerError,
)
from testledger.model import (
    NO_WATCHER,
    RunInfo,
    RunStats,
    RunStatus,
    Status,
    TestResult,
    WatcherObservation,
)
from testledger.record.runner import Ledger, ResultRef, Run, open_ledger
from testledger.record.sync import SyncReport, sync_runs
from testledger.store.engine import mask_url

__version__ = "0.1.0"

__all__ = [
    "NO_WATCHER",
    "ConfigError",
    "DatabaseUnavailable",
    "Ledger",
    "NotFound",
    "ResultRef",
    "Run",
    "RunInfo",
    "RunStats",
    "RunStatus",
    "SchemaError",
    "Settings",
    "Status",
    "SyncReport",
    "TestResult",
    "TestledgerError",
    "WatcherObservation",
    "__version__",
    "load_settings",
    "mask_url",
    "open_ledger",
    "sync_runs",
]
