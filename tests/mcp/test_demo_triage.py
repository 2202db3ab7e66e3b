"""The issue's acceptance: an MCP client connected to ``testledger mcp`` on the demo ledger
answers "what broke since the last run, why, and what did it cost" from tool calls alone.

The demo (``testledger demo``: its suite really run twelve times, commit after commit) breaks
``test_weather_tool_call`` in its last run. The calls below are the ones an agent makes, in the
order the server's instructions and its triage prompt give; each answer is checked for what it
must tell, and the figures against the library's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testledger import api
from tests.mcp.conftest import Client, stdio_session

WEATHER = "tests/demo_assistant.py::test_weather_tool_call"


@pytest.fixture(scope="module")
def demo(sqlite_demo: tuple[Path, int, str]) -> Path:
    """The demo's folder, its ledger (``ledger.db``) recorded by ``testledger demo``."""
    folder, code, output = sqlite_demo
    assert code == 0, output
    return folder


@pytest.fixture(scope="module")
def client(demo: Path) -> Iterator[Client]:
    with stdio_session(f"sqlite:///{demo / 'ledger.db'}", demo) as opened:
        yield opened


@pytest.mark.slow
def test_what_broke_since_the_last_run_why_and_what_it_cost(client: Client, demo: Path) -> None:
    # What broke since the last run: the comparison of the latest run with the previous one.
    compared = client.answer("compare_runs")
    assert (compared["current"]["id"], compared["baseline"]["id"]) == (12, 11)
    new = {change["test_id"]: change for change in compared["new_failures"]}
    weather = new[WEATHER]
    assert (weather["status_before"], weather["status_after"]) == ("PASS", "FAIL")
    assert (weather["error_type"], weather["error_message"]) == ("KeyError", "'arguments'")
    assert (weather["provider"], weather["model"]) == ("glm", "glm-4.5")
    code = weather["issue_code"]
    assert code is not None
    assert compared["summary"].startswith("Run 12 vs run 11 (suite demo, branch main): ")
    assert f"{WEATHER} ({code})" in compared["summary"]

    # Why: its issue's representative failure, the issue itself, and the test's history.
    failures = client.answer("run_failures")
    [group] = [g for g in failures["groups"] if g["issue_code"] == code]
    assert (group["tests"], group["failures"]) == ([WEATHER], 1)
    representative = group["representative"]
    assert (representative["error_type"], representative["error_message"]) == (
        "KeyError",
        "'arguments'",
    )
    assert "KeyError" in representative["traceback"]
    issue = client.answer("issue", code=code)
    assert (issue["issue"]["status"], issue["issue"]["lifecycle"]) == ("OPEN", "new")
    assert issue["issue"]["first_detected_run_id"] == 12
    assert issue["affected_tests"] == [{"test_id": WEATHER, "occurrences": 1}]
    explained = issue["fingerprint_explanation"]
    assert explained["result_id"] == representative["result_id"]
    assert explained["components"][0] == {
        "name": "exception_type",
        "raw": "KeyError",
        "normalized": "KeyError",
        "rules": [],
        "contributes": True,
    }
    history = client.answer("test_history", test="test_weather_tool_call")
    assert history["test_id"] == WEATHER
    assert [o["status"] for o in history["outcomes"]] == ["FAIL"] + ["PASS"] * 11
    assert [i["code"] for i in history["open_issues"]] == [code]

    # What it cost: the latest run against the previous one, and by provider and model.
    cost = client.answer("cost", runs=2)
    with api.Ledger(f"sqlite:///{demo / 'ledger.db'}") as ledger:
        expected = api.cost(ledger, runs=2).as_json()
        latest = api.show_run(ledger).run
    assert cost["total"] == expected["total"]
    assert cost["by_provider"] == expected["by_provider"]
    assert cost["by_model"] == expected["by_model"]
    assert [r["run_id"] for r in cost["runs"]] == [12, 11]
    # A run keeps its total to 4 decimals; the cost report adds up its results' costs.
    assert round(cost["runs"][0]["cost_usd"], 4) == latest.total_cost_usd
    assert latest.total_cost_usd == compared["current"]["total_cost_usd"]
    spent = expected["total"]["cost_usd"]
    assert cost["summary"].startswith(
        f"The last 2 run(s) cost ${spent:.4f} ({expected['total']['tokens_total']} tokens)"
    )
    assert {g["name"] for g in cost["by_provider"]} == {"glm", "moonshot", "openai", None}
