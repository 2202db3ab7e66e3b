"""``testledger mcp`` over stdio, driven by the SDK's ``ClientSession``, on SQLite and PostgreSQL
ledgers holding the scripted history of ``conftest.py``: the tools and their schemas, every
tool's answer exactly, bad arguments, writes refused by a read-only server, the resources and
the prompt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testledger import api
from tests.mcp.conftest import Client, stdio_session, steady

READ_TOOLS = [
    "run_summary",
    "list_runs",
    "compare_runs",
    "run_failures",
    "test_history",
    "issue",
    "list_issues",
    "flaky_tests",
    "regressions",
    "cost",
    "search",
    "gate",
]
WRITE_TOOLS = ["update_issue", "record_observation"]
READ_ONLY = (
    "this testledger MCP server is read-only: start it with `testledger mcp --allow-writes`"
    " to change issues or record observations"
)

RUN = {
    11: {
        "id": 11,
        "run_key": "main-10",
        "suite": "s",
        "branch": "main",
        "commit": "c10",
        "status": "finished",
        "run_timestamp": "2025-10-01T19:00:00Z",
        "finished_at": "<now>",
        "watcher_model": "none",
        "total_tests": 5,
        "tests_passed": 4,
        "tests_failed": 1,
        "tests_skipped": 0,
        "tests_errored": 0,
        "pass_rate": 80,
        "avg_watcher_quality": 9,
        "duration_secs": 20,
        "total_cost_usd": 0.0039,
        "total_tokens": 4100,
        "source": "runner",
        "notes": None,
    },
    12: {
        "id": 12,
        "run_key": "main-11",
        "suite": "s",
        "branch": "main",
        "commit": "c11",
        "status": "finished",
        "run_timestamp": "2025-10-01T20:00:00Z",
        "finished_at": "<now>",
        "watcher_model": "none",
        "total_tests": 5,
        "tests_passed": 2,
        "tests_failed": 3,
        "tests_skipped": 0,
        "tests_errored": 0,
        "pass_rate": 40,
        "avg_watcher_quality": 5,
        "duration_secs": 21,
        "total_cost_usd": 0.0059,
        "total_tokens": 6100,
        "source": "runner",
        "notes": None,
    },
    13: {
        "id": 13,
        "run_key": "dev-00",
        "suite": "s",
        "branch": "dev",
        "commit": "d00",
        "status": "finished",
        "run_timestamp": "2025-10-01T08:00:00Z",
        "finished_at": "<now>",
        "watcher_model": "none",
        "total_tests": 1,
        "tests_passed": 1,
        "tests_failed": 0,
        "tests_skipped": 0,
        "tests_errored": 0,
        "pass_rate": 100,
        "avg_watcher_quality": None,
        "duration_secs": 5,
        "total_cost_usd": None,
        "total_tokens": None,
        "source": "runner",
        "notes": None,
    },
}


@pytest.fixture(scope="module")
def client(history_url: str, server_folder: Path) -> Iterator[Client]:
    """One read-only server per backend, shared by the module's tests."""
    with stdio_session(history_url, server_folder) as opened:
        yield opened


def answer(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    return steady(client.answer(tool, **arguments))


def test_the_tools_are_listed_with_their_schemas(client: Client) -> None:
    tools = {tool.name: tool for tool in client.run(client.session.list_tools()).tools}
    assert list(tools) == READ_TOOLS + WRITE_TOOLS
    for name, tool in tools.items():
        assert tool.description, name
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None, name
        assert tool.output_schema["type"] == "object"
        assert {"summary", "truncated"} <= set(tool.output_schema["required"]), name
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name in READ_TOOLS)
        assert tool.annotations.open_world_hint is False
    assert tools["test_history"].input_schema == {
        "properties": {
            "test": {
                "description": "A test id, tool/variation, or a unique part of a test id.",
                "title": "Test",
                "type": "string",
            },
            "suite": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "description": "Only runs of this suite.",
                "title": "Suite",
            },
            "branch": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "description": "Only runs of this branch.",
                "title": "Branch",
            },
            "limit": {
                "default": 20,
                "description": "The most items a list holds.",
                "maximum": 100,
                "minimum": 1,
                "title": "Limit",
                "type": "integer",
            },
        },
        "required": ["test"],
        "type": "object",
        "title": "test_historyArguments",
    }
    assert tools["list_runs"].input_schema["properties"]["since"] == {
        "anyOf": [{"format": "date-time", "type": "string"}, {"type": "null"}],
        "default": None,
        "description": "Only runs started at or after this ISO-8601 time (UTC if naive).",
        "title": "Since",
    }
    # Improvements are reported unless left out, as by the CLI and the library.
    improvements = tools["regressions"].input_schema["properties"]["include_improvements"]
    assert improvements["default"] is True and improvements["type"] == "boolean"
    assert tools["run_failures"].output_schema["required"] == [
        "summary",
        "run",
        "failures",
        "groups_total",
        "groups",
        "truncated",
    ]
    assert client.initialized.server_info.name == "testledger"
    assert client.initialized.instructions.endswith("Read-only: the write tools refuse.")


def test_run_summary(client: Client) -> None:
    assert answer(client, "run_summary", limit=1) == {
        "summary": "Run 12 (main-11; suite s, branch main @ c11, finished): 5 tests, 2 passed, 3 "
        "failed (0 errors), 0 skipped; pass rate 40%; cost $0.0059; 6100 tokens; watcher "
        "quality 5. Failing: extract/entities; and 2 more.",
        "run": RUN[12],
        "failing": [
            {
                "result_id": 58,
                "test_id": "extract/entities",
                "tool_name": "extract",
                "variation": "entities",
                "status": "FAIL",
                "attempt": 1,
                "provider": "openai",
                "model": "gpt-4o-mini",
                "error_type": "AssertionError",
                "error_message": "orgs missing: expected ['ACME'] got []",
                "watcher_quality": None,
                "duration_secs": 0.5,
            }
        ],
        "failing_total": 3,
        "retried_tests": 0,
        "truncated": {"failing": 2},
    }


def test_list_runs_filtered(client: Client) -> None:
    assert answer(client, "list_runs", since="2025-10-01T19:00:00", limit=2) == {
        "summary": "2 run(s), newest first: run 12 (finished, 2 of 5 passed) back to run 11.",
        "runs": [RUN[12], RUN[11]],
        "more": False,
        "truncated": {},
    }
    dev = answer(client, "list_runs", branch="dev", status="FINISHED")
    assert dev == {
        "summary": "1 run(s), newest first: run 13 (finished, 1 of 1 passed) back to run 13.",
        "runs": [RUN[13]],
        "more": False,
        "truncated": {},
    }
    assert answer(client, "list_runs", status="aborted")["runs"] == []


def test_compare_runs_tells_what_broke_since_the_previous_run(client: Client) -> None:
    assert answer(client, "compare_runs", limit=2) == {
        "summary": "Run 12 vs run 11 (suite s, branch main): 1 new failure(s): weather/call "
        "(UNCA-MEDIUM-003); 0 fixed, 1 still failing, 1 flaky, 0 slower, 1 costlier, 1 "
        "with lower watcher quality; pass rate 80% -> 40%, cost $0.0039 -> $0.0059, tokens "
        "4100 -> 6100.",
        "current": RUN[12],
        "baseline": RUN[11],
        "totals": [
            {"metric": "total_tests", "before": 5, "after": 5, "delta": 0},
            {"metric": "tests_passed", "before": 4, "after": 2, "delta": -2},
            {"metric": "tests_failed", "before": 1, "after": 3, "delta": 2},
            {"metric": "tests_skipped", "before": 0, "after": 0, "delta": 0},
            {"metric": "pass_rate", "before": 80, "after": 40, "delta": -40},
            {"metric": "total_cost_usd", "before": 0.0039, "after": 0.0059, "delta": 0.002},
            {"metric": "duration_secs", "before": 20, "after": 21, "delta": 1},
            {"metric": "total_tokens", "before": 4100, "after": 6100, "delta": 2000},
            {"metric": "avg_watcher_quality", "before": 9, "after": 5, "delta": -4},
        ],
        "counts": {
            "new_failures": 1,
            "fixed": 0,
            "still_failing": 1,
            "flaky_failures": 1,
            "slower": 0,
            "costlier": 1,
            "quality_down": 1,
            "added": 0,
            "removed": 0,
        },
        "new_failures": [
            {
                "test_id": "weather/call",
                "tool_name": "weather",
                "variation": "call",
                "provider": "glm",
                "model": "glm-4.5-air",
                "status_before": "PASS",
                "status_after": "FAIL",
                "before": None,
                "after": None,
                "issue_code": "UNCA-MEDIUM-003",
                "flaky": False,
                "error_type": "KeyError",
                "error_message": "'arguments'",
            }
        ],
        "fixed": [],
        "still_failing": [
            {
                "test_id": "extract/entities",
                "tool_name": "extract",
                "variation": "entities",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "status_before": "FAIL",
                "status_after": "FAIL",
                "before": None,
                "after": None,
                "issue_code": "UNCA-MEDIUM-001",
                "flaky": False,
                "error_type": "AssertionError",
                "error_message": "orgs missing: expected ['ACME'] got []",
            }
        ],
        "flaky_failures": [
            {
                "test_id": "search/web",
                "tool_name": "search",
                "variation": "web",
                "provider": "moonshot",
                "model": "kimi-k2",
                "status_before": "PASS",
                "status_after": "FAIL",
                "before": None,
                "after": None,
                "issue_code": "UNCA-MEDIUM-002",
                "flaky": True,
                "error_type": "TimeoutError",
                "error_message": "search backend timed out after 30 s",
            }
        ],
        "slower": [],
        "costlier": [
            {
                "test_id": "chat/basic",
                "tool_name": "chat",
                "variation": "basic",
                "provider": "glm",
                "model": "glm-4.5",
                "status_before": "PASS",
                "status_after": "PASS",
                "before": 0.001,
                "after": 0.003,
                "issue_code": None,
                "flaky": False,
                "error_type": None,
                "error_message": None,
            }
        ],
        "quality_down": [
            {
                "test_id": "render/report",
                "tool_name": "render",
                "variation": "report",
                "provider": None,
                "model": None,
                "status_before": "PASS",
                "status_after": "PASS",
                "before": 9,
                "after": 5,
                "issue_code": None,
                "flaky": False,
                "error_type": None,
                "error_message": None,
            }
        ],
        "added": [],
        "removed": [],
        "providers": [
            {
                "name": "(none)",
                "before": {
                    "tests": 1,
                    "passed": 1,
                    "failed": 0,
                    "cost_usd": None,
                    "tokens": None,
                    "avg_quality": 9.0,
                },
                "after": {
                    "tests": 1,
                    "passed": 1,
                    "failed": 0,
                    "cost_usd": None,
                    "tokens": None,
                    "avg_quality": 5.0,
                },
            },
            {
                "name": "glm",
                "before": {
                    "tests": 2,
                    "passed": 2,
                    "failed": 0,
                    "cost_usd": 0.0014,
                    "tokens": 1600,
                    "avg_quality": None,
                },
                "after": {
                    "tests": 2,
                    "passed": 1,
                    "failed": 1,
                    "cost_usd": 0.0034,
                    "tokens": 3600,
                    "avg_quality": None,
                },
            },
        ],
        "models": [
            {
                "name": "(none)",
                "before": {
                    "tests": 1,
                    "passed": 1,
                    "failed": 0,
                    "cost_usd": None,
                    "tokens": None,
                    "avg_quality": 9.0,
                },
                "after": {
                    "tests": 1,
                    "passed": 1,
                    "failed": 0,
                    "cost_usd": None,
                    "tokens": None,
                    "avg_quality": 5.0,
                },
            },
            {
                "name": "glm-4.5",
                "before": {
                    "tests": 1,
                    "passed": 1,
                    "failed": 0,
                    "cost_usd": 0.001,
                    "tokens": 1000,
                    "avg_quality": None,
                },
                "after": {
                    "tests": 1,
                    "passed": 1,
                    "failed": 0,
                    "cost_usd": 0.003,
                    "tokens": 3000,
                    "avg_quality": None,
                },
            },
        ],
        "truncated": {"providers": 2, "models": 3},
    }


def test_compare_with_a_baseline_branch(client: Client) -> None:
    found = answer(client, "compare_runs", baseline_branch="dev", limit=1)
    assert found["summary"] == (
        "Run 12 vs run 13 (suite s, branch main vs dev): 2 new failure(s): extract/entities"
        " (UNCA-MEDIUM-001); weather/call (UNCA-MEDIUM-003); 0 fixed, 0 still failing, 1 flaky,"
        " 0 slower, 0 costlier, 0 with lower watcher quality; pass rate 100% -> 40%, cost - ->"
        " $0.0059, tokens - -> 6100."
    )
    assert (found["current"], found["baseline"]) == (RUN[12], RUN[13])
    assert [t["test_id"] for t in found["new_failures"]] == ["extract/entities"]
    assert found["counts"]["added"] == 4
    assert found["truncated"] == {"new_failures": 1, "added": 3, "providers": 3, "models": 4}


def test_run_failures_grouped_by_issue(client: Client) -> None:
    assert answer(client, "run_failures", limit=2, tests_per_group=1) == {
        "summary": "Run 12 (main-11; suite s, branch main @ c11, finished): 3 failure(s) in 3 "
        "group(s): UNCA-MEDIUM-001 x1: AssertionError: orgs missing: expected ['ACME'] got "
        "[]; UNCA-MEDIUM-002 x1: TimeoutError: search backend timed out after 30 s; and 1 more.",
        "run": RUN[12],
        "failures": 3,
        "groups_total": 3,
        "groups": [
            {
                "issue_code": "UNCA-MEDIUM-001",
                "title": "AssertionError: orgs missing: expected ['ACME'] got []",
                "status": "OPEN",
                "priority": "MEDIUM",
                "category": "uncategorized",
                "failures": 1,
                "flaky": 0,
                "tests": ["extract/entities"],
                "representative": {
                    "result_id": 58,
                    "test_id": "extract/entities",
                    "status": "FAIL",
                    "attempt": 1,
                    "error_type": "AssertionError",
                    "error_message": "orgs missing: expected ['ACME'] got []\nfull diff follows",
                    "traceback": 'File "extract.py", line 12, in extract\n'
                    '    assert orgs == ["ACME"]',
                },
            },
            {
                "issue_code": "UNCA-MEDIUM-002",
                "title": "TimeoutError: search backend timed out after 30 s",
                "status": "OPEN",
                "priority": "MEDIUM",
                "category": "uncategorized",
                "failures": 1,
                "flaky": 1,
                "tests": ["search/web"],
                "representative": {
                    "result_id": 57,
                    "test_id": "search/web",
                    "status": "FAIL",
                    "attempt": 1,
                    "error_type": "TimeoutError",
                    "error_message": "search backend timed out after 30 s",
                    "traceback": None,
                },
            },
        ],
        "truncated": {"groups": 1},
    }


def test_test_history_is_what_the_watcher_sees(client: Client) -> None:
    assert answer(client, "test_history", test="render", limit=3) == {
        "summary": "render/report (suite s, branch main): last 3 result(s): 3 PASS; latest PASS in "
        "run 12; open issues: PERF-CRITICAL-001 [OPEN] duration regression in "
        "render/report (+400.0%); change points: duration 0.1 -> 0.5 from run 7 "
        "(PERF-CRITICAL-001 OPEN).",
        "test_id": "render/report",
        "suite": "s",
        "branch": "main",
        "latest_run_id": 12,
        "outcomes": [
            {
                "run_id": 12,
                "run_timestamp": "2025-10-01T20:00:00Z",
                "status": "PASS",
                "duration_secs": 0.5,
                "memory_mb": None,
                "tokens_total": None,
                "cost_usd": None,
                "error_type": None,
                "watcher_quality": 5,
                "result_id": 60,
                "attempt": 1,
            },
            {
                "run_id": 11,
                "run_timestamp": "2025-10-01T19:00:00Z",
                "status": "PASS",
                "duration_secs": 0.5,
                "memory_mb": None,
                "tokens_total": None,
                "cost_usd": None,
                "error_type": None,
                "watcher_quality": 9,
                "result_id": 55,
                "attempt": 1,
            },
            {
                "run_id": 10,
                "run_timestamp": "2025-10-01T18:00:00Z",
                "status": "PASS",
                "duration_secs": 0.5,
                "memory_mb": None,
                "tokens_total": None,
                "cost_usd": None,
                "error_type": None,
                "watcher_quality": 9,
                "result_id": 50,
                "attempt": 1,
            },
        ],
        "open_issues": [
            {
                "code": "PERF-CRITICAL-001",
                "title": "duration regression in render/report (+400.0%)",
                "status": "OPEN",
                "priority": "CRITICAL",
                "category": "performance",
                "origin": "regression",
                "lifecycle": "new",
                "occurrences": 6,
                "last_seen_run_id": 12,
            }
        ],
        "changes": [
            {
                "issue_code": "PERF-CRITICAL-001",
                "status": "OPEN",
                "metric": "duration",
                "before_mean": 0.1,
                "after_mean": 0.5,
                "magnitude_pct": 400.0,
                "first_run_id": 7,
                "commit_range": "c05..c06",
                "p_value": 0.0,
            }
        ],
        "truncated": {},
    }


def test_issue_with_occurrences_and_fingerprint(client: Client) -> None:
    assert answer(client, "issue", code="UNCA-MEDIUM-001", limit=2) == {
        "summary": "UNCA-MEDIUM-001 [OPEN, MEDIUM, uncategorized, recurring]: AssertionError: orgs "
        "missing: expected ['ACME'] got []. 5 occurrence(s) in 1 test(s), last seen in run "
        "12; root cause: not recorded.",
        "issue": {
            "code": "UNCA-MEDIUM-001",
            "title": "AssertionError: orgs missing: expected ['ACME'] got []",
            "status": "OPEN",
            "priority": "MEDIUM",
            "category": "uncategorized",
            "lifecycle": "recurring",
            "origin": "detected",
            "affected_tools": ["extract"],
            "occurrences": 5,
            "flaky_occurrences": 0,
            "first_detected_run_id": 1,
            "last_seen_run_id": 12,
            "last_seen_at": "2025-10-01T20:00:00Z",
            "regressed_run_id": 11,
            "resolved_run_id": None,
            "resolved_at": None,
            "created_at": "<now>",
            "updated_at": "<now>",
            "rule_name": None,
            "branch_name": None,
        },
        "description": "First seen in run 1 (s/main @ c00) in extract/entities (FAIL, attempt 1).\n"
        "\n"
        "orgs missing: expected ['ACME'] got []\n"
        "full diff follows",
        "root_cause": None,
        "resolution": None,
        "fingerprints": ["689e7f017a55ff9fbad6c4eefab4c09a8a10c3e9 (v2)"],
        "first_seen": "2025-10-01T09:00:00Z",
        "last_seen": "2025-10-01T20:00:00Z",
        "affected_tests": [{"test_id": "extract/entities", "occurrences": 5}],
        "occurrences": [
            {
                "run_id": 12,
                "run_timestamp": "2025-10-01T20:00:00Z",
                "branch": "main",
                "commit": "c11",
                "test_id": "extract/entities",
                "result_id": 58,
                "status": "FAIL",
                "attempt": 1,
                "flaky": False,
                "error_message": "orgs missing: expected ['ACME'] got []",
            },
            {
                "run_id": 11,
                "run_timestamp": "2025-10-01T19:00:00Z",
                "branch": "main",
                "commit": "c10",
                "test_id": "extract/entities",
                "result_id": 53,
                "status": "FAIL",
                "attempt": 1,
                "flaky": False,
                "error_message": "orgs missing: expected ['ACME'] got []",
            },
        ],
        "events": [
            {
                "at": "<now>",
                "kind": "auto_resolved",
                "run_id": 6,
                "status_from": "OPEN",
                "status_to": "RESOLVED",
                "note": "its tests ran and passed in 3 consecutive runs (4, 5, 6)",
                "actor": "testledger",
            },
            {
                "at": "<now>",
                "kind": "regressed",
                "run_id": 11,
                "status_from": "RESOLVED",
                "status_to": "OPEN",
                "note": "seen again in extract/entities (resolved in run 6)",
                "actor": "testledger",
            },
        ],
        "fingerprint_explanation": {
            "result_id": 58,
            "test_id": "extract/entities",
            "status": "FAIL",
            "fingerprint": "689e7f017a55ff9fbad6c4eefab4c09a8a10c3e9",
            "version": 2,
            "stored_fingerprint": "689e7f017a55ff9fbad6c4eefab4c09a8a10c3e9",
            "stored_version": 2,
            "components": [
                {
                    "name": "exception_type",
                    "raw": "AssertionError",
                    "normalized": "AssertionError",
                    "rules": [],
                    "contributes": True,
                },
                {
                    "name": "message",
                    "raw": "orgs missing: expected ['ACME'] got []\nfull diff follows",
                    "normalized": "orgs missing: expected ['ACME'] got []\nfull diff follows",
                    "rules": ["quoted_identifier"],
                    "contributes": True,
                },
                {
                    "name": "raised_in",
                    "raw": 'File "extract.py", line 12, in extract',
                    "normalized": "extract.py:extract",
                    "rules": [],
                    "contributes": True,
                },
                {
                    "name": "call_path",
                    "raw": "extract.py:extract",
                    "normalized": "extract.py:extract",
                    "rules": [],
                    "contributes": False,
                },
                {
                    "name": "test_id",
                    "raw": "extract/entities",
                    "normalized": "extract/entities",
                    "rules": [],
                    "contributes": False,
                },
                {
                    "name": "status",
                    "raw": "FAIL",
                    "normalized": "FAIL",
                    "rules": [],
                    "contributes": False,
                },
            ],
        },
        "truncated": {"events": 1},
    }


def test_list_issues(client: Client) -> None:
    assert answer(client, "list_issues", limit=2) == {
        "summary": "2 issue(s) (more exist): PERF-CRITICAL-001 [OPEN, CRITICAL] duration"
        " regression in render/report (+400.0%); UNCA-MEDIUM-001 [OPEN, MEDIUM] AssertionError:"
        " orgs missing: expected ['ACME'] got [].",
        "issues": [
            {
                "code": "PERF-CRITICAL-001",
                "title": "duration regression in render/report (+400.0%)",
                "status": "OPEN",
                "priority": "CRITICAL",
                "category": "performance",
                "lifecycle": "new",
                "origin": "regression",
                "affected_tools": ["render"],
                "occurrences": 6,
                "flaky_occurrences": 0,
                "first_detected_run_id": 11,
                "last_seen_run_id": 12,
                "last_seen_at": "2025-10-01T20:00:00Z",
                "regressed_run_id": None,
                "resolved_run_id": None,
                "resolved_at": None,
                "created_at": "<now>",
                "updated_at": "<now>",
                "rule_name": None,
                "branch_name": None,
            },
            {
                "code": "UNCA-MEDIUM-001",
                "title": "AssertionError: orgs missing: expected ['ACME'] got []",
                "status": "OPEN",
                "priority": "MEDIUM",
                "category": "uncategorized",
                "lifecycle": "recurring",
                "origin": "detected",
                "affected_tools": ["extract"],
                "occurrences": 5,
                "flaky_occurrences": 0,
                "first_detected_run_id": 1,
                "last_seen_run_id": 12,
                "last_seen_at": "2025-10-01T20:00:00Z",
                "regressed_run_id": 11,
                "resolved_run_id": None,
                "resolved_at": None,
                "created_at": "<now>",
                "updated_at": "<now>",
                "rule_name": None,
                "branch_name": None,
            },
        ],
        "more": True,
        "truncated": {},
    }
    resolved = answer(client, "list_issues", status=["resolved"])
    assert resolved == {"summary": "No issues match.", "issues": [], "more": False, "truncated": {}}


def test_flaky_tests_with_evidence(client: Client) -> None:
    assert answer(client, "flaky_tests") == {
        "summary": "1 flaky test(s), most flaky first: search/web (score 1, 10 flip(s) in 11 runs, "
        "last failure UNCA-MEDIUM-002).",
        "flaky_total": 1,
        "flaky": [
            {
                "test_id": "search/web",
                "suite": "s",
                "score": 1.0,
                "reasons": [
                    "flipped 10 times in its last 11 runs",
                    "failed in 4 of its last 10 runs (weighted rate 40.1%), 3.9 separate times,"
                    " independence 1.00; 1 more with many other tests failing: confidence 0.87",
                ],
                "evidence_run_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                "runs_considered": 11,
                "flips": 10,
                "last_failure_run_id": 10,
                "last_failure_result_id": 47,
                "consecutive_passes": 1,
                "rules": ["flips", "score"],
                "confidence": 0.8701,
                "failure_rate": 0.4008,
                "episodes": 3.945,
                "independence": 1.0,
                "history_runs": 10,
                "history_failures": 4,
                "crowded_failures": 1,
                "last_failure_issue": "UNCA-MEDIUM-002",
            }
        ],
        "truncated": {},
    }


def test_regressions_with_change_points(client: Client) -> None:
    assert answer(client, "regressions", limit=1) == {
        "summary": "1 change point(s) over 8 series, those that still hold first: render/report "
        "duration 0.1 -> 0.5 (+400%) from run 7 (c05..c06) [PERF-CRITICAL-001].",
        "series_analyzed": 8,
        "changes_total": 1,
        "changes": [
            {
                "suite": "s",
                "branch": "main",
                "test_id": "render/report",
                "metric": "duration",
                "kind": "regression",
                "direction": "up",
                "before_mean": 0.1,
                "after_mean": 0.5,
                "magnitude_pct": 400.0,
                "first_run": {
                    "id": 7,
                    "key": "main-06",
                    "at": "2025-10-01T15:00:00Z",
                    "commit": "c06",
                },
                "last_good_run": {
                    "id": 6,
                    "key": "main-05",
                    "at": "2025-10-01T14:00:00Z",
                    "commit": "c05",
                },
                "commit_range": "c05..c06",
                "p_value": 0.0,
                "n_before": 6,
                "n_after": 6,
                "outlier_runs": [],
                "current": True,
                "issue_code": "PERF-CRITICAL-001",
            }
        ],
        "outliers": [
            {
                "suite": "s",
                "branch": "main",
                "test_id": "chat/basic",
                "metric": "tokens",
                "kind": "regression",
                "run": {"id": 12, "key": "main-11", "at": "2025-10-01T20:00:00Z", "commit": "c11"},
                "value": 3000.0,
                "median": 1000.0,
            }
        ],
        "truncated": {"outliers": 2},
    }


def test_cost_by_provider_model_and_tool(client: Client) -> None:
    assert answer(client, "cost", runs=2, limit=2) == {
        "summary": "The last 2 run(s) cost $0.0098 (10200 tokens) for 6 passing test(s), $0.0016 "
        "each; watcher -; by provider: glm $0.0048 (49%); moonshot $0.0040 (41%); openai "
        "$0.0010 (10%); by model: glm-4.5 $0.0040 (41%); kimi-k2 $0.0040 (41%); "
        "gpt-4o-mini $0.0010 (10%); and 1 more.",
        "total": {
            "runs": 2,
            "results": 10,
            "tests": 10,
            "passed": 6,
            "cost_usd": 0.0098,
            "tokens_total": 10200,
            "cost_per_passing_test": 0.001633,
            "watcher_cost_usd": None,
            "watcher_tokens": None,
            "total_cost_usd": 0.0098,
        },
        "budget_usd": None,
        "runs_over_budget": 0,
        "runs": [
            {
                "run_id": 12,
                "run_key": "main-11",
                "run_timestamp": "2025-10-01T20:00:00Z",
                "suite": "s",
                "branch": "main",
                "status": "finished",
                "results": 5,
                "tests": 5,
                "passed": 2,
                "cost_usd": 0.0059,
                "tokens_total": 6100,
                "cost_per_passing_test": 0.00295,
                "watcher_cost_usd": None,
                "watcher_tokens": None,
                "total_cost_usd": 0.0059,
                "over_budget": False,
            },
            {
                "run_id": 11,
                "run_key": "main-10",
                "run_timestamp": "2025-10-01T19:00:00Z",
                "suite": "s",
                "branch": "main",
                "status": "finished",
                "results": 5,
                "tests": 5,
                "passed": 4,
                "cost_usd": 0.0039,
                "tokens_total": 4100,
                "cost_per_passing_test": 0.000975,
                "watcher_cost_usd": None,
                "watcher_tokens": None,
                "total_cost_usd": 0.0039,
                "over_budget": False,
            },
        ],
        "by_provider": [
            {
                "name": "glm",
                "provider": None,
                "results": 4,
                "passed": 3,
                "cost_usd": 0.0048,
                "tokens_total": 5200,
                "cost_per_passing_test": 0.0016,
                "share": 0.4898,
            },
            {
                "name": "moonshot",
                "provider": None,
                "results": 2,
                "passed": 1,
                "cost_usd": 0.004,
                "tokens_total": 1000,
                "cost_per_passing_test": 0.004,
                "share": 0.4082,
            },
        ],
        "by_model": [
            {
                "name": "glm-4.5",
                "provider": "glm",
                "results": 2,
                "passed": 2,
                "cost_usd": 0.004,
                "tokens_total": 4000,
                "cost_per_passing_test": 0.002,
                "share": 0.4082,
            },
            {
                "name": "kimi-k2",
                "provider": "moonshot",
                "results": 2,
                "passed": 1,
                "cost_usd": 0.004,
                "tokens_total": 1000,
                "cost_per_passing_test": 0.004,
                "share": 0.4082,
            },
        ],
        "by_tool": [
            {
                "name": "chat",
                "provider": None,
                "results": 2,
                "passed": 2,
                "cost_usd": 0.004,
                "tokens_total": 4000,
                "cost_per_passing_test": 0.002,
                "share": 0.4082,
            },
            {
                "name": "search",
                "provider": None,
                "results": 2,
                "passed": 1,
                "cost_usd": 0.004,
                "tokens_total": 1000,
                "cost_per_passing_test": 0.004,
                "share": 0.4082,
            },
        ],
        "truncated": {"by_provider": 2, "by_model": 3, "by_tool": 3},
    }


def test_search_results_and_issues(client: Client) -> None:
    assert answer(client, "search", text="ACME", limit=1) == {
        "summary": "'ACME': 1 test(s) and 1 issue(s) match; tests: extract/entities (FAIL in run"
        " 12); issues: UNCA-MEDIUM-001 [OPEN] AssertionError: orgs missing: expected ['ACME']"
        " got [].",
        "text": "ACME",
        "tests_total": 1,
        "tests": [
            {
                "test_id": "extract/entities",
                "tool_name": "extract",
                "variation": "entities",
                "matched": "error",
                "matching_results": 5,
                "result_id": 58,
                "run_id": 12,
                "run_timestamp": "2025-10-01T20:00:00Z",
                "status": "FAIL",
                "error_type": "AssertionError",
                "error_message": "orgs missing: expected ['ACME'] got []",
            }
        ],
        "issues_total": 1,
        "issues": [
            {
                "code": "UNCA-MEDIUM-001",
                "title": "AssertionError: orgs missing: expected ['ACME'] got []",
                "status": "OPEN",
                "priority": "MEDIUM",
                "category": "uncategorized",
                "origin": "detected",
                "matched": "title",
                "last_seen_run_id": 12,
                "last_seen_at": "2025-10-01T20:00:00Z",
            }
        ],
        "truncated": {},
    }
    named = answer(client, "search", text="E", limit=1)
    assert named["summary"] == (
        "'E': 4 test(s) and 4 issue(s) match; tests: render/report (PASS in run 12); issues:"
        " PERF-CRITICAL-001 [OPEN] duration regression in render/report (+400.0%)."
    )
    assert (named["tests"][0]["matched"], named["issues"][0]["matched"]) == ("test", "code")
    assert named["truncated"] == {"tests": 3, "issues": 3}


def test_gate(client: Client) -> None:
    rules = {"max_new_failures": 0, "min_pass_rate": 30, "max_cost_increase": 10}
    assert answer(client, "gate", **rules) == {
        "summary": "Gate FAILED for run 12 against run 11: 1 of 3 check(s) passed; failed: "
        "max-new-failures: 1 new failure(s) (limit 0): weather/call; 1 flaky not counted; "
        "max-cost-increase: cost $ 0.0039 -> 0.0059 (+51.28%, limit +10%).",
        "passed": False,
        "run": RUN[12],
        "baseline": RUN[11],
        "checks": [
            {
                "rule": "max-new-failures",
                "passed": False,
                "applicable": True,
                "actual": 1,
                "limit": 0,
                "message": "1 new failure(s) (limit 0): weather/call; 1 flaky not counted",
            },
            {
                "rule": "min-pass-rate",
                "passed": True,
                "applicable": True,
                "actual": 40,
                "limit": 30.0,
                "message": "pass rate 40% (minimum 30%)",
            },
            {
                "rule": "max-cost-increase",
                "passed": False,
                "applicable": True,
                "actual": 51.28,
                "limit": 10.0,
                "message": "cost $ 0.0039 -> 0.0059 (+51.28%, limit +10%)",
            },
        ],
        "truncated": {},
    }
    lenient = answer(client, "gate", min_pass_rate=40)
    assert lenient["summary"] == "Gate passed for run 12: 1 of 1 check(s) passed."
    assert lenient["passed"] is True


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("run_summary", {"run": 999}, "no run with id or key 999"),
        ("run_summary", {"run": "nightly-1"}, "no run with key 'nightly-1'"),
        (
            "list_runs",
            {"status": "bogus"},
            "unknown run status 'bogus': use one of running, finished, aborted",
        ),
        (
            "compare_runs",
            {"baseline": 12, "baseline_branch": "dev"},
            "give either a baseline run or a baseline branch, not both",
        ),
        (
            "compare_runs",
            {"current": 13},
            "no earlier run of branch dev suite s to compare with (run 13)",
        ),
        ("test_history", {"test": "nope"}, "no test matches 'nope'"),
        (
            "test_history",
            {"test": "/"},
            "'/' matches 5 tests: chat/basic, extract/entities, render/report, search/web,"
            " weather/call; give the full test id",
        ),
        ("issue", {"code": "NOPE-001"}, "no issue 'NOPE-001'"),
        (
            "list_issues",
            {"status": ["closed"]},
            "unknown issue status 'closed': use one of OPEN, IN_PROGRESS, RESOLVED, WONT_FIX",
        ),
        (
            "list_issues",
            {"sort": "age"},
            "unknown sort 'age': use one of priority, last-seen, occurrences, code, created",
        ),
        (
            "regressions",
            {"metric": "speed"},
            "unknown metric 'speed': use one of duration, memory, cpu, tokens, cost, quality",
        ),
        (
            "search",
            {"text": "  "},
            "give some text to search for (a test name, an error, an issue code)",
        ),
        (
            "gate",
            {},
            "no gate rules configured: pass options such as --max-new-failures 0 or add them"
            " to pyproject.toml, e.g. [tool.testledger.gate] max-new-failures = 0,"
            " min-pass-rate = 95",
        ),
    ],
)
def test_bad_arguments_are_tool_errors_with_the_librarys_message(
    client: Client, tool: str, arguments: dict[str, Any], message: str
) -> None:
    assert client.error(tool, **arguments) == f"Error executing tool {tool}: {message}"


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("list_runs", {"limit": 0}, "limit"),
        ("list_runs", {"limit": 101}, "limit"),
        ("list_runs", {"since": "yesterday"}, "since"),
        ("test_history", {}, "test"),
        ("run_failures", {"limit": "many"}, "limit"),
    ],
)
def test_arguments_outside_the_schema_are_tool_errors(
    client: Client, tool: str, arguments: dict[str, Any], field: str
) -> None:
    message = client.error(tool, **arguments)
    assert message.startswith(
        f"Error executing tool {tool}: 1 validation error for {tool}Arguments\n{field}\n"
    )


def test_an_unknown_tool_is_a_tool_error(client: Client) -> None:
    assert client.error("drop_tables") == "Unknown tool: drop_tables"


def test_writes_are_refused_by_a_read_only_server(client: Client, history_url: str) -> None:
    assert client.error("update_issue", code="UNCA-MEDIUM-001", status="RESOLVED") == (
        f"Error executing tool update_issue: {READ_ONLY}"
    )
    assert client.error("record_observation", result_id=58, quality_score=3) == (
        f"Error executing tool record_observation: {READ_ONLY}"
    )
    with api.Ledger(history_url) as ledger:
        assert api.issue_detail(ledger, "UNCA-MEDIUM-001").issue.status == "OPEN"
        assert api.show_run(ledger, 12).run.avg_watcher_quality == 5


def test_the_latest_run_and_the_issues_board_are_resources(client: Client) -> None:
    listed = client.run(client.session.list_resources()).resources
    assert [(str(r.uri), r.name, r.mime_type) for r in listed] == [
        ("testledger://runs/latest", "latest-run", "application/json"),
        ("testledger://issues", "issues-board", "application/json"),
    ]
    latest = client.run(client.session.read_resource("testledger://runs/latest"))
    assert steady(json.loads(latest.contents[0].text)) == answer(client, "run_summary")
    board = client.run(client.session.read_resource("testledger://issues"))
    issues = json.loads(board.contents[0].text)
    assert [i["code"] for i in issues["issues"]] == [
        "PERF-CRITICAL-001",
        "UNCA-MEDIUM-001",
        "UNCA-MEDIUM-002",
        "UNCA-MEDIUM-003",
    ]


def test_the_triage_prompt_names_the_latest_run(client: Client) -> None:
    prompts = client.run(client.session.list_prompts()).prompts
    assert [(p.name, p.title) for p in prompts] == [("triage_latest_run", "Triage the latest run")]
    got = client.run(client.session.get_prompt("triage_latest_run"))
    [message] = got.messages
    assert message.role == "user"
    assert message.content.text.startswith(
        "Triage the latest test run recorded in testledger. The latest run is run 12 (main-11,"
        " suite s, branch main): 3 of 5 tests failed.\n1. Call compare_runs"
    )
