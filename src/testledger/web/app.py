"""The web app: ``create_app(ledger, settings)`` gives the FastAPI application ``testledger serve``
runs, its pages and JSON endpoints each a call into :mod:`testledger.api`.

Errors from the library become answers a person can act on: NotFound a 404, a bad filter or
reference a 400; as JSON under ``/api/`` and as a page elsewhere. A page that needs a token the
browser does not have sends it to the login page.
"""

from __future__ import annotations

import secrets
import time
from importlib import resources
from urllib.parse import quote, unquote, unquote_plus

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from testledger import api
from testledger.errors import NotFound, TestledgerError
from testledger.web import ingest, pages_issues, pages_runs, pages_tests, session
from testledger.web.render import page
from testledger.web.settings import WebSettings

__all__ = ["create_app"]

API_PREFIX = "/api/"


def _wants_page(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX)


def _error(request: Request, status: int, message: str) -> Response:
    if not _wants_page(request):
        return JSONResponse({"detail": message}, status_code=status)
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return page(request, "error.html.j2", status_code=status, status=status, message=message)


def _install_error_handlers(app: FastAPI) -> None:
    async def library_error(request: Request, exc: Exception) -> Response:
        # A test reference matching several tests is a conflict the caller resolves by giving
        # the full id (the message lists the candidates), not a malformed request.
        if isinstance(exc, NotFound):
            status = 404
        elif isinstance(exc, api.AmbiguousTest):
            status = 409
        else:
            status = 400
        return _error(request, status, str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if not _wants_page(request) or exc.status_code >= 500:
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return _error(request, exc.status_code, str(exc.detail))

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not _wants_page(request):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return _error(request, 400, f"bad request: {problems}")

    app.add_exception_handler(TestledgerError, library_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _has_nul(request: Request) -> bool:
    """A NUL in the address: no stored name holds one (PostgreSQL text cannot), and the
    database driver would refuse it as a parameter."""
    return "\x00" in unquote(request.url.path) or "\x00" in unquote_plus(request.url.query)


def _security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        if _has_nul(request):
            response = _error(request, 400, "the address holds a NUL character")
        else:
            response = await call_next(request)
        # The time the app took (bench/web.py reads it; so can a browser's developer tools).
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - start) * 1000:.1f}"
        # Nothing but our own scripts and styles, no framing: an escaping slip elsewhere still
        # cannot run a script from a test's name.
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
            " frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def create_app(ledger: api.Ledger, settings: WebSettings | None = None) -> FastAPI:
    """The app serving ``ledger`` as ``settings`` say (default: read-only, open reads)."""
    app = FastAPI(
        title="testledger",
        summary="The history of every test run: runs, issues, trends, flaky tests, cost.",
        version="1",
        # FastAPI's interactive docs load their scripts from a CDN: off, so that nothing the
        # app serves reaches out of the machine. The OpenAPI document is the reference.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.ledger = ledger
    app.state.settings = settings or WebSettings()
    app.state.csrf_secret = secrets.token_bytes(32)
    _install_error_handlers(app)
    _security_headers(app)
    static = resources.files("testledger.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    for module in (pages_runs, pages_issues, pages_tests):
        app.include_router(module.api_router)
        app.include_router(module.page_router)
    app.include_router(session.router)
    app.include_router(ingest.router)
    return app
