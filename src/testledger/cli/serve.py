"""``testledger serve``: the web dashboard and HTTP API, served by uvicorn."""

from __future__ import annotations

import typer

from testledger.cli.app import EXIT_ERROR, command, ledger_of
from testledger.config import web_base_url

INSTALL_HINT = (
    "the web app needs its extra: pip install 'testledger[web]'"
    " (FastAPI, uvicorn, python-multipart)"
)


def _web_missing() -> bool:
    from importlib.util import find_spec

    return any(find_spec(name) is None for name in ("fastapi", "uvicorn", "multipart"))


@command("serve")
def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="The address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="The port to listen on."),
    allow_writes: bool = typer.Option(
        False,
        "--allow-writes",
        help="Turn on the ingest endpoints and page actions (each still needs a write token).",
    ),
    read_token_required: bool = typer.Option(
        False,
        "--read-token-required",
        help="Every page and read endpoint needs a token (read or write); else reads are open.",
    ),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help="The address the app is reached at (default [tool.testledger.web] base_url).",
    ),
) -> None:
    """Serve the web dashboard and HTTP API: runs, issues, trends, flaky tests, cost, live runs."""
    if _web_missing():
        typer.echo(f"error: {INSTALL_HINT}", err=True)
        raise typer.Exit(EXIT_ERROR)
    import uvicorn

    from testledger.web.app import create_app
    from testledger.web.settings import WebSettings

    ledger = ledger_of(ctx)
    settings = WebSettings(
        allow_writes=allow_writes,
        read_token_required=read_token_required,
        base_url=base_url or web_base_url(ledger.settings),
    )
    app = create_app(ledger, settings)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    mode = "writes allowed with a write token" if allow_writes else "read-only"
    typer.echo(f"testledger serving http://{shown}:{port}/ ({mode}); Ctrl+C stops it", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True)
