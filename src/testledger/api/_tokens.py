"""API tokens for the web app and the HTTP ingest API: created (the secret shown once), listed,
revoked and verified. The ledger keeps only each secret's SHA-256."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from testledger.common.jsondata import JsonData
from testledger.errors import NotFound
from testledger.model import utcnow
from testledger.record.ledger import Ledger
from testledger.store import tokens as store
from testledger.store.tokens import SCOPES as TOKEN_SCOPES
from testledger.store.tokens import TokenInfo

__all__ = [
    "TOKEN_SCOPES",
    "CreatedToken",
    "TokenInfo",
    "create_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

#: Longer than any secret create_token makes: a longer "token" is refused before hashing.
MAX_SECRET_CHARS = 200


@dataclass(frozen=True, slots=True)
class CreatedToken(JsonData):
    """A token just created, with its ``secret``: the only time it is shown (the ledger keeps
    its hash)."""

    id: int
    name: str
    scope: str
    prefix: str
    created_at: datetime
    secret: str


def create_token(ledger: Ledger, scope: str, name: str | None = None) -> CreatedToken:
    """A new token with ``scope`` ``read`` or ``write``. Raises ConfigError for another scope."""
    secret = store.new_secret()
    with ledger.engine().begin() as connection:
        token = store.insert_token(connection, secret, scope, name or f"{scope} token")
    return CreatedToken(token.id, token.name, token.scope, token.prefix, token.created_at, secret)


def list_tokens(ledger: Ledger, *, include_revoked: bool = True) -> list[TokenInfo]:
    """The ledger's tokens, oldest first, without their secrets."""
    with ledger.engine(create=False).connect() as connection:
        return store.list_tokens(connection, include_revoked=include_revoked)


def revoke_token(ledger: Ledger, which: str | int) -> TokenInfo:
    """Revoke a token named by its id or prefix; it is refused from then on. Raises NotFound,
    or ConfigError when a prefix names several tokens."""
    with ledger.engine(create=False).begin() as connection:
        return store.revoke_token(connection, which)


def verify_token(ledger: Ledger, secret: str) -> TokenInfo | None:
    """The live token whose secret this is, or None (unknown or revoked). Compared in constant
    time; notes the token's last use (at most once a minute)."""
    if not secret or len(secret) > MAX_SECRET_CHARS:
        return None
    try:
        engine = ledger.engine(create=False)
    except NotFound:  # no ledger yet: no tokens either
        return None
    with engine.connect() as connection:
        token = store.find_token(connection, secret)
    if token is None or token.revoked:
        return None
    if token.last_used_at is None or utcnow() - token.last_used_at >= store.TOUCH_INTERVAL:
        with engine.begin() as connection:
            store.touch_token(connection, token)
    return token
