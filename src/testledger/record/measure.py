"""How the pytest plugin measures a test's memory and CPU: cheap enough to run for every test.

Standard library only (the plugin imports this in every recording process, xdist workers too).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["CPU_MAX", "cpu_percent", "rss_reader", "stored_cpu_percent"]

#: ``test_results.cpu_percent`` is NUMERIC(5, 2); a test running several threads can exceed 100%.
CPU_MAX = 999.99


def rss_reader() -> tuple[Callable[[], float | None], str]:
    """A function giving the process's memory in MB, and what it measures.

    The RSS right after the test: from /proc/self/statm on Linux, else psutil when installed;
    otherwise ``getrusage`` peak RSS (ru_maxrss: the high-water mark so far, which never goes
    down, so it shows growth but not release); on Windows without psutil, nothing."""
    if sys.platform.startswith("linux"):
        try:
            # What psutil reads, without its per-call wrappers (about 0.6 µs a read): psutil's
            # memory_info() was the largest single cost per test. Kept open, re-read at 0.
            fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            pass
        else:
            return _statm_reader(fd), "rss"
    try:
        # No stubs are required: psutil is optional, and the only call used is typed here.
        import psutil  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        memory_info = psutil.Process().memory_info

        def rss() -> float:
            return float(memory_info().rss) / (1024 * 1024)

        return rss, "rss"
    try:
        import resource  # not on Windows
    except ImportError:
        return (lambda: None), "none"
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 / (1024 * 1024) if sys.platform == "darwin" else 1 / 1024

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale

    return peak, "peak-rss"


def _statm_reader(fd: int) -> Callable[[], float]:
    page_mb = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)

    def statm() -> float:
        # "size resident shared ...": the second field, in pages.
        return int(os.pread(fd, 128, 0).split(maxsplit=2)[1]) * page_mb

    return statm


def cpu_percent(cpu_secs: float, wall_secs: float) -> float | None:
    """Process CPU time over wall time, in percent (every thread of the process counts), as
    measured: :func:`stored_cpu_percent` makes it the stored value. Rounding is left to
    whoever stores it (the writer process, mostly): ``round(x, 2)`` costs more than the
    division (bench/pytest_overhead.py)."""
    if wall_secs <= 0:
        return None
    return cpu_secs / wall_secs * 100.0


def stored_cpu_percent(measured: float | None) -> float | None:
    """A measured CPU percentage as ``test_results.cpu_percent`` holds it."""
    if measured is None:
        return None
    return round(min(measured, CPU_MAX), 2)
