"""What a test script of the tool-validation suite printed, read back: its per-test blocks, its
``TEST RESULTS SUMMARY`` counts, and the lines that report failures.

A script of the suite prints one block per test::

    ============================================================
    Test: self-check/basic_glm
    Status: failed
    FAILED: MCP error: {'code': 'TOOL_NOT_FOUND', 'message': 'Unknown tool: self-check'}
    ============================================================

then a summary (``Total Tests: 2``, ``Passed: 0 (0.0%)``, ``Failed: 2``, ``Skipped: 0``). Other
scripts (the integration ones) print free text, from which only failure reports can be read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["FAILURE_PATTERNS", "ScriptOutput", "TestBlock", "failure_lines", "read_output"]

# What a script's captured output says when tests failed although the script exited 0. Case
# matters: "Failed: 0" and "MCP tool call failed" (a retried attempt) are not failure reports.
FAILURE_PATTERNS = re.compile(
    r"\bFAILED\b|❌|âŒ|\bError:|^\s*Traceback \(most recent call last\)"
    r"|\b[1-9]\d* (?:tests? )?failed\b|\bFailed: [1-9]\d*|\bStatus: failed\b"
)
#: How many matching lines (and characters of each) are kept as evidence.
MAX_FAILURE_LINES = 20
FAILURE_LINE_LIMIT = 300

_TEST = re.compile(r"^\s*Test:\s*(?P<name>\S(?:.*\S)?)\s*$")
_STATUS = re.compile(r"^\s*Status:\s*(?P<status>\S+)\s*$")
_MESSAGE = re.compile(r"^\s*(?P<kind>FAILED|ERROR|SKIPPED)\s*:\s*(?P<message>.*?)\s*$")
_RULE = re.compile(r"^\s*(?:={10,}|-{10,})\s*$")
_SUMMARY_HEADER = re.compile(r"^\s*TEST RESULTS SUMMARY\s*$")
_COUNT = re.compile(r"^\s*(?P<label>Total Tests|Passed|Failed|Skipped):\s*(?P<count>\d+)\b")
_COUNT_KEYS = {"Total Tests": "total", "Passed": "passed", "Failed": "failed", "Skipped": "skipped"}


@dataclass(slots=True)
class TestBlock:
    """One ``Test:`` block: the name as printed, its status word and its message lines."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    status: str | None = None
    messages: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ScriptOutput:
    """The blocks a script printed, and the counts of its ``TEST RESULTS SUMMARY`` (empty when
    it printed none)."""

    blocks: list[TestBlock]
    counts: dict[str, int]


def read_output(output: str) -> ScriptOutput:
    """The per-test blocks and summary counts of one script's standard output."""
    blocks: list[TestBlock] = []
    counts: dict[str, int] = {}
    current: TestBlock | None = None
    in_summary = False
    for line in output.splitlines():
        if match := _TEST.match(line):
            current = TestBlock(match.group("name"), lines=[line.strip()])
            blocks.append(current)
            in_summary = False
        elif _SUMMARY_HEADER.match(line):
            current, in_summary = None, True
        elif in_summary:
            count = _COUNT.match(line)
            if count and _COUNT_KEYS[count.group("label")] not in counts:
                counts[_COUNT_KEYS[count.group("label")]] = int(count.group("count"))
            elif line.strip().startswith("-" * 10):
                in_summary = False  # the failure analysis follows: its counts are not these
        elif current is not None:
            if _RULE.match(line):
                # The closing rule ends a block once its status was printed (before that, it is
                # the rule the block's header sits under).
                current = None if current.status is not None else current
                continue
            current.lines.append(line.strip())
            if status := _STATUS.match(line):
                current.status = status.group("status")
            elif message := _MESSAGE.match(line):
                current.messages.append(message.group("message"))
    return ScriptOutput(blocks, counts)


def failure_lines(text: str) -> list[str]:
    """The lines of ``text`` that report a failure, each stripped and cut to its bound."""
    return [
        line.strip()[:FAILURE_LINE_LIMIT]
        for line in text.splitlines()
        if FAILURE_PATTERNS.search(line)
    ]
