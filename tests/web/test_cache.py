"""The app's memory of costly answers (web/cache.py): remembered for a while, and computed once
for everybody who asks while it is being computed (single flight, per question)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from testledger import api
from testledger.web.cache import remembered

from .web_support import web_client

WAITERS = 8


def _app() -> Any:
    return SimpleNamespace(state=SimpleNamespace())


class _Computation:
    """A computation that holds until released, counting how often it was started."""

    def __init__(self, value: Any = "answer", error: Exception | None = None) -> None:
        self.value, self.error = value, error
        self.started = 0
        self.running = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.started += 1
        self.running.set()
        assert self.release.wait(10), "never released"
        if self.error is not None:
            raise self.error
        return self.value


def _ask_together(
    app: Any, key: Any, compute: Callable[[], Any], callers: int = WAITERS
) -> list[Any]:
    """``callers`` threads asking the same question, released once the first one computes;
    what each got (a value with its time, or the error raised to it)."""

    def ask() -> Any:
        try:
            return remembered(app, key, compute)
        except Exception as error:  # the outcome under test
            return error

    with ThreadPoolExecutor(callers) as pool:
        futures = [pool.submit(ask) for _ in range(callers)]
        assert compute.running.wait(10)  # type: ignore[attr-defined]
        # Let the others reach the wait: they are blocked on the leader's computation.
        threading.Event().wait(0.2)
        compute.release.set()  # type: ignore[attr-defined]
        return [future.result(10) for future in futures]


def test_many_first_requests_compute_the_answer_once() -> None:
    app, compute = _app(), _Computation(value={"changes": [1, 2]})
    answers = _ask_together(app, ("regressions", None), compute)
    assert compute.started == 1
    assert {a[1] for a in answers} == {answers[0][1]}  # one computation, one time
    assert all(a[0] is answers[0][0] for a in answers)
    later = _Computation(value="never asked")
    later.release.set()
    assert remembered(app, ("regressions", None), later)[0] == {"changes": [1, 2]}
    assert later.started == 0  # remembered


def test_other_questions_are_not_held_behind_a_computation() -> None:
    app, slow = _app(), _Computation()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(remembered, app, "slow", slow)
        assert slow.running.wait(10)
        # Computed at once while "slow" is still running: the flight is per key.
        assert remembered(app, "quick", lambda: 7)[0] == 7
        slow.release.set()
        assert pending.result(10)[0] == "answer"


def test_a_failed_computation_reaches_its_waiters_and_is_not_remembered() -> None:
    app, failing = _app(), _Computation(error=RuntimeError("database went away"))
    answers = _ask_together(app, "q", failing)
    assert failing.started == 1
    assert all(isinstance(a, RuntimeError) and "went away" in str(a) for a in answers)
    assert remembered(app, "q", lambda: "recovered")[0] == "recovered"


def test_an_answer_older_than_its_ttl_is_computed_again() -> None:
    app, calls = _app(), iter(range(10))
    assert remembered(app, "k", lambda: next(calls), ttl=60)[0] == 0
    assert remembered(app, "k", lambda: next(calls), ttl=60)[0] == 0
    assert remembered(app, "k", lambda: next(calls), ttl=0)[0] == 1


@pytest.mark.parametrize("callers", [2, WAITERS])
def test_waiters_get_the_leaders_value_whatever_their_number(callers: int) -> None:
    app, compute = _app(), _Computation(value=object())
    answers = _ask_together(app, "k", compute, callers)
    assert compute.started == 1 and len({id(a[0]) for a in answers}) == 1


def test_simultaneous_first_requests_for_the_analysis_run_it_once(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole ledger's regression analysis asked by several dashboards at once, before it was
    ever computed: one analysis, the same answer (and ``computed_at``) for each."""
    analyses: list[int] = []
    analyse = api.find_regressions

    def slow_analysis(*args: Any, **kwargs: Any) -> Any:
        analyses.append(1)
        threading.Event().wait(0.3)  # long enough for the other requests to arrive meanwhile
        return analyse(*args, **kwargs)

    monkeypatch.setattr(api, "find_regressions", slow_analysis)
    with web_client(scenario, tmp_path) as client:

        def ask() -> dict[str, Any]:
            response = client.get("/api/v1/regressions/analysis", params={"metric": "duration"})
            assert response.status_code == 200, response.text
            found: dict[str, Any] = response.json()
            return found

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: ask(), range(4)))
    assert len(analyses) == 1
    assert len({a["computed_at"] for a in answers}) == 1
    assert all(a == answers[0] for a in answers)
    assert "calc/slow" in {c["test_id"] for c in answers[0]["changes"]}
