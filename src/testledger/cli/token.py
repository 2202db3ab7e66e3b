"""``testledger token``: API tokens for the web app and the HTTP ingest API."""

from __future__ import annotations

import typer

from testledger import api
from testledger.cli.app import app, command, console, emit_json, ledger_of
from testledger.cli.tables import Column, fitted_table

token_app = typer.Typer(
    help="API tokens for `testledger serve`: create (shown once), list, revoke.",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON.")


@command("create", group=token_app)
def token_create(
    ctx: typer.Context,
    scope: str = typer.Option(
        ...,
        "--scope",
        help="read (pages and read endpoints) or write (also ingest and page actions).",
    ),
    name: str | None = typer.Option(None, "--name", help="What the token is for (e.g. ci)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a token and print its secret: the only time it is shown (the ledger keeps its
    hash). Send it as `Authorization: Bearer <token>`, or set TESTLEDGER_TOKEN for
    `pytest --ledger=https://...`."""
    created = api.create_token(ledger_of(ctx), scope, name)
    if as_json:
        emit_json(created)
        return
    console.print(f"token {created.id} ({created.scope}, {created.name!r}):")
    # The secret alone on its own line, to be copied.
    typer.echo(created.secret)
    console.print("store it now: it is not shown again")


@command("list", group=token_app)
def token_list(
    ctx: typer.Context,
    include_revoked: bool = typer.Option(
        True, "--revoked/--no-revoked", help="List revoked tokens too (default: yes)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the tokens (never their secrets)."""
    tokens = api.list_tokens(ledger_of(ctx), include_revoked=include_revoked)
    if as_json:
        emit_json(tokens)
        return
    if not tokens:
        console.print("no tokens: `testledger token create --scope read|write` makes one")
        return

    def when(value: object) -> str:
        return "-" if value is None else value.strftime("%Y-%m-%d %H:%M")  # type: ignore[attr-defined]

    columns = [
        Column("id", justify="right"),
        Column("prefix"),
        Column("scope"),
        Column("name", main=True),
        Column("created (UTC)", keep=2),
        Column("last used", keep=1),
        Column("revoked"),
    ]
    rows = [
        [
            str(token.id),
            token.prefix,
            token.scope,
            token.name,
            when(token.created_at),
            when(token.last_used_at),
            when(token.revoked_at),
        ]
        for token in tokens
    ]
    console.print(fitted_table(columns, rows, width=console.width))


@command("revoke", group=token_app)
def token_revoke(
    ctx: typer.Context,
    token: str = typer.Argument(..., help="The token's id or prefix (from `token list`)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a token: every request carrying it is refused from now on."""
    revoked = api.revoke_token(ledger_of(ctx), token)
    if as_json:
        emit_json(revoked)
        return
    console.print(f"token {revoked.id} ({revoked.prefix}, {revoked.name!r}) revoked")
