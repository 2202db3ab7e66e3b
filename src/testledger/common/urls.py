"""Telling a testledger server's address from a database URL."""

from __future__ import annotations

__all__ = ["is_http_url"]


def is_http_url(url: str | None) -> bool:
    """Whether ``url`` names a testledger server (``http(s)://host[:port][/prefix]``), whose
    ingest API records runs, rather than a database."""
    return url is not None and url.lstrip()[:8].lower().startswith(("http://", "https://"))
