"""Tests of the issue-backfill parser (``testledger.ingest.tool_validation.checklist``).

``tests/data/exai/docs`` holds small hand-made files in the three real shapes (bracketed
checklist, ``ISSUE-`` coded checklist, phase-fixes report), with the real files' quirks: code
fences holding ``#`` lines, lower-case priorities, an entry under the wrong priority heading,
prose headings among entries. The real files in ``shared/fixtures/exai`` are read in place.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from testledger.ingest.base import ImportFormatError
from testledger.ingest.tool_validation.checklist import (
    BackfilledIssue,
    _affected_tools,
    classify_status,
    issue_code_for,
    merge_backfill,
    normalise_title,
    parse_checklist,
)

DOCS = Path(__file__).resolve().parents[1] / "data" / "exai" / "docs"
CHECKLIST = DOCS / "ISSUES_CHECKLIST.md"
CHECKLIST_2 = DOCS / "ISSUES_CHECKLIST_2.md"
PHASE_3 = DOCS / "PHASE_3_FIXES_COMPLETE.md"
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "exai"
REAL_DOCS = REAL / "tool_validation_suite" / "docs" / "current"
# Skipped only without ../shared itself: with it, a sample missing from it fails its test.
needs_real = pytest.mark.skipif(not REAL.parents[1].is_dir(), reason="../shared is absent")


# --------------------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("title", "normalised"),
    [
        (
            "Error Message Truncation in Tool Responses",
            "error message truncation in tool responses",
        ),
        ("  `test_self-check.py` - Syntax   Error ", "test self check py syntax error"),
        ("~~Old~~ JSON Output: Formatting!", "old json output formatting"),
        ("Ｆｕｌｌwidth Title", "fullwidth title"),
    ],
)
def test_normalise_title(title: str, normalised: str) -> None:
    assert normalise_title(title) == normalised


def test_issue_code_scheme() -> None:
    digest = hashlib.sha1(b"missing log file directory activity tool").hexdigest()[:6]
    assert issue_code_for("PROD", "HIGH", "Missing Log File Directory - Activity Tool") == (
        f"PROD-HIGH-{digest}"
    )
    assert digest == "67d4a6"
    # Markdown and spacing do not change it; the words do.
    assert issue_code_for("PROD", "HIGH", "**Missing Log File  Directory** – Activity Tool") == (
        "PROD-HIGH-67d4a6"
    )
    assert issue_code_for("PROD", "HIGH", "Missing Log Directory - Activity Tool") != (
        "PROD-HIGH-67d4a6"
    )


# --------------------------------------------------------------------------- status words


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("FIXED in Phase 2", "RESOLVED"),
        ("✅ RESOLVED", "RESOLVED"),
        ("RESOLVED - This is Pydantic's default behavior", "RESOLVED"),
        ("Complete", "RESOLVED"),
        ("Working as designed, no critical fix needed", "WONT_FIX"),
        ("Won't fix", "WONT_FIX"),
        ("WONT_FIX", "WONT_FIX"),
        ("PARTIALLY FIXED - Basic metrics working, token/cost parsing remaining", "IN_PROGRESS"),
        ("In progress", "IN_PROGRESS"),
        ("Test data fixed, need to regenerate all test files", "IN_PROGRESS"),
        ("Production code working correctly, watcher needs improvement", "IN_PROGRESS"),
        ("🆕 NEW", "OPEN"),
        ("❌ Not started", "OPEN"),
        ("Open", "OPEN"),
        ("Investigating with vendor", None),
        ("", None),
    ],
)
def test_classify_status(text: str, status: str | None) -> None:
    assert classify_status(text) == status


@pytest.mark.parametrize(
    ("text", "tools"),
    [
        ("activity", ["activity"]),
        (
            "19 tools (challenge, consensus, docgen, and others)",
            ["challenge", "consensus", "docgen"],
        ),
        ("15+ tools (challenge, tracer, etc.)", ["challenge", "tracer"]),
        (
            "provider_capabilities, version, status, chat, and others",
            ["provider_capabilities", "version", "status", "chat"],
        ),
        (
            "analyze, chat, refactor, status (4 observations)",
            ["analyze", "chat", "refactor", "status"],
        ),
        ("ALL tools (61/61 observations show N/A metrics)", []),
        ("Multiple workflow tools", []),
        ("6 integration tests (100% failure rate)", []),
        ("self-check (duplicate test file)", ["self-check"]),
        ("`status`, `chat`, chat", ["status", "chat"]),
        ("", []),
        (None, []),
    ],
)
def test_affected_tools(text: str | None, tools: list[str]) -> None:
    assert _affected_tools(text) == tools


# --------------------------------------------------------------------------- own fixtures


# code: category, priority, status, status_source, resolved_in, tools, line, title
CHECKLIST_ISSUES: dict[str, tuple[Any, ...]] = {
    "PROD-CRITICAL-228f97": (
        "production",
        "CRITICAL",
        "WONT_FIX",
        "status_line",
        None,
        ["consensus", "tracer"],
        14,
        "Error Message Truncation in Tool Responses",
    ),
    "PROD-HIGH-67d4a6": (
        "production",
        "HIGH",
        "OPEN",
        "checkboxes",
        None,
        ["activity"],
        41,
        "Missing Log File Directory - Activity Tool",
    ),
    "PROD-HIGH-d5efc1": (
        "production",
        "HIGH",
        "RESOLVED",
        "status_line",
        "Phase 2",
        [],
        53,
        "Inconsistent Success Flag with Error Conditions",
    ),
    "PROD-HIGH-e9fc86": (
        "production",
        "HIGH",
        "IN_PROGRESS",
        "status_line",
        None,
        ["analyze", "chat"],
        65,
        "Performance Metrics Not Being Collected",
    ),
    "PROD-MEDIUM-63dd88": (
        "production",
        "MEDIUM",
        "RESOLVED",
        "marker",
        None,
        ["provider_capabilities", "status"],
        80,
        "JSON Output Formatting",
    ),
    "PROD-LOW-ec34d3": (
        "production",
        "LOW",
        "RESOLVED",
        "checkboxes",
        None,
        ["chat"],
        95,
        "Continuation Offer in Chat Responses",
    ),
    "TEST-CRITICAL-606fc9": (
        "test_infrastructure",
        "CRITICAL",
        "IN_PROGRESS",
        "status_line",
        None,
        [],
        111,
        "test_self-check.py - Syntax Error",
    ),
    "TEST-HIGH-a4f5c0": (
        "test_infrastructure",
        "HIGH",
        "OPEN",
        "default",
        None,
        [],
        123,
        "Test Status Marking Logic",
    ),
    "TEST-MEDIUM-d9b7ae": (
        "test_infrastructure",
        "MEDIUM",
        "OPEN",
        "status_line",
        None,
        [],
        131,
        "Test Retry Logic",
    ),
}


def test_bracketed_checklist() -> None:
    warnings: list[str] = []
    issues = parse_checklist(CHECKLIST, warnings)
    assert [i.issue_code for i in issues] == list(CHECKLIST_ISSUES)
    for issue in issues:
        category, priority, status, source, resolved_in, tools, line, title = CHECKLIST_ISSUES[
            issue.issue_code
        ]
        assert (issue.category, issue.priority, issue.status) == (category, priority, status)
        assert issue.extra["status_source"] == source, issue.title
        assert (issue.resolved_in, issue.affected_tools) == (resolved_in, tools)
        assert (issue.source_line, issue.title) == (line, title)
        assert issue.source_file == str(CHECKLIST)
        assert issue.extra["format"] == "issues_checklist"
    assert warnings == [
        f"{CHECKLIST}:90: heading 'Notes on medium issues' is not an issue entry: skipped",
        f"{CHECKLIST}:131: [MEDIUM] under a HIGH heading",
        f"{CHECKLIST}:131: 'Test Retry Logic' has no Problem paragraph",
    ]


def test_bracketed_checklist_fields() -> None:
    issues = {i.issue_code: i for i in parse_checklist(CHECKLIST)}
    first = issues["PROD-CRITICAL-228f97"]
    assert first.description == "Error messages are truncated mid-sentence.\nDebugging is hard."
    assert first.root_cause == "Pydantic's `ValidationError` formatting truncates long values"
    assert first.resolution is not None
    assert first.resolution.startswith("- [x] Investigated - confirmed Pydantic's default")
    assert first.extra["status_text"] == "Working as designed, no critical fix needed"
    assert first.extra["affected_tools_text"] == "3 tools (consensus, tracer, and others)"
    assert first.extra["checklist"] == [
        {
            "done": True,
            "text": "Investigated - confirmed Pydantic's default behavior",
            "under": "resolution",
        },
        {"done": False, "text": "OPTIONAL: custom error formatting", "under": "resolution"},
    ]
    # The "✅ **RESOLVED**" verdict line ends the problem paragraph above it.
    assert issues["PROD-MEDIUM-63dd88"].description == "JSON is not pretty-printed."
    assert issues["TEST-CRITICAL-606fc9"].extra["affected_tests"] == "test_self-check.py"
    assert issues["TEST-MEDIUM-d9b7ae"].description == ""
    assert issues["PROD-HIGH-67d4a6"].resolution is None


# code: priority, status, resolved_in, tools, line, title
CODED_ISSUES: dict[str, tuple[Any, ...]] = {
    "ISSUE-C1": ("CRITICAL", "OPEN", None, ["analyze", "codereview"], 10, "Test Timeout Epidemic"),
    "ISSUE-H1": (
        "HIGH",
        "RESOLVED",
        "Phase 3",
        ["toolcall_log_tail"],
        28,
        "Tool Not Found - toolcall_log_tail",
    ),
    "ISSUE-M1": ("MEDIUM", "OPEN", None, [], 40, "File Upload Tests Failing"),
    "ISSUE-M2": ("LOW", "OPEN", None, [], 49, "Watcher JSON Parse Errors"),
}


def test_coded_checklist() -> None:
    warnings: list[str] = []
    issues = parse_checklist(CHECKLIST_2, warnings)
    assert [i.issue_code for i in issues] == list(CODED_ISSUES)
    for issue in issues:
        priority, status, resolved_in, tools, line, title = CODED_ISSUES[issue.issue_code]
        assert (issue.priority, issue.status, issue.resolved_in) == (priority, status, resolved_in)
        assert (issue.affected_tools, issue.source_line, issue.title) == (tools, line, title)
        assert issue.category == "uncategorized"
    c1 = issues[0]
    assert c1.description == "Tests timed out after 300 seconds."
    assert c1.root_cause == "- Tests wait for responses that never complete"
    assert c1.resolution is None
    assert c1.extra["remediation"] == "1. Increase timeout"
    assert issues[2].extra["affected_components"] == "glm_upload_file tests"
    assert warnings == [
        f"{CHECKLIST_2}:40: ISSUE-M1 has no Priority line; MEDIUM from its section",
        f"{CHECKLIST_2}:49: ISSUE-M2 is LOW under a MEDIUM heading",
        f"{CHECKLIST_2}:49: status 'Investigating with vendor' not understood; other signs used",
    ]


def test_phase_fixes() -> None:
    fixes = parse_checklist(PHASE_3)
    assert [(f.issue_code, f.priority, f.title, f.source_line) for f in fixes] == [
        ("PHASE3-HIGH-15c94f", "HIGH", "Fix Missing Log Directory - Activity Tool", 17),
        ("PHASE3-MEDIUM-112584", "MEDIUM", "Fix upload parameter", 30),
        ("PHASE3-CRITICAL-79ecd6", "CRITICAL", "Fix Error Message Truncation", 38),
        ("PHASE3-LOW-f38930", "LOW", "Add Nightly Benchmark Dashboard", 49),
    ]
    assert {(f.status, f.resolved_in, f.category) for f in fixes} == {
        ("RESOLVED", "Phase 3", "uncategorized")
    }
    log, upload, truncation, _ = fixes
    assert log.root_cause == "Nothing created the directory."
    assert log.resolution == "- Create `logs/` on start"  # from **Changes:**
    assert log.extra["impact"] == "Works on fresh installs."
    assert log.extra["phase_date"] == "2025-10-08"
    assert upload.extra["fixes_code"] == "ISSUE-M1" and upload.extra["scope"] == "ISSUE-M1"
    assert truncation.root_cause == "Pydantic's formatting."
    assert truncation.extra["investigated_only"] is True
    assert truncation.extra["scope"] == "3 tools"


# code: status, resolved_in, fixed by (code, match)
MERGED: dict[str, tuple[Any, ...]] = {
    "PROD-CRITICAL-228f97": ("WONT_FIX", None, ("PHASE3-CRITICAL-79ecd6", "similarity")),
    "PROD-HIGH-67d4a6": ("RESOLVED", "Phase 3", ("PHASE3-HIGH-15c94f", "similarity")),
    "PROD-HIGH-d5efc1": ("RESOLVED", "Phase 2", None),
    "PROD-HIGH-e9fc86": ("IN_PROGRESS", None, None),
    "PROD-MEDIUM-63dd88": ("RESOLVED", None, None),
    "PROD-LOW-ec34d3": ("RESOLVED", None, None),
    "TEST-CRITICAL-606fc9": ("IN_PROGRESS", None, None),
    "TEST-HIGH-a4f5c0": ("OPEN", None, None),
    "TEST-MEDIUM-d9b7ae": ("OPEN", None, None),
    "ISSUE-C1": ("OPEN", None, None),
    "ISSUE-H1": ("RESOLVED", "Phase 3", None),
    "ISSUE-M1": ("RESOLVED", "Phase 3", ("PHASE3-MEDIUM-112584", "code")),
    "ISSUE-M2": ("OPEN", None, None),
    "PHASE3-LOW-f38930": ("RESOLVED", "Phase 3", None),
}


def test_merge_backfill() -> None:
    issues = parse_checklist(CHECKLIST) + parse_checklist(CHECKLIST_2)
    fixes = parse_checklist(PHASE_3)
    before = [(i.issue_code, i.status, i.resolution) for i in issues]
    warnings: list[str] = []
    merged = merge_backfill(issues, fixes, warnings)
    assert [i.issue_code for i in merged] == list(MERGED)
    for issue in merged:
        status, resolved_in, fixed_by = MERGED[issue.issue_code]
        assert (issue.status, issue.resolved_in) == (status, resolved_in), issue.issue_code
        links = [(f["code"], f["match"]) for f in issue.extra.get("fixed_by", [])]
        assert links == ([fixed_by] if fixed_by else [])
    by_code = {i.issue_code: i for i in merged}
    log = by_code["PROD-HIGH-67d4a6"]
    assert log.root_cause == "Nothing created the directory."  # filled from the fix
    assert log.resolution == "- Create `logs/` on start"
    truncation = by_code["PROD-CRITICAL-228f97"]
    assert truncation.extra["fix_status_not_applied"] == "checklist says WONT_FIX"
    assert truncation.root_cause == "Pydantic's `ValidationError` formatting truncates long values"
    assert truncation.resolution is not None
    assert truncation.resolution.endswith("\n\nPhase 3: - Documented, no code change")
    assert warnings == [
        f"{PHASE_3}:49: fix 'Add Nightly Benchmark Dashboard' matches no issue",
    ]
    # The inputs are untouched.
    assert [(i.issue_code, i.status, i.resolution) for i in issues] == before
    assert all("fixed_by" not in i.extra for i in issues)


def test_merge_one_fix_per_issue() -> None:
    def issue(code: str, title: str, priority: str = "HIGH", **extra: Any) -> BackfilledIssue:
        return BackfilledIssue(
            code,
            title,
            "",
            "production",
            priority,
            "OPEN",
            None,
            None,
            [],
            "f.md",
            1,
            None,
            dict(extra),
        )

    issues = [issue("A", "Watcher Timeout Issues"), issue("B", "Prompt Counter Not Tracking")]
    fixes = [
        issue("F1", "Fix Watcher Timeout Issues"),
        issue("F2", "Fix Watcher Timeouts Again"),
        issue("F3", "Something else", fixes_code="B"),
    ]
    merged = merge_backfill(issues, fixes)
    assert [(i.issue_code, i.status) for i in merged] == [
        ("A", "RESOLVED"),
        ("B", "RESOLVED"),
        ("F2", "OPEN"),  # an unmatched fix keeps its own record as given
    ]
    assert [f["code"] for f in merged[0].extra["fixed_by"]] == ["F1"]
    assert merged[1].extra["fixed_by"][0]["match"] == "code"


def test_codes_are_stable_across_edits(tmp_path: Path) -> None:
    original = {i.title: i.issue_code for i in parse_checklist(CHECKLIST)}
    text = CHECKLIST.read_text(encoding="utf-8")
    # Another entry renamed, a new one added first, the file reflowed: the others keep theirs.
    text = text.replace("### [LOW] Continuation Offer in Chat Responses", "### [LOW] Chat offers")
    text = text.replace(
        "## Critical Priority\n", "## Critical Priority\n\n### [CRITICAL] Brand New Issue\n", 1
    )
    edited = tmp_path / "ISSUES_CHECKLIST.md"
    edited.write_text(text.replace("\n\n", "\n\n\n"), encoding="utf-8")
    again = {i.title: i.issue_code for i in parse_checklist(edited)}
    for title, code in original.items():
        if title != "Continuation Offer in Chat Responses":
            assert again[title] == code
    assert again["Chat offers"] != original["Continuation Offer in Chat Responses"]
    assert again["Brand New Issue"] == issue_code_for("PROD", "CRITICAL", "Brand New Issue")


def test_duplicate_titles_get_suffixes(tmp_path: Path) -> None:
    path = tmp_path / "ISSUES_CHECKLIST.md"
    path.write_text(
        "# Production System Issues\n\n### [HIGH] Same Thing\n**Problem:** one\n\n"
        "### [HIGH] Same  thing!\n**Problem:** two\n\n### [LOW] Same Thing\n**Problem:** three\n",
        encoding="utf-8",
    )
    warnings: list[str] = []
    codes = [i.issue_code for i in parse_checklist(path, warnings)]
    base = issue_code_for("PROD", "HIGH", "Same Thing")
    assert codes == [base, f"{base}-2", issue_code_for("PROD", "LOW", "Same Thing")]
    assert warnings == [f"{path}:6: same title as an earlier entry; code suffixed -2"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "text", "reason", "line"),
    [
        (
            "ISSUES_CHECKLIST.md",
            "# Production System Issues\n\n### [HIGH]\n**Problem:** x\n",
            "issue entry without a title",
            3,
        ),
        (
            "ISSUES_CHECKLIST.md",
            "# Production System Issues\n\n## High\n\n### [URGENT] Thing\n",
            "unknown priority 'URGENT': expected one of CRITICAL, HIGH, MEDIUM, LOW",
            5,
        ),
        (
            "ISSUES_CHECKLIST.md",
            "# Checklist\n\n### [HIGH] Homeless entry\n",
            "issue entry outside a production / test infrastructure section",
            3,
        ),
        (
            "ISSUES_CHECKLIST_2.md",
            "## HIGH\n\n### ISSUE-H1: A\n\n### ISSUE-H1: B\n",
            "duplicate issue code ISSUE-H1 (first at line 3)",
            5,
        ),
        (
            "ISSUES_CHECKLIST_2.md",
            "## Issues\n\n### ISSUE-H1:\n**Priority:** HIGH\n",
            "ISSUE-H1 has no title",
            3,
        ),
        (
            "ISSUES_CHECKLIST_2.md",
            "## Issues\n\n### ISSUE-H1: Thing\n**Status:** NEW\n",
            "ISSUE-H1 has no priority",
            3,
        ),
        (
            "ISSUES_CHECKLIST_2.md",
            "## Issues\n\n### ISSUE-X9: Thing\n**Priority:** P1\n",
            "unknown priority 'P1'",
            3,
        ),
        (
            "PHASE_4_COMPLETE.md",
            "# Phase 4\n\n## Completed Fixes\n\n### 1. SEVERE: Fix it\n",
            "unknown priority 'SEVERE'",
            5,
        ),
        (
            "PHASE_4_COMPLETE.md",
            "# Phase 4\n\n## Completed Fixes\n\n### 1. HIGH: (2 tools)\n",
            "fix entry without a title",
            5,
        ),
        ("PHASE_4_COMPLETE.md", "# Phase 4\n\n## Summary\n\n### Totals\n", "no fix entries", None),
        (
            "NOTES.md",
            "# Notes\n\n```\n### [HIGH] fenced, not an entry\n```\n",
            "no issue entries",
            None,
        ),
        ("EMPTY.md", "", "no issue entries", None),
    ],
)
def test_malformed_markdown(
    tmp_path: Path, name: str, text: str, reason: str, line: int | None
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ImportFormatError) as info:
        parse_checklist(path)
    assert reason in info.value.reason
    assert info.value.line == line
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    binary = tmp_path / "ISSUES_CHECKLIST.md"
    binary.write_bytes(b"# Production\n\n### [HIGH] caf\xe9\n")
    with pytest.raises(ImportFormatError, match="not UTF-8 text"):
        parse_checklist(binary)
    with pytest.raises(ImportFormatError, match="cannot read"):
        parse_checklist(tmp_path / "missing.md")


# --------------------------------------------------------------------------- the real files


@needs_real
def test_real_issues_checklist() -> None:
    warnings: list[str] = []
    issues = parse_checklist(REAL_DOCS / "ISSUES_CHECKLIST.md", warnings)
    assert warnings == []
    assert len(issues) == 29
    assert Counter((i.category, i.priority) for i in issues) == {
        ("production", "CRITICAL"): 2,
        ("production", "HIGH"): 4,
        ("production", "MEDIUM"): 4,
        ("production", "LOW"): 2,
        ("test_infrastructure", "CRITICAL"): 3,
        ("test_infrastructure", "HIGH"): 4,
        ("test_infrastructure", "MEDIUM"): 5,
        ("test_infrastructure", "LOW"): 5,
    }
    assert Counter(i.status for i in issues) == {
        "OPEN": 24,
        "IN_PROGRESS": 3,
        "RESOLVED": 1,
        "WONT_FIX": 1,
    }
    by_title = {i.title: i for i in issues}
    assert [i.title for i in issues if i.status != "OPEN"] == [
        "Error Message Truncation in Tool Responses",
        "Inconsistent Success Flag with Error Conditions",
        "Performance Metrics Not Being Collected",
        "Response Content Truncation",
        "Empty Input Validation Failures",
    ]
    success = by_title["Inconsistent Success Flag with Error Conditions"]
    assert (success.issue_code, success.status, success.resolved_in) == (
        "PROD-CRITICAL-d5efc1",
        "RESOLVED",
        "Phase 2",
    )
    assert success.root_cause == (
        "Test validator (`response_validator.py`) doesn't recognize workflow-specific failure "
        "statuses"
    )
    truncation = by_title["Error Message Truncation in Tool Responses"]
    assert (truncation.issue_code, truncation.status, truncation.source_line) == (
        "PROD-CRITICAL-228f97",
        "WONT_FIX",
        44,
    )
    assert truncation.affected_tools == [
        "challenge",
        "consensus",
        "docgen",
        "planner",
        "refactor",
        "secaudit",
        "testgen",
        "thinkdeep",
        "tracer",
    ]
    assert by_title["Response Content Truncation"].affected_tools == [
        "provider_capabilities",
        "version",
        "status",
        "chat",
    ]
    assert by_title["Performance Metrics Not Being Collected"].affected_tools == []
    assert by_title["Watcher Timeout Issues"].affected_tools == [
        "analyze",
        "chat",
        "refactor",
        "status",
    ]
    selfcheck = by_title["test_self-check.py - Syntax Error"]
    assert (selfcheck.issue_code, selfcheck.category, selfcheck.priority, selfcheck.status) == (
        "TEST-CRITICAL-606fc9",
        "test_infrastructure",
        "CRITICAL",
        "OPEN",
    )
    assert selfcheck.description == "Python doesn't allow hyphens in function names."
    assert issues[-1].title == "Test Isolation" and issues[-1].source_line == 876


@needs_real
def test_real_issues_checklist_2() -> None:
    warnings: list[str] = []
    issues = parse_checklist(REAL_DOCS / "ISSUES_CHECKLIST_2.md", warnings)
    assert warnings == []
    assert [i.issue_code for i in issues] == [
        "ISSUE-C1",
        "ISSUE-C2",
        "ISSUE-H1",
        "ISSUE-H2",
        "ISSUE-H3",
        "ISSUE-H4",
        "ISSUE-M1",
        "ISSUE-M2",
        "ISSUE-M3",
        "ISSUE-M4",
        "ISSUE-L1",
        "ISSUE-L2",
    ]
    assert Counter(i.priority for i in issues) == {"CRITICAL": 2, "HIGH": 4, "MEDIUM": 4, "LOW": 2}
    assert {i.status for i in issues} == {"OPEN"}  # every one is "🆕 NEW"
    c1 = issues[0]
    assert c1.title == "Test Timeout Epidemic"
    assert c1.affected_tools == [
        "analyze",
        "codereview",
        "debug",
        "refactor",
        "secaudit",
        "testgen",
        "thinkdeep",
    ]
    assert c1.extra["status_text"] == "🆕 NEW"
    assert issues[4].title == "Tool Not Found - toolcall_log_tail"
    assert issues[4].affected_tools == ["toolcall_log_tail"]
    assert issues[5].root_cause is None  # ISSUE-H4 gives evidence, no root cause


# fix title -> the real checklist issue it resolves
REAL_FIXES = {
    "Fix Integration Test API Mismatch": "TEST-CRITICAL-bebba7",
    "Fix test_self-check.py Syntax Error": "TEST-CRITICAL-606fc9",
    "Fix test_selfcheck.py Unicode Encoding Error": "TEST-CRITICAL-ce96c4",
    "Fix Error Message Truncation": "PROD-CRITICAL-228f97",
    "Fix Inconsistent Success Flags": "PROD-CRITICAL-d5efc1",
    "Fix Test Status Marking Logic": "TEST-HIGH-a4f5c0",
    "Fix Missing Log Directory - Activity Tool": "PROD-HIGH-67d4a6",
    "Enable Performance Metrics Collection": "PROD-HIGH-e9fc86",
    "Fix Response Content Truncation": "PROD-HIGH-56ef00",
    "Improve Empty Input Validation": "PROD-HIGH-cfc0aa",
    "Update Test Data to Be Realistic": "TEST-HIGH-fe7bdb",
    "Add Test Expected Behavior Documentation": "TEST-HIGH-c9c52c",
}


@needs_real
def test_real_phase_files_and_merge() -> None:
    phase_1 = parse_checklist(REAL_DOCS / "PHASE_1_CRITICAL_FIXES_COMPLETE.md")
    phase_2 = parse_checklist(REAL_DOCS / "PHASE_2_HIGH_PRIORITY_FIXES_COMPLETE.md")
    assert [f.priority for f in phase_1] == ["CRITICAL"] * 5
    assert [f.priority for f in phase_2] == ["HIGH"] * 7
    assert {f.resolved_in for f in phase_1} == {"Phase 1"}
    assert phase_1[0].root_cause is not None
    assert phase_1[0].root_cause.startswith("Integration test scripts were calling")
    assert phase_1[3].extra["investigated_only"] is True
    assert phase_2[5].extra["remaining"].startswith("Need to regenerate all test files")
    issues = parse_checklist(REAL_DOCS / "ISSUES_CHECKLIST.md")
    warnings: list[str] = []
    merged = merge_backfill(issues, phase_1 + phase_2, warnings)
    assert warnings == [] and len(merged) == 29
    links = {f["title"]: i.issue_code for i in merged for f in i.extra.get("fixed_by", [])}
    assert links == REAL_FIXES
    assert Counter(i.status for i in merged) == {
        "OPEN": 17,
        "RESOLVED": 8,
        "IN_PROGRESS": 3,
        "WONT_FIX": 1,
    }
    log = next(i for i in merged if i.issue_code == "PROD-HIGH-67d4a6")
    assert (log.status, log.resolved_in) == ("RESOLVED", "Phase 2")
