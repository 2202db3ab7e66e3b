"""``build_report``/``render_html`` and ``testledger report --html``: a scripted history with a
hostile test name, assembled exactly and rendered safely on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.cli import main
from testledger.report.html import HtmlReport, build_report, render_html, safe_json

START = datetime(2025, 11, 3, 9, 0, tzinfo=timezone.utc)
HOSTILE = "</script><img src=x onerror=alert(1)><!--"
# test_id -> per run: (status, secs, cost); None = not run.
HISTORY: dict[str, list[tuple[str, float, float] | None]] = {
    "chat/basic": [("PASS", 1.0, 0.01), ("PASS", 1.0, 0.01), ("PASS", 2.0, 0.05)],
    "chat/broken": [("PASS", 0.5, 0.02), ("FAIL", 0.5, 0.02), ("FAIL", 0.6, 0.02)],
    f"evil/{HOSTILE}": [("PASS", 0.1, 0.0), ("PASS", 0.1, 0.0), ("FAIL", 0.2, 0.001)],
}


def record_history(ledger: Ledger) -> None:
    for index in range(3):
        with ledger.start_run(
            branch="main",
            commit=f"c{index + 1}",
            suite="llm",
            run_key=f"r{index + 1}",
            started_at=START + timedelta(hours=index),
            detect_environment=False,
        ) as run:
            for test_id, runs in HISTORY.items():
                step = runs[index]
                if step is None:
                    continue
                status, secs, cost = step
                tool, variation = test_id.split("/", 1)
                run.record(
                    test_id=test_id,
                    tool_name=tool,
                    variation=variation,
                    status=status,
                    duration_secs=secs,
                    cost_usd=cost,
                    tokens_total=int(cost * 10_000),
                    provider="openai",
                    model="gpt-4o",
                    error_type="AssertionError" if status == "FAIL" else None,
                    error_message=f"{HOSTILE} went wrong" if status == "FAIL" else None,
                )


@pytest.fixture
def history(ledger: Ledger, db_url: str) -> str:
    record_history(ledger)
    return db_url


def _build(url: str, run: str | None = None, history: int = 100) -> HtmlReport:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return build_report(conn, run, history=history)
    finally:
        engine.dispose()


EVIL = f"evil/{HOSTILE}"


def test_build_report_exact(history: str) -> None:
    report = _build(history)
    assert (report.run.run_key, report.run.tests_passed, report.run.tests_failed) == ("r3", 1, 2)
    assert report.trend.run_ids == [1, 2, 3]
    assert report.trend.labels == [
        "#1 2025-11-03 09:00",
        "#2 2025-11-03 10:00",
        "#3 2025-11-03 11:00",
    ]
    assert report.trend.metrics["pass_rate"] == [100.0, 66.67, 33.33]
    assert report.trend.metrics["cost"] == [0.03, 0.03, 0.071]
    assert report.trend.metrics["quality"] == [None, None, None]
    assert [(g.code, g.status, g.priority, g.tests, g.error_excerpt) for g in report.failures] == [
        (
            "UNCA-MEDIUM-001",
            "OPEN",
            "MEDIUM",
            ["chat/broken", EVIL],
            f"AssertionError: {HOSTILE} went wrong",
        )
    ]
    assert report.flaky == []
    comparison = report.comparison
    assert comparison is not None and comparison.baseline.run_key == "r2"
    assert [t.test_id for t in comparison.new_failures] == [EVIL]
    assert comparison.fixed == []
    assert [t.test_id for t in comparison.slower] == ["chat/basic", EVIL]
    assert [t.test_id for t in comparison.costlier] == ["chat/basic", EVIL]
    assert [(t.test_id, t.status, t.duration_secs) for t in report.slowest] == [
        ("chat/basic", "PASS", 2.0),
        ("chat/broken", "FAIL", 0.6),
        (EVIL, "FAIL", 0.2),
    ]
    assert [(t.test_id, t.cost_usd, t.tokens_total) for t in report.costliest] == [
        ("chat/basic", 0.05, 500),
        ("chat/broken", 0.02, 200),
        (EVIL, 0.001, 10),
    ]


@pytest.mark.parametrize(
    ("run", "history_size", "run_ids", "has_comparison", "failure_groups"),
    [
        ("r1", 100, [1], False, 0),  # the first run: nothing to compare with, no failures
        ("r2", 100, [1, 2], True, 1),  # the history ends at the reported run
        ("r3", 2, [2, 3], True, 1),  # --runs limits the trend window
    ],
)
def test_build_report_window(
    history: str,
    run: str,
    history_size: int,
    run_ids: list[int],
    has_comparison: bool,
    failure_groups: int,
) -> None:
    report = _build(history, run, history_size)
    assert report.trend.run_ids == run_ids
    assert (report.comparison is not None) == has_comparison
    assert len(report.failures) == failure_groups


SECTIONS = ("summary", "trends", "failures", "flaky", "comparison", "slowest")


def test_rendered_html_is_self_contained_and_escaped(history: str) -> None:
    page = render_html(_build(history))
    for section in SECTIONS:
        assert f'<section id="{section}"' in page
    assert re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page) == []
    assert "<link" not in page and "@import" not in page
    assert HOSTILE not in page
    assert "<img" not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # Exactly our two scripts: the data block and the chart code.
    assert page.count("<script") == 2 and page.count("</script>") == 2
    data_block = page.split('<script type="application/json" id="report-data">')[1]
    data = json.loads(data_block.split("</script>")[0])
    assert data["metrics"]["pass_rate"] == [100.0, 66.67, 33.33]
    assert [c["name"] for c in data["charts"]] == ["pass_rate", "quality", "cost", "duration"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("</script>", '"\\u003c/script\\u003e"'),
        ("<!--", '"\\u003c!--"'),
        ("a&b", '"a\\u0026b"'),
        ("line\u2028sep", '"line\\u2028sep"'),
        ({"k": [1, None]}, '{"k":[1,null]}'),
    ],
)
def test_safe_json(value: object, expected: str) -> None:
    encoded = safe_json(value)
    assert encoded == expected
    assert json.loads(encoded) == value


def test_report_command_writes_html_and_json(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert main(["--db", history, "report", "--html", str(out), "r2"]) == 0
    assert "Run #2" in out.read_text("utf-8")
    capsys.readouterr()
    assert main(["--db", history, "report", "--json", "--runs", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["run"]["run_key"], data["trend"]["run_ids"]) == ("r3", [2, 3])
    assert main(["--db", history, "report"]) == 1
    assert "give --html" in capsys.readouterr().err
