"""Runs: the list (filters, keyset pages), one run, a live run, comparing two runs; as pages and
as JSON under ``/api/v1``."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from testledger import api
from testledger.errors import ConfigError, NotFound
from testledger.web.auth import require_read
from testledger.web.errors import ERROR_RESPONSES, Name, Ref, RowId, RunStatusName
from testledger.web.render import page
from testledger.web.settings import ledger_of

__all__ = ["api_router", "page_router"]

api_router = APIRouter(
    prefix="/api/v1",
    tags=["runs"],
    dependencies=[Depends(require_read)],
    responses=ERROR_RESPONSES,
)
page_router = APIRouter(include_in_schema=False, dependencies=[Depends(require_read)])

RunRef = str  # an id, a run key, or "latest"


def _filters(
    suite: str | None,
    branch: str | None,
    status: str | None,
    since: date | None,
    until: date | None,
) -> api.RunFilters:
    return api.RunFilters(
        suite=suite or None,
        branch=branch or None,
        status=status or None,
        since=datetime.combine(since, time.min, timezone.utc) if since else None,
        until=datetime.combine(until, time.max, timezone.utc) if until else None,
    )


def _day(value: str | None) -> date | None:
    """A date filter from a form: empty is none, anything but YYYY-MM-DD a clear 400."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"not a date (YYYY-MM-DD): {value!r}") from None


@api_router.get("/runs", summary="Runs, newest first, one keyset page at a time")
def runs_json(
    request: Request,
    suite: Name = None,
    branch: Name = None,
    status: RunStatusName | None = None,
    since: date | None = None,
    until: date | None = None,
    before: RowId = None,
    after: RowId = None,
    limit: int = Query(50, ge=1, le=200),
) -> Any:
    where = _filters(suite, branch, status, since, until)
    found = api.runs_page(ledger_of(request), where, before=before, after=after, limit=limit)
    return found.as_json()


@api_router.get("/dimensions", summary="The suites, branches, tools, providers and models")
def dimensions_json(request: Request) -> Any:
    return api.dimensions(ledger_of(request)).as_json()


@api_router.get("/runs/{run}", summary="One run (id, key or 'latest') with its failing tests")
def run_json(request: Request, run: Ref) -> Any:
    return api.show_run(ledger_of(request), run).as_json()


@api_router.get("/runs/{run}/extras", summary="A run's CI link, top tests, badges, observations")
def run_extras_json(request: Request, run: Ref) -> Any:
    return api.run_extras(ledger_of(request), run).as_json()


@api_router.get("/runs/{run}/failures", summary="A run's failures grouped by issue")
def run_failures_json(request: Request, run: Ref, limit: int = Query(20, ge=1, le=500)) -> Any:
    return api.run_failures(ledger_of(request), run, limit=limit).as_json()


@api_router.get("/runs/{run}/live", summary="A recording run's counts, progress and new failures")
def run_live_json(request: Request, run: Ref, after: RowId = None) -> Any:
    return api.live_run(ledger_of(request), run, after=after).as_json()


@api_router.get(
    "/runs/{run}/junit",
    summary="A run as JUnit XML",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def run_junit(request: Request, run: Ref) -> Response:
    ledger = ledger_of(request)
    summary = api.show_run(ledger, run).run
    return Response(
        api.run_junit(ledger, summary.id),
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="run-{summary.id}.xml"'},
    )


@api_router.get("/compare", summary="Two runs compared (default: the latest and its previous)")
def compare_json(request: Request, current: Name = None, baseline: Name = None) -> Any:
    return api.compare(ledger_of(request), current or None, baseline or None).as_json()


# Pages


@page_router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return RedirectResponse("/runs", status_code=307)


@page_router.get("/runs", response_class=HTMLResponse)
def runs_page(
    request: Request,
    suite: str | None = None,
    branch: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int = Query(50, ge=1, le=200),
) -> Response:
    ledger = ledger_of(request)
    where = _filters(suite, branch, status, _day(since), _day(until))
    found = api.runs_page(ledger, where, before=before, after=after, limit=limit)
    return page(
        request,
        "runs.html.j2",
        found=found,
        dims=api.dimensions(ledger),
        statuses=("running", "finished", "aborted"),
    )


def _comparison(ledger: api.Ledger, run_id: int, baseline: str | None) -> Any:
    try:
        return api.compare(ledger, run_id, baseline or None)
    except NotFound:
        return None  # the first run of its branch and suite: nothing to compare with


@page_router.get("/runs/{run}", response_class=HTMLResponse)
def run_page(request: Request, run: RunRef, baseline: str | None = None) -> Response:
    ledger = ledger_of(request)
    detail = api.show_run(ledger, run)
    run_id = detail.run.id
    previous = _comparison(ledger, run_id, None)
    chosen = _comparison(ledger, run_id, baseline) if baseline else None
    return page(
        request,
        "run.html.j2",
        detail=detail,
        run=detail.run,
        failures=api.run_failures(ledger, run_id, limit=50),
        extras=api.run_extras(ledger, run_id),
        previous=previous,
        chosen=chosen,
        baseline=baseline or "",
        recent=api.list_runs(ledger, suite=detail.run.suite, limit=30),
    )


def _live_context(request: Request, run: RunRef) -> dict[str, Any]:
    live = api.live_run(ledger_of(request), run)
    return {"live": live, "run": live.run}


@page_router.get("/runs/{run}/live", response_class=HTMLResponse)
def live_page(request: Request, run: RunRef) -> Response:
    return page(request, "live.html.j2", **_live_context(request, run))


@page_router.get("/runs/{run}/live/fragment", response_class=HTMLResponse)
def live_fragment(request: Request, run: RunRef) -> Response:
    """The part of the live page that polling replaces (htmx)."""
    return page(request, "live_fragment.html.j2", **_live_context(request, run))


@page_router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, current: str | None = None, baseline: str | None = None
) -> Response:
    ledger = ledger_of(request)
    comparison = None
    message = None
    try:
        comparison = api.compare(ledger, current or None, baseline or None)
    except NotFound as missing:
        message = str(missing)
    return page(
        request,
        "compare.html.j2",
        comparison=comparison,
        message=message,
        current=current or "",
        baseline=baseline or "",
        recent=api.list_runs(ledger, limit=50),
    )
