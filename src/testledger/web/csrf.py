"""Cross-site request forgery protection of the page forms.

A form carries a token that is the HMAC, under a secret the app draws when it starts, of the
login cookie the browser holds: another site can make the browser send the cookie, but cannot
read the page to learn the token. The login cookie is also ``SameSite=Strict``, and a form post
whose ``Origin`` is another site is refused before the token is even looked at.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import HTTPException
from starlette.requests import Request

from testledger.web.auth import TOKEN_COOKIE

__all__ = ["CSRF_FIELD", "check_csrf", "csrf_token"]

CSRF_FIELD = "csrf_token"


def csrf_token(request: Request) -> str:
    """The token this browser's forms carry (bound to its login cookie)."""
    secret: bytes = request.app.state.csrf_secret
    session = request.cookies.get(TOKEN_COOKIE, "")
    return hmac.new(secret, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


def check_csrf(request: Request, presented: str | None) -> None:
    """Refuse (403) a form post from another site or without this browser's token."""
    if not _same_origin(request):
        raise HTTPException(status_code=403, detail="cross-site form post refused")
    if not presented or not hmac.compare_digest(presented, csrf_token(request)):
        raise HTTPException(
            status_code=403,
            detail="the form's CSRF token is missing or stale: reload the page and try again",
        )
