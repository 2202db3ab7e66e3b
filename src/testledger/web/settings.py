"""What a running web app was started with, kept on ``app.state`` for every request."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from testledger.api import Ledger

__all__ = ["WebSettings", "ledger_of", "settings_of"]


@dataclass(frozen=True)
class WebSettings:
    """How the app serves its ledger.

    ``allow_writes``: page actions and the ingest endpoints are on (they still need a write
    token). ``read_token_required``: every page and read endpoint needs a read or write token;
    otherwise reads are open. ``base_url``: the address the app is reached at, for links it
    writes into its own pages and exports (None: relative links).
    """

    allow_writes: bool = False
    read_token_required: bool = False
    base_url: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024


def ledger_of(request: Request) -> Ledger:
    """The ledger the app serves."""
    ledger: Ledger = request.app.state.ledger
    return ledger


def settings_of(request: Request) -> WebSettings:
    """The settings the app was started with."""
    settings: WebSettings = request.app.state.settings
    return settings
