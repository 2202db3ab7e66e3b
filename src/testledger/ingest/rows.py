"""A new run's results as the rows an import writes: repeats numbered as attempts, each result
encoded (``encode_result``), its duration summed and its watcher observation kept aside.
SQLAlchemy-free, so that the import's parse-ahead process (:mod:`testledger.ingest.parse_ahead`)
runs the very same code as the importing process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from testledger.model import TestResult, WatcherObservation
from testledger.store.encoding import encode_result

__all__ = ["AttemptNumbers", "EncodedResults"]


class AttemptNumbers:
    """Numbers repeats of a test within a file as attempts, remembering the ``remember`` most
    recent tests only (a repeat further away is caught by the database's unique index)."""

    def __init__(self, first: dict[str, int], remember: int) -> None:
        self._last: OrderedDict[str, int] = OrderedDict(first)
        self._remember = remember

    def assign(self, result: TestResult) -> None:
        previous = self._last.get(result.test_id, 0)
        if result.attempt is None or result.attempt <= previous:
            result.attempt = previous + 1
        self._last[result.test_id] = result.attempt
        self._last.move_to_end(result.test_id)
        if len(self._last) > self._remember:
            self._last.popitem(last=False)


class EncodedResults:
    """Iterates over the encoded rows of ``results``, numbering attempts with ``attempts``;
    once done, :attr:`count`, :attr:`total_duration` and :attr:`watched` ((test_id, attempt,
    observation) of the results that carry one) are the whole file's."""

    def __init__(self, results: Iterable[TestResult], attempts: AttemptNumbers) -> None:
        self._results = results
        self._assign = attempts.assign
        self.count = 0
        self.total_duration = 0.0
        self.watched: list[tuple[str, int, WatcherObservation]] = []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        assign = self._assign
        for result in self._results:
            assign(result)
            duration = result.duration_secs
            if duration:
                self.total_duration += duration
            if result.watcher is not None:
                self.watched.append((result.test_id, result.attempt or 1, result.watcher))
            self.count += 1
            yield encode_result(result)
