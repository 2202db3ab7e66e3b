"""A ledger moving from fingerprint version 1 to version 2 (the shipped selection: 2, with 1 as
its secondary), on SQLite and PostgreSQL: failures hashed by version 2 find the issues version 1
opened through their secondary hash; no issue is split or duplicated."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.issues.fingerprint import (
    CURRENT_VERSION,
    SECONDARY_VERSION,
    current_algorithm,
    secondary_algorithm,
    select_algorithms,
)
from testledger.store.tables import issue_fingerprints, issue_occurrences, issues, test_results
from tests.histories import record_test, scripted_run

ROOT = "/home/ci/work/shop/"


def _tb(*frames: tuple[str, str], exc: str) -> str:
    body = [
        f'  File "{ROOT}{p}", line {10 + i}, in {f}\n    go()' for i, (p, f) in enumerate(frames)
    ]
    return "\n".join(["Traceback (most recent call last):", *body, exc])


SEND = ("src/shop/billing/client.py", "_send")
PARSE = ("src/shop/llm/tools.py", "parse_call")
#: test -> (error type, message, traceback): one HTTP 500 reached from two tests (version 1: two
#: issues, by their callers), a KeyError, and a timeout.
FAILURES: dict[str, tuple[str, str, str | None]] = {
    "billing/invoice": (
        "HTTPError",
        "500 Server Error: Internal Server Error for url: http://127.0.0.1:4001/v2/i",
        _tb(("tests/billing/test_invoice.py", "test_invoice"), SEND, exc="HTTPError: 500"),
    ),
    "checkout/pay": (
        "HTTPError",
        "500 Server Error: Internal Server Error for url: http://127.0.0.1:5123/v2/i",
        _tb(("tests/checkout/test_pay.py", "test_pay"), ("src/shop/checkout/flow.py", "complete"),
            SEND, exc="HTTPError: 500"),
    ),
    "llm/step": ("KeyError", "'arguments'", _tb(("tests/llm/test_step.py", "test_step"), PARSE,
                                               exc="KeyError: 'arguments'")),
    "stream/read": ("TimeoutError", "read timed out after 30.0s", None),
}  # fmt: skip


def _run(ledger: Ledger, index: int) -> int:
    with scripted_run(ledger, index, commit=f"c{index}") as run:
        for test_id, (error_type, message, traceback) in FAILURES.items():
            record_test(
                run, test_id, "FAIL", error_type=error_type, error_message=message,
                traceback=traceback,
            )  # fmt: skip
    assert run.run_id is not None
    return run.run_id


def _issue_of(ledger: Ledger, run_id: int) -> dict[str, tuple[str, int]]:
    """test -> (the issue its failure in ``run_id`` is an occurrence of, its hash version)."""
    with ledger.engine().connect() as conn:
        rows = conn.execute(
            sa.select(
                test_results.c.test_id, issues.c.issue_code, test_results.c.fingerprint_version
            )
            .join(issue_occurrences, issue_occurrences.c.test_result_id == test_results.c.id)
            .join(issues, issues.c.id == issue_occurrences.c.issue_id)
            .where(test_results.c.run_id == run_id)
        ).all()
    return {test_id: (code, version) for test_id, code, version in rows}


def _fingerprints(ledger: Ledger) -> dict[str, list[int]]:
    with ledger.engine().connect() as conn:
        rows = conn.execute(
            sa.select(issues.c.issue_code, issue_fingerprints.c.fingerprint_version)
            .join(issue_fingerprints, issue_fingerprints.c.issue_id == issues.c.id)
            .order_by(issue_fingerprints.c.id)
        ).all()
    found: dict[str, list[int]] = {}
    for code, version in rows:
        found.setdefault(code, []).append(version)
    return found


def test_moving_to_version_2_keeps_every_failure_in_the_issue_version_1_opened(
    ledger: Ledger, version_1_first: Any
) -> None:
    before = _issue_of(ledger, _run(ledger, 0))
    assert {version for _, version in before.values()} == {1}
    old_codes = {code for code, _ in before.values()}
    assert len(old_codes) == 4, "version 1 splits the HTTP 500 by caller"

    select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
    assert (current_algorithm().version, getattr(secondary_algorithm(), "version", None)) == (2, 1)
    for index in (1, 2):
        after = _issue_of(ledger, _run(ledger, index))
        assert {version for _, version in after.values()} == {2}
        assert set(after) == set(FAILURES), "every failure was grouped"
        # No new issue: each failure joined one version 1 opened (none split or duplicated).
        assert {code for code, _ in after.values()} <= old_codes
        assert _fingerprints(ledger).keys() == old_codes
    for test_id in ("llm/step", "stream/read", "billing/invoice"):
        assert after[test_id][0] == before[test_id][0]
    # The two callers' failures are one cause for version 2: both in the first one's issue.
    assert after["checkout/pay"][0] == after["billing/invoice"][0]
    prints = _fingerprints(ledger)
    assert sorted(prints[before["billing/invoice"][0]]) == [1, 2]
    assert prints[before["checkout/pay"][0]] == [1]  # left behind: it resolves in time
    with ledger.engine().connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(issues)).scalar_one() == 4
