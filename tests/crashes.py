"""Killing a process with SIGKILL at chosen points of its life (issue 15: crashes).

The work runs in a child process forked by multiprocessing's fork server (a clean process
that imported the ledger once, so that each child starts in milliseconds instead of the half
second a new interpreter takes, and none is forked from the test process's threads). As it
goes, the child writes *markers* (a phase name and the time) to a file of its own: hooks
wrapped around the ledger's functions in the child alone say when a transaction started,
committed, when detection began. An unkilled run's markers give each phase's length; a kill
is then placed at a fraction of a phase, counted from the moment that phase's marker appears
(the parent watches the file), so that kills land in every phase however loaded the machine
is, and the markers the killed child left say where it really died.

Nothing is faked: the child is killed by the kernel with SIGKILL, mid-write, and whatever it
left in the database and in the results folder is what the next command meets.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.process
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How long a child may live before the test gives up on it (a hung child is a failure).
CHILD_TIMEOUT_SECS = 60.0

Mark = Callable[[str], None]

#: The three kinds of failure the crashed suites fail with (three issues), in turn.
ERRORS = [
    ("ValueError", "bad value"),
    ("KeyError", "missing key"),
    ("TimeoutError", "gave up waiting"),
]


@dataclass(frozen=True, slots=True)
class KillPoint:
    """Kill ``fraction`` of the way through phase ``phase`` (from its marker to the next)."""

    phase: str
    fraction: float


@dataclass(frozen=True, slots=True)
class Death:
    """How one child ended: killed (or exited by itself first), and its markers."""

    point: KillPoint | None
    killed: bool
    exit_code: int | None
    markers: list[tuple[str, float]]

    @property
    def last_phase(self) -> str | None:
        """The last phase the child reached: where it died."""
        return self.markers[-1][0] if self.markers else None

    def reached(self, phase: str) -> bool:
        return any(name == phase for name, _ in self.markers)


def read_markers(path: Path) -> list[tuple[str, float]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    markers = []
    for line in text.splitlines():
        name, _, stamp = line.partition(" ")
        if name and stamp:  # a line cut by the kill is not a marker
            markers.append((name, float(stamp)))
    return markers


def _marker_writer(path: Path) -> Mark:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def mark(phase: str) -> None:
        # One write() per marker: whole in the file the moment it returns, kill or not.
        os.write(descriptor, f"{phase} {time.monotonic():.6f}\n".encode())

    return mark


def wrap(
    module: Any, name: str, *, before: str | None = None, after: str | None = None, mark: Mark
) -> None:
    """In the child: make ``module.name`` write marker ``before`` as it is called and ``after``
    once it returned."""
    original = getattr(module, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if before is not None:
            mark(before)
        value = original(*args, **kwargs)
        if after is not None:
            mark(after)
        return value

    setattr(module, name, wrapped)


#: The fork server preloads the ledger, so that a child starts with it imported: the recorder
#: and the database layer too, which the library imports only when a run starts (a child that
#: imported them itself would spend its whole "start" phase importing).
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(
    [
        "testledger.api",
        "testledger.analyze.pipeline",
        "testledger.record.runner",
        "testledger.store.database",
        "testledger.ingest.importer",
    ]
)

#: What a child runs: ``function(mark, *args)``, a module-level function (it is sent to the
#: fork server by name, its arguments pickled).
Work = tuple[Callable[..., None], tuple[Any, ...]]


def _child(work: Work, markers: Path) -> None:  # pragma: no cover - runs in the child
    function, args = work
    function(_marker_writer(markers), *args)


def start(work: Work, markers: Path) -> multiprocessing.process.BaseProcess:
    """Run ``work`` in a new child (its traceback on stderr and exit code 1 if it fails)."""
    markers.unlink(missing_ok=True)
    process = _CONTEXT.Process(target=_child, args=(work, markers))
    process.start()
    return process


def _finish(process: multiprocessing.process.BaseProcess, deadline: float) -> None:
    """Wait for ``process`` to end, killing it at ``deadline`` (a hung child is a failure)."""
    process.join(max(deadline - time.monotonic(), 0.0))
    if process.exitcode is None:
        process.kill()
        process.join()
        raise AssertionError(f"child {process.pid} hung for {CHILD_TIMEOUT_SECS} s")


def _death(
    point: KillPoint | None, process: multiprocessing.process.BaseProcess, markers: Path
) -> Death:
    code = process.exitcode
    assert code is not None
    if code < 0:
        return Death(point, -code == signal.SIGKILL, None, read_markers(markers))
    return Death(point, False, code, read_markers(markers))


def run_unkilled(work: Work, markers: Path) -> Death:
    process = start(work, markers)
    _finish(process, time.monotonic() + CHILD_TIMEOUT_SECS)
    return _death(None, process, markers)


def phase_lengths(markers: list[tuple[str, float]]) -> dict[str, float]:
    """Each phase's length in an unkilled run: from its marker to the next one (the last
    marker, the child's end, starts no phase)."""
    lengths: dict[str, float] = {}
    for (name, start), (_next, stop) in itertools.pairwise(markers):
        lengths[name] = lengths.get(name, 0.0) + (stop - start)
    return lengths


def kill_points(plan: dict[str, int], seed: int) -> list[KillPoint]:
    """``plan[phase]`` kill points in each phase, at fractions spread over it: one in each of
    as many equal slices, placed within its slice by a seeded random (reproducible)."""
    chooser = random.Random(seed)
    points = []
    for phase, count in plan.items():
        for index in range(count):
            points.append(KillPoint(phase, (index + chooser.random()) / count))
    return points


def kill_at(work: Work, markers: Path, point: KillPoint, lengths: dict[str, float]) -> Death:
    """Start ``work``, wait for ``point.phase``'s marker, let the fraction of that phase's
    measured length pass, and SIGKILL the child (unless it ended first)."""
    process = start(work, markers)
    deadline = time.monotonic() + CHILD_TIMEOUT_SECS
    while process.exitcode is None:
        reached = [stamp for name, stamp in read_markers(markers) if name == point.phase]
        if reached:
            delay = reached[0] + point.fraction * lengths[point.phase] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # The fork server reaps its children: one that just ended may be gone already.
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
            break
        if time.monotonic() > deadline:
            process.kill()
            process.join()
            raise AssertionError(f"child {process.pid} never reached {point.phase}")
        time.sleep(0.0005)
    _finish(process, deadline)
    return _death(point, process, markers)


@contextmanager
def timed(figures: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        figures[name] = figures.get(name, 0.0) + time.perf_counter() - started
