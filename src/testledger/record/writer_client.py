"""The pytest side of the writer process: start it, hand it batches, learn how the run ended.

Standard library only (with :mod:`testledger.record.writer_pipe`): this is what a recording
pytest session imports, and SQLAlchemy, the database driver and the runner stay in the writer
process (:mod:`testledger.record.writer_process`), on the machine's other core, where neither
their import nor their garbage nor the GIL slows the tests down.

Every batch stays here until the writer acknowledges that it is in the run's JSON spool. Should
the writer die, :class:`WriterDied` is raised and :meth:`WriterClient.unacknowledged` gives back
what it may not have spooled, for the plugin to record into the spool itself.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from testledger.common.framing import FrameReader, encode_frame

__all__ = ["DETECTION_WAIT_SECS", "WriterClient", "WriterDied"]

#: How long the session waits, once the run is finished, for the writer's issue detection
#: (which reads the ledger's history) before leaving it to finish in the background.
DETECTION_WAIT_SECS = 0.1

#: select() on a pipe: not on Windows, whose sessions wait for detection as long as it takes.
_CAN_SELECT = sys.platform != "win32"

#: Writers left detecting after their session (see WriterClient.close).
_DETACHED: list[subprocess.Popen[bytes]] = []

#: Batches sent but not yet acknowledged before :meth:`WriterClient.submit` waits for the
#: writer: it bounds the memory held here when the database is slower than the tests (40
#: batches of compact tuples: a few MB at most), and is large enough that the writer's start
#: (imports, migrations, git: about half a second, during which it acknowledges nothing)
#: never holds the tests up.
MAX_UNACKNOWLEDGED = 40


_CHILD = (
    "import sys; sys.path.append(sys.argv.pop(1)); "
    "from testledger.record.writer_process import main; main()"
)


class WriterDied(Exception):
    """The writer process is gone (its exit status and last words in the message)."""


class WriterClient:
    def __init__(self, settings: Any, options: dict[str, Any]) -> None:
        if not hasattr(os, "set_blocking"):  # Windows before Python 3.12
            raise OSError("this Python cannot read a pipe without blocking")
        # The writer's last words, should it die; closed in finish().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        # The folder this testledger was imported from goes at the end of the child's path:
        # it finds this testledger even where only the session's path held it, and shadows
        # nothing (not the standard library, as a site-packages folder put first could).
        source_root = str(Path(__file__).resolve().parents[2])
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, source_root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            # A session of its own: Ctrl-C in the terminal interrupts pytest, which then
            # finishes the run as aborted through this writer, instead of killing both.
            start_new_session=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin = self._process.stdin
        try:
            self._reply_fd = self._process.stdout.fileno()
            self._replies = FrameReader(self._reply_fd)
        except BaseException:
            self._process.kill()
            self._process.wait()
            raise
        self._unacknowledged: deque[tuple[int, list[Any]]] = deque()
        self._seq = 0
        self._send(("start", settings, options))

    @property
    def pid(self) -> int:
        return self._process.pid

    def submit(self, items: list[Any]) -> None:
        """Send a batch; waits only while MAX_UNACKNOWLEDGED batches are in flight."""
        self._seq += 1
        self._unacknowledged.append((self._seq, items))
        self._send(("batch", self._seq, items))
        self._take(self._replies.poll())
        if self._replies.closed:
            raise self._died()
        while len(self._unacknowledged) > MAX_UNACKNOWLEDGED:
            self._take([self._wait()])

    def expect(self, count: int) -> None:
        """Tell the writer how many tests the session collected (not acknowledged)."""
        self._send(("expected", count))

    def finish(self, status: str, notes: str | None, wall_clock_secs: float) -> None:
        """Ask the writer to finish the run (it finishes the database side too: its last
        batch, the statistics and issue detection); :meth:`wait_finished` waits for it."""
        self._send(("finish", status, notes, wall_clock_secs))
        self._close_stdin()

    def wait_finished(self) -> dict[str, Any]:
        """The writer's summary, once it has finished the run."""
        while True:
            message = self._wait()
            if message[0] == "done":
                summary: dict[str, Any] = message[1]
                return summary
            self._take([message])

    def wait_detected(self, timeout: float | None) -> tuple[bool, list[str]]:
        """After :meth:`wait_finished`: whether the writer's issue detection was over within
        ``timeout`` seconds (None: however long it takes), and the errors it logged."""
        deadline = None if timeout is None or not _CAN_SELECT else time.monotonic() + timeout
        while True:
            if deadline is None:
                message = self._replies.wait()
                if message is None:  # gone without a word: its detection is left undone
                    return False, []
                messages = [message]
            else:
                messages = self._replies.poll()
            for message in messages:
                if message[0] == "detected":
                    return True, list(message[1])
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if self._replies.closed or remaining <= 0:
                    return False, []
                select.select([self._reply_fd], [], [], remaining)

    def close(self, *, detach: bool = False) -> None:
        """Wait for the writer to exit, once finished: it closes the database after its
        summary, while the session prints its own (see writer_process). With ``detach``, a
        writer still detecting issues is left to finish on its own, after this session."""
        self._close_stdin()
        if detach and self._process.poll() is None:
            # Kept referenced, so that no "still running" ResourceWarning is raised when the
            # object would otherwise be collected during the session's teardown.
            _DETACHED.append(self._process)
        else:
            self._process.wait()
        self._stderr.close()

    def unacknowledged(self) -> list[Any]:
        """After WriterDied: the items of every batch the writer did not acknowledge."""
        self._close_stdin()
        while (message := self._replies.wait()) is not None:
            self._take([message])
        items: list[Any] = []
        for _, batch in self._unacknowledged:
            items.extend(batch)
        self._unacknowledged.clear()
        return items

    def _take(self, messages: list[Any]) -> None:
        for message in messages:
            if message[0] == "ack":
                while self._unacknowledged and self._unacknowledged[0][0] <= message[1]:
                    self._unacknowledged.popleft()

    def _wait(self) -> Any:
        message = self._replies.wait()
        if message is None:
            raise self._died()
        return message

    def _send(self, message: Any) -> None:
        try:
            self._stdin.write(encode_frame(message))
            self._stdin.flush()
        except OSError:  # BrokenPipeError: nobody reads the pipe any more
            raise self._died() from None

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()

    def _died(self) -> WriterDied:
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        last = f": {lines[-1].strip()}" if lines else ""
        return WriterDied(f"the writer process exited with status {code}{last}")
