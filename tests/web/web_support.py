"""What the web app's page and API tests share: the scenario recorded once per database, and a
client on the whole app (starlette's TestClient: httpx over the app's ASGI interface)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from testledger import Ledger
from testledger.web.app import create_app
from testledger.web.settings import WebSettings

__all__ = ["web_client"]


@contextmanager
def web_client(
    url: str, results: Path, settings: WebSettings | None = None, token: str | None = None
) -> Iterator[TestClient]:
    """A client on the app serving ``url``; ``token`` sent as a Bearer token."""
    with Ledger(url, results_dir=results) as ledger:
        app = create_app(ledger, settings or WebSettings())
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with TestClient(app, headers=headers, follow_redirects=False) as client:
            yield client
