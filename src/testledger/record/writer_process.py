"""The pytest plugin's writer process: :func:`main`, started by the plugin for each session.

The plugin starts it when a session records (see :mod:`testledger.record.writer_client`) and
feeds it batches of results through its stdin (:mod:`testledger.record.writer_pipe`). Here,
on the machine's other core, it does everything that costs: importing SQLAlchemy and the
database driver, detecting git and CI, connecting, writing the JSON spool and the database,
finishing the run and detecting its issues. The test session itself only builds small tuples.

Its stdout carries frames only; anything else that would be printed goes to its stderr, which
the plugin keeps in a file and quotes should this process die.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from testledger.common.framing import encode_frame, read_frame
from testledger.common.log_marks import SAID_BY_SUMMARY
from testledger.common.nodeids import split_nodeid
from testledger.common.own_process import tune_own_process
from testledger.common.text import bounded_id
from testledger.record.measure import CPU_MAX

if TYPE_CHECKING:
    from testledger.config import Settings
    from testledger.record.runner import Run

__all__ = [
    "LogCollector",
    "collect_logs",
    "expand_passing",
    "main",
    "record_items",
    "run_summary",
    "start_run",
]

_PROBLEM_LIMIT = 5


#: The text of the whole seconds that the tests of a session started in, as format_utc writes
#: them: a session's tests start within a few seconds of each other, and strftime cost more per
#: test than the rest of expand_passing (bench/pytest_overhead.py, cProfile of the writer).
_SECONDS: dict[int, str] = {}


def _utc_text(epoch: float) -> str:
    """``format_utc(datetime.fromtimestamp(epoch, timezone.utc))``, the same text."""
    # datetime.fromtimestamp's rounding: the fraction to the nearest microsecond, half even.
    fraction, whole = math.modf(epoch)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    second = int(whole)
    text = _SECONDS.get(second)
    if text is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        moment = datetime.fromtimestamp(second, timezone.utc)
        text = _SECONDS[second] = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{micros:06d}Z"


def expand_passing(compact: tuple[Any, ...]) -> tuple[Any, ...]:
    """A passing test's compact tuple (``COMPACT_FIELDS``) as the row of ``ROW_COLUMNS`` that
    ``encode_result`` gives for the same result."""
    test_id, attempt, duration, started, rss, cpu = compact
    tool_name, variation = split_nodeid(test_id)
    # As TestResult bounds them (a compact tuple never was one).
    test_id, tool_name, variation = (
        bounded_id(test_id),
        bounded_id(tool_name),
        bounded_id(variation),
    )
    return (
        test_id,
        attempt,
        tool_name,
        variation,
        None,  # provider
        None,  # model
        "PASS",
        None,  # execution_status
        duration,
        None if rss is None else round(rss),
        None if cpu is None else round(min(cpu, CPU_MAX), 2),  # stored_cpu_percent
        None,  # tokens_total
        None,  # tokens_input
        None,  # tokens_output
        None,  # cost_usd
        None,  # watcher_quality
        None,  # watcher_observations
        None,  # error_type
        None,  # error_message
        None,  # traceback
        None,  # output_excerpt
        None,  # metrics (none: stored as NULL, as encode_result stores {})
        None,  # details (likewise)
        _utc_text(started),
    )


class LogCollector(logging.Handler):
    """Keeps the runner's warnings and errors for the plugin's summary, instead of printing
    them: the run's files that cannot be written, a setting that cannot be used, detection
    skipped. Not the database outage that sent the run to its files, which the summary says in
    its own words (SAID_BY_SUMMARY)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, SAID_BY_SUMMARY, False):
            # The summary prefixes its lines with "testledger: " itself.
            self.messages.append(record.getMessage().removeprefix("testledger: "))


def collect_logs() -> LogCollector:
    """Route the ``testledger`` logger into a new collector, for good."""
    collector = LogCollector()
    logger = logging.getLogger("testledger")
    logger.addHandler(collector)
    logger.propagate = False
    return collector


def start_run(settings: Settings, options: dict[str, Any], *, offline: str | None = None) -> Run:
    """The plugin's run, as the plugin described it (``Ledger.start_run`` keywords); with
    ``offline``, into the spool alone, continuing the spool a dead writer left (a line it
    was killed in the middle of writing is cut off first)."""
    if settings.database_url.lstrip().lower().startswith("postgres"):
        # Before store.database, so that its DATABASE_ERRORS names psycopg's errors too, as it
        # always has where PostgreSQL is used (see database_errors()).
        with contextlib.suppress(ImportError):
            import psycopg  # noqa: F401

    from testledger.record.archive import folder_name
    from testledger.record.ledger import Ledger
    from testledger.store.engine import mask_urls_in

    options = dict(options)
    metadata = options["metadata"] = dict(options.get("metadata") or {})
    pytest_info = metadata.get("pytest")
    if isinstance(pytest_info, dict) and "args" in pytest_info:
        metadata["pytest"] = {**pytest_info, "args": [mask_urls_in(a) for a in pytest_info["args"]]}
    if offline is not None:
        events = settings.results_dir / "runs" / folder_name(options["run_key"]) / "results.jsonl"
        _cut_torn_line(events)
    return Ledger(settings=settings).start_run(**options, offline=offline)


def _cut_torn_line(path: Path) -> None:
    try:
        with path.open("rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def _prepare_finish(run: Run) -> None:
    """Do now, while the tests run and this process waits for them, what finishing the run
    would otherwise do first, since the session waits for the finish: import the watcher, if
    any, and compile the statistics' SQL (SQLAlchemy caches it per engine; a few milliseconds)
    by computing them over the still empty run. Issue detection's modules are imported on a
    thread of their own (see _import_detection)."""
    if run.spooled or run.run_id is None:
        return
    if run.detect_issues:
        threading.Thread(
            target=_import_detection, args=(run,), name="testledger-import", daemon=True
        ).start()
    if run.watcher:
        import testledger.analyze.watcher  # noqa: F401
    from testledger.store.database import database_errors
    from testledger.store.runs import compute_stats

    try:
        with run.ledger.engine().connect() as connection:
            compute_stats(connection, run.run_id)
    except database_errors():
        pass  # only a warm-up: finishing the run meets any outage for itself


def _import_detection(run: Run) -> None:
    """Import issue detection and retention while the tests run, and numpy when the run's
    detection will analyse series: the session waits for the detection that follows its run
    (DETECTION_WAIT_SECS at most), and their import was most of that wait (50 of 80 ms after
    a 5,000-test session on a ledger without history; numpy's 60 ms with one). Detection
    imports them again, and says why, should this fail."""
    with contextlib.suppress(Exception):
        import testledger.record.pruning  # noqa: F401
        from testledger.analyze.pipeline import import_ahead

        assert run.run_id is not None
        import_ahead(run.ledger.engine(), run.ledger.settings, run.run_id)


def _read_ahead(stdin: IO[bytes]) -> Callable[[], Any | None]:
    """The session's frames, read by a thread of their own from the start: while this process
    imports SQLAlchemy, migrates and detects git (about half a second), the pipe keeps being
    drained, so the session never blocks on a full pipe while its first batches wait here."""
    frames: queue.SimpleQueue[Any | None] = queue.SimpleQueue()

    def pump() -> None:
        try:
            while (frame := read_frame(stdin)) is not None:
                frames.put(frame)
        finally:
            frames.put(None)  # end of input (or a broken pipe): the session is gone

    threading.Thread(target=pump, name="testledger-pipe", daemon=True).start()
    return frames.get


def _session(stdin: IO[bytes], out: IO[bytes]) -> None:
    from testledger.model import RunStatus
    from testledger.store.engine import mask_urls_in

    next_frame = _read_ahead(stdin)
    collector = collect_logs()
    problems: list[str] = []
    start = next_frame()
    run: Run | None = None
    if start is not None:
        _, settings, options = start
        try:
            run = start_run(settings, options)
        except Exception as exc:  # never fail the session over recording
            problems.append(mask_urls_in(f"could not start the run: {type(exc).__name__}: {exc}"))
        else:
            _prepare_finish(run)
    finished = False
    while (message := next_frame()) is not None:
        if message[0] == "batch":
            _, seq, items = message
            if run is not None:
                record_items(run, items, problems)
                run.flush()  # the spool reaches the OS before the batch is acknowledged
            _reply(out, ("ack", seq))
        elif message[0] == "expected":
            if run is not None:
                run.expect_tests(message[1])
        elif message[0] == "finish":
            _, status, notes, wall_clock_secs = message
            if run is not None:
                # Issue detection (which reads the history) and retention once the session
                # has its answer: see _after_session.
                run.defer_after_finish = True
                try:
                    run.finish(RunStatus(status), notes, wall_clock_secs=wall_clock_secs)
                except Exception as exc:
                    problems.append(f"could not finish the run: {type(exc).__name__}: {exc}")
            finished = True
            break
    if run is not None and not finished:
        # The session went away without finishing: keep what it recorded, marked aborted.
        run.defer_after_finish = True
        run.abort("aborted: the pytest session ended before the run was finished")
    summary: dict[str, Any] = {"problems": problems, "errors": collector.messages}
    if run is not None:
        summary.update(run_summary(run), detecting=run.deferred and run.detect_issues)
    _reply(out, ("done", summary))
    if run is not None:
        _after_session(run, out, collector)
        # After the replies, so that the session does not wait for it: closing SQLite's last
        # connection checkpoints its WAL (every result is committed already).
        run.ledger.close()


def run_summary(run: Run) -> dict[str, Any]:
    """Where the run went, for the plugin's summary: the writer's "done" reply carries it, and
    the plugin takes it from its own run should the writer have died."""
    return {
        "url": run.ledger.url,
        "run_id": run.run_id,
        "run_key": run.run_key,
        "spool_reason": run.spool_reason,
        "folder": str(run.archive.folder),
        "files_failed": run.archive.failed,
    }


def _after_session(run: Run, out: IO[bytes], collector: LogCollector) -> None:
    """Issue detection and retention, after the session has been told the run is finished:
    they read the ledger's history, so their cost grows with it, and the session must not
    wait for that. The plugin waits a moment for ``("detected", errors)`` and otherwise
    leaves this process to finish on its own (see writer_client.DETECTION_WAIT_SECS); should
    it be killed first, the run keeps ``detected_at`` NULL and the next recording, import,
    sync or ``testledger detect`` completes its detection (analyze.pipeline.undetected_runs)."""
    if not run.deferred:
        return
    seen = len(collector.messages)
    try:
        run.run_deferred()
    except Exception as exc:  # never raised: the run itself is stored
        collector.messages.append(f"issue detection failed: {type(exc).__name__}: {exc}")
    _reply(out, ("detected", collector.messages[seen:]))


def _reply(out: IO[bytes], message: Any) -> None:
    try:
        out.write(encode_frame(message))
        out.flush()
    except BrokenPipeError:
        # The session is gone: there is no one to tell, but the run still gets finished (its
        # input ends next, and the run is closed as aborted).
        pass


def record_items(run: Run, items: list[Any], problems: list[str]) -> None:
    """Record the plugin's items (compact tuples and (TestResult, observations) pairs)."""
    for item in items:
        try:
            if type(item[0]) is str:
                run.record_row(expand_passing(item))
            else:
                result, extra = item
                ref = run.record(result)
                for observation in extra:
                    run.attach_watcher(ref, observation)
        except Exception as exc:  # a result we cannot store must not lose the others
            if len(problems) < _PROBLEM_LIMIT:
                test_id = item[0] if type(item[0]) is str else item[0].test_id
                problems.append(f"{test_id}: {type(exc).__name__}: {exc}")


def main() -> None:
    tune_own_process()
    stdin = sys.stdin.buffer
    # Frames only on the real stdout: whatever else prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _session(stdin, out)
    with contextlib.suppress(BrokenPipeError):
        out.close()
    sys.stderr.flush()
    # Everything is written, committed and closed: skip the interpreter's teardown of
    # SQLAlchemy and the rest (tens of milliseconds that the session would wait for).
    os._exit(0)


if __name__ == "__main__":
    main()
