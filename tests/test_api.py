"""The library API: the README's example runs as written, every command has its call, and each
result turns into JSON-ready data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testledger import api
from testledger.cli.registry import COMMANDS
from testledger.errors import NotFound

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_block(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", text, re.DOTALL)
    assert match, f"README has no block after <!-- {marker} -->"
    return match.group(1)


def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_readme_block("api-example"), encoding="utf-8")
    env = {**os.environ, "TESTLEDGER_RESULTS_DIR": str(tmp_path / "results")}
    env.pop("TESTLEDGER_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"run \d+: 1 failed of 2", lines[0])
    assert re.fullmatch(r"\S+-\d{3} TimeoutError: no answer after 30 s", lines[1])
    assert lines[2] == "50.0"


# What each command calls; a command added without a library call fails here.
COMMAND_CALLS = {
    "runs": "list_runs",
    "show": "show_run",
    "sync": "sync",
    "import": "import_paths",
    "detect": "detect",
    "issues": "list_issues",
    "issue": "update_issue",
    "explain": "explain_result",
    "backfill": "backfill",
    "flaky": "find_flaky",
    "regressions": "find_regressions",
    "watch": "watch",
    "compare": "compare",
    "gate": "gate",
    "summary": "summary",
    "trend": "trend",
    "history": "history",
    "cost": "cost",
    "query": "query",
    "export": "export",
    "report": "html_report",
    "demo": "run_demo",
    "db": "upgrade_schema",
    "prune": "prune",
    "token": "create_token",
    # The MCP server (testledger.mcp) serves the whole API over a Ledger: each of its tools is
    # a call of its own (tests/mcp).
    "mcp": "Ledger",
    # So does the web app (testledger.web; tests/web): each page and endpoint a call of its own.
    "serve": "Ledger",
}


def test_every_command_has_a_library_call() -> None:
    assert set(COMMANDS) == set(COMMAND_CALLS)
    for call in COMMAND_CALLS.values():
        assert callable(getattr(api, call)), call
    assert len(set(api.__all__)) == len(api.__all__)
    for name in api.__all__:
        getattr(api, name)


def test_results_are_json_ready(ledger: api.Ledger) -> None:
    with ledger.start_run(branch="main", commit="c1") as run:
        run.record(tool_name="t", variation="v", status="FAIL", error_message="boom <b>")
    detail = api.show_run(ledger)
    data = detail.as_json()
    assert json.loads(json.dumps(data)) == data
    assert data["run"]["branch"] == "main"
    issues = api.list_issues(ledger)
    assert [issue.as_json()["occurrences"] for issue in issues] == [1]
    changed = api.update_issue(ledger, issues[0].code, api.IssueChange(status="in progress"))
    assert changed.issue.status == "IN_PROGRESS"
    with pytest.raises(NotFound):
        api.issue_detail(ledger, "NOPE-000")
