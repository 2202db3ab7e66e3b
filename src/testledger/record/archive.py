"""The JSON side of dual storage: every run also lives as files in the results folder.

Layout (format ``testledger-run/1``, documented in the README)::

    <results_dir>/
      runs/<run-key>/run.json        the run: info, status, statistics, database sync state
      runs/<run-key>/results.jsonl   one event per line, in recording order
      latest/run.json                copies of the most recently finished run
      latest/results.jsonl

``results.jsonl`` starts with ``{"event": "columns", "columns": [...]}`` naming the fields of a
result row; then each result is ``{"event": "result", "row": [...]}`` (values in that order:
the same row the database gets, encoded once; JSON columns such as ``metrics`` are JSON text),
and an observation attached after its result is
``{"event": "watcher", "test_id": ..., "attempt": ..., "observation": {...}}``. Rows rather than
objects keep recording cheap: the JSON side costs about 2 µs a result. The file is appended
as the run goes, so it is the spool too: when the database is away, ``run.json`` says
``"state": "pending"`` and ``testledger sync`` replays the events into the database later.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from testledger.common.log_marks import SAID_BY_SUMMARY
from testledger.model import RunInfo, RunStats, Status, TestResult, WatcherObservation
from testledger.store.types import format_utc, parse_utc
from testledger.store.writer import ROW_COLUMNS, encode_json

__all__ = [
    "FORMAT",
    "ArchivedRun",
    "RunArchive",
    "iter_archived_runs",
    "read_events",
    "result_from_archive_row",
    "stats_from_events",
    "write_atomically",
]

FORMAT = "testledger-run/1"
log = logging.getLogger("testledger")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def folder_name(run_key: str) -> str:
    """A file-system-safe folder name for a run key (keys chosen by users may hold '/')."""
    safe = _UNSAFE.sub("_", run_key).strip("._") or "run"
    if safe == run_key:
        return safe
    return f"{safe[:80]}-{hashlib.sha1(run_key.encode()).hexdigest()[:8]}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def result_from_archive_row(columns: list[str], row: list[Any]) -> TestResult:
    """Rebuild a result from a ``results.jsonl`` row (columns as named by its header line)."""
    data = dict(zip(columns, row, strict=True))
    observation = data.pop("watcher_observations", None)
    data.pop("watcher_quality", None)
    started = data.pop("started_at", None)
    for name in ("metrics", "details"):
        text = data.pop(name, None)
        data[name] = json.loads(text) if text else {}
    fields = {key: value for key, value in data.items() if value is not None or key == "attempt"}
    result = TestResult(**fields)
    if started:
        result.started_at = parse_utc(started)
    if observation:
        result.watcher = WatcherObservation.from_json(json.loads(observation))
    return result


def _replace_from(target: Path, fill: Callable[[Path], None]) -> None:
    """Replace ``target`` atomically by a file ``fill`` makes at a temporary path.

    The temporary name is unique to this call: processes finishing at once in one results
    folder (``latest/``), or syncing one run together, each write their own file and the last
    ``os.replace`` wins whole, where a shared fixed name let one remove or overwrite another's.
    """
    temporary = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        fill(temporary)
        os.replace(temporary, target)
    finally:
        # Gone once replaced, except where both names were links to one file already (the
        # same run published twice): rename() then leaves both. The name is this call's own.
        temporary.unlink(missing_ok=True)


def write_atomically(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (see :func:`_replace_from`)."""

    def fill(temporary: Path) -> None:
        # "x": a fresh file of this call's own, never one another process linked there.
        with temporary.open("x", encoding="utf-8") as handle:
            handle.write(text)

    _replace_from(path, fill)


def _cut_torn_line(path: Path) -> None:
    """Cut a last line left without its newline (a process died while writing it)."""
    try:
        with path.open("rb+") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size == 0:
                return
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()  # rare (after a crash): the whole file, to find the line
            handle.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        return
    log.warning("testledger: cut a torn last line off %s (its process died mid-write)", path)


def _copy_fresh(source: Path, temporary: Path) -> None:
    with source.open("rb") as reading, temporary.open("xb") as writing:
        shutil.copyfileobj(reading, writing)


def _link_or_copy(source: Path, temporary: Path) -> None:
    try:
        os.link(source, temporary)
    except FileExistsError:
        raise  # never expected (the name is unique); never written through either
    except OSError:
        # No hard links here (another file system, a FAT volume...): a copy into a file of
        # its own, created exclusively, so that no other run's file is written through.
        _copy_fresh(source, temporary)


class RunArchive:
    """Writes one run's files. Results are appended through a buffered handle; ``flush``
    pushes them to the OS (called at every database batch, so both stores advance together)."""

    def __init__(self, results_dir: Path, run_key: str) -> None:
        self.results_dir = results_dir
        self.run_key = run_key
        self.folder = results_dir / "runs" / folder_name(run_key)
        self.run_path = self.folder / "run.json"
        self.events_path = self.folder / "results.jsonl"
        #: Why the files could not be written (a full disk...), once they could not.
        self.failed: str | None = None
        self._events: IO[str] | None = None
        self._state: dict[str, Any] = {}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # A run key used again after a process died mid-line: what follows must not be
            # glued to the torn line.
            _cut_torn_line(self.events_path)
            fresh = not self.events_path.exists() or self.events_path.stat().st_size == 0
            self._events = self.events_path.open("a", encoding="utf-8")
            if fresh:
                header = {"event": "columns", "columns": list(ROW_COLUMNS)}
                self._events.write(encode_json(header) + "\n")
        except OSError as exc:
            self._trouble(exc)

    def _trouble(self, exc: OSError) -> None:
        """The files cannot be written (a full disk, a lost mount...): recording goes on, into
        the database if it is there, and this run's files stop here. Said once per run; never
        raised into the test runner."""
        events, self._events = self._events, None
        if events is not None:
            with contextlib.suppress(OSError):
                events.close()  # its unwritten buffer fails again: dropped
        if self.failed is None:
            self.failed = exc.strerror or str(exc) or type(exc).__name__
            log.warning(
                "testledger: cannot write the files of run %s in %s (%s); recording goes on "
                "without them",
                self.run_key,
                self.folder,
                self.failed,
                extra={SAID_BY_SUMMARY: True},
            )

    def write_run(
        self,
        info: RunInfo,
        *,
        status: str,
        stats: RunStats | None = None,
        finished_at: datetime | None = None,
        database: dict[str, Any] | None = None,
    ) -> None:
        run = dataclasses.asdict(info)
        run["run_key"] = self.run_key
        self._state = {
            "format": FORMAT,
            "run_key": self.run_key,
            "status": status,
            "run": run,
            "finished_at": finished_at,
            "stats": dataclasses.asdict(stats) if stats else None,
            "database": database or {"state": "pending"},
        }
        text = json.dumps(self._state, indent=2, default=_jsonable)
        try:
            write_atomically(self.run_path, text)
        except OSError as exc:
            self._trouble(exc)

    def _write_line(self, line: str) -> None:
        events = self._events
        if events is None:
            assert self.failed is not None, "archive already closed"
            return
        try:
            events.write(line)
        except OSError as exc:
            self._trouble(exc)

    def append_row(self, row: tuple[Any, ...]) -> None:
        """Append one result, as encoded by :func:`encode_result`."""
        self._write_line('{"event":"result","row":' + encode_json(row) + "}\n")

    def append_watcher(self, test_id: str, attempt: int, observation: WatcherObservation) -> None:
        line = {
            "event": "watcher",
            "test_id": test_id,
            "attempt": attempt,
            "observation": observation.as_json(),
        }
        self._write_line(encode_json(line) + "\n")

    def flush(self) -> None:
        if self._events is not None:
            try:
                self._events.flush()
            except OSError as exc:
                self._trouble(exc)

    def close(self) -> None:
        events = self._events
        if events is None:
            return
        try:
            events.flush()
            os.fsync(events.fileno())
            events.close()
        except OSError as exc:
            self._trouble(exc)
        self._events = None

    def publish_latest(self) -> None:
        """Copy this run's files to ``latest/`` (each file replaced atomically)."""
        if self.failed is not None:
            return  # incomplete files are not the latest run's
        latest = self.results_dir / "latest"
        try:
            latest.mkdir(parents=True, exist_ok=True)
            # run.json is replaced when a sync marks the run synced, so it is copied. The
            # results file can be large: a hard link costs nothing, and it is only ever
            # appended to (by the same run).
            _replace_from(latest / self.run_path.name, lambda t: _copy_fresh(self.run_path, t))
            events = self.events_path
            _replace_from(latest / events.name, lambda t: _link_or_copy(events, t))
        except OSError as exc:
            self._trouble(exc)


@dataclass(frozen=True, slots=True)
class ArchivedRun:
    """A run as read back from its folder."""

    folder: Path
    run_key: str
    status: str
    info: RunInfo
    finished_at: datetime | None
    database_state: str
    raw: dict[str, Any]

    @property
    def events_path(self) -> Path:
        return self.folder / "results.jsonl"


def _info_from_json(data: dict[str, Any]) -> RunInfo:
    known = {field.name for field in dataclasses.fields(RunInfo)}
    fields = {key: value for key, value in data.items() if key in known}
    if fields.get("started_at"):
        fields["started_at"] = parse_utc(fields["started_at"])
    return RunInfo(**fields)


def iter_archived_runs(results_dir: Path) -> Iterator[ArchivedRun]:
    """Every run folder under ``results_dir/runs``, oldest start first."""
    runs: list[ArchivedRun] = []
    for run_path in sorted((results_dir / "runs").glob("*/run.json")):
        data = json.loads(run_path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            continue
        finished = data.get("finished_at")
        runs.append(
            ArchivedRun(
                folder=run_path.parent,
                run_key=data["run_key"],
                status=data["status"],
                info=_info_from_json(data["run"]),
                finished_at=parse_utc(finished) if finished else None,
                database_state=data.get("database", {}).get("state", "pending"),
                raw=data,
            )
        )
    runs.sort(key=lambda run: (run.info.started_at is None, run.info.started_at or 0, run.run_key))
    yield from runs


def read_events(
    path: Path,
) -> Iterator[TestResult | tuple[str, int, WatcherObservation]]:
    """Replay a ``results.jsonl``: results, and (test_id, attempt, observation) attachments.

    A torn last line (the process died mid-write) is skipped: everything before it is intact.
    So is a torn line further up (a run key used again after such a death, by a version that
    did not cut it first), with a warning: the lines after it are intact too.
    """
    columns: list[str] = list(ROW_COLUMNS)
    # errors="replace": a line torn inside a character is still skipped as a torn line.
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                return
            try:
                event = json.loads(line)
                kind = event["event"]
            except (ValueError, TypeError, KeyError):
                log.warning("testledger: skipped torn line %d of %s", number, path)
                continue
            if kind == "columns":
                columns = event["columns"]
            elif kind == "result":
                yield result_from_archive_row(columns, event["row"])
            elif kind == "watcher":
                observation = WatcherObservation.from_json(event["observation"])
                yield (event["test_id"], int(event["attempt"]), observation)


def _readable_events(
    path: Path, *, missing_ok: bool = False
) -> Iterator[TestResult | tuple[str, int, WatcherObservation]]:
    """The events of a file the recorder may have failed to write (see RunArchive._trouble):
    the run's statistics are those of what could be read, never an error in the runner."""
    try:
        yield from read_events(path)
    except OSError as exc:
        if not (missing_ok and isinstance(exc, (FileNotFoundError, NotADirectoryError))):
            log.warning("testledger: cannot read %s (%s)", path, exc.strerror or exc)


def stats_from_events(
    path: Path, wall_clock_secs: float | None, *, missing_ok: bool = False
) -> RunStats:
    """A run's statistics computed from its ``results.jsonl``, by the same rules as the
    database's (``store.runs.compute_stats``): the last attempt of each test decides its status
    and watcher quality; cost and tokens add up every attempt. ``missing_ok``: no file is no
    results, unsaid (the recorder has said already that it could not write it)."""
    final: dict[str, tuple[int, Status, int | None]] = {}
    duration = 0.0
    cost: float | None = None
    tokens: int | None = None
    for event in _readable_events(path, missing_ok=missing_ok):
        if isinstance(event, TestResult):
            attempt = event.attempt or 1
            quality = event.watcher.quality_score if event.watcher else None
            if event.test_id not in final or final[event.test_id][0] <= attempt:
                final[event.test_id] = (attempt, event.status, quality)
            duration += event.duration_secs or 0.0
            if event.cost_usd is not None:
                cost = (cost or 0.0) + event.cost_usd
            if event.tokens_total is not None:
                tokens = (tokens or 0) + event.tokens_total
        else:
            test_id, attempt, observation = event
            known = final.get(test_id)
            if known is not None and known[0] == attempt:
                final[test_id] = (attempt, known[1], observation.quality_score)
    statuses = [status for _, status, _ in final.values()]
    qualities = [quality for _, _, quality in final.values() if quality is not None]
    passed = statuses.count(Status.PASS)
    skipped = statuses.count(Status.SKIP)
    errored = statuses.count(Status.ERROR)
    executed = len(statuses) - skipped
    total_secs = wall_clock_secs if wall_clock_secs is not None else duration
    return RunStats(
        total_tests=len(statuses),
        tests_passed=passed,
        tests_failed=statuses.count(Status.FAIL) + errored,
        tests_skipped=skipped,
        tests_errored=errored,
        pass_rate=round(100.0 * passed / executed, 2) if executed else None,
        avg_watcher_quality=round(sum(qualities) / len(qualities), 2) if qualities else None,
        total_duration_secs=round(total_secs),
        total_cost_usd=None if cost is None else round(cost, 4),
        total_tokens=tokens,
        duration_secs=round(total_secs, 3),
    )
