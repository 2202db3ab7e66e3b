"""``testledger mcp``: the ledger served to agents over the Model Context Protocol."""

from __future__ import annotations

import typer

from testledger.cli.app import EXIT_ERROR, command, ledger_of


@command("mcp")
def mcp_command(
    ctx: typer.Context,
    http: bool = typer.Option(
        False, "--http", help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="The address --http listens on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="The port --http uses."),
    allow_writes: bool = typer.Option(
        False,
        "--allow-writes",
        help="Let agents set issues' status, root cause and resolution, and record watcher"
        " observations (read-only without it).",
    ),
) -> None:
    """Serve the ledger to AI agents over MCP (stdio by default): what broke, why, what it cost."""
    from testledger import mcp

    if mcp.sdk_missing():
        typer.echo(f"error: {mcp.INSTALL_HINT}", err=True)
        raise typer.Exit(EXIT_ERROR)
    from testledger.mcp.server import serve

    serve(ledger_of(ctx), http=http, host=host, port=port, allow_writes=allow_writes)
