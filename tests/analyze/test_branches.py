"""Branch-aware issues, on SQLite and PostgreSQL: a failure seen only on another branch than
the default one is that branch's issue and does not open, reopen or resolve the default
branch's; an issue knows the branches it was seen on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.detect import DetectConfig, default_branch, detect_run
from testledger.analyze.issues.rules import load_rules
from testledger.analyze.options import detection_settings
from testledger.cli import main
from testledger.config import load_settings
from testledger.errors import ConfigError
from testledger.report.issues import issue_detail, list_issues
from tests.histories import record_test, scripted_run

TIMEOUT = (
    "Traceback (most recent call last):\n"
    '  File "/work/suite/src/suite/providers/kimi.py", line 41, in ask\n'
    "    raise TimeoutError('kimi timed out')\n"
    "TimeoutError: kimi timed out after 31.2s"
)
KEYERROR = (
    "Traceback (most recent call last):\n"
    '  File "/work/suite/src/suite/tools/parse.py", line 12, in parse_call\n'
    "    return call['arguments']\n"
    "KeyError: 'arguments'"
)


class History:
    """Runs an hour apart on chosen branches, detection at each finish."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.count = 0

    def run(self, outcomes: dict[str, str], branch: str = "main") -> int:
        index = self.count
        self.count += 1
        with scripted_run(self.ledger, index, branch=branch, commit=f"c{index}") as run:
            for test_id, outcome in outcomes.items():
                kind, traceback = (
                    ("KeyError", KEYERROR)
                    if test_id.startswith("parse")
                    else ("TimeoutError", TIMEOUT)
                )
                record_test(
                    run,
                    test_id,
                    outcome,
                    error_type=kind,
                    error_message=traceback.rsplit(": ", 1)[1],
                    traceback=traceback if outcome == "FAIL" else None,
                )
        assert run.run_id is not None
        return run.run_id


def _issues(ledger: Ledger, **where: Any) -> dict[str, Any]:
    with ledger.engine().connect() as conn:
        return {i.title.split(":")[0]: i for i in list_issues(conn, **where)}


def test_a_failure_only_on_a_pr_branch_is_that_branch_s_issue(ledger: Ledger) -> None:
    history = History(ledger)
    history.run({"kimi/ask": "FAIL", "parse/call": "PASS"})
    history.run({"kimi/ask": "FAIL", "parse/call": "FAIL"}, branch="pr/7-parser")
    found = _issues(ledger)
    assert (found["TimeoutError"].branch_name, found["KeyError"].branch_name) == (
        None,
        "pr/7-parser",
    )
    with ledger.engine().connect() as conn:
        detail = issue_detail(conn, found["TimeoutError"].code)
        assert detail.branches == {"main": 1, "pr/7-parser": 1}
        assert issue_detail(conn, found["KeyError"].code).branches == {"pr/7-parser": 1}
    assert set(_issues(ledger, branch="main")) == {"TimeoutError"}
    assert set(_issues(ledger, branch="pr/7-parser")) == {"TimeoutError", "KeyError"}
    assert _issues(ledger, branch="nope") == {}


def test_a_pr_branch_does_not_reopen_or_resolve_the_default_branch_s_issue(
    ledger: Ledger,
) -> None:
    history = History(ledger)
    history.run({"kimi/ask": "FAIL"})
    for _ in range(3):
        history.run({"kimi/ask": "PASS"})
    code = _issues(ledger)["TimeoutError"].code
    assert _issues(ledger)["TimeoutError"].status == "RESOLVED"
    stale = history.run({"kimi/ask": "FAIL"}, branch="pr/3-old")  # a branch from before the fix
    issue = _issues(ledger)["TimeoutError"]
    assert (issue.status, issue.lifecycle, issue.branch_name) == ("RESOLVED", "new", None)
    with ledger.engine().connect() as conn:
        detail = issue_detail(conn, code)
    assert detail.occurrences[0].run_id == stale  # recorded all the same
    assert [e.kind for e in detail.events] == ["created", "auto_resolved"]

    # An OPEN default-branch issue is not resolved by a PR branch's passing runs.
    history.run({"kimi/ask": "FAIL"})
    assert _issues(ledger)["TimeoutError"].status == "OPEN"
    for _ in range(3):
        history.run({"kimi/ask": "PASS"}, branch="pr/4-new")
    assert _issues(ledger)["TimeoutError"].status == "OPEN"


def test_a_branch_s_issue_moves_with_its_branch_then_joins_the_default_branch(
    ledger: Ledger,
) -> None:
    history = History(ledger)
    history.run({"parse/call": "PASS"})  # the ledger's default branch is main: it has runs
    history.run({"parse/call": "FAIL"}, branch="pr/9")
    for _ in range(3):
        history.run({"parse/call": "PASS"})  # main's passing runs say nothing of pr/9's issue
    issue = _issues(ledger)["KeyError"]
    assert (issue.status, issue.branch_name) == ("OPEN", "pr/9")
    for _ in range(3):
        history.run({"parse/call": "PASS"}, branch="pr/9")
    assert _issues(ledger)["KeyError"].status == "RESOLVED"
    merged = history.run({"parse/call": "FAIL"})  # merged with the bug: now main's
    issue = _issues(ledger)["KeyError"]
    assert (issue.status, issue.lifecycle, issue.branch_name) == ("OPEN", "regressed", None)
    assert issue.regressed_run_id == merged
    with ledger.engine().connect() as conn:
        detail = issue_detail(conn, issue.code)
    assert detail.branches == {"main": 1, "pr/9": 1}
    assert [e.kind for e in detail.events][-2:] == ["branch", "regressed"]


def test_the_default_branch_comes_from_the_settings_else_main_else_master(
    ledger: Ledger,
) -> None:
    history = History(ledger)
    history.run({"kimi/ask": "FAIL"}, branch="trunk")
    with ledger.engine().connect() as conn:
        assert default_branch(conn, None) is None
        assert default_branch(conn, "trunk") == "trunk"
    # No main, no master, nothing configured: no default branch, every branch counts as it.
    assert _issues(ledger)["TimeoutError"].branch_name is None
    history.run({"parse/call": "FAIL"}, branch="master")
    history.run({"kimi/ask": "FAIL"}, branch="feature")
    with ledger.engine().connect() as conn:
        assert default_branch(conn, None) == "master"
    assert _issues(ledger)["KeyError"].branch_name is None
    # Configured: a run on "trunk" detected again with trunk as the default.
    with scripted_run(ledger, 10, branch="develop", detect_issues=False) as run:
        record_test(run, "disk/full", "FAIL", error_type="OSError", error_message="no space")
    config = DetectConfig(default_branch="trunk")
    with ledger.engine().begin() as conn:
        detect_run(conn, run.run_id or 0, rules=load_rules(None), config=config)
    assert _issues(ledger)["OSError"].branch_name == "develop"


def test_cli_lists_branch_and_filters_by_it(
    ledger: Ledger, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    history = History(ledger)
    history.run({"kimi/ask": "FAIL"})
    history.run({"parse/call": "FAIL"}, branch="pr/5")
    capsys.readouterr()
    assert main(["--db", db_url, "issues", "--branch", "pr/5", "--json"]) == 0
    [only] = json.loads(capsys.readouterr().out)
    assert (only["title"].split(":")[0], only["branch_name"]) == ("KeyError", "pr/5")
    assert main(["--db", db_url, "issues"]) == 0
    out = capsys.readouterr().out
    assert "branch" in out and "pr/5" in out
    assert main(["--db", db_url, "issue", only["code"]]) == 0
    out = capsys.readouterr().out
    assert "branch: pr/5" in out and "seen on: pr/5 (1)" in out


def test_branch_name_is_stored_on_the_issue_row(ledger: Ledger) -> None:
    history = History(ledger)
    history.run({"parse/call": "PASS"})
    history.run({"parse/call": "FAIL"}, branch="pr/1")
    with ledger.engine().connect() as conn:
        assert conn.execute(sa.text("SELECT branch_name FROM issues")).scalar_one() == "pr/1"


@pytest.mark.parametrize(("value", "expected"), [("trunk", "trunk"), (None, None), (3, "error")])
def test_default_branch_setting_is_read_and_checked(
    tmp_path: Path, value: object, expected: str | None
) -> None:
    line = "" if value is None else f"default_branch = {json.dumps(value)}\n"
    (tmp_path / "pyproject.toml").write_text(f"[tool.testledger]\n{line}")
    settings = load_settings("sqlite://", tmp_path / "results", start=tmp_path, environ={})
    if expected == "error":
        with pytest.raises(ConfigError, match="default_branch must be a non-empty string"):
            detection_settings(settings)
    else:
        assert detection_settings(settings)[1].default_branch == expected
