"""What the ingest and token tests share: an app serving a ledger (the web app's own
``create_app``, or only the ingest router), a synchronous client on httpx's ASGI transport,
and the ledger's rows counted through the library API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from testledger import api
from testledger.web import ingest
from testledger.web.settings import WebSettings


def ingest_app(ledger: api.Ledger, settings: WebSettings) -> FastAPI:
    """A minimal app: the ingest router alone, as the web app mounts it."""
    app = FastAPI()
    app.state.ledger = ledger
    app.state.settings = settings
    app.include_router(ingest.router)
    return app


class SyncClient:
    """httpx's AsyncClient on the app's ASGI interface, called synchronously (one event loop
    for the client's life): the tests read as plain requests."""

    def __init__(self, app: FastAPI, token: str | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@contextmanager
def client_for(
    ledger: api.Ledger, settings: WebSettings, token: str | None = None
) -> Iterator[SyncClient]:
    client = SyncClient(ingest_app(ledger, settings), token)
    try:
        yield client
    finally:
        client.close()


def run_row(ledger: api.Ledger, run_id: int) -> dict[str, Any]:
    """The run as the library's run detail shows it."""
    detail = api.show_run(ledger, run_id)
    data: dict[str, Any] = detail.as_json()
    return data
