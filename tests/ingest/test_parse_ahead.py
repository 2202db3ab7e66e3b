"""Large files parsed by a second process (``ingest.parse_ahead``): the same rows as parsed in
the importing process, the same errors, and a fallback when the child fails. SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from testledger.cli import main
from testledger.ingest import parse_ahead
from tests.helpers import query

#: Every column an import writes, in a stable order (not id, run_id or created_at).
COLUMNS = (
    "test_id, attempt, tool_name, variation, status, duration_secs, error_type, error_message, "
    "traceback, output_excerpt, details, started_at"
)


def write_junit(path: Path, count: int) -> None:
    """A JUnit file with every kind of testcase, and retries (a test repeated right after
    itself, as Gradle writes them) for attempt numbering."""
    cases = []
    for i in range(count):
        name = f'classname="tests.test_m{i % 7}.TestT" name="test_{i}" time="0.{i % 1000:03d}"'
        kind = i % 10
        if kind == 0:
            cases.append(
                f'<testcase {name}><failure message="assert {i} == 0">E   assert {i} == 0\n'
                f"tests/test_m{i % 7}.py:{i}: AssertionError</failure></testcase>"
            )
        elif kind == 1:
            cases.append(f'<testcase {name}><error message="boom">setup failed</error></testcase>')
        elif kind == 2:
            cases.append(f'<testcase {name}><skipped message="later"/></testcase>')
        elif kind == 3:
            cases.append(f"<testcase {name}><system-out>hello {i}</system-out></testcase>")
        elif kind == 4:  # failed, then passed on retry
            cases.append(f'<testcase {name}><failure message="flaky">x</failure></testcase>')
            cases.append(f"<testcase {name}/>")
        else:
            cases.append(f"<testcase {name}/>")
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
        f'tests="{count}" timestamp="2025-10-07T12:00:00" hostname="ci-1">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    )


class Spy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, min_bytes: int = 0) -> None:
        self.started = 0
        monkeypatch.setattr(parse_ahead, "MIN_BYTES", min_bytes)
        real = parse_ahead.ParseAhead

        def counted(*args: Any) -> parse_ahead.ParseAhead:
            self.started += 1
            return real(*args)

        monkeypatch.setattr(parse_ahead, "ParseAhead", counted)


def import_json(
    capsys: pytest.CaptureFixture[str], db_url: str, path: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    code = main(["--db", db_url, "import", str(path), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def run_rows(db_url: str, run_id: int) -> list[tuple[Any, ...]]:
    return query(db_url, f"SELECT {COLUMNS} FROM test_results WHERE run_id = {run_id} ORDER BY id")


def test_rows_are_those_the_importing_process_writes(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = tmp_path / "big.xml"
    write_junit(report, 2_400)  # 2,640 rows (240 retries): five chunks of 500 and a rest
    spy = Spy(monkeypatch)
    code, ahead = import_json(capsys, db_url, report, "--run-key", "ahead")
    assert code == 0 and spy.started == 1
    monkeypatch.setattr(parse_ahead, "MIN_BYTES", 1 << 40)  # never
    code, here = import_json(capsys, db_url, report, "--run-key", "here")
    assert code == 0 and spy.started == 1
    (ahead_run,), (here_run,) = ahead["imported"], here["imported"]
    assert ahead_run["results"] == here_run["results"] == 2_640  # 240 retried tests
    rows = run_rows(db_url, ahead_run["run_id"])
    assert rows == run_rows(db_url, here_run["run_id"])
    assert {row[1] for row in rows} == {1, 2}  # attempts numbered in the child too
    totals = query(
        db_url, "SELECT run_key, total_tests, tests_failed, duration_secs FROM test_runs"
    )
    assert totals[0][1:] == totals[1][1:]


def test_a_malformed_file_is_the_same_error_and_writes_nothing(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    whole = tmp_path / "whole.xml"
    write_junit(whole, 1_500)
    text = whole.read_text()
    report = tmp_path / "cut.xml"
    cut = text[: len(text) * 2 // 3]  # truncated after ~1,000 testcases
    report.write_text(cut)
    spy = Spy(monkeypatch)
    code, ahead = import_json(capsys, db_url, report)
    assert code == 1 and spy.started == 1 and ahead["imported"] == []
    monkeypatch.setattr(parse_ahead, "MIN_BYTES", 1 << 40)
    code, here = import_json(capsys, db_url, report)
    assert code == 1 and ahead["errors"] == here["errors"]
    (error,) = ahead["errors"]
    assert (error["path"], error["line"]) == (str(report), cut.count("\n") + 1)
    assert "truncated" in error["reason"]
    assert query(db_url, "SELECT COUNT(*) FROM test_results") == [(0,)]
    assert query(db_url, "SELECT COUNT(*) FROM test_runs") == [(0,)]


def test_a_failing_parser_process_falls_back_to_parsing_here(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = tmp_path / "big.xml"
    write_junit(report, 1_200)
    Spy(monkeypatch)
    # A child that dies after its first chunk of rows (they are written, then rolled back).
    monkeypatch.setattr(
        parse_ahead,
        "_CHILD",
        "import sys; sys.path.append(sys.argv.pop(1)); import testledger.ingest.parse_ahead as p; "
        "p._CHUNK = 100; real = p.encode_frame\n"
        "def frame(message):\n"
        "    if message[0] == 'end': raise SystemExit('parser ran out of memory')\n"
        "    return real(message)\n"
        "p.encode_frame = frame; p.main()",
    )
    code = main(["--db", db_url, "import", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert "1320 result(s)" in out
    assert (
        "warning: parsed in this process instead: the parsing process exited with status 1" in out
    )
    assert "parser ran out of memory" in out
    assert query(db_url, "SELECT COUNT(*), COUNT(DISTINCT test_id) FROM test_results") == [
        (1_320, 1_200)
    ]


def test_small_files_and_json_formats_are_parsed_here(tmp_path: Path) -> None:
    from testledger.ingest.base import ParsedFile
    from testledger.model import RunInfo

    big = tmp_path / "big.xml"
    big.write_bytes(b" " * parse_ahead.MIN_BYTES)
    small = tmp_path / "small.xml"
    small.write_bytes(b" " * (parse_ahead.MIN_BYTES - 1))

    def parsed(path: Path, format_name: str) -> ParsedFile:
        return ParsedFile(path, format_name, RunInfo(), iter(()))

    assert parse_ahead.wanted(parsed(big, "junit"))
    assert parse_ahead.wanted(parsed(big, "pytest-reportlog"))
    assert not parse_ahead.wanted(parsed(small, "junit"))
    assert not parse_ahead.wanted(parsed(big, "pytest-json"))
    assert not parse_ahead.wanted(parsed(tmp_path / "gone.xml", "junit"))
