"""The web app in a real browser (Debian's chromium driven by Playwright) against a served
scripted history: every page opens with no console error and no request leaving the machine,
charts drawn, filters and paging work, a click on a chart opens its run, a live run's page
updates while the run records, an issue's status changed from its page, and a test named like a
script tag shown as text. Screenshots go to $TESTLEDGER_SCREENSHOTS (else a temporary folder);
the folder is printed.

The pages do not depend on the database kind (the page and API tests run on both), so the
history is recorded in SQLite here.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from testledger import Ledger, api
from tests.histories import record_test

from .scenario import XSS, XSS_TEST, record_scenario

# CI (TESTLEDGER_REQUIRE_BROWSER=1) fails the session if these skip.
pytestmark = pytest.mark.browser

CHART_PAGES = {"/trends", "/tests/calc/slow", "/cost"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    """The app on a free port in a thread of this process (uvicorn), with its ledger."""

    def __init__(self, folder: Path) -> None:
        import uvicorn

        from testledger.web.app import create_app
        from testledger.web.settings import WebSettings

        self.url = f"sqlite:///{folder / 'web.db'}"
        self.results = folder / "results"
        with Ledger(self.url, results_dir=self.results) as ledger:
            record_scenario(ledger)
            self.write_token = api.create_token(ledger, "write", name="browser").secret
        self.ledger = Ledger(self.url, results_dir=self.results)
        app = create_app(self.ledger, WebSettings(allow_writes=True))
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.ledger.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    pytest.importorskip("uvicorn")
    server = Served(tmp_path_factory.mktemp("served"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("TESTLEDGER_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nweb app screenshots: {folder}")
    return folder


class Tab:
    """One browser page that records console errors, page errors, dialogs and any request
    leaving the served app."""

    def __init__(self, browser: Any, served: Served) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.base = served.base
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.route("**/*", self._only_local)

    def _only_local(self, route: Any) -> None:
        if route.request.url.startswith(self.base):
            route.continue_()
        else:
            self.errors.append(f"request left the machine: {route.request.url}")
            route.abort()

    def open(self, path: str) -> Any:
        # "load": every script has run (charts are drawn on DOMContentLoaded); the live page
        # polls, so the network is never idle there.
        return self.page.goto(self.base + path, wait_until="load")

    def shot(self, folder: Path, name: str) -> None:
        self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Any, served: Served) -> Iterator[Tab]:
    opened = Tab(browser, served)
    yield opened
    assert opened.errors == []
    opened.context.close()


def _issue_code(served: Served, title_part: str) -> str:
    issues = api.list_issues(served.ledger)
    return next(i.code for i in issues if title_part in i.title)


def _shot_name(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def _charts_drawn(tab: Tab) -> int:
    tab.page.wait_for_selector("body[data-charts]")
    sizes = tab.page.eval_on_selector_all(
        ".plot canvas", "cs => cs.map(c => [c.clientWidth, c.clientHeight])"
    )
    assert sizes and all(w > 100 and h > 50 for w, h in sizes), sizes
    return len(sizes)


@pytest.mark.slow
def test_every_page_opens_cleanly(tab: Tab, served: Served, screenshots: Path) -> None:
    code = _issue_code(served, "calc/slow")
    paths = [
        "/runs",
        "/runs/12",
        "/runs/12/live",
        "/compare?current=12&baseline=6",
        "/trends",
        "/trends?split=branch",
        "/tests/calc/slow",
        "/tests/" + quote(XSS_TEST),
        "/issues",
        f"/issues/{code}",
        "/flaky",
        "/regressions",
        "/cost",
        "/login",
    ]
    for path in paths:
        response = tab.open(path)
        assert response.status == 200, path
        if path.split("?")[0] in CHART_PAGES or path.startswith("/issues/"):
            assert _charts_drawn(tab) >= 1, path
        tab.shot(screenshots, _shot_name(path))
        assert tab.errors == [], path
    tab.open("/trends")
    assert _charts_drawn(tab) == 5  # pass rate, quality, cost, duration, tokens


def test_script_named_test_is_shown_as_text(tab: Tab) -> None:
    tab.open("/tests/" + quote(XSS_TEST))
    assert tab.page.text_content("h1.test-title") == XSS_TEST
    tab.open("/runs/12")
    names = tab.page.locator("#failures a.test").all_text_contents()
    assert XSS_TEST in names
    assert (
        tab.page.evaluate("document.querySelectorAll('script:not([src]):not([type])').length") == 0
    )
    assert XSS in tab.page.text_content("#failures")


def test_filters_and_paging(tab: Tab, screenshots: Path) -> None:
    tab.open("/runs?limit=5")
    first = tab.page.locator("#runs-table tbody tr").first.get_attribute("data-run-id")
    assert first == "18"
    tab.page.click("#older")
    tab.page.wait_for_url(re.compile(r".*before=14$"))
    ids = [r.get_attribute("data-run-id") for r in tab.page.locator("#runs-table tbody tr").all()]
    assert ids == ["13", "12", "11", "10", "9"]
    tab.page.click("#newer")
    tab.page.wait_for_url(re.compile(r".*after=13$"))
    assert tab.page.locator("#runs-table tbody tr").first.get_attribute("data-run-id") == "18"
    tab.page.select_option("#run-filters select[name=branch]", "feature/x")
    tab.page.click("#run-filters button[type=submit]")
    tab.page.wait_for_url(re.compile(r".*branch=feature%2Fx.*"))
    assert tab.page.locator("#runs-table tbody tr").count() == 3
    tab.shot(screenshots, "runs-filtered")


def test_a_click_on_a_trend_point_opens_its_run(tab: Tab) -> None:
    tab.open("/trends?suite=web&branch=main")
    _charts_drawn(tab)
    over = tab.page.locator("#trend-pass_rate .u-over")
    box = over.bounding_box()
    # The right edge of the plot: the newest run of main in the suite.
    tab.page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    assert "run #12" in (tab.page.text_content("#trend-pass_rate .tip") or "")
    tab.page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    tab.page.wait_for_url(re.compile(r".*/runs/12$"))


def test_live_run_page_updates_while_it_records(
    tab: Tab, served: Served, screenshots: Path
) -> None:
    run = served.ledger.start_run(
        branch="main", suite="live", detect_environment=False, expected_tests=4, batch_size=1
    )
    try:
        record_test(run, "live/one", "PASS")
        run.flush(wait=True)
        run_id = api.list_runs(served.ledger, suite="live", limit=1)[0].id
        tab.open(f"/runs/{run_id}/live")
        assert tab.page.text_content("#live-done").strip() == "1 / 4"
        record_test(run, "live/two", "FAIL", error_message=f"broke {XSS}")
        record_test(run, "live/three", "PASS")
        run.flush(wait=True)
        tab.page.wait_for_selector("#live[data-done='3']", timeout=10_000)
        assert tab.page.text_content("#live-fail").strip() == "1"
        assert "live/two" in tab.page.text_content("#live-failures")
        assert tab.page.get_attribute("#live-progress", "value") == "0.75"
        tab.shot(screenshots, "live-running")
        record_test(run, "live/four", "PASS")
    finally:
        run.finish()
    tab.page.wait_for_selector("#live[data-status='finished']", timeout=10_000)
    assert tab.page.text_content("#live-done").strip() == "4 / 4"
    tab.shot(screenshots, "live-finished")


def test_issue_status_changed_from_its_page(tab: Tab, served: Served, screenshots: Path) -> None:
    code = _issue_code(served, "ZeroDivisionError")
    tab.open(f"/login?next=/issues/{code}")
    tab.page.fill("input[name=token]", served.write_token)
    tab.page.click("form.stack button[type=submit]")
    tab.page.wait_for_url(re.compile(f".*/issues/{code}$"))
    tab.page.select_option("#issue-form select[name=status]", "RESOLVED")
    tab.page.fill("#issue-form textarea[name=resolution]", "guarded the division <ok>")
    tab.page.click("#issue-form button[type=submit]")
    tab.page.wait_for_url(re.compile(f".*/issues/{code}\\?saved=1$"))
    assert tab.page.text_content("#issue-status") == "RESOLVED"
    assert "guarded the division <ok>" in tab.page.text_content("#resolution")
    assert api.issue_detail(served.ledger, code).issue.status == "RESOLVED"
    tab.shot(screenshots, "issue-resolved")
