"""Rendering: the Jinja2 environment of the pages (autoescaped), its filters, and the JSON the
pages' charts read.

Every string from the ledger reaches a page through autoescaping; control characters (terminal
escapes, NUL, bell...) are written out as ``\\x1b`` first, so that they show as text instead of
vanishing or upsetting a copy-paste into a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from testledger.common.jsondata import as_json
from testledger.common.text import visible as text_visible
from testledger.web.settings import settings_of

__all__ = ["chart_json", "page", "query_url", "visible"]


def visible(value: Any) -> str:
    """``value`` as text with its control characters written out as ``\\x1b`` (None: "")."""
    return "" if value is None else text_visible(str(value))


def _number(value: float | int | None, fmt: str = "{:,.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def _usd(value: float | None, decimals: int = 4) -> str:
    return "–" if value is None else f"${value:,.{decimals}f}"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:,.0f} s"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _short(value: Any, limit: int = 120) -> str:
    text = visible(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def href_of_test(test_id: str) -> str:
    """The test page's path: the id percent-encoded (``/`` kept, ``?`` and ``#`` not)."""
    return "/tests/" + quote(test_id, safe="/:@!$&'()*+,;=-._~")


def query_url(path: str, params: Mapping[str, Any], **changes: Any) -> str:
    """``path`` with ``params`` updated by ``changes`` as its query (None and "" left out)."""
    merged = {**params, **changes}
    query = urlencode({k: v for k, v in merged.items() if v is not None and v != ""})
    return path + ("?" + query if query else "")


def chart_json(data: Any) -> Markup:
    """JSON safe inside a ``<script type="application/json">`` element whatever it holds."""
    text = json.dumps(as_json(data), ensure_ascii=False, default=str, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)  # escaped above: safe inside a script element


def _environment() -> jinja2.Environment:
    folder = resources.files("testledger.web").joinpath("templates")
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        visible=visible,
        num=_number,
        usd=_usd,
        when=_when,
        secs=_seconds,
        short=_short,
        href_of_test=href_of_test,
        chart_json=chart_json,
    )
    environment.globals["query_url"] = query_url
    return environment


_ENVIRONMENT: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = _environment()
    return _ENVIRONMENT


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page rendered from ``template`` with the request's nav state in its context."""
    from testledger.web.auth import request_scope
    from testledger.web.csrf import csrf_token

    settings = settings_of(request)
    scope = request_scope(request)
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            path=request.url.path,
            params=dict(request.query_params),
            settings=settings,
            scope=scope,
            can_write=settings.allow_writes and scope == "write",
            csrf=csrf_token(request),
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code)
