"""The HTML report in a real browser (headless Chromium via Playwright): no console or page
errors, every chart drawn from the data, and a 1,000-run history opening fast.

The data comes from the database but the page does not depend on which one, so these tests build
their histories in SQLite (the SQLite/PostgreSQL data assembly is covered in test_html.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.report.html import build_report, render_html
from tests.histories import scripted_run

from .test_html import record_history

# CI (TESTLEDGER_REQUIRE_BROWSER=1) fails the session if these skip.
pytestmark = pytest.mark.browser

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
CHARTS = ("pass_rate", "quality", "cost", "duration")


def _write_report(url: str, path: Path, history: int) -> Path:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            path.write_text(render_html(build_report(conn, history=history)), encoding="utf-8")
    finally:
        engine.dispose()
    return path


def _only_files(route: Any, errors: list[str]) -> None:
    if route.request.url.startswith("file:"):
        route.continue_()
    else:
        errors.append(f"network request: {route.request.url}")
        route.abort()


def _open(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Anything leaving the file would be a broken promise of a self-contained report.
    page.route("**/*", lambda route: _only_files(route, errors))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-render-ms]")
    return page, errors


def _chart_shapes(page: Any) -> dict[str, tuple[int, int]]:
    """Per chart drawn (the shared chart code, uPlot, on a canvas): the canvas's size."""
    return {
        name: tuple(
            page.eval_on_selector(f"#chart-{name} canvas", "c => [c.clientWidth, c.clientHeight]")
        )
        for name in CHARTS
        if page.locator(f"#chart-{name} canvas").count()
    }


def _series_length(page: Any, name: str) -> int:
    """How many runs the chart of ``name`` was given (uPlot's x values)."""
    return int(
        page.evaluate(
            "(name) => JSON.parse(document.getElementById('report-data').textContent)"
            ".metrics[name].length",
            name,
        )
    )


def test_small_report_draws_every_chart(browser: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    with Ledger(url, results_dir=tmp_path / "results") as ledger:
        record_history(ledger)
    page, errors = _open(browser, _write_report(url, tmp_path / "small.html", 100))
    shapes = _chart_shapes(page)
    # Quality has no values in this history: the chart says so instead of drawing a line.
    assert sorted(shapes) == ["cost", "duration", "pass_rate"]
    assert all(width > 300 and height > 100 for width, height in shapes.values()), shapes
    assert {name: _series_length(page, name) for name in shapes} == {
        "cost": 3,
        "duration": 3,
        "pass_rate": 3,
    }
    assert page.text_content("#chart-quality .plot") == "no data"
    # Hovering a chart names the run under the cursor.
    over = page.locator("#chart-pass_rate .u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] - 1, over["y"] + over["height"] / 2)
    assert (page.text_content("#chart-pass_rate .tip") or "").startswith("run #3")
    assert page.locator("#failures .issue").count() == 1
    assert errors == []
    page.screenshot(path=str(tmp_path / "small.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def big_history(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("big")
    url = f"sqlite:///{folder / 'big.db'}"
    with Ledger(url, results_dir=folder / "results") as ledger:
        for index in range(1000):
            # Issue detection, two thirds of the cost of recording a run (a minute for these
            # 1,000), runs on the last one only: it is the latest run's failures, grouped into
            # their issue, that the report shows; what is checked here is its size and drawing.
            detect = index == 999
            with scripted_run(
                ledger, index, start=START, suite="big", run_key=f"k{index}", detect_issues=detect
            ) as run:
                run.record(
                    test_id="t/a",
                    tool_name="t",
                    variation="a",
                    status="FAIL" if index % 3 == 0 else "PASS",
                    duration_secs=1 + index % 7,
                    cost_usd=0.01 * (index % 5),
                )
    return url


@pytest.mark.slow
def test_thousand_run_report_is_small_and_fast(
    browser: Any, big_history: str, tmp_path: Path
) -> None:
    path = _write_report(big_history, tmp_path / "big.html", 1000)
    size = path.stat().st_size
    page, errors = _open(browser, path)
    render_ms = float(page.get_attribute("body", "data-render-ms"))
    print(f"\n1,000-run report: {size / 1024:.0f} KiB, charts rendered in {render_ms:.1f} ms")
    assert errors == []
    assert size < 400_000
    assert render_ms < 2000
    shapes = _chart_shapes(page)
    assert sorted(shapes) == ["cost", "duration", "pass_rate"]  # no watcher quality recorded
    assert all(width > 300 and height > 100 for width, height in shapes.values()), shapes
    assert {name: _series_length(page, name) for name in shapes} == {
        "cost": 1000,
        "duration": 1000,
        "pass_rate": 1000,
    }
    page.close()
