"""Issue detection and lifecycle over scripted multi-run histories, SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.detect import DetectConfig, detect_run
from testledger.analyze.issues.lifecycle import IssueStatus, set_status
from testledger.analyze.issues.rules import load_rules
from testledger.cli import main
from testledger.report.issues import issue_detail, list_issues
from tests.histories import record_test, scripted_run

START = datetime(2025, 10, 1, 9, 0, tzinfo=timezone.utc)
TIMEOUT = (
    "Traceback (most recent call last):\n"
    '  File "/work/suite/tools/consensus.py", line 88, in run_consensus\n'
    "    answer = client.ask(prompt, timeout=30)\n"
    '  File "/work/suite/providers/kimi.py", line 41, in ask\n'
    "    raise TimeoutError(f'kimi timed out after {elapsed}s')\n"
    "TimeoutError: kimi timed out after 31.2s"
)


class History:
    """Records runs one after another, an hour apart, detection running at each finish."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.count = 0

    def run(
        self, outcomes: dict[str, str], *, branch: str = "main", commit: str | None = None
    ) -> int:
        index = self.count
        self.count += 1
        with scripted_run(
            self.ledger,
            index,
            start=START,
            branch=branch,
            commit=commit or f"c{self.count}",
            suite="validation",
        ) as run:
            for test_id, outcome in outcomes.items():
                for attempt_outcome in outcome.split(","):  # "FAIL,PASS": a retry
                    record_test(
                        run,
                        test_id,
                        attempt_outcome,
                        error_type="TimeoutError",
                        error_message=f"kimi timed out after {30 + self.count}.2s",
                        traceback=TIMEOUT if attempt_outcome == "FAIL" else None,
                    )
        assert run.run_id is not None
        return run.run_id


def issue_rows(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.engine().connect() as conn:
        return [
            {
                "code": i.code,
                "status": i.status,
                "lifecycle": i.lifecycle,
                "occurrences": i.occurrences,
                "flaky": i.flaky_occurrences,
                "regressed_run_id": i.regressed_run_id,
                "resolved_run_id": i.resolved_run_id,
            }
            for i in list_issues(conn)
        ]


def the_issue(ledger: Ledger) -> dict[str, Any]:
    [issue] = issue_rows(ledger)
    return issue


def test_new_then_recurring_then_auto_resolved_then_regressed(ledger: Ledger) -> None:
    history = History(ledger)
    first = history.run({"consensus/basic_kimi": "FAIL", "chat/basic": "PASS"})
    issue = the_issue(ledger)
    assert issue["code"] == "UNCA-MEDIUM-001"
    assert (issue["status"], issue["lifecycle"], issue["occurrences"]) == ("OPEN", "new", 1)

    history.run({"consensus/basic_kimi": "FAIL", "chat/basic": "PASS"})
    assert the_issue(ledger)["lifecycle"] == "recurring"  # same fingerprint despite 32.2s
    assert the_issue(ledger)["occurrences"] == 2

    passing = [
        history.run({"consensus/basic_kimi": "PASS", "chat/basic": "PASS"}) for _ in range(3)
    ]
    issue = the_issue(ledger)
    assert issue["status"] == "RESOLVED" and issue["resolved_run_id"] == passing[-1]

    regressing = history.run({"consensus/basic_kimi": "FAIL", "chat/basic": "PASS"})
    issue = the_issue(ledger)
    assert (issue["status"], issue["lifecycle"]) == ("OPEN", "regressed")
    assert issue["regressed_run_id"] == regressing and issue["resolved_run_id"] is None

    with ledger.engine().connect() as conn:
        detail = issue_detail(conn, "UNCA-MEDIUM-001")
    kinds = [(e.kind, e.run_id) for e in detail.events]
    assert kinds == [("created", first), ("auto_resolved", passing[-1]), ("regressed", regressing)]
    assert "passed in 3 consecutive runs" in (detail.events[1].note or "")


def test_two_passing_runs_do_not_resolve_and_other_branches_do_not_count(ledger: Ledger) -> None:
    history = History(ledger)
    history.run({"consensus/basic_kimi": "FAIL"})
    history.run({"consensus/basic_kimi": "PASS"})
    history.run({"consensus/basic_kimi": "PASS"})
    history.run({"consensus/basic_kimi": "PASS"}, branch="feature")
    assert the_issue(ledger)["status"] == "OPEN"
    history.run({"consensus/basic_kimi": "PASS"})
    assert the_issue(ledger)["status"] == "RESOLVED"


def test_a_run_where_the_tests_did_not_run_breaks_the_streak(ledger: Ledger) -> None:
    history = History(ledger)
    history.run({"consensus/basic_kimi": "FAIL", "chat/basic": "PASS"})
    history.run({"consensus/basic_kimi": "PASS", "chat/basic": "PASS"})
    history.run({"chat/basic": "PASS"})  # the issue's test did not run
    history.run({"consensus/basic_kimi": "PASS", "chat/basic": "PASS"})
    assert the_issue(ledger)["status"] == "OPEN"


def test_resolved_by_hand_then_seen_again_regresses_and_wont_fix_stays_closed(
    ledger: Ledger,
) -> None:
    history = History(ledger)
    history.run({"consensus/basic_kimi": "FAIL"})
    with ledger.engine().begin() as conn:
        set_status(conn, "UNCA-MEDIUM-001", IssueStatus.RESOLVED, note="fixed the timeout")
    assert the_issue(ledger)["status"] == "RESOLVED"
    again = history.run({"consensus/basic_kimi": "FAIL"})
    issue = the_issue(ledger)
    assert (issue["status"], issue["lifecycle"], issue["regressed_run_id"]) == (
        "OPEN",
        "regressed",
        again,
    )
    with ledger.engine().begin() as conn:
        set_status(conn, "UNCA-MEDIUM-001", IssueStatus.WONT_FIX, note="provider limit")
    history.run({"consensus/basic_kimi": "FAIL"})
    issue = the_issue(ledger)
    assert issue["status"] == "WONT_FIX" and issue["occurrences"] == 3


def test_redetection_changes_nothing(ledger: Ledger) -> None:
    history = History(ledger)
    run_ids = [
        history.run({"consensus/basic_kimi": "FAIL"}),
        history.run({"consensus/basic_kimi": "PASS"}),
    ]

    def snapshot() -> list[tuple[Any, ...]]:
        with ledger.engine().connect() as conn:
            return [
                tuple(row)
                for table in ("issues", "issue_occurrences", "issue_events", "issue_fingerprints")
                for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))
            ]

    before = snapshot()
    rules = load_rules(None)
    for run_id in run_ids * 2:
        with ledger.engine().begin() as conn:
            report = detect_run(conn, run_id, rules=rules, config=DetectConfig())
        assert report.occurrences_added == 0 and not report.new
    assert snapshot() == before


def test_a_retry_that_passes_marks_the_occurrence_flaky(ledger: Ledger) -> None:
    History(ledger).run({"consensus/basic_kimi": "FAIL,PASS"})
    issue = the_issue(ledger)
    assert (issue["occurrences"], issue["flaky"]) == (1, 1)


def test_rules_decide_issue_codes_and_categories(ledger: Ledger, tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        '[[rule]]\nname = "kimi-timeout"\ntitle = "Kimi times out"\ncategory = "production"\n'
        'priority = "HIGH"\ncode = "{phase}-{priority}-{seq:03d}"\nphase = "PHASE2"\n'
        '[rule.match]\nmessage = "timed out after"\n'
    )
    with ledger.start_run(branch="main", detect_environment=False) as run:
        run.record(
            tool_name="a", variation="x", status="FAIL", error_message="kimi timed out after 3s"
        )
        run.record(
            tool_name="b", variation="y", status="FAIL", error_message="glm timed out after 9s"
        )
        run.record(tool_name="c", variation="z", status="ERROR", error_message="KeyError: 'k'")
    assert run.run_id is not None
    rules = load_rules(rules_file)
    with ledger.engine().begin() as conn:
        detect_run(conn, run.run_id, rules=rules, config=DetectConfig())
    with ledger.engine().connect() as conn:
        found = {i.code: i for i in list_issues(conn)}
    rule_issue = found["PHASE2-HIGH-001"]
    assert (rule_issue.title, rule_issue.category, rule_issue.priority) == (
        "Kimi times out",
        "production",
        "HIGH",
    )
    assert rule_issue.occurrences == 2 and rule_issue.affected_tools == ["a", "b"]


def test_backfill_updates_rather_than_duplicates_and_keeps_local_edits(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checklist = tmp_path / "ISSUES_CHECKLIST.md"
    checklist.write_text(
        "# Production System Issues\n\n"
        "### [HIGH] Kimi consensus times out\n\n"
        "**Affected Tools:** consensus, chat\n\n"
        "**Problem:** Consensus calls to Kimi time out after 30 s.\n\n"
        "- **Status:** Open\n"
    )
    args = ["--db", db_url, "backfill", str(checklist), "--json"]
    assert main(args) == 0
    import json

    first = json.loads(capsys.readouterr().out)
    [code] = first["created"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["unchanged"] == [code]
    # A person edits it in testledger; the markdown changes too.
    assert main(["--db", db_url, "issue", code, "--root-cause", "provider latency"]) == 0
    capsys.readouterr()
    checklist.write_text(checklist.read_text().replace("after 30 s", "after 45 s"))
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["kept_local_edits"] == [code]
    assert main([*args, "--force"]) == 0
    assert json.loads(capsys.readouterr().out)["updated"] == [code]
    assert main(["--db", db_url, "issues", "--json"]) == 0
    [issue] = json.loads(capsys.readouterr().out)
    assert issue["origin"] == "backfill" and issue["affected_tools"] == ["chat", "consensus"]


def test_issue_cli_moves_status_with_notes_and_explains(
    ledger: Ledger, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    History(ledger).run({"consensus/basic_kimi": "FAIL"})
    code = "UNCA-MEDIUM-001"
    assert main(["--db", db_url, "issue", code, "--status", "in-progress", "--note", "on it"]) == 0
    out = capsys.readouterr().out
    assert "IN_PROGRESS" in out and "status OPEN->IN_PROGRESS" in out and "on it" in out
    assert main(["--db", db_url, "issues", "--status", "IN_PROGRESS", "--json"]) == 0
    import json

    assert [i["code"] for i in json.loads(capsys.readouterr().out)] == [code]
    assert main(["--db", db_url, "issue", code, "--status", "CLOSED"]) == 1
    assert "unknown issue status 'CLOSED'" in capsys.readouterr().err
    assert main(["--db", db_url, "issue", "NOPE-1"]) == 1
    assert "no issue 'NOPE-1'" in capsys.readouterr().err
    with ledger.engine().connect() as conn:
        result_id = conn.execute(sa.text("SELECT id FROM test_results")).scalar_one()
    assert main(["--db", db_url, "explain", str(result_id), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fingerprint"] == data["stored_fingerprint"]
    names = [c["name"] for c in data["components"]]
    assert names[:2] == ["exception_type", "message"] and "raised_in" in names


def test_issues_and_flaky_tests_of_the_shared_samples(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    reports = shared_dir / "fixtures" / "reports"
    main(["--db", db_url, "import", str(reports)])  # two broken samples: exit code 1
    capsys.readouterr()
    assert main(["--db", db_url, "issues", "--json"]) == 0
    found = Counter(
        (i["title"], i["occurrences"], i["flaky_occurrences"])
        for i in json.loads(capsys.readouterr().out)
    )
    assert found == Counter(
        [
            ("java.lang.AssertionError", 3, 3),  # Surefire test1: three failures, then it passed
            ("java.lang.AssertionError", 6, 0),  # Surefire test3: failed and failed on every rerun
            ("● Test suite failed to run", 2, 0),
            ("Failed", 13, 0),
            # assert False in four places: the body of two tests, a fixture's setup, its teardown
            # (version 2 groups by where a failure was raised)
            ("assert False", 1, 0),
            ("AssertionError: assert False", 1, 0),
            ("AssertionError: assert False", 1, 0),
            ("AssertionError: assert False", 1, 0),
            ("Exception: error", 1, 0),
            ("Connection timeout", 2, 2),
            ("AssertionError: 143 != 0", 1, 0),
            ("TypeError: unsupported operand type(s) for -: 'int' and 'NoneType'", 1, 0),
            ("AssertionError: assert 2 == 1", 1, 0),
        ]
    )
    assert main(["--db", db_url, "flaky", "--json"]) == 0
    flaky = {f["test_id"]: f for f in json.loads(capsys.readouterr().out)}
    assert set(flaky) == {"flaky test", "surefire3.FlakyTest::test1"}
    assert flaky["surefire3.FlakyTest::test1"]["reasons"][0].startswith(
        "failed then passed on retry"
    )
    assert flaky["flaky test"]["last_failure_issue"] is not None


def test_a_backfilled_issue_linked_to_a_fingerprint_collects_later_failures(
    ledger: Ledger, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    checklist = tmp_path / "ISSUES_CHECKLIST.md"
    checklist.write_text(
        "# Production System Issues\n\n### [HIGH] Kimi consensus times out\n\n"
        "**Problem:** Consensus calls to Kimi time out.\n\n- **Status:** Open\n"
    )
    assert main(["--db", db_url, "backfill", str(checklist), "--json"]) == 0
    [code] = json.loads(capsys.readouterr().out)["created"]
    history = History(ledger)
    history.run({"consensus/basic_kimi": "FAIL"})  # detected on its own first
    with ledger.engine().connect() as conn:
        result_id = conn.execute(sa.text("SELECT id FROM test_results")).scalar_one()
    assert main(["--db", db_url, "explain", str(result_id), "--json"]) == 0
    print_ = json.loads(capsys.readouterr().out)
    link = f"{print_['fingerprint']}:{print_['version']}"
    assert main(["--db", db_url, "issue", code, "--link-fingerprint", link]) == 0
    out = capsys.readouterr().out
    assert f"fingerprint: {print_['fingerprint']} (v2)" in out
    history.run({"consensus/basic_kimi": "FAIL"})
    with ledger.engine().connect() as conn:
        counts = {i.code: i.occurrences for i in list_issues(conn)}
    assert counts[code] == 1  # the later failure attached to the backfilled issue
    assert counts["UNCA-MEDIUM-001"] == 1  # the first one stays where it was detected

    # Linking a rule works the same way for failures a rule matches.
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        '[[rule]]\nname = "kimi-timeout"\npriority = "HIGH"\ncategory = "production"\n'
        '[rule.match]\nmessage = "timed out"\n'
    )
    assert main(["--db", db_url, "issue", code, "--link-rule", "kimi-timeout"]) == 0
    capsys.readouterr()
    with ledger.start_run(branch="main", detect_environment=False, detect_issues=False) as run:
        run.record(tool_name="chat", variation="basic", status="FAIL", error_message="timed out")
    assert main(["--db", db_url, "detect", str(run.run_id), "--rules", str(rules_file)]) == 0
    with ledger.engine().connect() as conn:
        counts = {i.code: i.occurrences for i in list_issues(conn)}
    assert counts[code] == 2  # another failure, matched by the rule now linked to the issue
    assert len(counts) == 2
