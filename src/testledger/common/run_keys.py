"""The key a run is recorded under when its recorder names none.

Standard library only: the pytest plugin chooses its run's key in the session itself (so that
the spool can take over the writer's run should the writer die), without importing the runner.
"""

from __future__ import annotations

import os
from datetime import datetime

__all__ = ["new_run_key"]


def new_run_key(started: datetime) -> str:
    """The run's start (UTC, to the second) and 12 random hex digits: runs list in the order
    they started, and two runs started in the same second still get keys of their own."""
    return f"{started.strftime('%Y%m%dT%H%M%SZ')}-{os.urandom(6).hex()}"
