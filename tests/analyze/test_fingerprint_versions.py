"""Versioned fingerprint algorithms: the registry, and detection across an algorithm change
(a failure whose current fingerprint no issue has joins the issue of its secondary one),
against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.detect import DetectConfig, detect_run
from testledger.analyze.issues.fingerprint import (
    CURRENT_VERSION,
    SECONDARY_VERSION,
    Component,
    FingerprintAlgorithm,
    current_algorithm,
    explain,
    fingerprint,
    get_algorithm,
    hash_components,
    register_algorithm,
    registered_algorithms,
    secondary_algorithm,
    select_algorithms,
    unregister_algorithm,
)
from testledger.analyze.issues.rules import load_rules
from testledger.errors import NotFound
from testledger.model import TestResult
from testledger.store.tables import (
    issue_events,
    issue_fingerprints,
    issue_occurrences,
    issues,
    test_results,
)
from tests.histories import record_test, scripted_run

START = datetime(2025, 10, 1, 9, 0, tzinfo=timezone.utc)
TIMEOUT = (
    "Traceback (most recent call last):\n"
    '  File "/work/suite/providers/kimi.py", line 41, in ask\n'
    "    raise TimeoutError(f'kimi timed out after {elapsed}s')\n"
    "TimeoutError: kimi timed out after 31.2s"
)


class Salted(FingerprintAlgorithm):
    """Version 1's components behind a marker: the same groups under other hashes.

    What a new version does to most failures (every hash changes, most groups stay the same),
    which is what would split every open issue without a secondary algorithm.
    """

    version = 901
    name = "test-salted-components"

    def components(self, result: TestResult) -> list[Component]:
        marker = Component("scheme", "salted", "salted", True)
        return [marker, *get_algorithm(1).components(result)]


@pytest.fixture
def salted() -> Iterator[FingerprintAlgorithm]:
    """``Salted``, registered for one test, with version 1 selected alone (a ledger before any
    change of algorithm); the selection it started with is restored after."""
    algorithm = Salted()
    register_algorithm(algorithm)
    before = current_algorithm().version, _version(secondary_algorithm())
    select_algorithms(1)
    try:
        yield algorithm
    finally:
        select_algorithms(*before)
        unregister_algorithm(algorithm.version)


def _version(algorithm: FingerprintAlgorithm | None) -> int | None:
    return None if algorithm is None else algorithm.version


def _failure(message: str = "kimi timed out after 31.2s") -> TestResult:
    return TestResult(
        test_id="consensus/basic_kimi",
        tool_name="consensus",
        variation="basic_kimi",
        status="FAIL",
        error_type="TimeoutError",
        error_message=message,
        traceback=TIMEOUT,
    )


# --- the registry ------------------------------------------------------------------------------


def test_the_shipped_selection_is_version_2_with_version_1_secondary() -> None:
    assert (CURRENT_VERSION, SECONDARY_VERSION) == (2, 1)
    assert (current_algorithm().version, _version(secondary_algorithm())) == (2, 1)
    assert [(a.version, a.name) for a in registered_algorithms()] == [
        (1, "components"),
        (2, "raised-at"),
    ]
    assert fingerprint(_failure()).version == 2


def test_selecting_an_algorithm_changes_what_fingerprint_and_explain_use(
    salted: FingerprintAlgorithm,
) -> None:
    failure = _failure()
    v1 = fingerprint(failure)
    assert select_algorithms(salted.version, 1) == (1, None)
    made = fingerprint(failure)
    assert (made.version, made.algorithm) == (salted.version, salted)
    assert made.hash == hash_components(made.components) != v1.hash
    assert fingerprint(failure, version=1) == v1  # an algorithm's hashes never change
    explained = explain(failure)
    assert (explained.hash, explained.version) == (made.hash, salted.version)
    assert explained.algorithm == "test-salted-components"
    assert (
        explained.description
        == "Version 1's components behind a marker: the same groups under other hashes."
    )
    assert [part.name for part in explained][:2] == ["scheme", "exception_type"]
    assert explain(failure, version=1).version == 1
    assert (current_algorithm(), secondary_algorithm()) == (salted, get_algorithm(1))


def test_the_registry_refuses_what_would_break_grouping(salted: FingerprintAlgorithm) -> None:
    class Undocumented(FingerprintAlgorithm):
        version = 902
        name = "undocumented"

        def components(self, result: TestResult) -> list[Component]:
            return []

    class Taken(Salted):
        """Another algorithm claiming a registered version."""

    with pytest.raises(ValueError, match="taken by 'test-salted-components'"):
        register_algorithm(Taken())
    with pytest.raises(ValueError, match="needs a name and a docstring"):
        register_algorithm(Undocumented())
    register_algorithm(salted)  # the same algorithm again: nothing changes
    with pytest.raises(NotFound, match="no fingerprint algorithm version 7"):
        select_algorithms(7)
    with pytest.raises(NotFound):
        fingerprint(_failure(), version=7)
    with pytest.raises(ValueError, match="its own secondary"):
        select_algorithms(1, 1)
    select_algorithms(salted.version, 1)
    for selected in (salted.version, 1):
        with pytest.raises(ValueError, match="is selected"):
            unregister_algorithm(selected)


# --- detection across an algorithm change -----------------------------------------------------


def _run(ledger: Ledger, index: int, failures: dict[str, tuple[str, str]]) -> int:
    """Run ``index`` of a history (detected when it finishes): ``failures`` maps a test to its
    (error type, message); each also fails with the kimi traceback when it is a TimeoutError."""
    with scripted_run(ledger, index, start=START, suite="validation") as run:
        for test_id, (error_type, message) in failures.items():
            timeout = error_type == "TimeoutError"
            record_test(
                run,
                test_id,
                "FAIL",
                error_type=error_type,
                error_message=message,
                traceback=TIMEOUT if timeout else None,
            )
    assert run.run_id is not None
    return run.run_id


def _kimi(seconds: float) -> dict[str, tuple[str, str]]:
    return {"consensus/basic_kimi": ("TimeoutError", f"kimi timed out after {seconds}s")}


def _state(ledger: Ledger) -> dict[str, Any]:
    """Per issue code: its fingerprints' versions, occurrences and linked (and
    re-fingerprinted) events."""
    with ledger.engine().connect() as conn:
        codes = dict(conn.execute(sa.select(issues.c.id, issues.c.issue_code)).all())
        state: dict[str, Any] = {
            code: {"versions": [], "occurrences": 0, "linked": []} for code in codes.values()
        }
        for issue_id, version in conn.execute(
            sa.select(
                issue_fingerprints.c.issue_id, issue_fingerprints.c.fingerprint_version
            ).order_by(issue_fingerprints.c.id)
        ):
            state[codes[issue_id]]["versions"].append(version)
        for issue_id, count in conn.execute(
            sa.select(issue_occurrences.c.issue_id, sa.func.count()).group_by(
                issue_occurrences.c.issue_id
            )
        ):
            state[codes[issue_id]]["occurrences"] = count
        for issue_id, run_id, actor, note in conn.execute(
            sa.select(issue_events.c.issue_id, issue_events.c.run_id, issue_events.c.actor)
            .add_columns(issue_events.c.note)
            .where(issue_events.c.kind.in_(("linked", "refingerprinted")))
            .order_by(issue_events.c.id)
        ):
            state[codes[issue_id]]["linked"].append((run_id, actor, note))
    return state


def test_a_new_algorithm_with_a_secondary_keeps_failures_in_their_open_issue(
    ledger: Ledger, salted: FingerprintAlgorithm
) -> None:
    _run(ledger, 0, _kimi(31.2))  # opened under version 1
    [code] = _state(ledger)
    select_algorithms(salted.version, 1)

    moved = _run(ledger, 1, {**_kimi(44.0), "chat/basic": ("KeyError", "'user_12'")})
    state = _state(ledger)
    assert len(state) == 2, "the KeyError opens an issue; the timeout does not"
    kimi = state.pop(code)
    assert (kimi["versions"], kimi["occurrences"]) == ([1, salted.version], 2)
    [(run_id, actor, note)] = kimi["linked"]
    assert (run_id, actor) == (moved, "testledger")
    made = fingerprint(_failure("kimi timed out after 44.0s"))
    # Re-fingerprinted before the run's failures were grouped (analyze.issues.refingerprint):
    # the issue's latest failure, hashed by the new algorithm, gave the new failure's hash.
    assert note == (
        f"v{salted.version} ({salted.name}): its latest 1 failure(s) of its v1 fingerprints "
        f"hashed again: {made.hash[:12]} (1 failure(s), linked here)"
    )
    [other] = state.values()
    assert (other["versions"], other["occurrences"], other["linked"]) == ([salted.version], 1, [])
    with ledger.engine().connect() as conn:
        stored = conn.execute(
            sa.select(test_results.c.fingerprint, test_results.c.fingerprint_version)
            .where(test_results.c.run_id == moved)
            .where(test_results.c.test_id == "consensus/basic_kimi")
        ).one()
    assert tuple(stored) == (made.hash, salted.version)

    # Detecting the run again changes nothing, and once the secondary is gone the issue is
    # still found: it has learned the current fingerprint.
    with ledger.engine().begin() as conn:
        detect_run(conn, moved, rules=load_rules(None), config=DetectConfig())
    assert _state(ledger)[code] == kimi
    select_algorithms(salted.version)
    _run(ledger, 2, _kimi(12.5))
    after = _state(ledger)
    assert len(after) == 2
    assert (after[code]["occurrences"], after[code]["linked"]) == (3, kimi["linked"])


def test_a_new_algorithm_without_a_secondary_opens_new_issues(
    ledger: Ledger, salted: FingerprintAlgorithm
) -> None:
    _run(ledger, 0, _kimi(31.2))
    [code] = _state(ledger)
    select_algorithms(salted.version)
    _run(ledger, 1, _kimi(44.0))
    state = _state(ledger)
    assert state.pop(code) == {"versions": [1], "occurrences": 1, "linked": []}
    [new] = state.values()
    assert new == {"versions": [salted.version], "occurrences": 1, "linked": []}


def test_with_the_shipped_selection_detection_groups_by_version_2(ledger: Ledger) -> None:
    _run(ledger, 0, _kimi(31.2))
    _run(ledger, 1, {**_kimi(44.0), "chat/basic": ("KeyError", "'user_12'")})
    state = sorted(_state(ledger).values(), key=lambda issue: -issue["occurrences"])
    assert state == [
        {"versions": [2], "occurrences": 2, "linked": []},
        {"versions": [2], "occurrences": 1, "linked": []},
    ]
