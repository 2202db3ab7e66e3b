"""Who may read and write through the pages, on SQLite and PostgreSQL: reads behind a token when
the app requires one (the login page sets the cookie), and an issue changed from its page only
with writes allowed, a write token and the form's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from testledger import Ledger, api
from testledger.web.settings import WebSettings

from .web_support import web_client

WRITES = WebSettings(allow_writes=True)


@pytest.fixture
def ledger_copy(scenario: str, copy_database: Callable[[str], str]) -> str:
    return copy_database(scenario)


def _token(url: str, results: Path, scope: str) -> str:
    with Ledger(url, results_dir=results) as ledger:
        return api.create_token(ledger, scope, name=f"{scope} for the tests").secret


def _issue(client: TestClient) -> str:
    issues = client.get("/api/v1/issues").json()
    return next(i["code"] for i in issues if "ZeroDivisionError" in i["title"])


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def _log_in(client: TestClient, token: str) -> None:
    login = client.get("/login")
    response = client.post(
        "/login", data={"token": token, "next": "/issues", "csrf_token": _csrf(login.text)}
    )
    assert response.status_code == 303 and response.headers["location"] == "/issues"
    assert "httponly" in response.headers["set-cookie"].lower()
    assert "samesite=strict" in response.headers["set-cookie"].lower()


def test_reads_need_a_token_when_required(ledger_copy: str, tmp_path: Path) -> None:
    token = _token(ledger_copy, tmp_path, "read")
    with web_client(ledger_copy, tmp_path, WebSettings(read_token_required=True)) as client:
        assert client.get("/api/v1/runs").status_code == 401
        page = client.get("/runs/3?x=1")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fruns%2F3%3Fx%3D1"
        assert client.get("/login").status_code == 200
        assert (
            client.get("/api/v1/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        ok = client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        wrong = client.post(
            "/login",
            data={"token": "nope", "csrf_token": _csrf(client.get("/login").text)},
        )
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.text
        _log_in(client, token)
        assert client.get("/runs").status_code == 200
        assert "signed in (read)" in client.get("/runs").text


def test_login_never_sends_elsewhere(ledger_copy: str, tmp_path: Path) -> None:
    token = _token(ledger_copy, tmp_path, "read")
    with web_client(ledger_copy, tmp_path) as client:
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil"):
            csrf = _csrf(client.get("/login").text)  # bound to the cookie of the last login
            response = client.post(
                "/login", data={"token": token, "next": target, "csrf_token": csrf}
            )
            assert response.headers["location"] == "/runs"


def test_issue_status_changed_from_its_page(ledger_copy: str, tmp_path: Path) -> None:
    token = _token(ledger_copy, tmp_path, "write")
    with web_client(ledger_copy, tmp_path, WRITES) as client:
        code = _issue(client)
        assert 'id="issue-form"' not in client.get(f"/issues/{code}").text  # not logged in
        _log_in(client, token)
        page = client.get(f"/issues/{code}").text
        assert 'id="issue-form"' in page
        response = client.post(
            f"/issues/{code}",
            data={
                "csrf_token": _csrf(page),
                "status": "IN_PROGRESS",
                "root_cause": "divides by <b>zero</b>",
                "resolution": "",
                "note": "looking",
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"/issues/{code}?saved=1"
        detail = client.get(f"/api/v1/issues/{code}").json()
        assert detail["issue"]["status"] == "IN_PROGRESS"
        assert detail["root_cause"] == "divides by <b>zero</b>"
        assert detail["resolution"] is None  # an empty field left as it was
        assert detail["events"][-1]["actor"] == "web"
        shown = client.get(f"/issues/{code}?saved=1").text
        assert "divides by &lt;b&gt;zero&lt;/b&gt;" in shown and 'id="saved"' in shown


@pytest.mark.parametrize(
    ("case", "status"),
    [("no csrf", 403), ("stale csrf", 403), ("other origin", 403), ("read token", 403)],
)
def test_page_writes_are_refused(ledger_copy: str, tmp_path: Path, case: str, status: int) -> None:
    scope = "read" if case == "read token" else "write"
    token = _token(ledger_copy, tmp_path, scope)
    with web_client(ledger_copy, tmp_path, WRITES) as client:
        code = _issue(client)
        _log_in(client, token)
        csrf = _csrf(client.get(f"/issues/{code}").text)
        data = {"status": "RESOLVED", "csrf_token": csrf}
        headers = {}
        if case == "no csrf":
            del data["csrf_token"]
        elif case == "stale csrf":
            data["csrf_token"] = "0" * 64
        elif case == "other origin":
            headers["Origin"] = "https://evil.example"
        response = client.post(f"/issues/{code}", data=data, headers=headers)
        assert response.status_code == status
        assert client.get(f"/api/v1/issues/{code}").json()["issue"]["status"] == "OPEN"


def test_read_only_app_refuses_page_writes(ledger_copy: str, tmp_path: Path) -> None:
    token = _token(ledger_copy, tmp_path, "write")
    with web_client(ledger_copy, tmp_path) as client:
        code = _issue(client)
        _log_in(client, token)
        page = client.get(f"/issues/{code}").text
        assert 'id="issue-form"' not in page
        response = client.post(
            f"/issues/{code}", data={"status": "RESOLVED", "csrf_token": _csrf(page)}
        )
        assert response.status_code == 403 and "read-only" in response.text
