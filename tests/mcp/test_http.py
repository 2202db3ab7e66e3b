"""``testledger mcp --http --allow-writes`` driven by the SDK's streamable HTTP client, on
SQLite and PostgreSQL ledgers holding the scripted history: the same tools as over stdio, and
the write tools working (and checking their arguments) when writes are allowed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testledger import api
from tests.mcp.conftest import Client, http_server, http_session, steady


@pytest.fixture(scope="module")
def client(history_url: str, server_folder: Path) -> Iterator[Client]:
    with http_server(history_url, server_folder, "--allow-writes") as endpoint:
        with http_session(endpoint) as opened:
            yield opened


def test_reads_over_streamable_http(client: Client) -> None:
    tools = [tool.name for tool in client.run(client.session.list_tools()).tools]
    assert tools[-2:] == ["update_issue", "record_observation"]
    assert len(tools) == 14
    assert client.initialized.instructions.endswith("Writes are allowed.")
    assert client.answer("compare_runs")["summary"] == (
        "Run 12 vs run 11 (suite s, branch main): 1 new failure(s): weather/call"
        " (UNCA-MEDIUM-003); 0 fixed, 1 still failing, 1 flaky, 0 slower, 1 costlier, 1 with"
        " lower watcher quality; pass rate 80% -> 40%, cost $0.0039 -> $0.0059, tokens 4100 ->"
        " 6100."
    )
    assert (
        client.error("issue", code="NOPE-001") == "Error executing tool issue: no issue 'NOPE-001'"
    )


def test_writes_when_allowed(client: Client, history_url: str) -> None:
    changed = steady(
        client.answer(
            "update_issue",
            code="UNCA-MEDIUM-003",
            status="in progress",
            root_cause="the new model names the tool's arguments `args`",
            note="seen in CI",
            limit=1,
        )
    )
    assert changed["summary"] == (
        "UNCA-MEDIUM-003 [IN_PROGRESS, MEDIUM, uncategorized, new]: KeyError: 'arguments'. 1"
        " occurrence(s) in 1 test(s), last seen in run 12; root cause: the new model names the"
        " tool's arguments `args`."
    )
    assert changed["issue"]["status"] == "IN_PROGRESS"
    assert changed["root_cause"] == "the new model names the tool's arguments `args`"
    assert changed["events"] == [
        {
            "at": "<now>",
            "kind": "edited",
            "run_id": None,
            "status_from": None,
            "status_to": None,
            "note": "root_cause: the new model names the tool's arguments `args`",
            "actor": "mcp",
        }
    ]
    assert changed["truncated"] == {"events": 2}
    observed = client.answer(
        "record_observation",
        result_id=59,
        quality_score=2,
        weaknesses=["no tool call"],
        anomalies=["KeyError on every call"],
        confidence=0.8,
        watcher="agent",
    )
    assert observed == {
        "summary": "Recorded agent observation (quality 2) for result 59 (weather/call, attempt 1,"
        " run 12); the run's average watcher quality is now 3.5.",
        "observation": {
            "result_id": 59,
            "run_id": 12,
            "test_id": "weather/call",
            "attempt": 1,
            "watcher": "agent",
            "quality_score": 2,
            "error": None,
            "avg_watcher_quality": 3.5,
        },
        "truncated": {},
    }
    with api.Ledger(history_url) as ledger:
        detail = api.issue_detail(ledger, "UNCA-MEDIUM-003")
        assert [(e.kind, e.status_to, e.note, e.actor) for e in detail.events[1:]] == [
            ("status", "IN_PROGRESS", "seen in CI", "mcp"),
            ("edited", None, "root_cause: the new model names the tool's arguments `args`", "mcp"),
        ]
        assert api.show_run(ledger, 12).run.avg_watcher_quality == 3.5
        [latest] = api.test_context(ledger, "weather/call", runs=1).points
        assert (latest.result_id, latest.watcher_quality) == (59, 2)


def test_bad_write_arguments_are_tool_errors(client: Client) -> None:
    assert client.error("update_issue", code="UNCA-MEDIUM-001", status="done") == (
        "Error executing tool update_issue: unknown issue status 'done': use one of OPEN,"
        " IN_PROGRESS, RESOLVED, WONT_FIX"
    )
    assert client.error("update_issue", code="NOPE-001", note="x") == (
        "Error executing tool update_issue: no issue 'NOPE-001'"
    )
    assert client.error("record_observation", result_id=59) == (
        "Error executing tool record_observation: a watcher observation without a"
        " quality_score must carry an error"
    )
    assert client.error("record_observation", result_id=99_999, quality_score=5) == (
        "Error executing tool record_observation: no result with id 99999"
    )
    assert client.error("record_observation", result_id=59, quality_score=11).startswith(
        "Error executing tool record_observation: 1 validation error for"
        " record_observationArguments\nquality_score\n"
    )
