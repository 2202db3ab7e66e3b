"""Parsing a large report in a second process while this one writes its rows.

Importing a new run costs, per result, about a third parsing and encoding (reading the file,
building the TestResult, encoding its row) and two thirds the database's work (SQLite's insert
into test_results and its nine indexes; psycopg's COPY). Python runs them one after the other.
For a large file of a format that streams its results (the importer's ``PARSE_AHEAD``: JUnit
XML, pytest-reportlog lines) the parsing moves to a child process running the very same parser
(``FORMATS[format].parse``) and row encoding (:class:`~testledger.ingest.rows.EncodedResults`),
which sends the encoded rows in chunks through a pipe: the two halves run on two cores
(``bench/import.py``).

The child imports neither SQLAlchemy nor a database driver (:mod:`testledger.store.encoding`,
:mod:`testledger.ingest.rows`), so that it starts in a few tens of milliseconds. The pipe
bounds what is in flight (a few chunks), so memory stays flat in the file's size.

A malformed file is the same :class:`ImportFormatError` as when parsed here (the child sends
its path, reason and line). Should the child fail otherwise, :class:`ParseAheadFailed` tells
the importer to write the file again, parsed in its own process.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from testledger.common.framing import encode_frame, read_frame
from testledger.ingest.base import ImportFormatError, ParsedFile, checked
from testledger.ingest.discovery import FORMATS
from testledger.model import WatcherObservation

__all__ = ["MIN_BYTES", "ParseAhead", "ParseAheadFailed", "main"]

#: Smallest file parsed ahead: the child's start (about 70 ms, while this process waits for its
#: first rows) pays off from some 15,000 testcases, about 3 MB of JUnit.
MIN_BYTES = 4 << 20

#: Rows per message: large enough that framing and pickling cost little, small enough that
#: the pipe keeps a few of them in flight.
_CHUNK = 500

_CHILD = (
    "import sys; sys.path.append(sys.argv.pop(1)); "
    "from testledger.ingest.parse_ahead import main; main()"
)


class ParseAheadFailed(Exception):
    """The parsing process failed for another reason than the file's format."""


def wanted(parsed: ParsedFile) -> bool:
    """Whether ``parsed`` is worth parsing in a second process."""
    importer = FORMATS.get(parsed.format)
    if importer is None or not importer.PARSE_AHEAD:
        return False
    try:
        return parsed.path.is_file() and parsed.path.stat().st_size >= MIN_BYTES
    except OSError:
        return False


class ParseAhead:
    """A child process parsing ``path`` as ``format_name``: :meth:`chunks` gives its encoded
    rows (``encode_result``) as they come; then :attr:`count`, :attr:`total_duration`,
    :attr:`watched` ((test_id, attempt, observation) of the results with one) and
    :attr:`warnings` are the whole file's."""

    def __init__(self, path: Path, format_name: str, remember: int) -> None:
        self.path = path
        self.count = 0
        self.total_duration = 0.0
        self.watched: list[tuple[str, int, WatcherObservation]] = []
        self.warnings: list[str] = []
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        # This testledger's folder goes at the end of the child's path, as for the plugin's
        # writer process (record.writer_client): found wherever this one was imported from.
        source_root = str(Path(__file__).resolve().parents[2])
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, source_root, format_name, str(path), str(remember)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except BaseException:
            self._stderr.close()
            raise

    def chunks(self) -> Iterator[list[tuple[Any, ...]]]:
        stdout = self._process.stdout
        assert stdout is not None
        while True:
            message = read_frame(stdout)
            if message is None:
                raise ParseAheadFailed(self._last_words())
            kind = message[0]
            if kind == "rows":
                yield message[1]
            elif kind == "end":
                _, self.count, self.total_duration, self.watched, self.warnings = message
                return
            elif kind == "format_error":
                _, path, reason, line = message
                raise ImportFormatError(path, reason, line)
            else:
                raise ParseAheadFailed(str(message[1]))

    def _last_words(self) -> str:
        code = self._process.wait()
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        last = f": {lines[-1].strip()}" if lines else ""
        return f"the parsing process exited with status {code}{last}"

    def close(self) -> None:
        """Stop the child if it is still parsing (the import stopped early), and reap it."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> ParseAhead:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _parse(format_name: str, path: Path, remember: int, out: IO[bytes]) -> None:
    from testledger.ingest.rows import AttemptNumbers, EncodedResults

    # A plugin's format is found in the child as in this process, through the installed
    # distributions' entry points; one this process found otherwise (on a sys.path of its own)
    # is unknown there, and the file is then parsed in this process (ParseAheadFailed).
    parsed = checked(path, FORMATS[format_name].parse)
    rows = EncodedResults(parsed.results, AttemptNumbers({}, remember))
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _CHUNK:
            out.write(encode_frame(("rows", chunk)))
            chunk = []
    if chunk:
        out.write(encode_frame(("rows", chunk)))
    out.write(encode_frame(("end", rows.count, rows.total_duration, rows.watched, parsed.warnings)))


def main() -> None:
    """The child: ``format path remember`` in argv; frames on stdout (see ParseAhead)."""
    format_name, path, remember = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    out = sys.stdout.buffer
    try:
        _parse(format_name, path, remember, out)
    except ImportFormatError as exc:
        out.write(encode_frame(("format_error", str(exc.path), exc.reason, exc.line)))
    except Exception as exc:
        out.write(encode_frame(("failed", f"{type(exc).__name__}: {exc}")))
    with contextlib.suppress(BrokenPipeError):
        out.flush()
