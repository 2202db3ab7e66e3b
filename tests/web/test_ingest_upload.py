"""Uploading a report file to the ingest API (multipart), on SQLite and PostgreSQL: imported as
`testledger import` would, once however often it is sent; a file that is no report, or one
over the size limit, refused with nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import api
from testledger.store.tables import test_results, test_runs
from testledger.web.settings import WebSettings
from tests.web.ingest_support import SyncClient, client_for

UPLOAD = "/api/v1/ingest/reports"
JUNIT = Path(__file__).resolve().parents[1] / "data" / "junit" / "pytest-xunit1.xml"


@pytest.fixture
def client(ledger: api.Ledger) -> Iterator[SyncClient]:
    token = api.create_token(ledger, "write").secret
    with client_for(ledger, WebSettings(allow_writes=True), token) as opened:
        yield opened


def _counts(ledger: api.Ledger) -> tuple[int, int]:
    with ledger.engine().connect() as connection:
        runs = connection.execute(sa.select(sa.func.count()).select_from(test_runs)).scalar_one()
        results = connection.execute(
            sa.select(sa.func.count()).select_from(test_results)
        ).scalar_one()
    return int(runs), int(results)


def test_a_junit_file_is_imported_once(client: SyncClient, ledger: api.Ledger) -> None:
    data = JUNIT.read_bytes()
    files = {"file": ("../../etc/junit report.xml", data, "application/xml")}
    first = client.post(UPLOAD, files=files, data={"suite": "uploaded", "branch": "main"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["file"] == "junit_report.xml"  # the client's path is not a path here
    (run,) = body["runs"]
    assert (run["format"], run["already_imported"]) == ("junit", False)
    assert run["results"] > 0
    detail = api.show_run(ledger, run["run_id"])
    assert (detail.run.suite, detail.run.branch) == ("uploaded", "main")
    counted = _counts(ledger)
    again = client.post(UPLOAD, files=files, data={"suite": "uploaded", "branch": "main"})
    assert again.json()["runs"][0]["already_imported"] is True
    assert _counts(ledger) == counted == (1, run["results"])


@pytest.mark.parametrize(
    ("content", "name"),
    [
        pytest.param(b"<not really xml", "broken.xml", id="broken-xml"),
        pytest.param(b"\x00\x01\x02 binary", "junk.bin", id="binary"),
        pytest.param(b"", "empty.xml", id="empty"),
    ],
)
def test_a_file_that_is_no_report_is_refused(
    client: SyncClient, ledger: api.Ledger, content: bytes, name: str
) -> None:
    response = client.post(UPLOAD, files={"file": (name, content, "application/octet-stream")})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]
    assert _counts(ledger) == (0, 0)


def test_an_upload_without_a_file_is_refused(client: SyncClient, ledger: api.Ledger) -> None:
    response = client.post(UPLOAD, data={"suite": "x"})
    assert response.status_code == 422
    assert _counts(ledger) == (0, 0)


def test_an_upload_over_the_limit_is_refused(ledger: api.Ledger) -> None:
    token = api.create_token(ledger, "write").secret
    settings = WebSettings(allow_writes=True, max_body_bytes=4096)
    with client_for(ledger, settings, token) as client:
        big = JUNIT.read_bytes() + b"<!--" + b"x" * 10_000 + b"-->"
        response = client.post(UPLOAD, files={"file": ("big.xml", big, "application/xml")})
    assert response.status_code == 413
    assert _counts(ledger) == (0, 0)
