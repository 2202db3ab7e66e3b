"""``result_history`` and ``testledger history``: one test over time, and how TEST is resolved."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testledger import Ledger
from testledger.cli import main
from testledger.errors import NotFound
from testledger.report.history import AmbiguousTest, resolve_test, result_history
from tests.histories import record_once, scripted_run
from tests.report.test_trend import START, record_history

NODE_ID = "tests/test_api.py::test_login[glm]"


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """test_trend's history (finished runs only), recorded once per database for this module."""
    return record_once(
        module_db_url,
        tmp_path_factory,
        lambda ledger: record_history(ledger, with_unfinished=False),
    )


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str], tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on this test's own copy of the recorded history."""
    with Ledger(copy_database(recorded), results_dir=tmp_path / "results") as ledger:
        yield ledger


def record_more(ledger: Ledger) -> None:
    """A pytest-style test (its id is not tool/variation) and twelve tests named alike."""
    with scripted_run(
        ledger, 5, start=START, commit="c5", suite="validation", run_key="run-5"
    ) as run:
        run.record(test_id=NODE_ID, tool_name="test_api", variation="login", status="PASS")
        for index in range(12):
            run.record(tool_name="bulk", variation=f"t{index:02}", status="PASS")


# (run key, branch, attempts, status, duration, cost, tokens, quality, issue?, error type)
Entry = tuple[Any, ...]
CHAT_B: list[Entry] = [
    ("run-3", "main", 1, "PASS", 2.0, 0.2, 200, 7, False, None),
    # Failed, then passed on the retry: both attempts add up; the failure has its issue.
    ("run-1", "main", 2, "PASS", 4.0, 0.4, 400, 6, True, None),
    ("run-0", "main", 1, "FAIL", 2.0, 0.2, 200, 4, True, "AssertionError"),
]
CHAT_A_FEATURE: list[Entry] = [
    ("run-2", "feature", 1, "FAIL", 0.5, 0.05, 50, 2, True, "AssertionError"),
]
HISTORY_CASES: list[tuple[str, str, dict[str, Any], str, list[Entry]]] = [
    ("exact id", "chat/b", {}, "chat/b", CHAT_B),
    ("limit", "chat/b", {"limit": 2}, "chat/b", CHAT_B[:2]),
    ("branch", "chat/a", {"branch": "feature"}, "chat/a", CHAT_A_FEATURE),
    ("branch without it", "chat/a", {"branch": "nowhere"}, "chat/a", []),
    ("unique part, any case", "AT/B", {}, "chat/b", CHAT_B),
]


@pytest.mark.parametrize(
    ("case", "test", "options", "test_id", "expected"),
    HISTORY_CASES,
    ids=[c[0] for c in HISTORY_CASES],
)
def test_history_entries(
    history: Ledger,
    case: str,
    test: str,
    options: dict[str, Any],
    test_id: str,
    expected: list[Entry],
) -> None:
    with history.engine().connect() as conn:
        found_history = result_history(conn, test, **options)
    assert found_history.test_id == test_id
    found = [
        (
            e.run_key,
            e.branch,
            e.attempts,
            e.status,
            e.duration_secs,
            e.cost_usd,
            e.tokens_total,
            e.watcher_quality,
            e.issue_code is not None,
            e.error_type,
        )
        for e in found_history.entries
    ]
    assert found == expected


def test_one_issue_per_failing_test(history: Ledger) -> None:
    with history.engine().connect() as conn:
        codes = {
            test: {e.run_key: e.issue_code for e in result_history(conn, test).entries}
            for test in ("chat/a", "chat/b")
        }
    a_code, b_code = codes["chat/a"]["run-2"], codes["chat/b"]["run-0"]
    assert a_code is not None and b_code is not None and a_code != b_code
    assert codes == {
        "chat/a": {"run-3": a_code, "run-2": a_code, "run-1": None, "run-0": None},
        "chat/b": {"run-3": None, "run-1": b_code, "run-0": b_code},
    }


RESOLVE_CASES: list[tuple[str, str, str | None, str]] = [
    # reference, test_id it resolves to (None: an error), the error's message
    ("chat/a", "chat/a", ""),
    (NODE_ID, NODE_ID, ""),
    ("test_api/login", NODE_ID, ""),  # tool/variation
    ("login[GLM]", NODE_ID, ""),  # a unique part, whatever its case
    ("status", "status/c", ""),
    ("chat", None, "'chat' matches 2 tests: chat/a, chat/b; give the full test id"),
    (
        "bulk/",
        None,
        "'bulk/' matches 12 tests: bulk/t00, bulk/t01, bulk/t02, bulk/t03, bulk/t04, "
        "bulk/t05, bulk/t06, bulk/t07, bulk/t08, bulk/t09 (and 2 more); give the full test id",
    ),
    ("nope", None, "no test matches 'nope'"),
    # LIKE's wildcards are plain characters here.
    ("%", None, "no test matches '%'"),
    ("chat_a", None, "no test matches 'chat_a'"),
]


@pytest.mark.parametrize(("reference", "test_id", "error"), RESOLVE_CASES)
def test_resolve_test(history: Ledger, reference: str, test_id: str | None, error: str) -> None:
    record_more(history)
    with history.engine().connect() as conn:
        if test_id is not None:
            assert resolve_test(conn, reference) == test_id
            return
        with pytest.raises((AmbiguousTest, NotFound)) as raised:
            resolve_test(conn, reference)
    assert str(raised.value) == error
    if isinstance(raised.value, AmbiguousTest):
        assert len(raised.value.candidates) == min(10, int(error.split()[2]))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_history_command(history: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    db_url = history.settings.database_url
    with history.engine().connect() as conn:
        code_b = result_history(conn, "chat/b").entries[-1].issue_code
    assert code_b is not None
    code, out, err = cli(capsys, "--db", db_url, "history", "chat/b")
    assert (code, err) == (0, "")
    pad = " " * (len(code_b) - len("issue"))
    assert [line.rstrip() for line in out.splitlines()] == [
        "chat/b  (tool chat, variation b) - 3 run(s), newest first",
        " run  when (UTC)        branch  commit  tries  status  secs  cost $  tokens  quality"
        f"  issue{pad}  error",
        "   4  2025-10-07 15:00  main    c3          1  PASS    2.00  0.2000     200        7",
        "   2  2025-10-07 13:00  main    c1          2  PASS    4.00  0.4000     400        6"
        f"  {code_b}",
        "   1  2025-10-07 12:00  main    c0          1  FAIL    2.00  0.2000     200        4"
        f"  {code_b}  AssertionError: chat/b went wrong",
    ]

    code, out, _ = cli(capsys, "--db", db_url, "history", "chat/b", "-n", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["test_id"], data["limit"], data["branch"]) == ("chat/b", 1, None)
    assert data["entries"] == [
        {
            "run_id": 4,
            "run_key": "run-3",
            "run_timestamp": "2025-10-07T15:00:00Z",
            "branch": "main",
            "commit": "c3",
            "attempts": 1,
            "status": "PASS",
            "duration_secs": 2.0,
            "cost_usd": 0.2,
            "tokens_total": 200,
            "watcher_quality": 7,
            "provider": "glm",
            "model": "glm-4.5",
            "error_type": None,
            "error_message": None,
            "issue_code": None,
        }
    ]

    code, out, err = cli(capsys, "--db", db_url, "history", "chat")
    assert (code, out) == (1, "")
    assert err == "error: 'chat' matches 2 tests: chat/a, chat/b; give the full test id\n"
    code, out, err = cli(capsys, "--db", db_url, "history", "missing")
    assert (code, out, err) == (1, "", "error: no test matches 'missing'\n")
