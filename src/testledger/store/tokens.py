"""API tokens: stored as the SHA-256 of their secret (never the secret), with a short prefix that
names them in lists and revocations."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.common.jsondata import JsonData
from testledger.errors import ConfigError, NotFound
from testledger.model import utcnow
from testledger.store.tables import api_tokens

__all__ = [
    "SCOPES",
    "TOKEN_MARK",
    "TokenInfo",
    "find_token",
    "hash_secret",
    "insert_token",
    "list_tokens",
    "new_secret",
    "revoke_token",
    "touch_token",
]

#: What a token may do: ``read`` the pages and read endpoints, ``write`` also ingest and edit.
SCOPES = ("read", "write")
#: Every secret starts with this, so that a leaked one is recognisable (secret scanners, logs).
TOKEN_MARK = "tl_"
#: Characters of the secret kept in clear (the mark and 8 more): enough to tell tokens apart.
PREFIX_CHARS = len(TOKEN_MARK) + 8
#: ``last_used_at`` is written at most this often per token: a busy CI job posting a batch a
#: second must not turn every request into a write.
TOUCH_INTERVAL = timedelta(seconds=60)
MAX_NAME_CHARS = 200


@dataclass(frozen=True, slots=True)
class TokenInfo(JsonData):
    """A token as the ledger knows it: never its secret."""

    id: int
    name: str
    scope: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def new_secret() -> str:
    """A fresh secret: the mark and 256 random bits, URL-safe."""
    return TOKEN_MARK + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: its SHA-256 in hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _row_token(row: Any) -> TokenInfo:
    mapping = row._mapping
    return TokenInfo(
        id=int(mapping["id"]),
        name=str(mapping["name"]),
        scope=str(mapping["scope"]),
        prefix=str(mapping["token_prefix"]),
        created_at=mapping["created_at"],
        last_used_at=mapping["last_used_at"],
        revoked_at=mapping["revoked_at"],
    )


_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.scope,
    api_tokens.c.token_prefix,
    api_tokens.c.created_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
)


def insert_token(connection: Connection, secret: str, scope: str, name: str) -> TokenInfo:
    """Store a token for ``secret`` (hashed). Raises ConfigError for an unknown scope or a bad
    name."""
    if scope not in SCOPES:
        raise ConfigError(f"unknown token scope {scope!r}: expected read or write")
    if len(name) > MAX_NAME_CHARS or "\x00" in name:
        raise ConfigError(f"a token name is at most {MAX_NAME_CHARS} characters, without NUL")
    now = utcnow()
    token_id = connection.execute(
        sa.insert(api_tokens)
        .values(
            name=name,
            scope=scope,
            token_hash=hash_secret(secret),
            token_prefix=secret[:PREFIX_CHARS],
            created_at=now,
        )
        .returning(api_tokens.c.id)
    ).scalar_one()
    return TokenInfo(int(token_id), name, scope, secret[:PREFIX_CHARS], now, None, None)


def list_tokens(connection: Connection, *, include_revoked: bool = True) -> list[TokenInfo]:
    """Every token, oldest first."""
    query = sa.select(*_COLUMNS).order_by(api_tokens.c.id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return [_row_token(row) for row in connection.execute(query)]


def find_token(connection: Connection, secret: str) -> TokenInfo | None:
    """The token whose secret this is (revoked or not), or None.

    Found by its hash (the unique index), then the hashes compared again in constant time, so
    that how long a wrong secret takes to refuse says nothing about the stored ones."""
    digest = hash_secret(secret)
    row = connection.execute(
        sa.select(*_COLUMNS, api_tokens.c.token_hash).where(api_tokens.c.token_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(str(row.token_hash), digest):
        return None
    return _row_token(row)


def touch_token(connection: Connection, token: TokenInfo) -> None:
    """Note that the token was used, unless that was noted less than TOUCH_INTERVAL ago."""
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < TOUCH_INTERVAL:
        return
    connection.execute(
        sa.update(api_tokens).where(api_tokens.c.id == token.id).values(last_used_at=now)
    )


def revoke_token(connection: Connection, which: str | int) -> TokenInfo:
    """Revoke the token with this id or prefix (revoking a revoked token changes nothing).
    Raises NotFound, or ConfigError when a prefix names several tokens."""
    if isinstance(which, int) or which.isdigit():
        condition = api_tokens.c.id == int(which)
    elif which:
        condition = api_tokens.c.token_prefix.startswith(which, autoescape=True)
    else:
        raise ConfigError("name the token to revoke by its id or prefix")
    rows = connection.execute(sa.select(*_COLUMNS).where(condition).limit(2)).all()
    if not rows:
        raise NotFound(f"no token {which!r}: `testledger token list` shows them")
    if len(rows) > 1:
        raise ConfigError(f"{which!r} names several tokens: give its id or a longer prefix")
    token = _row_token(rows[0])
    if token.revoked_at is not None:
        return token
    now = utcnow()
    connection.execute(
        sa.update(api_tokens).where(api_tokens.c.id == token.id).values(revoked_at=now)
    )
    return TokenInfo(
        token.id, token.name, token.scope, token.prefix, token.created_at, token.last_used_at, now
    )
