"""Logging in and out of the pages: the login form checks an API token and keeps it in an HttpOnly,
``SameSite=Strict`` cookie that every later page request carries (see :mod:`.auth`)."""

from __future__ import annotations

from fastapi import APIRouter, Form
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from testledger import api
from testledger.web.auth import TOKEN_COOKIE
from testledger.web.csrf import check_csrf
from testledger.web.render import page
from testledger.web.settings import ledger_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

COOKIE_DAYS = 30


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site only (never ``//elsewhere``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/runs"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return page(request, "login.html.j2", next=_safe_next(next), message=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: str = Form(""),
    next: str = Form("/runs"),
    csrf_token: str = Form(""),
) -> Response:
    check_csrf(request, csrf_token)
    found = api.verify_token(ledger_of(request), token.strip()) if token.strip() else None
    if found is None:
        return page(
            request,
            "login.html.j2",
            status_code=401,
            next=_safe_next(next),
            message="That token is unknown or revoked.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        max_age=COOKIE_DAYS * 86400,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: str = Form("")) -> Response:
    check_csrf(request, csrf_token)
    response = RedirectResponse("/runs", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response
