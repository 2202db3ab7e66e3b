"""Every answer stays small on a ledger with 10,000 failures in one run: lists hold at most their
limit, long texts keep their head and tail, a whole answer is at most ``MAX_ANSWER_BYTES`` of
JSON, and ``truncated`` counts exactly what was left out. SQLite only: the bounds are the MCP
layer's, the same on every database (the PostgreSQL variants of every tool are in
test_stdio.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from testledger import api
from testledger.common.text import bounded
from testledger.mcp.bounds import MAX_ANSWER_BYTES, json_size
from tests.histories import scripted_run
from tests.mcp.conftest import Client, stdio_session

pytestmark = pytest.mark.slow

FAILURES = 10_000
KINDS = 100
#: The kinds whose failures carry a long traceback: the first groups listed.
TRACED_KINDS = 5
MESSAGE = "case {i} failed: " + "x" * 600
TRACEBACK = "".join(f'  File "suite.py", line {n}, in step_{n}\n    step()\n' for n in range(150))


def _test_id(i: int) -> str:
    return f"t/v{i:05d}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A run of 10,000 passing tests, then a run where all of them fail, in 100 kinds (so 100
    issues of 100 failures); the failures of the first kinds carry a 7 KB traceback."""
    folder = tmp_path_factory.mktemp("bounds")
    url = f"sqlite:///{folder / 'ledger.db'}"
    with api.Ledger(url, results_dir=folder / "results") as ledger:
        with scripted_run(ledger, 0, run_key="before") as run:
            for i in range(FAILURES):
                run.record(test_id=_test_id(i), tool_name="t", variation=f"v{i:05d}", status="PASS")
        with scripted_run(ledger, 1, run_key="after") as run:
            for i in range(FAILURES):
                run.record(
                    test_id=_test_id(i),
                    tool_name="t",
                    variation=f"v{i:05d}",
                    status="FAIL",
                    error_type=f"Kind{i % KINDS:02d}Error",
                    error_message=MESSAGE.format(i=i),
                    traceback=TRACEBACK if i % KINDS < TRACED_KINDS else None,
                )
    with stdio_session(url, folder) as opened:
        yield opened


def bounded_answer(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The answer, after checking it and its JSON text block are within the bound."""
    result = client.call(tool, **arguments)
    assert not result.is_error, result.content
    data = result.structured_content
    assert json_size(data) <= MAX_ANSWER_BYTES, (tool, json_size(data))
    assert len(result.content[1].text.encode()) <= MAX_ANSWER_BYTES * 1.1
    assert len(result.content[0].text) < 1_000
    return data


def test_a_run_with_10000_failures(client: Client) -> None:
    data = bounded_answer(client, "run_summary", limit=100)
    assert data["failing_total"] == FAILURES
    assert 0 < len(data["failing"]) <= 100
    assert data["truncated"] == {"failing": FAILURES - len(data["failing"])}
    first = data["failing"][0]
    assert first["test_id"] == _test_id(0)
    # A list's message is its first line within 300 characters, the rest counted.
    assert first["error_message"] == MESSAGE.format(i=0)[:300] + " [... 315 more characters]"


def test_failures_grouped_by_issue_are_bounded(client: Client) -> None:
    data = bounded_answer(client, "run_failures", limit=50, tests_per_group=100)
    assert (data["failures"], data["groups_total"]) == (FAILURES, KINDS)
    groups = data["groups"]
    assert 0 < len(groups) < 50
    assert data["truncated"] == {"groups": KINDS - len(groups)}
    for group in groups:
        assert group["failures"] == 100
        assert len(group["tests"]) == 100
        first = group["representative"]
        i = int(first["test_id"][3:])
        assert first["test_id"] == group["tests"][0] == _test_id(i)
        assert first["error_message"] == bounded(MESSAGE.format(i=i), 2_000)
        if i < TRACED_KINDS:
            assert first["traceback"] == bounded(TRACEBACK, 4_000)
            assert "[... truncated " in first["traceback"]
            assert first["traceback"].endswith("in step_149\n    step()\n")
        else:
            assert first["traceback"] is None
    few = bounded_answer(client, "run_failures", limit=3, tests_per_group=2)
    assert [len(group["tests"]) for group in few["groups"]] == [2, 2, 2]
    assert few["truncated"] == {"groups": KINDS - 3, "groups.tests": 3 * 98}


def test_comparison_with_10000_new_failures(client: Client) -> None:
    data = bounded_answer(client, "compare_runs", limit=100)
    assert data["counts"]["new_failures"] == FAILURES
    shown = len(data["new_failures"])
    assert 0 < shown <= 100
    assert data["truncated"] == {"new_failures": FAILURES - shown}
    assert data["summary"].startswith(
        "Run 2 vs run 1 (suite s, branch main): 10000 new failure(s): t/v00000 (UNCA-MEDIUM-001);"
        " t/v00001 (UNCA-MEDIUM-002); t/v00002 (UNCA-MEDIUM-003); and 9997 more; 0 fixed"
    )


def test_issues_search_and_history_are_bounded(client: Client) -> None:
    issues = bounded_answer(client, "list_issues", limit=99)
    assert issues["more"] is True
    assert 0 < len(issues["issues"]) <= 99
    assert issues["truncated"] == (
        {"issues": 99 - len(issues["issues"])} if len(issues["issues"]) < 99 else {}
    )
    found = bounded_answer(client, "search", text="failed", limit=100)
    assert found["tests_total"] == FAILURES
    assert found["issues_total"] == KINDS
    assert found["truncated"] == {
        "tests": FAILURES - len(found["tests"]),
        "issues": KINDS - len(found["issues"]),
    }
    issue = bounded_answer(client, "issue", code="UNCA-MEDIUM-001", limit=100)
    assert issue["issue"]["occurrences"] == 100
    assert len(issue["occurrences"]) + issue["truncated"].get("occurrences", 0) == 100
    history = bounded_answer(client, "test_history", test=_test_id(9_999), limit=100)
    assert [o["status"] for o in history["outcomes"]] == ["FAIL", "PASS"]
    assert json.dumps(history["open_issues"]).count('"code"') == 1
