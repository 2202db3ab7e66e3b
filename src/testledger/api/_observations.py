"""Recording what a watcher (or an agent acting as one) observed about a recorded result."""

from __future__ import annotations

from testledger.analyze.watcher.service import RecordedObservation
from testledger.analyze.watcher.service import record_observation as _record_observation
from testledger.model import WatcherObservation
from testledger.record.ledger import Ledger

__all__ = ["RecordedObservation", "WatcherObservation", "record_observation"]


def record_observation(
    ledger: Ledger, result_id: int, observation: WatcherObservation
) -> RecordedObservation:
    """Store ``observation`` for result ``result_id`` as a watcher's (the result's watcher
    quality becomes its score, the run's average watcher quality is recomputed). Raises
    NotFound."""
    return _record_observation(ledger.engine(create=False), result_id, observation)
