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

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

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
]

FORMAT = "testledger-run/1"
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


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class RunArchive:
    """Writes one run's files. Results are appended through a buffered handle; ``flush``
    pushes them to the OS (called at every database batch, so both stores advance together)."""

    def __init__(self, results_dir: Path, run_key: str) -> None:
        self.results_dir = results_dir
        self.run_key = run_key
        self.folder = results_dir / "runs" / folder_name(run_key)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.run_path = self.folder / "run.json"
        self.events_path = self.folder / "results.jsonl"
        fresh = not self.events_path.exists() or self.events_path.stat().st_size == 0
        self._events: IO[str] | None = self.events_path.open("a", encoding="utf-8")
        if fresh:
            header = {"event": "columns", "columns": list(ROW_COLUMNS)}
            self._events.write(encode_json(header) + "\n")
        self._state: dict[str, Any] = {}

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
        _write_atomically(self.run_path, json.dumps(self._state, indent=2, default=_jsonable))

    def append_row(self, row: tuple[Any, ...]) -> None:
        """Append one result, as encoded by :func:`encode_result`."""
        assert self._events is not None, "archive already closed"
        self._events.write('{"event":"result","row":' + encode_json(row) + "}\n")

    def append_watcher(self, test_id: str, attempt: int, observation: WatcherObservation) -> None:
        assert self._events is not None, "archive already closed"
        line = {
            "event": "watcher",
            "test_id": test_id,
            "attempt": attempt,
            "observation": observation.as_json(),
        }
        self._events.write(encode_json(line) + "\n")

    def flush(self) -> None:
        if self._events is not None:
            self._events.flush()

    def close(self) -> None:
        if self._events is not None:
            self._events.flush()
            os.fsync(self._events.fileno())
            self._events.close()
            self._events = None

    def publish_latest(self) -> None:
        """Copy this run's files to ``latest/`` (each file replaced atomically)."""
        latest = self.results_dir / "latest"
        latest.mkdir(parents=True, exist_ok=True)
        for source in (self.run_path, self.events_path):
            temporary = latest / (source.name + ".tmp")
            temporary.unlink(missing_ok=True)
            try:
                # The results file can be large: a hard link costs nothing, and it is only
                # ever appended to (by the same run). run.json is replaced when a sync marks
                # the run synced, so it is copied, not linked.
                if source is not self.events_path:
                    raise OSError("copy run.json")
                os.link(source, temporary)
            except OSError:
                shutil.copyfile(source, temporary)
            os.replace(temporary, latest / source.name)


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
    """
    columns: list[str] = list(ROW_COLUMNS)
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                return
            event = json.loads(line)
            if event["event"] == "columns":
                columns = event["columns"]
            elif event["event"] == "result":
                yield result_from_archive_row(columns, event["row"])
            elif event["event"] == "watcher":
                observation = WatcherObservation.from_json(event["observation"])
                yield (event["test_id"], int(event["attempt"]), observation)


def stats_from_events(path: Path, wall_clock_secs: float | None) -> RunStats:
    """A run's statistics computed from its ``results.jsonl``, by the same rules as the
    database's (``store.runs.compute_stats``): the last attempt of each test decides its status
    and watcher quality; cost and tokens add up every attempt."""
    final: dict[str, tuple[int, Status, int | None]] = {}
    duration = 0.0
    cost: float | None = None
    tokens: int | None = None
    for event in read_events(path):
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
