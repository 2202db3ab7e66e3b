"""testledger: the history of every test run.

Record runs from any runner (:func:`open_ledger`, :meth:`Ledger.start_run`), keep them in
SQLite or PostgreSQL and as JSON files, and query their history.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
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
    from testledger.record.ledger import Ledger, open_ledger
    from testledger.record.runner import ResultRef, Run
    from testledger.record.sync import SyncReport, sync_runs
    from testledger.store.engine import mask_url

    __version__: str

# The public names, and ``__version__`` (from the package metadata), are loaded on first use
# (PEP 562): the pytest plugin imports this package in every pytest session, recording or not,
# and must not pay for SQLAlchemy or importlib.metadata when it is off.
_EXPORTS = {
    "Settings": "testledger.config",
    "load_settings": "testledger.config",
    "ConfigError": "testledger.errors",
    "DatabaseUnavailable": "testledger.errors",
    "NotFound": "testledger.errors",
    "SchemaError": "testledger.errors",
    "TestledgerError": "testledger.errors",
    "NO_WATCHER": "testledger.model",
    "RunInfo": "testledger.model",
    "RunStats": "testledger.model",
    "RunStatus": "testledger.model",
    "Status": "testledger.model",
    "TestResult": "testledger.model",
    "WatcherObservation": "testledger.model",
    "Ledger": "testledger.record.ledger",
    "ResultRef": "testledger.record.runner",
    "Run": "testledger.record.runner",
    "open_ledger": "testledger.record.ledger",
    "SyncReport": "testledger.record.sync",
    "sync_runs": "testledger.record.sync",
    "mask_url": "testledger.store.engine",
}


def _version() -> str:
    """The installed distribution's version (pyproject's), read from its metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("testledger")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    else:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'testledger' has no attribute {name!r}")
        value = getattr(import_module(module), name)
    globals()[name] = value
    return value


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
