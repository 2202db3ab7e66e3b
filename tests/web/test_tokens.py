"""API tokens on SQLite and PostgreSQL: created with their secret shown once and stored hashed,
listed without secrets, revoked; checked in constant time; and what the web app's
dependencies let each kind of request do."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI

from testledger import api
from testledger.cli import main
from testledger.errors import ConfigError, NotFound
from testledger.store import tokens as token_store
from testledger.store.tables import api_tokens, test_runs
from testledger.web.auth import TOKEN_COOKIE, request_scope, require_read, require_write
from testledger.web.settings import WebSettings
from tests.web.ingest_support import SyncClient, ingest_app

RUNS = "/api/v1/ingest/runs"


def test_a_token_is_shown_once_and_stored_as_its_hash(ledger: api.Ledger) -> None:
    created = api.create_token(ledger, "write", "ci")
    assert created.secret.startswith("tl_") and len(created.secret) > 40
    assert created.prefix == created.secret[:11]
    with ledger.engine().connect() as connection:
        stored = connection.execute(sa.select(api_tokens)).one()
    assert stored.token_hash == hashlib.sha256(created.secret.encode()).hexdigest()
    assert created.secret not in json.dumps([list(map(str, stored))])
    listed = api.list_tokens(ledger)
    assert [token.id for token in listed] == [created.id]
    assert "secret" not in listed[0].as_json()
    assert api.verify_token(ledger, created.secret) is not None


def test_verify_refuses_unknown_revoked_and_malformed_secrets(ledger: api.Ledger) -> None:
    kept = api.create_token(ledger, "read")
    gone = api.create_token(ledger, "write")
    assert api.revoke_token(ledger, gone.prefix).revoked_at is not None
    assert api.verify_token(ledger, gone.secret) is None
    assert api.verify_token(ledger, kept.secret[:-1] + "x") is None
    assert api.verify_token(ledger, "") is None
    assert api.verify_token(ledger, "tl_" + "a" * 10_000) is None
    assert api.verify_token(ledger, "nul\x00") is None
    verified = api.verify_token(ledger, kept.secret)
    assert verified is not None and verified.scope == "read"
    # Revoking again changes nothing; an unknown or ambiguous name is said so.
    assert api.revoke_token(ledger, gone.id).revoked_at is not None
    with pytest.raises(NotFound, match="no token"):
        api.revoke_token(ledger, "tl_nothing")
    with pytest.raises(ConfigError, match="several tokens"):
        api.revoke_token(ledger, "tl_")


def test_the_hash_is_compared_in_constant_time(
    ledger: api.Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.create_token(ledger, "write")
    compared: list[tuple[str, str]] = []
    real = token_store.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(token_store.hmac, "compare_digest", spy)
    assert api.verify_token(ledger, created.secret) is not None
    assert compared == [(token_store.hash_secret(created.secret),) * 2]


def test_last_use_is_noted_at_most_once_a_minute(ledger: api.Ledger) -> None:
    created = api.create_token(ledger, "write")
    first = api.verify_token(ledger, created.secret)
    assert first is not None and first.last_used_at is None  # as it was before this use
    noted = api.list_tokens(ledger)[0].last_used_at
    assert noted is not None
    api.verify_token(ledger, created.secret)
    assert api.list_tokens(ledger)[0].last_used_at == noted
    with ledger.engine().begin() as connection:
        connection.execute(sa.update(api_tokens).values(last_used_at=noted - timedelta(minutes=2)))
    api.verify_token(ledger, created.secret)
    assert api.list_tokens(ledger)[0].last_used_at > noted - timedelta(seconds=1)  # type: ignore[operator]


def test_unknown_scope_and_bad_names_are_refused(ledger: api.Ledger) -> None:
    with pytest.raises(ConfigError, match="unknown token scope"):
        api.create_token(ledger, "admin")
    with pytest.raises(ConfigError, match="at most"):
        api.create_token(ledger, "read", "n" * 1000)
    assert api.list_tokens(ledger) == []


# -- the web app's dependencies -----------------------------------------------------------------


def _app(ledger: api.Ledger, settings: WebSettings) -> FastAPI:
    """The ingest router plus a page-like read endpoint guarded as the app's reads are."""
    app = ingest_app(ledger, settings)

    @app.get("/probe", dependencies=[Depends(require_read)])
    def probe(scope: Any = Depends(request_scope)) -> dict[str, Any]:
        return {"scope": scope}

    @app.post("/act", dependencies=[Depends(require_write)])
    def act() -> dict[str, Any]:
        return {"done": True}

    return app


def _runs(ledger: api.Ledger) -> int:
    with ledger.engine().connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(test_runs)).scalar_one()
        )


@pytest.mark.parametrize(
    ("headers", "status", "fragment"),
    [
        pytest.param({}, 401, "needs an API token", id="missing"),
        pytest.param(
            {"Authorization": "Bearer tl_unknown"}, 401, "unknown or revoked", id="unknown"
        ),
        pytest.param({"Authorization": "Basic dXNlcjpwdw=="}, 401, "Bearer", id="not-bearer"),
        pytest.param({"Authorization": "Bearer"}, 401, "Bearer", id="empty-bearer"),
        pytest.param({"Authorization": "REVOKED"}, 401, "unknown or revoked", id="revoked"),
        pytest.param({"Authorization": "READ"}, 403, "may only read", id="read-scope"),
    ],
)
def test_a_write_without_a_usable_write_token_is_refused(
    ledger: api.Ledger, headers: dict[str, str], status: int, fragment: str
) -> None:
    read = api.create_token(ledger, "read").secret
    revoked = api.create_token(ledger, "write")
    api.revoke_token(ledger, revoked.id)
    if headers.get("Authorization") == "READ":
        headers = {"Authorization": f"Bearer {read}"}
    elif headers.get("Authorization") == "REVOKED":
        headers = {"Authorization": f"Bearer {revoked.secret}"}
    client = SyncClient(_app(ledger, WebSettings(allow_writes=True)))
    try:
        response = client.post(RUNS, json={"branch": "main"}, headers=headers)
        assert response.status_code == status, response.text
        assert fragment in response.json()["detail"]
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
        assert client.post("/act", headers=headers).status_code == status
    finally:
        client.close()
    assert _runs(ledger) == 0


def test_writes_are_refused_unless_the_app_allows_them(ledger: api.Ledger) -> None:
    write = api.create_token(ledger, "write").secret
    client = SyncClient(_app(ledger, WebSettings(allow_writes=False)), write)
    try:
        refused = client.post(RUNS, json={"branch": "main"})
        assert refused.status_code == 403
        assert "--allow-writes" in refused.json()["detail"]
        # Refused before the body is read (not a 422 for a body that is no JSON).
        huge = client.post(RUNS, content=b"x" * (1024 * 1024))
        assert huge.status_code == 403
    finally:
        client.close()
    assert _runs(ledger) == 0
    allowed = SyncClient(_app(ledger, WebSettings(allow_writes=True)), write)
    try:
        assert allowed.post(RUNS, json={"branch": "main"}).status_code == 201
    finally:
        allowed.close()
    assert _runs(ledger) == 1


def test_reads_are_open_unless_a_token_is_required(ledger: api.Ledger) -> None:
    read = api.create_token(ledger, "read").secret
    write = api.create_token(ledger, "write").secret
    open_app = SyncClient(_app(ledger, WebSettings()))
    guarded = SyncClient(_app(ledger, WebSettings(read_token_required=True)))
    try:
        assert open_app.get("/probe").json() == {"scope": None}
        assert guarded.get("/probe").status_code == 401
        assert guarded.get("/probe", headers={"Authorization": "Bearer tl_bad"}).status_code == 401
        ok = guarded.get("/probe", headers={"Authorization": f"Bearer {read}"})
        assert ok.json() == {"scope": "read"}
        # The login page's cookie counts as the header does.
        by_cookie = guarded.get("/probe", headers={"Cookie": f"{TOKEN_COOKIE}={write}"})
        assert by_cookie.json() == {"scope": "write"}
    finally:
        open_app.close()
        guarded.close()


# -- the command line ----------------------------------------------------------------------------


def test_token_commands(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--db", db_url, "token", "create", "--scope", "write", "--name", "ci", "--json"]) == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert created["secret"].startswith("tl_") and created["scope"] == "write"
    assert main(["--db", db_url, "token", "create", "--scope", "read"]) == 0
    shown = capsys.readouterr().out
    assert "not shown again" in shown
    assert main(["--db", db_url, "token", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert created["secret"] not in listed and "secret" not in listed
    assert [token["name"] for token in json.loads(listed)] == ["ci", "read token"]
    assert main(["--db", db_url, "token", "revoke", created["prefix"]]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["--db", db_url, "token", "list", "--no-revoked", "--json"]) == 0
    assert [token["name"] for token in json.loads(capsys.readouterr().out)] == ["read token"]
    assert main(["--db", db_url, "token", "create", "--scope", "admin"]) == 1
    assert "unknown token scope" in capsys.readouterr().err
    assert main(["--db", db_url, "token", "revoke", "tl_"]) == 1
    assert "several tokens" in capsys.readouterr().err


def test_the_ingest_api_takes_no_cookie(ledger: api.Ledger) -> None:
    """A browser signed in to the pages cannot be made to post to the ingest API by another
    site (a form's multipart upload needs no CORS preflight): the API wants the header."""
    write = api.create_token(ledger, "write").secret
    client = SyncClient(_app(ledger, WebSettings(allow_writes=True)))
    try:
        cookie = {"Cookie": f"{TOKEN_COOKIE}={write}"}
        refused = client.post(RUNS, json={"branch": "main"}, headers=cookie)
        assert refused.status_code == 401
        assert "Authorization header" in refused.json()["detail"]
        upload = client.post(
            "/api/v1/ingest/reports", files={"file": ("r.xml", b"<testsuite/>")}, headers=cookie
        )
        assert upload.status_code == 401
        # Page actions (require_write, with their CSRF check) take the cookie.
        assert client.post("/act", headers=cookie).status_code == 200
    finally:
        client.close()
    assert _runs(ledger) == 0
