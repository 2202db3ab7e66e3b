"""Numbering repeats of a test within an imported file as attempts (retries): SQLAlchemy-free,
for the import's parse-ahead process too (see :mod:`testledger.ingest.parse_ahead`)."""

from __future__ import annotations

from collections import OrderedDict

from testledger.model import TestResult

__all__ = ["AttemptNumbers"]


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
