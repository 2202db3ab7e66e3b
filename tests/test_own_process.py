"""tune_own_process: what the ``testledger`` command and the writer process set for themselves."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

_THREADS_AFTER_NUMPY = textwrap.dedent(
    """
    import os, sys
    if sys.argv[1] == "tuned":
        from testledger.common.own_process import tune_own_process
        tune_own_process()
    import numpy
    print(len(os.listdir("/proc/self/task")), os.environ.get("OPENBLAS_NUM_THREADS"))
    """
)


def _threads_after_numpy(mode: str, **env: str) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    environment.update(env)
    out = subprocess.run(
        [sys.executable, "-c", _THREADS_AFTER_NUMPY, mode],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    ).stdout.split()
    return int(out[0]), out[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_numpy_starts_no_blas_threads_in_our_own_process() -> None:
    untuned, _ = _threads_after_numpy("plain")
    if untuned == 1:
        pytest.skip("this numpy's BLAS starts no threads here (one core, or no OpenBLAS)")
    assert _threads_after_numpy("tuned") == (1, "1")


def test_a_users_blas_thread_count_is_kept() -> None:
    assert _threads_after_numpy("tuned", OPENBLAS_NUM_THREADS="2")[1] == "2"


def test_the_collector_is_paced_for_a_short_process() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc; from testledger.common.own_process import tune_own_process; "
            "tune_own_process(); print(gc.get_threshold()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(out) >= 100_000
