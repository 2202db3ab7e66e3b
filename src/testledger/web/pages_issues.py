"""Issues: the board (by status and priority), one issue's page and its edit form; as pages and
as JSON under ``/api/v1``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, time, timezone
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from testledger import api
from testledger.errors import TestledgerError
from testledger.web.auth import require_read, require_write
from testledger.web.csrf import check_csrf
from testledger.web.errors import (
    ERROR_RESPONSES,
    MAX_ID,
    IssueSort,
    IssueStatusName,
    Name,
    Names,
    PriorityName,
    Ref,
)
from testledger.web.render import page
from testledger.web.settings import ledger_of

__all__ = ["api_router", "page_router"]

api_router = APIRouter(
    prefix="/api/v1",
    tags=["issues"],
    dependencies=[Depends(require_read)],
    responses=ERROR_RESPONSES,
)
page_router = APIRouter(include_in_schema=False, dependencies=[Depends(require_read)])

#: The board's columns, in lifecycle order (the statuses ``api.update_issue`` accepts).
STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "WONT_FIX")
PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
BOARD_COLUMN_LIMIT = 100
#: What an edit form may put in a text field (a root cause, a resolution, a note).
MAX_TEXT = 20_000


def _issue_filter(
    status: Sequence[str],
    priority: Sequence[str],
    category: list[str],
    tool: str | None,
    sort: str,
    limit: int,
) -> api.IssueFilter:
    return api.IssueFilter(
        statuses=[s for s in status if s],
        priorities=[p for p in priority if p],
        categories=[c for c in category if c],
        tool=tool or None,
        sort=sort,
        limit=limit,
    )


@api_router.get("/issues", summary="Issues matching every filter given")
def issues_json(
    request: Request,
    status: list[IssueStatusName] = Query([]),
    priority: list[PriorityName] = Query([]),
    category: Names = [],  # noqa: B006 - FastAPI copies a default
    tool: Name = None,
    sort: IssueSort = "priority",
    limit: int = Query(100, ge=1, le=1000),
) -> Any:
    where = _issue_filter(status, priority, category, tool, sort, limit)
    found = api.list_issues(ledger_of(request), where)
    return [issue.as_json() for issue in found]


@api_router.get("/issues/{code}", summary="One issue with its history, occurrences and tests")
def issue_json(request: Request, code: Ref) -> Any:
    return api.issue_detail(ledger_of(request), code).as_json()


@api_router.get("/results/{result_id}/explain", summary="How a failure's fingerprint is made")
def explain_json(request: Request, result_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Any:
    try:
        return api.explain_result(ledger_of(request), result_id).as_json()
    except TestledgerError as exc:
        # A result that did not fail has no fingerprint: nothing to explain at this address.
        raise HTTPException(status_code=404, detail=str(exc)) from None


# Pages


@page_router.get("/issues", response_class=HTMLResponse)
def board_page(
    request: Request,
    priority: list[str] = Query([]),
    tool: str | None = None,
) -> Response:
    ledger = ledger_of(request)
    priorities = [p for p in priority if p]
    columns = {
        status: api.list_issues(
            ledger,
            api.IssueFilter(
                statuses=[status],
                priorities=priorities,
                tool=tool or None,
                limit=BOARD_COLUMN_LIMIT,
            ),
        )
        for status in STATUSES
    }
    return page(
        request,
        "issues.html.j2",
        columns=columns,
        priorities=PRIORITIES,
        chosen=priorities,
        tool=tool or "",
        limit=BOARD_COLUMN_LIMIT,
    )


def _explanation(ledger: api.Ledger, detail: api.IssueDetail) -> Any:
    """How the fingerprint of the issue's latest failure is made (None: no failure kept)."""
    for occurrence in detail.occurrences:
        if occurrence.result_id is not None and occurrence.status in ("FAIL", "ERROR"):
            try:
                return api.explain_result(ledger, occurrence.result_id)
            except TestledgerError:
                return None
    return None


def _occurrences_by_day(detail: api.IssueDetail) -> dict[str, Any]:
    """The chart of the issue's occurrences per day (UTC), as bars."""
    days = Counter(
        datetime.combine(o.run_timestamp.date(), time.min, timezone.utc).timestamp()
        for o in detail.occurrences
    )
    ordered = sorted(days)
    return {
        "id": "issue-occurrences",
        "title": "occurrences per day",
        "kind": "bars",
        "x": ordered,
        "series": [{"label": "occurrences", "values": [days[d] for d in ordered], "runs": []}],
        "marks": [],
        "link": None,
    }


def _issue_page(request: Request, code: str, **extra: Any) -> Response:
    ledger = ledger_of(request)
    detail = api.issue_detail(ledger, code, occurrences=500)
    return page(
        request,
        "issue.html.j2",
        detail=detail,
        issue=detail.issue,
        explanation=_explanation(ledger, detail),
        occurrence_chart=_occurrences_by_day(detail),
        statuses=STATUSES,
        **extra,
    )


@page_router.get("/issues/{code}", response_class=HTMLResponse)
def issue_page(request: Request, code: str) -> Response:
    return _issue_page(request, code, saved=request.query_params.get("saved") == "1")


def _text(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if len(value) > MAX_TEXT:
        raise TestledgerError(f"{name} is longer than {MAX_TEXT:,} characters")
    if "\x00" in value:
        raise TestledgerError(f"{name} holds a NUL character")
    return value


@page_router.post(
    "/issues/{code}", response_class=HTMLResponse, dependencies=[Depends(require_write)]
)
def issue_edit(
    request: Request,
    code: str,
    csrf_token: str = Form(""),
    status: str = Form(""),
    root_cause: str | None = Form(None),
    resolution: str | None = Form(None),
    note: str | None = Form(None),
) -> Response:
    """Change an issue from its page (writes allowed, a write token, this page's CSRF token)."""
    check_csrf(request, csrf_token)
    current = api.issue_detail(ledger_of(request), code, occurrences=1)
    change = api.IssueChange(
        status=status if status and status != current.issue.status else None,
        root_cause=_text(root_cause, "root cause")
        if root_cause != (current.root_cause or "")
        else None,
        resolution=_text(resolution, "resolution")
        if resolution != (current.resolution or "")
        else None,
        note=_text(note, "note") or None,
        actor="web",
    )
    api.update_issue(ledger_of(request), code, change)
    return RedirectResponse(f"/issues/{quote(code, safe='')}?saved=1", status_code=303)
