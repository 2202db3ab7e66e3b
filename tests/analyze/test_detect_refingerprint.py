"""A ledger that detected with fingerprint version 1 alone moves to the shipped selection
(version 2, version 1 its secondary): before the first detection under version 2, the issues
version 1 opened are re-fingerprinted (analyze.issues.refingerprint), so that a failure of a
cause version 1 had split by call path joins one of its issues, the oldest active one, by a
path no issue has seen; causes version 2 tells apart stay apart. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger, api
from testledger.analyze.issues.fingerprint import (
    CURRENT_VERSION,
    SECONDARY_VERSION,
    current_algorithm,
    select_algorithms,
)
from testledger.analyze.issues.refingerprint import (
    EVENT_KIND,
    pending_issues,
    refingerprint_issues,
)
from testledger.model import utcnow
from testledger.store.tables import issue_events, issue_occurrences, issues, test_results
from tests.histories import record_test, scripted_run

ROOT = "/home/ci/work/shop/"
SEND = ("src/shop/billing/client.py", "_send")
POST = ("src/shop/billing/client.py", "post")
PARSE = ("src/shop/llm/tools.py", "parse_call")
SERVER_500 = "500 Server Error: Internal Server Error for url: http://127.0.0.1:{port}/v2/i"
CLIENT_404 = "404 Client Error: Not Found for url: http://127.0.0.1:{port}/v2/i"


def _tb(*frames: tuple[str, str], exc: str) -> str:
    body = [
        f'  File "{ROOT}{p}", line {10 + i}, in {f}\n    go()' for i, (p, f) in enumerate(frames)
    ]
    return "\n".join(["Traceback (most recent call last):", *body, exc])


def _failure(message: str, *path: tuple[str, str], error_type: str) -> dict[str, Any]:
    exc = f"{error_type}: {message}"
    return {"error_type": error_type, "error_message": message, "traceback": _tb(*path, exc=exc)}


def _test(name: str) -> tuple[str, str]:
    return (f"tests/{name.replace('/', '/test_')}.py", f"test_{name.split('/')[1]}")


#: Before the move (version 1): the HTTP 500 raised in billing's client, reached by two paths
#: (two issues for version 1), a 404 from the same client and two KeyErrors on different keys
#: in the same function (four causes that must stay apart).
BEFORE: dict[str, dict[str, Any]] = {
    "billing/invoice": _failure(
        SERVER_500.format(port=4001), _test("billing/invoice"), SEND, error_type="HTTPError"
    ),
    "checkout/pay": _failure(
        SERVER_500.format(port=4002),
        _test("checkout/pay"),
        ("src/shop/checkout/flow.py", "complete"),
        SEND,
        error_type="HTTPError",
    ),
    "catalog/item": _failure(
        CLIENT_404.format(port=4003), _test("catalog/item"), SEND, error_type="HTTPError"
    ),
    "llm/step": _failure("'arguments'", _test("llm/step"), PARSE, error_type="KeyError"),
    "llm/name": _failure("'name'", _test("llm/name"), PARSE, error_type="KeyError"),
}
#: After the move: each cause again, by call paths no issue has seen (new hashes for both
#: versions), and a cause never seen before.
AFTER: dict[str, dict[str, Any]] = {
    "refunds/refund": _failure(
        SERVER_500.format(port=5001),
        _test("refunds/refund"),
        ("src/shop/refunds.py", "refund"),
        POST,
        SEND,
        error_type="HTTPError",
    ),
    "catalog/search": _failure(
        CLIENT_404.format(port=5002),
        _test("catalog/search"),
        ("src/shop/catalog/search.py", "lookup"),
        SEND,
        error_type="HTTPError",
    ),
    "agent/loop": _failure(
        "'arguments'",
        _test("agent/loop"),
        ("src/shop/llm/agent.py", "step"),
        PARSE,
        error_type="KeyError",
    ),
    "agent/tools": _failure(
        "'name'",
        _test("agent/tools"),
        ("src/shop/llm/agent.py", "pick"),
        PARSE,
        error_type="KeyError",
    ),
    "orders/total": _failure(
        "total must be positive", _test("orders/total"), ("src/shop/orders.py", "total"),
        error_type="ValueError",
    ),
}  # fmt: skip


def _run(ledger: Ledger, index: int, failures: dict[str, dict[str, Any]]) -> int:
    with scripted_run(ledger, index, commit=f"c{index}") as run:
        for test_id, fields in failures.items():
            record_test(run, test_id, "FAIL", **fields)
    assert run.run_id is not None
    return run.run_id


def _issue_of(ledger: Ledger, run_id: int) -> dict[str, str]:
    """test -> the issue its failure in ``run_id`` is an occurrence of."""
    with ledger.engine().connect() as conn:
        rows = conn.execute(
            sa.select(test_results.c.test_id, issues.c.issue_code)
            .join(issue_occurrences, issue_occurrences.c.test_result_id == test_results.c.id)
            .join(issues, issues.c.id == issue_occurrences.c.issue_id)
            .where(test_results.c.run_id == run_id)
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def _marker_notes(ledger: Ledger) -> dict[str, list[str]]:
    with ledger.engine().connect() as conn:
        rows = conn.execute(
            sa.select(issues.c.issue_code, issue_events.c.note)
            .join(issue_events, issue_events.c.issue_id == issues.c.id)
            .where(issue_events.c.kind == EVENT_KIND)
            .order_by(issue_events.c.id)
        ).all()
    notes: dict[str, list[str]] = {}
    for code, note in rows:
        notes.setdefault(code, []).append(note)
    return notes


def _versions(detail: api.IssueDetail) -> list[str]:
    return [fingerprint.rsplit(" ", 1)[1] for fingerprint in detail.fingerprints]


def test_a_cause_version_1_split_joins_its_oldest_issue_by_a_new_path(
    ledger: Ledger, version_1_first: Any
) -> None:
    before = _issue_of(ledger, _run(ledger, 0, BEFORE))
    assert len(set(before.values())) == 5, "version 1: the HTTP 500 is two issues, by caller"
    invoice, pay = before["billing/invoice"], before["checkout/pay"]

    select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
    after_run = _run(ledger, 1, AFTER)
    after = _issue_of(ledger, after_run)
    assert set(after) == set(AFTER), "every failure was grouped"
    # The 500 by a third path joins the oldest of its two issues, not a new one.
    assert after["refunds/refund"] == invoice
    # What version 2 tells apart stays apart, each in the issue version 1 opened for it.
    assert after["catalog/search"] == before["catalog/item"]
    assert after["agent/loop"] == before["llm/step"]
    assert after["agent/tools"] == before["llm/name"]
    # A cause never seen before is a new issue.
    assert after["orders/total"] not in before.values()
    assert len(api.list_issues(ledger)) == 6

    # Explainable: the issue page lists both versions' fingerprints and says where each went.
    assert _versions(api.issue_detail(ledger, invoice)) == ["(v1)", "(v2)"]
    assert _versions(api.issue_detail(ledger, pay)) == ["(v1)"], "split stays split"
    notes = _marker_notes(ledger)
    assert set(notes) == set(before.values()), "each version 1 issue once"
    assert "linked here" in notes[invoice][0] and notes[invoice][0].startswith("v2 (raised-at)")
    assert f"{invoice}'s" in notes[pay][0]
    assert all(len(texts) == 1 for texts in notes.values())


def test_refingerprinting_runs_once_and_detecting_again_changes_nothing(
    ledger: Ledger, version_1_first: Any
) -> None:
    _run(ledger, 0, BEFORE)
    select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
    moved = _run(ledger, 1, AFTER)
    first = _issue_of(ledger, moved)
    events = _marker_notes(ledger)
    [report] = api.detect(ledger, moved)
    assert report.refingerprinted == [] and report.new == []
    assert _issue_of(ledger, moved) == first
    third = _issue_of(ledger, _run(ledger, 2, {**BEFORE, **AFTER}))
    assert _marker_notes(ledger) == events
    assert third["refunds/refund"] == third["billing/invoice"] == first["refunds/refund"]
    with ledger.engine().connect() as conn:
        assert pending_issues(conn, current_algorithm().version) == {}


def test_a_resolved_issue_yields_the_cause_to_an_open_one(
    ledger: Ledger, version_1_first: Any
) -> None:
    before = _issue_of(ledger, _run(ledger, 0, BEFORE))
    invoice, pay = before["billing/invoice"], before["checkout/pay"]
    api.update_issue(ledger, invoice, api.IssueChange(status="RESOLVED"))
    select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
    after = _issue_of(ledger, _run(ledger, 1, {"refunds/refund": AFTER["refunds/refund"]}))
    assert after["refunds/refund"] == pay
    assert api.issue_detail(ledger, invoice).issue.status == "RESOLVED"
    assert _versions(api.issue_detail(ledger, pay)) == ["(v1)", "(v2)"]


def test_a_current_hash_its_latest_failures_did_not_give_is_found_by_the_secondary(
    ledger: Ledger, version_1_first: Any
) -> None:
    """Only an issue's latest failures are hashed again: a failure of it whose current hash
    they did not give still finds it by its version 1 hash, and the issue learns that hash.
    (Version 1 reads an assertion's string literals as data, version 2 as its meaning.)"""
    alias = _test("models/alias")
    [code] = set(
        _issue_of(
            ledger,
            _run(
                ledger,
                0,
                {
                    "models/alias": _failure(
                        "assert 'glm-4.5-air' == 'glm-4.5'", alias, error_type="AssertionError"
                    )
                },
            ),
        ).values()
    )
    select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
    after = _issue_of(
        ledger,
        _run(
            ledger,
            1,
            {
                "models/alias": _failure(
                    "assert 'gpt-4o-mini' == 'glm-4.5-air'", alias, error_type="AssertionError"
                )
            },
        ),
    )
    assert after == {"models/alias": code}
    detail = api.issue_detail(ledger, code)
    assert _versions(detail) == ["(v1)", "(v2)", "(v2)"]
    kinds = [event.kind for event in detail.events]
    assert kinds.count(EVENT_KIND) == 1 and kinds.count("linked") == 1


def test_a_fingerprint_missing_from_the_issues_last_run_is_sampled_from_earlier_runs(
    ledger: Ledger, version_1_first: Any
) -> None:
    """An issue with two version 1 fingerprints (one linked by hand) whose last run failed by
    one of them only: the other's failures are hashed from the run before."""
    invoice, step = ({key: BEFORE[key]} for key in ("billing/invoice", "llm/step"))
    first = _issue_of(ledger, _run(ledger, 0, {**invoice, **step}))
    billing, llm = first["billing/invoice"], first["llm/step"]
    with ledger.engine().connect() as conn:
        step_print = conn.execute(
            sa.select(test_results.c.fingerprint).where(test_results.c.test_id == "llm/step")
        ).scalar_one()
    api.update_issue(ledger, billing, api.IssueChange(link_fingerprint=f"{step_print}:1"))
    assert _issue_of(ledger, _run(ledger, 1, step)) == {"llm/step": billing}
    assert _issue_of(ledger, _run(ledger, 2, invoice)) == {"billing/invoice": billing}

    select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
    after = _issue_of(ledger, _run(ledger, 3, {"agent/loop": AFTER["agent/loop"]}))
    assert after == {"agent/loop": billing}, "its KeyError's hash came from run 1"
    assert llm not in _marker_notes(ledger), "left without fingerprints: nothing to move"


@pytest.mark.postgres
def test_two_processes_moving_at_once_link_each_hash_once(
    pg_url: str, tmp_path: Path, version_1_first: Any
) -> None:
    """Two transactions re-fingerprint at once outside the detection lock: the second waits
    for the first, then finds nothing pending (no second event, no conflict)."""
    with Ledger(pg_url, results_dir=tmp_path / "results") as ledger:
        _run(ledger, 0, BEFORE)
        select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
        engine = ledger.engine()
        outcome: dict[str, Any] = {}

        def second() -> None:
            try:
                with engine.begin() as conn:
                    outcome["second"] = refingerprint_issues(conn, current_algorithm(), at=utcnow())
            except Exception as exc:  # reported by the assertion below
                outcome["error"] = exc

        with engine.begin() as conn:
            first = refingerprint_issues(conn, current_algorithm(), at=utcnow())
            thread = threading.Thread(target=second)
            thread.start()
            thread.join(0.5)
            assert thread.is_alive(), "the second waits for the first to commit"
        thread.join(30)
        assert "error" not in outcome
        assert len(first.issues) == 5 and outcome["second"].issues == []
        assert sum(len(hashes) for hashes in first.linked.values()) == 4
        assert all(len(texts) == 1 for texts in _marker_notes(ledger).values())
