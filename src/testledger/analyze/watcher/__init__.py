"""Watchers: independent observers that judge each recorded result against its own history.

``base`` holds the interface and the registry (entry point group ``testledger.watchers``),
``heuristic`` and ``llm`` the built-in watchers, ``history`` the ledger queries that feed them,
and ``service`` the loop that watches a recorded run and stores what they say.
"""

from __future__ import annotations

from testledger.analyze.watcher.base import (
    HistoryPoint,
    PreviousObservation,
    RecentHistory,
    ResultContext,
    Watcher,
    available_watchers,
    load_watcher,
)
from testledger.analyze.watcher.service import WatchSummary, watch_run

__all__ = [
    "HistoryPoint",
    "PreviousObservation",
    "RecentHistory",
    "ResultContext",
    "WatchSummary",
    "Watcher",
    "available_watchers",
    "load_watcher",
    "watch_run",
]
