"""What every importer returns, and the error it raises for input it cannot read.

An importer module (``ingest/formats/junit.py``, ``ingest/formats/ctrf.py``...) exposes:

* ``FORMAT``: its name for ``--format`` (``"junit"``, ``"ctrf"``...);
* ``sniff(path, head) -> bool``: whether the file looks like its format, from its first bytes;
* ``parse(path) -> ParsedFile``: the run's header, and its results as a *lazy* iterator, so that a
  file of a million testcases is never held in memory at once.

Parsing errors are raised as :class:`ImportFormatError` (naming the file and, where known, the
line) from ``parse`` or while the results iterator is consumed; the importer writes a file's
rows in one transaction, so a late error leaves nothing of that file behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from testledger.errors import TestledgerError
from testledger.model import RunInfo, TestResult

__all__ = ["ImportFormatError", "ParsedFile"]


class ImportFormatError(TestledgerError):
    """A file could not be read as the format it claims (or any known format)."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {reason}")


@dataclass(slots=True)
class ParsedFile:
    """One imported file: what it says about its run, and its results, lazily.

    ``run`` holds what the file itself tells (start time, host, suite name...); the import command
    fills the rest (branch, commit, run key) from its options, git and the CI environment.
    ``fingerprint_source`` lets the importer derive an idempotent run key from the content.
    """

    path: Path
    format: str
    run: RunInfo
    results: Iterator[TestResult]
    warnings: list[str] = field(default_factory=list)
