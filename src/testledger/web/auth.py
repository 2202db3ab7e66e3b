"""Who may do what: API tokens as FastAPI dependencies.

A token comes as ``Authorization: Bearer <token>`` (CI jobs, scripts) or in the HttpOnly cookie
``testledger_token`` (set by the login page). Reads are open unless the app was started with
``read_token_required``; writes always need a write token AND an app started with
``--allow-writes``. Refusals are JSON: 401 when there is no usable token, 403 when the token (or
the app) does not allow the request.
"""

from __future__ import annotations

from typing import Literal, cast

from fastapi import HTTPException
from starlette.requests import Request

from testledger import api
from testledger.web.settings import ledger_of, settings_of

__all__ = [
    "TOKEN_COOKIE",
    "Scope",
    "request_scope",
    "request_token",
    "require_api_write",
    "require_read",
    "require_write",
]

#: The cookie the login page sets (HttpOnly) and every page request then carries.
TOKEN_COOKIE = "testledger_token"

Scope = Literal["read", "write"]

_UNSET = object()
_BEARER_HELP = "send 'Authorization: Bearer <token>' (`testledger token create` makes one)"


def _presented_secret(request: Request) -> str | None:
    """The secret the request carries: the Authorization header first, then the cookie."""
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
        return ""  # present but unusable: refused as an unknown token, never ignored
    cookie = request.cookies.get(TOKEN_COOKIE)
    return cookie or None


def request_token(request: Request) -> api.TokenInfo | None:
    """The live token the request carries (verified once per request), or None."""
    cached = getattr(request.state, "testledger_token", _UNSET)
    if cached is not _UNSET:
        return cast("api.TokenInfo | None", cached)
    secret = _presented_secret(request)
    token = api.verify_token(ledger_of(request), secret) if secret else None
    request.state.testledger_token = token
    return token


def request_scope(request: Request) -> Scope | None:
    """``write``, ``read`` or None: what the request's token allows (None without a valid
    token)."""
    token = request_token(request)
    if token is None:
        return None
    return "write" if token.scope == "write" else "read"


def _unauthorized(request: Request) -> HTTPException:
    secret = _presented_secret(request)
    if secret is None:
        message = f"this needs an API token: {_BEARER_HELP}"
    elif secret == "":
        message = "the Authorization header is not 'Bearer <token>'"
    else:
        message = "the API token is unknown or revoked"
    return HTTPException(status_code=401, detail=message, headers={"WWW-Authenticate": "Bearer"})


def require_read(request: Request) -> None:
    """Dependency of every page and read endpoint: open, unless the app requires a token for
    reads (then any valid token)."""
    if not settings_of(request).read_token_required:
        return
    if request_scope(request) is None:
        raise _unauthorized(request)


def _writes_allowed(request: Request) -> None:
    if not settings_of(request).allow_writes:
        raise HTTPException(
            status_code=403,
            detail="this server is read-only: start it with `testledger serve --allow-writes`",
        )


def require_write(request: Request) -> None:
    """Dependency of every write (ingest, page actions): the app started with
    ``--allow-writes`` and a valid write token."""
    _writes_allowed(request)
    scope = request_scope(request)
    if scope is None:
        raise _unauthorized(request)
    if scope != "write":
        raise HTTPException(
            status_code=403,
            detail="this token may only read: writing needs a token created with --scope write",
        )


def require_api_write(request: Request) -> None:
    """Dependency of the ingest API: as :func:`require_write`, with the token in the
    Authorization header only. A browser's cookie is not taken: another site could make a
    signed-in browser post a form (a multipart upload) to the API, and the API has no page to
    carry a CSRF token."""
    _writes_allowed(request)
    if not request.headers.get("authorization"):
        raise HTTPException(
            status_code=401,
            detail=f"the ingest API needs an API token in the Authorization header: {_BEARER_HELP}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    require_write(request)
