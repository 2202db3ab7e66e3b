"""The LLM watcher and an agent see a test through the same library calls: the open issues and
the recorded change points in the watcher's prompt are those the MCP test-history tool answers
(``api.test_context``), and ``testledger mcp`` without the SDK says how to install it."""

from __future__ import annotations

import sys

import pytest

from testledger import api
from testledger.analyze.watcher.history import load_histories
from testledger.analyze.watcher.llm import build_prompt
from testledger.cli import main
from testledger.mcp import INSTALL_HINT


@pytest.mark.parametrize("test_id", ["render/report", "extract/entities", "chat/basic"])
def test_the_watcher_sees_what_an_agent_sees(history_url: str, test_id: str) -> None:
    with api.Ledger(history_url) as ledger:
        with ledger.engine().connect() as connection:
            watched = load_histories(connection, 12)[test_id]
        agent = api.test_context(ledger, test_id)
    assert (watched.open_issues, watched.changes) == (agent.open_issues, agent.changes)
    # The watcher judges run 12's result against the runs before it; the agent sees run 12 too.
    assert agent.points[1:] == watched.points
    assert agent.points[0].run_id == agent.latest_run_id == 12


def test_the_watchers_prompt_tells_open_issues_and_change_points(history_url: str) -> None:
    with api.Ledger(history_url) as ledger:
        with ledger.engine().connect() as connection:
            histories = load_histories(connection, 12)
    [render] = [r for r in _results(history_url) if r.test_id == "render/report"]
    prompt, _ = build_prompt(render, histories["render/report"], 8_000)
    assert (
        "Open issues of this test:\n"
        "- PERF-CRITICAL-001 [OPEN, CRITICAL, performance] duration regression in render/report"
        " (+400.0%) (6 occurrence(s) of this test, last seen in run 12)\n"
        "Change points recorded for this test's metrics (newest first):\n"
        "- duration 0.1 -> 0.5 (+400%) from run 7 (c05..c06), issue PERF-CRITICAL-001 OPEN"
    ) in prompt
    [extract] = [r for r in _results(history_url) if r.test_id == "extract/entities"]
    prompt, _ = build_prompt(extract, histories["extract/entities"], 8_000)
    assert prompt.endswith(
        "Open issues of this test:\n- UNCA-MEDIUM-001 [OPEN, MEDIUM, uncategorized]"
        " AssertionError: orgs missing: expected ['ACME'] got [] (5 occurrence(s) of this test,"
        " last seen in run 12)"
    )
    assert "Change points" not in prompt


def _results(url: str) -> list[object]:
    from testledger.analyze.watcher.history import load_results

    with api.Ledger(url) as ledger:
        with ledger.engine().connect() as connection:
            return list(load_results(connection, 12))


def test_without_the_sdk_the_command_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mcp.server.mcpserver", None)
    assert main(["--db", "sqlite:///never-opened.db", "mcp"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"error: {INSTALL_HINT}\n")
    assert INSTALL_HINT == 'the MCP server needs the mcp extra: pip install "testledger[mcp]"'
