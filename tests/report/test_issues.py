"""``list_issues`` and ``issue_detail``: exact answers over a scripted history, and occurrences
counted only for the issues asked for (never a full read of ``issue_occurrences``), on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger import Ledger
from testledger.errors import NotFound
from testledger.report.issues import issue_detail, list_issues
from tests.histories import HOUR, START, record_test, scripted_run

# Per run: test_id -> its attempts (a retry is a second attempt). Each test fails its own way,
# so each is one issue: chat/a -> 001, search/b -> 002, calc/c -> 003.
OUTCOMES: list[dict[str, list[str]]] = [
    {"chat/a": ["FAIL"], "search/b": ["FAIL"], "calc/c": ["PASS"]},
    {"chat/a": ["FAIL"], "search/b": ["PASS"], "calc/c": ["FAIL"]},
    {"chat/a": ["FAIL", "PASS"], "search/b": ["PASS"], "calc/c": ["FAIL"]},
]
ERRORS = {
    "chat/a": ("TimeoutError", "timed out after 30s"),
    "search/b": ("KeyError", "missing key 'q'"),
    "calc/c": ("ValueError", "bad number"),
}
CHAT, SEARCH, CALC = "UNCA-MEDIUM-001", "UNCA-MEDIUM-002", "UNCA-MEDIUM-003"


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """OUTCOMES, recorded once per database for this module's tests."""
    with Ledger(module_db_url, results_dir=tmp_path_factory.mktemp("results")) as ledger:
        for index, outcomes in enumerate(OUTCOMES):
            with scripted_run(ledger, index, run_key=f"r{index}", commit=f"c{index}") as run:
                for test_id, attempts in outcomes.items():
                    error_type, message = ERRORS[test_id]
                    for status in attempts:
                        record_test(
                            run, test_id, status, error_type=error_type, error_message=message
                        )
        with ledger.engine().begin() as conn:
            conn.execute(
                sa.text("UPDATE issues SET status = 'RESOLVED' WHERE issue_code = :c"),
                {"c": SEARCH},
            )
    return module_db_url


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str], tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(copy_database(recorded), results_dir=tmp_path / "results") as ledger:
        yield ledger


# list_issues options -> (code, status, occurrences, flaky occurrences) in the order returned.
LIST_CASES: list[tuple[dict[str, Any], list[tuple[str, str, int, int]]]] = [
    # priority (all MEDIUM), then last seen (newest first), then code
    ({}, [(CHAT, "OPEN", 3, 1), (CALC, "OPEN", 2, 0), (SEARCH, "RESOLVED", 1, 0)]),
    ({"statuses": ["open"]}, [(CHAT, "OPEN", 3, 1), (CALC, "OPEN", 2, 0)]),
    ({"statuses": ["resolved"]}, [(SEARCH, "RESOLVED", 1, 0)]),
    ({"priorities": ["high"]}, []),
    (
        {"categories": ["uncategorized"], "sort": "code"},
        [
            (CHAT, "OPEN", 3, 1),
            (SEARCH, "RESOLVED", 1, 0),
            (CALC, "OPEN", 2, 0),
        ],
    ),
    ({"tool": "calc"}, [(CALC, "OPEN", 2, 0)]),
    ({"tool": "search", "statuses": ["open"]}, []),
    ({"tool": "nope"}, []),
    (
        {"sort": "occurrences"},
        [
            (CHAT, "OPEN", 3, 1),
            (CALC, "OPEN", 2, 0),
            (SEARCH, "RESOLVED", 1, 0),
        ],
    ),
    ({"sort": "occurrences", "limit": 2}, [(CHAT, "OPEN", 3, 1), (CALC, "OPEN", 2, 0)]),
    ({"sort": "code", "limit": 1, "statuses": ["resolved", "open"]}, [(CHAT, "OPEN", 3, 1)]),
]


@pytest.mark.parametrize(("options", "expected"), LIST_CASES)
def test_list_issues(
    history: Ledger, options: dict[str, Any], expected: list[tuple[str, str, int, int]]
) -> None:
    with history.engine().connect() as conn:
        found = list_issues(conn, **options)
    assert [(i.code, i.status, i.occurrences, i.flaky_occurrences) for i in found] == expected


def test_issue_detail(history: Ledger) -> None:
    with history.engine().connect() as conn:
        detail = issue_detail(conn, CHAT, occurrences=2)
    summary = detail.issue
    assert (summary.code, summary.title, summary.affected_tools) == (
        CHAT,
        "TimeoutError: timed out after 30s",
        ["chat"],
    )
    assert (summary.occurrences, summary.flaky_occurrences, summary.lifecycle) == (
        3,
        1,
        "recurring",
    )
    assert detail.affected_tests == {"chat/a": 3}
    assert len(detail.fingerprints) == 1 and detail.fingerprints[0].endswith(" (v2)")
    assert (detail.first_seen, detail.last_seen) == (START, START + 2 * HOUR)
    # Newest first, cut at ``occurrences``; the retried failure of run 3 is the flaky one.
    assert [
        (o.run_id, o.commit, o.status, o.attempt, o.flaky, o.error_message)
        for o in detail.occurrences
    ] == [
        (3, "c2", "FAIL", 1, True, "timed out after 30s"),
        (2, "c1", "FAIL", 1, False, "timed out after 30s"),
    ]
    assert [(e.kind, e.run_id, e.status_to) for e in detail.events] == [("created", 1, "OPEN")]


def test_issue_detail_of_an_unknown_issue(history: Ledger) -> None:
    with history.engine().connect() as conn, pytest.raises(NotFound, match="no issue 'NOPE-1'"):
        issue_detail(conn, "NOPE-1")


@contextmanager
def _statements(conn: Connection) -> Iterator[list[tuple[str, Any]]]:
    """The statements ``conn`` executes inside the block, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(conn, "before_cursor_execute", before)


def _full_scans(conn: Connection, statement: str, parameters: Any) -> list[str]:
    """The plan steps of ``statement`` that read ``issue_occurrences`` without an index
    condition, i.e. every issue's occurrences. On PostgreSQL sequential scans are disabled
    first, so a tiny table's plan shows what the query allows rather than what is cheapest."""
    if conn.dialect.name == "sqlite":
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
        return [row.detail for row in plan if row.detail.startswith("SCAN issue_occurrences")]
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    [document] = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).one()
    plan = document if isinstance(document, list) else json.loads(document)
    scans: list[str] = []
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") != "issue_occurrences":
            continue
        if "Index Cond" not in node and "Recheck Cond" not in node:
            scans.append(node["Node Type"])
    return scans


FILTERED_CALLS: list[tuple[str, Callable[[Connection], object]]] = [
    ("issue_detail", lambda conn: issue_detail(conn, CALC)),
    ("by status", lambda conn: list_issues(conn, statuses=["resolved"])),
    ("by tool", lambda conn: list_issues(conn, tool="calc")),
    ("by priority", lambda conn: list_issues(conn, priorities=["low"])),
]


@pytest.mark.parametrize(("name", "call"), FILTERED_CALLS, ids=[n for n, _ in FILTERED_CALLS])
def test_occurrences_are_counted_for_the_issues_asked_for_only(
    history: Ledger,
    name: str,
    call: Callable[[Connection], object],
) -> None:
    with history.engine().connect() as conn:
        with _statements(conn) as seen:
            call(conn)
        reading = [(s, p) for s, p in seen if "issue_occurrences" in s]
        assert reading, name
        assert [_full_scans(conn, s, p) for s, p in reading] == [[] for _ in reading]
