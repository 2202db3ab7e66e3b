"""A test's identity is bounded (ID_LIMIT, 4 KiB of UTF-8) as its messages are: a huge
generated name is cut, keeps a hash of the whole so that it stays one test of its own, and
imports in seconds instead of minutes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testledger import Ledger
from testledger.cli import main
from testledger.common.text import ID_LIMIT, bounded_id
from testledger.model import TestResult
from tests.helpers import query

LONG = "x" * 10_000


@pytest.mark.parametrize(
    ("text", "kept_whole"),
    [
        ("tests/test_a.py::test_b[1-2]", True),
        ("é" * (ID_LIMIT // 2), True),  # exactly at the limit, in bytes
        ("é" * (ID_LIMIT // 2) + "x", False),
        (LONG, False),
        ("€" * 5_000, False),  # cut inside no character
    ],
)
def test_bounded_id_table(text: str, kept_whole: bool) -> None:
    cut = bounded_id(text)
    assert (cut == text) is kept_whole
    assert len(cut.encode("utf-8")) <= ID_LIMIT
    if not kept_whole:
        assert text.startswith(cut.split("…#")[0]) and len(cut.split("…#")[1]) == 16
        assert bounded_id(text) == cut  # the same name, the same id: its history stays one


def test_long_names_sharing_their_head_stay_apart() -> None:
    assert bounded_id(LONG + "a") != bounded_id(LONG + "b")


def test_a_recorded_result_has_its_identity_bounded(ledger: Ledger) -> None:
    with ledger.start_run(branch="main", run_key="long") as run:
        run.record(tool_name="t" * 1_000_000, variation="v", status="FAIL")
        run.record(TestResult(test_id=LONG + "1", tool_name="t", variation="1", status="PASS"))
        run.record(TestResult(test_id=LONG + "2", tool_name="t", variation="2", status="PASS"))
    rows = query(ledger.url, "SELECT test_id, tool_name FROM test_results ORDER BY variation")
    assert len(rows) == 3 and len({test_id for test_id, _ in rows}) == 3
    for test_id, tool_name in rows:
        assert len(test_id.encode()) <= ID_LIMIT and len(tool_name.encode()) <= ID_LIMIT


def test_a_junit_testcase_with_a_huge_name_imports_quickly(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    name = "n" * 5_000_000
    path.write_text(
        f'<testsuite name="s"><testcase classname="c" name="{name}">'
        '<failure message="m">boom</failure></testcase></testsuite>'
    )
    started = time.perf_counter()
    assert main(["--db", db_url, "--results-dir", str(tmp_path / "r"), "import", str(path)]) == 0
    assert time.perf_counter() - started < 30
    [(test_id, variation)] = query(db_url, "SELECT test_id, variation FROM test_results")
    assert len(test_id.encode()) <= ID_LIMIT and len(variation.encode()) <= ID_LIMIT
    assert "…#" in test_id
