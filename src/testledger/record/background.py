"""A single background writer thread per run, so database writes stay off the runner's path.

The recording thread hands over whole batches; the writer thread writes them in order, one
transaction each. The hand-over queue is bounded: when the database is slower than the tests,
the recorder waits rather than piling batches up in memory (memory stays flat). The SQLite and
PostgreSQL drivers release the GIL while the database works, so encoding the next results and
writing the previous batch overlap.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["BackgroundWriter"]

log = logging.getLogger("testledger")

BatchT = TypeVar("BatchT")

_STOP = object()


class BackgroundWriter(Generic[BatchT]):
    """Runs ``write(batch)`` for each submitted batch on one thread, in submission order.

    When ``write`` raises, ``on_error`` is called with the exception (on the writer thread) and
    the batch is dropped; later batches are still offered to ``write``, which decides whether to
    skip them.
    """

    def __init__(
        self,
        write: Callable[[BatchT], None],
        on_error: Callable[[BaseException], None],
        *,
        max_pending: int = 2,
        name: str = "testledger-writer",
    ) -> None:
        self._write = write
        self._on_error = on_error
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self._closed = False

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._write(item)  # type: ignore[arg-type]
            except BaseException as exc:
                try:
                    self._on_error(exc)
                except Exception:  # pragma: no cover - the error handler itself failed
                    log.exception("testledger: error while handling a writer failure")
            finally:
                self._queue.task_done()

    def submit(self, batch: BatchT) -> None:
        """Queue a batch; blocks while ``max_pending`` batches are already waiting."""
        if self._closed:
            raise RuntimeError("background writer already closed")
        self._queue.put(batch)

    def drain(self) -> None:
        """Wait until every submitted batch has been written (or has failed)."""
        self._queue.join()

    def close(self) -> None:
        """Drain, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
