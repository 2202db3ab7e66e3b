"""Large report files for the memory checks: the bounded ones in the suite and the full-size
ones in bench/memory.py write the same shapes at different sizes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

__all__ = ["write_import_junit", "write_parse_junit", "write_reportlog"]


def write_import_junit(path: Path, count: int) -> None:
    """Every tenth testcase fails with a 200-byte message."""
    with path.open("w") as handle:
        handle.write(f'<testsuite name="big" tests="{count}">')
        for index in range(count):
            if index % 10 == 0:
                handle.write(
                    f'<testcase classname="m.C{index % 97}" name="t{index}" time="0.01">'
                    f'<failure message="boom {index}">{"x" * 200}</failure></testcase>'
                )
            else:
                handle.write(f'<testcase classname="m.C{index % 97}" name="t{index}" time="0.01"/>')
        handle.write("</testsuite>")


def write_parse_junit(path: Path, count: int) -> None:
    """One testcase in a hundred fails, with a traceback and captured output."""
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n')
        out.write('<testsuite name="huge" timestamp="2024-01-01T00:00:00">\n')
        for i in range(count):
            cls = f"pkg.module_{i // 1000}.TestClass"
            if i % 100 == 0:
                out.write(
                    f'<testcase classname="{cls}" name="test_{i}" time="0.001">'
                    f'<failure message="boom {i}" type="AssertionError">Traceback {i}\n'
                    f"  line {i}</failure><system-out>out {i}</system-out></testcase>\n"
                )
            else:
                out.write(f'<testcase classname="{cls}" name="test_{i}" time="0.001"/>\n')
        out.write("</testsuite>\n</testsuites>\n")


def write_reportlog(path: Path, tests: int) -> None:
    line = (
        '{{"nodeid": "tests/test_big.py::test_{i}", "location": ["tests/test_big.py", {i}, '
        '"test_{i}"], "keywords": {{"test_{i}": 1}}, "outcome": "{outcome}", "longrepr": '
        '{longrepr}, "when": "{when}", "user_properties": [], "sections": [], '
        '"duration": 0.001, "start": 1700000000.{i}, "stop": 1700000000.{i}, '
        '"$report_type": "TestReport"}}\n'
    )
    failure = json.dumps("E   AssertionError: boom\n\nt.py:1: AssertionError")
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as out:
        out.write('{"pytest_version": "8.3.0", "$report_type": "SessionStart"}\n')
        for i in range(tests):
            failing = i % 1000 == 0
            out.write(line.format(i=i, when="setup", outcome="passed", longrepr="null"))
            outcome, longrepr = ("failed", failure) if failing else ("passed", "null")
            out.write(line.format(i=i, when="call", outcome=outcome, longrepr=longrepr))
            out.write(line.format(i=i, when="teardown", outcome="passed", longrepr="null"))
        out.write('{"exitstatus": 1, "$report_type": "SessionFinish"}\n')
