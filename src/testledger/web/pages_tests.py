"""A test's page, trends, flaky tests, regressions and cost; as pages and as JSON under
``/api/v1``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from testledger import api
from testledger.errors import ConfigError
from testledger.web.auth import require_read
from testledger.web.cache import remembered
from testledger.web.charts import charts_of_test, trend_charts
from testledger.web.errors import ERROR_RESPONSES, MAX_NAME, NO_NUL, Name
from testledger.web.render import page
from testledger.web.settings import ledger_of

__all__ = ["api_router", "page_router"]

api_router = APIRouter(
    prefix="/api/v1",
    tags=["analysis"],
    dependencies=[Depends(require_read)],
    responses=ERROR_RESPONSES,
)
page_router = APIRouter(include_in_schema=False, dependencies=[Depends(require_read)])

SPLITS = ("branch", "suite", "tool", "provider", "model")
#: The regression issues a test page lists: every status but WONT_FIX.
STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED")
MAX_LINES = 6
#: The whole ledger's regression analysis is kept while the latest run stays as it was (a new
#: run changes the key); a day at most, so that a changed configuration shows in time.
ANALYSIS_TTL_SECS = 24 * 3600.0
TestRef = Annotated[
    str,
    Query(
        min_length=1,
        max_length=MAX_NAME,
        pattern=NO_NUL,
        description="a test id, tool/variation, or a unique part of one",
    ),
]


@api_router.get("/trend", summary="Pass rate, quality, cost, duration and tokens over runs")
def trend_json(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    branch: Name = None,
    suite: Name = None,
    tool: Name = None,
    provider: Name = None,
    model: Name = None,
) -> Any:
    found = api.trend(
        ledger_of(request),
        limit=limit,
        branch=branch,
        suite=suite,
        tool=tool,
        provider=provider,
        model=model,
    )
    return found.as_json()


@api_router.get("/tests/history", summary="One test's last runs, newest first")
def test_history_json(
    request: Request,
    id: TestRef,
    limit: int = Query(30, ge=1, le=500),
    branch: Name = None,
) -> Any:
    return api.history(ledger_of(request), id, limit=limit, branch=branch or None).as_json()


@api_router.get("/tests/context", summary="One test's results, open issues and change points")
def test_context_json(request: Request, id: TestRef) -> Any:
    return api.test_context(ledger_of(request), id).as_json()


@api_router.get("/tests/series", summary="One test's last runs as its charts draw them")
def test_series_json(
    request: Request,
    id: TestRef,
    branch: Name = None,
    limit: int = Query(60, ge=1, le=1000),
) -> Any:
    return [
        p.as_json() for p in api.series_of_test(ledger_of(request), id, branch=branch, limit=limit)
    ]


@api_router.get("/tests/observations", summary="What watchers said about one test's results")
def test_observations_json(request: Request, id: TestRef) -> Any:
    return [o.as_json() for o in api.observations_of_test(ledger_of(request), id)]


@api_router.get("/flaky", summary="Flaky tests with their evidence, most flaky first")
def flaky_json(request: Request, suite: Name = None, branch: Name = None) -> Any:
    found, _ = _flaky(request, suite, branch)
    return [f.as_json() for f in found]


def _flaky(
    request: Request, suite: str | None, branch: str | None
) -> tuple[list[api.FlakyTestReport], float]:
    """The flaky tests, judged at most once a minute per filter: judging reads every test's
    recent history (seconds on a large ledger), and a dashboard asks often."""
    ledger = ledger_of(request)
    return remembered(
        request.app,
        ("flaky", suite, branch),
        lambda: api.find_flaky(ledger, suite=suite, branch=branch),
    )


@api_router.get(
    "/regressions",
    summary="Lasting changes in tests' metrics, as issue detection recorded them",
    description="What the Regressions page shows: the regression issues detection recorded "
    "after each run (open and in progress; resolved too with `resolved=true`), each with its "
    "evidence. Reading them costs milliseconds; the change-point analysis over every series "
    "again is `/api/v1/regressions/analysis`.",
)
def regressions_json(
    request: Request,
    suite: Name = None,
    branch: Name = None,
    metric: Name = None,
    resolved: bool = False,
) -> Any:
    found = api.regression_issues(
        ledger_of(request),
        statuses=STATUSES if resolved else STATUSES[:2],
        suite=suite,
        branch=branch,
        metric=metric,
    )
    return {"source": "recorded", "regressions": [dataclasses.asdict(r) for r in found]}


@api_router.get(
    "/regressions/analysis",
    summary="The change-point analysis over tests' metric series, run again",
    description="Change points confirmed by a t-test in each test's duration, memory, CPU, "
    "tokens, cost and watcher quality, improvements included. With `test`, that test's series "
    "alone (a few hundred milliseconds); without, every series of the ledger (seconds on a "
    "large one). Either is computed once per state of the ledger's latest run and then served "
    "from the app's memory until another run is recorded; `computed_at` (seconds since the "
    "epoch) says when.",
)
def regressions_analysis_json(
    request: Request,
    suite: Name = None,
    branch: Name = None,
    metric: Name = None,
    test: Annotated[str | None, Query(max_length=MAX_NAME, pattern=NO_NUL)] = None,
) -> Any:
    ledger = ledger_of(request)

    def analyse() -> dict[str, Any]:
        report = api.find_regressions(
            ledger, suite=suite, branch=branch, metric=metric, test=test or None
        )
        return dict(report.as_json())

    latest = api.list_runs(ledger, limit=1)
    state = (latest[0].id, latest[0].status, latest[0].total_tests) if latest else None
    found, computed_at = remembered(
        request.app,
        ("regressions", suite, branch, metric, test or None, state),
        analyse,
        ttl=ANALYSIS_TTL_SECS,
    )
    return {"computed_at": computed_at, **found}


@api_router.get("/cost", summary="Cost and tokens per run, tool, provider and model")
def cost_json(
    request: Request,
    runs: int = Query(20, ge=1, le=500),
    suite: Name = None,
    branch: Name = None,
) -> Any:
    return api.cost(ledger_of(request), runs=runs, suite=suite, branch=branch).as_json()


# Pages


@page_router.get("/tests/{test_id:path}", response_class=HTMLResponse)
def test_page(request: Request, test_id: str) -> Response:
    """One test's history. Its charts come from one indexed query of its own results and the
    change points from the regression issues detection recorded (not the watcher's context,
    which reads the whole suite's recent history)."""
    ledger = ledger_of(request)
    history = api.history(ledger, test_id, limit=60)
    branch = history.entries[0].branch if history.entries else None
    series = api.series_of_test(ledger, history.test_id, branch=branch)
    changes = [
        r
        for r in api.regression_issues(ledger, statuses=STATUSES, branch=branch)
        if r.test_id == history.test_id
    ]
    return page(
        request,
        "test.html.j2",
        history=history,
        branch=branch,
        strip=list(reversed(history.entries)),
        charts=charts_of_test(series, changes),
        changes=changes,
        flaky=_flakiness(request, history.test_id),
        observations=api.observations_of_test(
            ledger, history.test_id, run_ids=[entry.run_id for entry in history.entries]
        ),
    )


def _flakiness(request: Request, test_id: str) -> Any:
    """One test's flaky verdict, judged at most once a minute (as the Flaky page's are): the
    judging reads the test's suite's recent runs, about a hundred milliseconds on a large
    PostgreSQL ledger, and a test's page is opened again and again."""
    ledger = ledger_of(request)
    found, _ = remembered(
        request.app, ("flaky-test", test_id), lambda: api.flakiness_of_test(ledger, test_id)
    )
    return found


def _trend_lines(
    ledger: api.Ledger, split: str | None, limit: int, chosen: dict[str, str | None]
) -> dict[str, api.Trend]:
    if not split:
        return {"all runs": api.trend(ledger, limit=limit, **chosen)}
    if split not in SPLITS:
        raise ConfigError(f"split by one of {', '.join(SPLITS)}, not {split!r}")
    dims = api.dimensions(ledger)
    values = getattr(dims, {"branch": "branches"}.get(split, split + "s"))[:MAX_LINES]
    return {value: api.trend(ledger, limit=limit, **{**chosen, split: value}) for value in values}


@page_router.get("/trends", response_class=HTMLResponse)
def trends_page(
    request: Request,
    limit: int = Query(50, ge=2, le=1000),
    branch: str | None = None,
    suite: str | None = None,
    tool: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    split: str | None = None,
) -> Response:
    ledger = ledger_of(request)
    chosen = {
        "branch": branch or None,
        "suite": suite or None,
        "tool": tool or None,
        "provider": provider or None,
        "model": model or None,
    }
    lines = _trend_lines(ledger, split or None, limit, chosen)
    return page(
        request,
        "trends.html.j2",
        charts=trend_charts(lines),
        lines=lines,
        dims=api.dimensions(ledger),
        splits=SPLITS,
        limit=limit,
    )


@page_router.get("/flaky", response_class=HTMLResponse)
def flaky_page(request: Request, suite: str | None = None, branch: str | None = None) -> Response:
    ledger = ledger_of(request)
    found, _ = _flaky(request, suite or None, branch or None)
    return page(request, "flaky.html.j2", flaky=found, dims=api.dimensions(ledger))


@page_router.get("/regressions", response_class=HTMLResponse)
def regressions_page(
    request: Request,
    suite: str | None = None,
    branch: str | None = None,
    metric: str | None = None,
    resolved: str | None = None,
) -> Response:
    """The regressions issue detection recorded (reading them costs milliseconds; finding them
    again over every series costs seconds: that is ``/api/v1/regressions/analysis``)."""
    ledger = ledger_of(request)
    statuses = ("OPEN", "IN_PROGRESS", "RESOLVED") if resolved else ("OPEN", "IN_PROGRESS")
    found = api.regression_issues(
        ledger,
        statuses=statuses,
        suite=suite or None,
        branch=branch or None,
        metric=metric or None,
    )
    return page(
        request,
        "regressions.html.j2",
        regressions=found,
        dims=api.dimensions(ledger),
        metrics=sorted(api.REGRESSION_METRICS),
    )


@page_router.get("/cost", response_class=HTMLResponse)
def cost_page(
    request: Request,
    runs: int = Query(30, ge=1, le=500),
    suite: str | None = None,
    branch: str | None = None,
) -> Response:
    ledger = ledger_of(request)
    report = api.cost(ledger, runs=runs, suite=suite or None, branch=branch or None)
    ordered = list(reversed(report.runs))
    chart = {
        "id": "cost-runs",
        "title": "cost per run ($)",
        "x": [round(r.run_timestamp.timestamp(), 3) for r in ordered],
        "series": [
            {
                "label": "cost $",
                "values": [r.total_cost_usd for r in ordered],
                "runs": [r.run_id for r in ordered],
            }
        ],
        "marks": [],
        "link": "/runs/",
        "budget": report.budget_usd,
    }
    return page(
        request, "cost.html.j2", report=report, cost_chart=chart, dims=api.dimensions(ledger)
    )
