"""A short memory of the app's costliest answers (the flaky tests' verdicts, the regression
analysis): computed at most once per ``ttl`` seconds per question, so that a dashboard many
people keep open does not run the same analysis over the whole history for each of them.

Single flight: while one request computes an answer, the others asking the same question wait
for it instead of each computing it too (the whole ledger's regression analysis takes seconds,
and a dashboard opened by a team right after a run would otherwise start one per person). The
app's endpoints are plain functions, run by Starlette in a thread pool, hence threads here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["TTL_SECS", "remembered"]

T = TypeVar("T")
TTL_SECS = 60.0
MAX_ENTRIES = 64

_lock = threading.Lock()


@dataclass
class _Flight:
    """One computation in progress: its waiters block on ``done``, then read the value (or the
    error, raised to each of them: they asked the same question at the same time)."""

    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    computed_at: float = 0.0
    error: BaseException | None = None


def remembered(
    app: Any, key: Hashable, compute: Callable[[], T], ttl: float = TTL_SECS
) -> tuple[T, float]:
    """``compute()``'s value and when it was computed (``time.time()``), from the app's memory
    when younger than ``ttl`` seconds; computed once for all who ask while it is computed."""
    with _lock:
        memory: dict[Hashable, tuple[float, float, Any]] = app.state.__dict__.setdefault(
            "_testledger_cache", {}
        )
        flights: dict[Hashable, _Flight] = app.state.__dict__.setdefault("_testledger_flights", {})
        held = memory.get(key)
        if held is not None and time.monotonic() - held[0] < ttl:
            return held[2], held[1]
        flight = flights.get(key)
        leader = flight is None
        if flight is None:
            flight = flights[key] = _Flight()
    if not leader:
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        return flight.value, flight.computed_at
    try:
        started = time.monotonic()
        flight.value = compute()
        flight.computed_at = time.time()
        with _lock:
            if len(memory) >= MAX_ENTRIES:
                memory.pop(min(memory, key=lambda k: memory[k][0]))
            memory[key] = (started, flight.computed_at, flight.value)
    except BaseException as error:
        flight.error = error
        raise
    finally:
        with _lock:
            flights.pop(key, None)
        flight.done.set()
    return flight.value, flight.computed_at
