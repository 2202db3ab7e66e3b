"""Settings for a process that is testledger's alone: the ``testledger`` command and the pytest
plugin's writer process. Never applied where testledger is a library inside somebody's process
(a test session, an application using the runner API): these settings are theirs to choose.
"""

from __future__ import annotations

import gc
import os

__all__ = ["tune_own_process"]


def tune_own_process() -> None:
    """Pace the garbage collector for a short process that is mostly imports, and keep numpy's
    OpenBLAS to one thread unless told otherwise.

    - The collector: the imports allocate objects that live as long as the process, and the
      default pace (a collection every 700 allocations) walks them over and over: 5-10% of a
      small command's time (bench/startup.py). At this pace a long command (serve, import)
      still collects, a few MB of garbage later.
    - OpenBLAS starts a thread per core when numpy is imported, and they spin: 40-90 ms of
      CPU per process here (bench/pytest_overhead.py), for linear algebra that testledger never
      does (its numpy use is element-wise). Before numpy is imported, or it has no effect.
    """
    gc.set_threshold(100_000, 10, 10)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
