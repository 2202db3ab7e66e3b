"""``build_report``/``render_html`` and ``testledger report --html``: a scripted history with a
hostile test name, assembled exactly and rendered safely on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.cli import main
from testledger.report.html import (
    HtmlReport,
    RunRegression,
    Verdict,
    build_report,
    render_html,
    run_verdict,
    safe_json,
)
from tests.histories import record_once, record_test, scripted_run

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
        with scripted_run(
            ledger, index, start=START, suite="llm", commit=f"c{index + 1}", run_key=f"r{index + 1}"
        ) as run:
            for test_id, runs in HISTORY.items():
                step = runs[index]
                if step is None:
                    continue
                status, secs, cost = step
                record_test(
                    run,
                    test_id,
                    status,
                    error_message=f"{HOSTILE} went wrong",
                    duration_secs=secs,
                    cost_usd=cost,
                    tokens_total=int(cost * 10_000),
                    provider="openai",
                    model="gpt-4o",
                )


@pytest.fixture(scope="module")
def recorded(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The history above, recorded once per database for this module's tests."""
    return record_once(module_db_url, tmp_path_factory, record_history)


@pytest.fixture
def history(recorded: str, copy_database: Callable[[str], str]) -> str:
    return copy_database(recorded)


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
    assert report.verdict == Verdict("bad", "new failures", f"1 new failure: {EVIL}")
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


SECTIONS = (
    "summary",
    "trends",
    "failures",
    "regressions",
    "flaky",
    "comparison",
    "slowest",
    "legend",
)


def test_rendered_html_is_self_contained_and_escaped(history: str) -> None:
    page = render_html(_build(history))
    for section in SECTIONS:
        assert f'<section id="{section}"' in page
    assert re.findall(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page) == []
    assert "<link" not in page and "@import" not in page
    assert HOSTILE not in page
    assert "<img" not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    # Exactly our two scripts: the data block and the chart code (uPlot and the chart code the
    # web dashboard shares, inlined).
    assert page.count("<script") == 2 and page.count("</script>") == 2
    data_block = page.split('<script type="application/json" id="report-data">')[1]
    data = json.loads(data_block.split("</script>")[0])
    assert data["metrics"]["pass_rate"] == [100.0, 66.67, 33.33]
    assert [c["name"] for c in data["charts"]] == ["pass_rate", "quality", "cost", "duration"]
    assert len(data["times"]) == len(data["run_ids"]) == 3
    assert "uPlot" in page and "testledgerCharts" in page


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


# (run status, failing tests, of which new) -> the badge's colour and text.
VERDICT_CASES: list[tuple[str, list[str], list[str], str, str]] = [
    ("finished", [], [], "ok", "passed"),
    ("finished", ["a/x"], [], "warn", "known failures"),
    ("finished", ["a/x", "a/y"], ["a/y"], "bad", "new failures"),
    ("running", [], [], "warn", "running"),
    ("running", ["a/x"], ["a/x"], "bad", "new failures"),
    ("aborted", [], [], "bad", "aborted"),
]


@pytest.mark.parametrize(("status", "failing", "new", "level", "label"), VERDICT_CASES)
def test_run_verdict(
    status: str, failing: list[str], new: list[str], level: str, label: str
) -> None:
    verdict = run_verdict(status, failing, new)
    assert (verdict.level, verdict.label) == (level, label)


def test_run_verdict_reasons_name_the_new_failures() -> None:
    assert run_verdict("finished", ["a/x", "a/y"], ["a/y"]).reason == "1 new failure: a/y"
    many = [f"t/{n}" for n in "dcba"]
    assert run_verdict("finished", many, many).reason == "4 new failures: t/a, t/b, t/c, ..."
    assert run_verdict("finished", ["a/x", "a/y"], []).reason == (
        "2 failing tests, each known to be flaky or already failing"
    )


# Verdict histories: per run, test_id -> its attempts. "steady" always passes.
FLIPPING = ["PASS", "FAIL", "PASS", "FAIL", "PASS", "FAIL"]
VERDICT_HISTORIES: list[tuple[str, list[dict[str, list[str]]], str, str, int]] = [
    # (name, runs, badge level, badge label, the Failed card's count in the last run)
    ("all passed", [{"t/a": ["PASS"]}, {"t/a": ["PASS"]}], "ok", "passed", 0),
    ("passed on retry", [{"t/a": ["PASS"]}, {"t/a": ["FAIL", "PASS"]}], "ok", "passed", 0),
    ("newly failing", [{"t/a": ["PASS"]}, {"t/a": ["FAIL"]}], "bad", "new failures", 1),
    ("an error is one failure", [{"t/a": ["PASS"]}, {"t/a": ["ERROR"]}], "bad", "new failures", 1),
    ("still failing", [{"t/a": ["FAIL"]}, {"t/a": ["FAIL"]}], "warn", "known failures", 1),
    ("first run fails", [{"t/a": ["FAIL"]}], "bad", "new failures", 1),
    (
        "added and failing",
        [{"t/a": ["PASS"]}, {"t/a": ["PASS"], "t/b": ["FAIL"]}],
        "bad",
        "new failures",
        1,
    ),
    # flips six times: flaky by its history, so its failure is a known one
    ("flaky", [{"t/f": [status]} for status in FLIPPING], "warn", "known failures", 1),
    (
        "flaky and new",
        [{"t/f": [s], "t/a": ["PASS" if i < 5 else "FAIL"]} for i, s in enumerate(FLIPPING)],
        "bad",
        "new failures",
        2,
    ),
]


@pytest.mark.parametrize(
    ("runs", "level", "label", "failed_card"),
    [case[1:] for case in VERDICT_HISTORIES],
    ids=[case[0] for case in VERDICT_HISTORIES],
)
def test_badge_gives_the_runs_verdict(
    ledger: Ledger,
    db_url: str,
    runs: list[dict[str, list[str]]],
    level: str,
    label: str,
    failed_card: int,
) -> None:
    for index, outcomes in enumerate(runs):
        with scripted_run(ledger, index, commit=f"c{index}") as run:
            record_test(run, "steady/s", "PASS")
            for test_id, attempts in outcomes.items():
                for status in attempts:
                    record_test(run, test_id, status)
    report = _build(db_url)
    assert (report.verdict.level, report.verdict.label) == (level, label)
    page = render_html(report)
    assert f'<span id="verdict" class="badge {level}" title="' in page
    assert f">{label}</span></h1>" in page
    assert f'<div class="k">Failed</div><div class="v">{failed_card}</div>' in page


def test_legend_explains_every_badge(history: str) -> None:
    legend = render_html(_build(history)).split('<section id="legend">')[1].split("</section>")[0]
    for level, label in [
        ("ok", "passed"),
        ("warn", "known failures"),
        ("warn", "running"),
        ("bad", "new failures"),
        ("bad", "aborted"),
    ]:
        assert f'<span class="badge {level}">{label}</span>' in legend


def test_flaky_tests_are_judged_once(history: str) -> None:
    """The flaky section and the comparison's flaky failures share one judgement of the suite's
    history: one read of the flaky windows (the ``counted_runs`` query) per report."""
    engine = sa.create_engine(history)
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "counted_runs" in statement:
            reads.append(statement)

    try:
        with engine.connect() as conn:
            sa.event.listen(conn, "before_cursor_execute", count)
            report = build_report(conn)
    finally:
        engine.dispose()
    assert report.comparison is not None and report.comparison.new_failures
    assert len(reads) == 1


@pytest.mark.parametrize(
    ("status", "level", "label"),
    [("PASS", "warn", "running"), ("FAIL", "bad", "new failures")],
)
def test_badge_of_a_run_still_recording(
    ledger: Ledger, db_url: str, status: str, level: str, label: str
) -> None:
    with scripted_run(ledger, 0) as finished:
        record_test(finished, "t/a", "PASS")
    running = scripted_run(ledger, 1)
    record_test(running, "t/a", status)
    running.flush(wait=True)
    report = _build(db_url)
    assert (report.run.status, report.verdict.level, report.verdict.label) == (
        "running",
        level,
        label,
    )
    running.finish()


# render/page's duration: six runs about 20 ms, then six about 100 ms (a lasting change, five
# times slower); steady/page's stays about 20 ms. Milliseconds: PostgreSQL keeps no more.
STEADY = [0.020, 0.021, 0.019, 0.020, 0.022, 0.018]
SLOWDOWN = [*STEADY, 0.100, 0.102, 0.098, 0.101, 0.099, 0.100]


def test_regressions_of_the_runs_tests_are_listed(ledger: Ledger, db_url: str) -> None:
    for index, secs in enumerate(SLOWDOWN):
        with scripted_run(
            ledger, index, start=START, suite="web", commit=f"c{index:02d}", run_key=f"w{index}"
        ) as run:
            record_test(run, "render/page", "PASS", duration_secs=secs)
            record_test(run, "steady/page", "PASS", duration_secs=STEADY[index % len(STEADY)])
    report = _build(db_url)
    assert report.regressions == [
        RunRegression(
            test_id="render/page",
            metric="duration",
            before="0.020 s",
            after="0.100 s",
            magnitude_pct=400.0,
            first_run_id=7,
            first_run_key="w6",
            commit_range="c05..c06",
            issue_code="PERF-CRITICAL-001",
            issue_status="OPEN",
            issue_priority="CRITICAL",
        )
    ]
    section = render_html(report).split('<section id="regressions">')[1].split("</section>")[0]
    assert "<code>render/page</code></td><td>duration</td>" in section
    assert '<td class="n">0.020 s</td><td class="n">0.100 s</td><td class="n">+400.0%</td>' in (
        section
    )
    assert '<code class="code">PERF-CRITICAL-001</code>' in section
    assert "steady/page" not in section
    # A run before the change has none.
    before = _build(db_url, "w5")
    assert before.regressions == []
    assert "No regression issue in this run's tests" in render_html(before)
