"""A short memory of the app's costliest answers (the flaky tests' verdicts): computed at most
once per ``ttl`` seconds per question, so that a dashboard many people keep open does not run
the same analysis over the whole history for each of them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["TTL_SECS", "remembered"]

T = TypeVar("T")
TTL_SECS = 60.0
MAX_ENTRIES = 64

_lock = threading.Lock()


def remembered(
    app: Any, key: Hashable, compute: Callable[[], T], ttl: float = TTL_SECS
) -> tuple[T, float]:
    """``compute()``'s value and when it was computed (``time.time()``), from the app's memory
    when younger than ``ttl`` seconds."""
    with _lock:
        memory: dict[Hashable, tuple[float, float, Any]] = app.state.__dict__.setdefault(
            "_testledger_cache", {}
        )
        held = memory.get(key)
    now = time.monotonic()
    if held is not None and now - held[0] < ttl:
        return held[2], held[1]
    value = compute()
    with _lock:
        if len(memory) >= MAX_ENTRIES:
            memory.pop(min(memory, key=lambda k: memory[k][0]))
        memory[key] = (now, time.time(), value)
    return value, time.time()
