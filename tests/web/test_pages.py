"""The web app's pages and read endpoints through httpx over its ASGI interface, on SQLite and
PostgreSQL: every page, keyset paging and filters, hostile strings shown as text, the JSON
endpoints, 404s and 400s."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from .scenario import RUNS, XSS, XSS_TEST
from .web_support import web_client


@pytest.fixture(scope="module")
def client(scenario: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with web_client(scenario, tmp_path_factory.mktemp("results")) as opened:
        yield opened


def _issue_codes(client: TestClient) -> dict[str, str]:
    """Issue title -> code."""
    return {i["title"]: i["code"] for i in client.get("/api/v1/issues").json()}


def _code_of(client: TestClient, title_part: str) -> str:
    return next(code for title, code in _issue_codes(client).items() if title_part in title)


PAGES = [
    ("/runs", "Runs"),
    ("/runs/latest", "Run #18"),
    ("/runs/main-11", "Run #12"),
    ("/runs/12/live", "Run #12 live"),
    ("/compare", "Compare two runs"),
    ("/compare?current=12&baseline=1", "#12 against #1"),
    ("/trends", "Trends"),
    ("/trends?split=branch", "feature/x"),
    ("/trends?suite=web&tool=llm&provider=openai&model=gpt-4o", "Trends"),
    ("/tests/calc/slow", "calc/slow"),
    ("/issues", "Issues"),
    ("/flaky", "net/fetch"),
    ("/regressions", "calc/slow"),
    ("/cost", "gpt-4o"),
    ("/login", "Log in"),
]


@pytest.mark.parametrize(("path", "expected"), PAGES)
def test_every_page_renders(client: TestClient, path: str, expected: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert expected in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def test_home_goes_to_the_runs(client: TestClient) -> None:
    assert client.get("/").headers["location"] == "/runs"


def test_run_page_groups_failures_by_issue_with_badges(client: TestClient) -> None:
    html = client.get("/runs/12").text
    div = _code_of(client, "ZeroDivisionError")
    xss = _code_of(client, "alert(1)")
    # calc/div broke in run 5: known by run 12; the XSS test first failed in run 12.
    assert f'data-issue="{div}" data-badge="known"' in html
    assert f'data-issue="{xss}" data-badge="new"' in html
    assert 'id="export-json" href="/api/v1/runs/12"' in html
    assert 'id="export-junit" href="/api/v1/runs/12/junit"' in html
    assert "#12 against #11" in html  # the previous run of its branch and suite
    assert "answer quoted &lt;script&gt;" in html  # the watcher's observation
    assert 'id="slowest"' in html and "calc/slow" in html
    chosen = client.get("/runs/12?baseline=2").text
    assert "#12 against #2" in chosen


def test_issue_page_explains_the_fingerprint(client: TestClient) -> None:
    code = _code_of(client, "ZeroDivisionError")
    html = client.get(f"/issues/{code}").text
    assert "The latest failure (result" in html
    assert "calc/div" in html and "8×" in html  # 8 occurrences, runs 5 to 12
    assert 'id="issue-occurrences-data"' in html
    assert 'id="issue-form"' not in html  # read-only app: no edit form


def test_test_page_marks_the_change_point(client: TestClient) -> None:
    html = client.get("/tests/calc/slow").text
    # The duration chart's data: 12 runs, one change point from run 7 on.
    assert '"marks":[' in html and '"title":"duration (s)"' in html
    assert html.count('class="cell st-pass"') == 12
    assert _code_of(client, "calc/slow") in html


def test_test_page_gives_the_flaky_evidence(client: TestClient) -> None:
    html = client.get("/tests/net/fetch").text
    assert '<span class="badge b-flaky">flaky</span> score' in html
    assert "Not flaky" in client.get("/tests/calc/add").text


def test_regressions_page_lists_the_recorded_regressions(client: TestClient) -> None:
    html = client.get("/regressions", params={"metric": "duration"}).text
    assert _code_of(client, "calc/slow") in html and "+200.0%" in html
    assert "llm/gpt-4o" not in html  # a cost regression, filtered out
    assert "llm/gpt-4o" in client.get("/regressions").text


def test_the_regression_analysis_is_bounded_or_remembered(client: TestClient) -> None:
    """The JSON of the Regressions page reads what detection recorded; the analysis run again
    is one test's series, or the whole ledger's once until another run is recorded."""
    every = client.get("/api/v1/regressions").json()["regressions"]
    assert {"calc/slow", "llm/gpt-4o"} <= {r["test_id"] for r in every}
    one = client.get("/api/v1/regressions/analysis", params={"test": "calc/slow"}).json()
    assert {c["test_id"] for c in one["changes"]} == {"calc/slow"}
    first = client.get("/api/v1/regressions/analysis", params={"metric": "duration"}).json()
    assert "calc/slow" in {c["test_id"] for c in first["changes"]}
    again = client.get("/api/v1/regressions/analysis", params={"metric": "duration"}).json()
    assert again["computed_at"] == first["computed_at"] is not None  # from the app's memory
    refused = client.get("/api/v1/regressions/analysis", params={"test": "x\x00"})
    assert refused.status_code in (400, 422)


def test_hostile_strings_are_shown_as_text(client: TestClient) -> None:
    pages = [
        client.get("/runs/12").text,
        client.get("/tests/" + quote(XSS_TEST)).text,
        client.get("/issues/" + _code_of(client, "alert(1)")).text,
        client.get("/issues").text,
        client.get("/runs/16").text,
    ]
    for html in pages:
        assert XSS not in html
        assert "\x1b" not in html and "\x00" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1]
    assert "\\x1b[31mred\\x1b[0m" in pages[0]  # the terminal escape, visible
    assert "\\x1b[31mred" in pages[4]


def test_runs_are_paged_by_keyset_both_ways(client: TestClient) -> None:
    seen: list[int] = []
    before = None
    pages = []
    while True:
        params = {"limit": 5} if before is None else {"limit": 5, "before": before}
        page = client.get("/api/v1/runs", params=params).json()
        pages.append(page)
        seen += [run["id"] for run in page["runs"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == list(range(RUNS, 0, -1))
    assert [len(p["runs"]) for p in pages] == [5, 5, 5, 3]
    assert pages[0]["prev_after"] is None and pages[1]["prev_after"] == 13
    # Back from the last page: the same pages, newest first.
    back = client.get("/api/v1/runs", params={"limit": 5, "after": 3}).json()
    assert [r["id"] for r in back["runs"]] == [8, 7, 6, 5, 4]
    assert back["next_before"] == 4 and back["prev_after"] == 8
    html = client.get("/runs", params={"limit": 5, "before": 14}).text
    assert 'id="older" href="/runs?limit=5&amp;before=9"' in html
    assert 'id="newer" href="/runs?limit=5&amp;after=13"' in html


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"branch": "feature/x"}, [15, 14, 13]),
        ({"suite": "other"}, [18, 17, 16]),
        ({"suite": "web", "branch": "main", "limit": 3}, [12, 11, 10]),
        ({"status": "finished", "limit": 2}, [18, 17]),
        ({"status": "running"}, []),
        ({"since": "2025-10-02"}, [18, 17, 16]),
        ({"until": "2025-10-01", "suite": "other"}, []),
    ],
)
def test_runs_filters(client: TestClient, params: dict[str, object], ids: list[int]) -> None:
    found = client.get("/api/v1/runs", params=params).json()
    assert [run["id"] for run in found["runs"]] == ids
    html = client.get("/runs", params=params).text
    assert html.count("<tr data-run-id=") == len(ids)


def test_bad_filters_are_a_clear_400(client: TestClient) -> None:
    response = client.get("/api/v1/runs", params={"status": "sideways"})
    assert response.status_code == 422  # the API's statuses are an enum of its schema
    assert "'running', 'finished' or 'aborted'" in response.json()["detail"][0]["msg"]
    page = client.get("/runs", params={"status": "sideways"})
    assert page.status_code == 400 and "unknown run status &#39;sideways&#39;" in page.text
    page = client.get("/runs", params={"since": "yesterday"})
    assert page.status_code == 400 and "not a date (YYYY-MM-DD)" in page.text
    assert client.get("/api/v1/runs", params={"limit": 0}).status_code == 422
    assert client.get("/trends", params={"split": "colour"}).status_code == 400


@pytest.mark.parametrize(
    "path", ["/runs?branch=%00", "/tests/a%00b", "/api/v1/runs/x%00", "/issues?tool=%00"]
)
def test_nul_in_the_address_is_refused(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.text


def test_missing_things_are_404(client: TestClient) -> None:
    assert client.get("/api/v1/runs/999").json() == {"detail": "no run with id or key 999"}
    assert client.get("/runs/999").status_code == 404
    assert client.get("/issues/NOPE-1").status_code == 404
    assert client.get("/tests/no/such/test").status_code == 404
    assert client.get("/api/v1/runs", params={"before": 999}).status_code == 404


def test_json_endpoints(client: TestClient) -> None:
    run = client.get("/api/v1/runs/12").json()
    assert run["run"]["id"] == 12 and len(run["failing"]) == 2
    extras = client.get("/api/v1/runs/12/extras").json()
    badges = extras["badges"]
    assert badges[_code_of(client, "alert(1)")] == "new"
    assert badges[_code_of(client, "ZeroDivisionError")] == "known"
    assert extras["slowest"][0]["test_id"] == "calc/slow"
    failures = client.get("/api/v1/runs/12/failures").json()
    assert failures["failures"] == 2
    trend = client.get("/api/v1/trend", params={"suite": "web", "branch": "main"}).json()
    assert len(trend["points"]) == 12
    history = client.get(
        "/api/v1/tests/history", params={"id": "calc/div", "branch": "main"}
    ).json()
    assert [e["status"] for e in history["entries"][:2]] == ["FAIL", "FAIL"]
    series = client.get("/api/v1/tests/series", params={"id": "calc/slow", "branch": "main"})
    assert [p["duration_secs"] for p in series.json()] == [3.0] * 6 + [1.0] * 6
    context = client.get("/api/v1/tests/context", params={"id": "calc/slow"}).json()
    assert [c["metric"] for c in context["changes"]] == ["duration"]
    observations = client.get("/api/v1/tests/observations", params={"id": "llm/gpt-4o"}).json()
    assert observations[0]["quality_score"] == 4
    assert "net/fetch" in {f["test_id"] for f in client.get("/api/v1/flaky").json()}
    regressions = client.get("/api/v1/regressions", params={"metric": "duration"}).json()
    assert regressions["source"] == "recorded"
    assert "calc/slow" in {r["test_id"] for r in regressions["regressions"]}
    cost = client.get("/api/v1/cost", params={"suite": "web"}).json()
    assert {g["name"] for g in cost["by_model"]} == {"gpt-4o", "claude", None}
    compare = client.get("/api/v1/compare", params={"current": 12, "baseline": 11}).json()
    assert [t["test_id"] for t in compare["new_failures"]] == [XSS_TEST]
    dims = client.get("/api/v1/dimensions").json()
    assert dims["suites"] == ["other", "web"] and dims["branches"] == ["feature/x", "main"]
    code = _code_of(client, "ZeroDivisionError")
    issue = client.get(f"/api/v1/issues/{code}").json()
    assert issue["affected_tests"] == {"calc/div": 8}
    explained = client.get(f"/api/v1/results/{run['failing'][0]['result_id']}/explain").json()
    assert explained["components"]


def test_junit_export_reads_back(client: TestClient) -> None:
    response = client.get("/api/v1/runs/12/junit")
    assert response.headers["content-type"].startswith("application/xml")
    suite = ET.fromstring(response.content)
    assert suite.get("tests") == "7" and suite.get("failures") == "2"
    failing = {case.get("file") for case in suite if case.find("failure") is not None}
    assert failing == {"calc/div", XSS_TEST}
    text = response.text
    assert "\x1b" not in text and "\\x1b[31m" in text


def test_live_run_api_and_page(client: TestClient) -> None:
    live = client.get("/api/v1/runs/12/live").json()
    assert live["counts"] == {"PASS": 5, "FAIL": 2} and live["done"] == 7
    assert live["status"] == "finished" and live["progress"] is None
    newest = live["last_result_id"]
    assert client.get("/api/v1/runs/12/live", params={"after": newest}).json()["failures"] == []
    fragment = client.get("/runs/12/live/fragment").text
    assert 'id="live"' in fragment and "hx-trigger" not in fragment  # finished: no polling


def test_openapi_documents_the_read_endpoints(client: TestClient) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/runs",
        "/api/v1/runs/{run}",
        "/api/v1/runs/{run}/live",
        "/api/v1/runs/{run}/junit",
        "/api/v1/trend",
        "/api/v1/issues",
        "/api/v1/issues/{code}",
        "/api/v1/flaky",
        "/api/v1/regressions",
        "/api/v1/regressions/analysis",
        "/api/v1/cost",
        "/api/v1/compare",
        "/api/v1/tests/history",
    ):
        assert path in paths
    assert not any(p.startswith("/runs") for p in paths)  # pages are not API


def test_static_assets_are_served_locally(client: TestClient) -> None:
    html = client.get("/trends").text
    assert "http://" not in html.replace('"http://', "") and "https://" not in html
    for asset in ("vendor/uPlot.iife.min.js", "vendor/htmx.min.js", "charts.js", "app.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    # FastAPI's interactive docs would load their scripts from a CDN: not served.
    assert client.get("/api/docs").status_code == 404


def test_serve_command_is_listed(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from testledger.cli.app import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0 and "--allow-writes" in result.output
