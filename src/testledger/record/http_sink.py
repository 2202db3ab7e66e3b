"""Recording through a testledger server's HTTP ingest API instead of into a database.

A ledger URL of ``http(s)://host[:port][/prefix]`` (``pytest --ledger=https://...``,
``TESTLEDGER_DATABASE_URL``, ``open_ledger``) makes the runner's Run write through an
:class:`HttpSink` instead of a database: the run is created on the server (``testledger serve
--allow-writes``), its batches are posted as they fill, and the server finishes it
(statistics, issue detection). The token comes from ``TESTLEDGER_TOKEN``: a CI job needs the
URL and a write token, no database credentials.

Results are posted in the ingest API's compact form (the column names once, each result the
encoded row the runner would COPY, as a list), which costs the server and this client a fraction
of result objects; a server without that form (an older testledger) gets result objects.

Every batch carries a key, the same for each retry of it, so a batch whose answer was lost is
stored once however often it is sent. Transient failures (the server unreachable, 502/503/504,
429, a timeout) are retried with backoff; when the server stays away, or refuses the run, the
run carries on into its JSON files alone with one warning, as when a database is away. Nothing
is raised into the test runner.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import httpx

from testledger.errors import DatabaseUnavailable
from testledger.model import RunInfo, RunStats, RunStatus
from testledger.store.encoding import ROW_COLUMNS, encode_json, format_utc
from testledger.store.runs import RunRow
from testledger.store.writer import PendingObservation

__all__ = [
    "ENV_TOKEN",
    "HttpSink",
    "IngestClient",
    "ServerUnavailable",
    "rows_as_results",
    "rows_compact",
]

log = logging.getLogger("testledger")

#: The environment variable holding the token (``testledger token create --scope write``).
ENV_TOKEN = "TESTLEDGER_TOKEN"
INGEST_PATH = "/api/v1/ingest"
#: Waits between the attempts of one request: about 15 s in all before the run is spooled.
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
_RETRY_STATUSES = frozenset((429, 502, 503, 504))
#: Finishing runs issue detection on the server: it may take a while on a large ledger.
FINISH_TIMEOUT_SECS = 300.0
_JSON_COLUMNS = ("watcher_observations", "metrics", "details")
# Columns a result body names differently (the observation) or not at all.
_SKIPPED_COLUMNS = frozenset(("watcher_quality", "watcher_observations"))


class IngestClient:
    """The ingest API of the server at ``base_url``, with ``token`` as the bearer."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_secs: float = 60.0,
        retry_delays: Sequence[float] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.strip().rstrip("/")
        headers = {"Content-Type": "application/json", "User-Agent": "testledger"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._has_token = bool(token)
        self._retry_delays = tuple(RETRY_DELAYS if retry_delays is None else retry_delays)
        self._options: dict[str, Any] = {
            "headers": headers,
            "timeout": httpx.Timeout(timeout_secs, connect=10.0),
            "transport": transport,
        }
        self._client: httpx.Client | None = None
        #: Results go in the compact form until the server says it has no such route.
        self._compact = True

    def _http(self) -> httpx.Client:
        """The HTTP client, made at the first request: a URL httpx cannot use is then refused
        as that request, not raised from the recorder's constructor."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url + INGEST_PATH, **self._options)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def request(
        self, method: str, path: str, body: Any, *, timeout_secs: float | None = None
    ) -> dict[str, Any]:
        """Send ``body`` (JSON) and return the JSON answer; transient failures are retried
        with the same body. Raises DatabaseUnavailable with the server's reason."""
        content = _json_bytes(body)
        extra: dict[str, Any] = {} if timeout_secs is None else {"timeout": timeout_secs}
        delays = iter(self._retry_delays)
        while True:
            try:
                response = self._http().request(method, path, content=content, **extra)
            except httpx.TransportError as exc:
                failure = f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}".rstrip(": ")
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, TypeError) as exc:
                raise ServerUnavailable(f"cannot use {self.base_url}: {exc}") from None
            else:
                if response.status_code < 400:
                    return self._answer(response)
                failure = self._refusal(response)
                if response.status_code == 404 and _route_missing(response):
                    raise _RouteMissing(failure)
                if response.status_code in _REFUSES_EVERY_REQUEST:
                    raise ServerUnavailable(failure)
                if response.status_code not in _RETRY_STATUSES:
                    raise DatabaseUnavailable(failure)
            delay = next(delays, None)
            if delay is None:
                raise ServerUnavailable(failure)
            time.sleep(delay)

    def _answer(self, response: httpx.Response) -> dict[str, Any]:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ServerUnavailable(
                f"{self.base_url} answered {response.status_code} with no JSON object: is it "
                "a testledger server (testledger serve)?"
            )
        return answer

    def _refusal(self, response: httpx.Response) -> str:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = None
        if not isinstance(detail, str):
            detail = response.text[:300] if detail is None else json.dumps(detail)[:300]
        message = f"{self.base_url} answered {response.status_code}: {detail}"
        if response.status_code == 401:
            message += (
                f" (the token in {ENV_TOKEN})"
                if self._has_token
                else f" (set {ENV_TOKEN} to a write token)"
            )
        return message

    @contextlib.contextmanager
    def _reading(self, answer: dict[str, Any]) -> Iterator[None]:
        """An answer that is not what the ingest API answers, said as the server's fault."""
        try:
            yield
        except (KeyError, TypeError, ValueError):
            shown = json.dumps(answer)[:200]
            raise DatabaseUnavailable(
                f"{self.base_url} answered {shown}, not what testledger's ingest API answers"
            ) from None

    # -- the ingest API's calls ---------------------------------------------------------------

    def create_run(self, info: RunInfo, run_key: str) -> RunRow:
        body = {
            "run_key": run_key,
            "suite": info.suite,
            "branch": info.branch,
            "commit": info.commit,
            "watcher_model": info.watcher_model,
            "notes": info.notes,
            "started_at": None if info.started_at is None else info.started_at.isoformat(),
            "ci_provider": info.ci_provider,
            "ci_job_url": info.ci_job_url,
            "host": info.host,
            "source": info.source,
            "metadata": info.metadata or None,
        }
        answer = self.request("POST", "/runs", body)
        with self._reading(answer):
            return RunRow(
                int(answer["run_id"]),
                str(answer["run_key"]),
                bool(answer["existed"]),
                RunStatus(answer["status"]),
            )

    def post_results(self, run_id: int, batch_key: str, results: list[dict[str, Any]]) -> int:
        body = {"batch_key": batch_key, "results": results}
        answer = self.request("POST", f"/runs/{run_id}/results", body)
        with self._reading(answer):
            return int(answer["stored"])

    def post_rows(self, run_id: int, batch_key: str, rows: Sequence[tuple[Any, ...]]) -> int:
        """Post encoded result rows (``ROW_COLUMNS``) in the compact form, which costs both
        sides a fraction of the object form; to a server older than that form (no such
        route), as result objects under the same key."""
        if self._compact:
            body = {
                "batch_key": batch_key,
                "columns": ROW_BATCH_COLUMNS,
                "rows": rows_compact(rows),
            }
            try:
                answer = self.request("POST", f"/runs/{run_id}/result-rows", body)
            except _RouteMissing:
                self._compact = False
            else:
                with self._reading(answer):
                    return int(answer["stored"])
        return self.post_results(run_id, batch_key, rows_as_results(rows))

    def post_observations(
        self, run_id: int, batch_key: str, pending: Sequence[PendingObservation]
    ) -> int:
        observations = [
            {
                **_observation_body(item.observation.as_json()),
                "test_id": item.test_id,
                "attempt": item.attempt,
            }
            for item in pending
        ]
        body = {"batch_key": batch_key, "observations": observations}
        answer = self.request("POST", f"/runs/{run_id}/observations", body)
        with self._reading(answer):
            return int(answer["stored"])

    def set_expected_tests(self, run_id: int, count: int) -> None:
        self.request("PUT", f"/runs/{run_id}/expected-tests", {"expected_tests": count})

    def finish(
        self,
        run_id: int,
        status: RunStatus,
        notes: str | None,
        wall_clock_secs: float | None,
        detect_issues: bool,
        finished_at: datetime | None = None,
    ) -> RunStats:
        body = {
            "status": status.value,
            "notes": notes,
            "wall_clock_secs": wall_clock_secs,
            "detect_issues": detect_issues,
            "finished_at": None if finished_at is None else format_utc(finished_at),
        }
        answer = self.request(
            "POST", f"/runs/{run_id}/finish", body, timeout_secs=FINISH_TIMEOUT_SECS
        )
        with self._reading(answer):
            return RunStats(**answer["stats"])


def _json_bytes(body: Any) -> bytes:
    """``body`` as UTF-8 JSON; a text holding a lone surrogate (no UTF-8) goes as its JSON
    escape, which the server stores replaced, as the runner's database would refuse it."""
    text = encode_json(body)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, default=str, separators=(",", ":")).encode("ascii")


def _observation_body(data: dict[str, Any]) -> dict[str, Any]:
    """An observation as stored (``WatcherObservation.as_json``) as the API takes it."""
    return {key: value for key, value in data.items() if value is not None}


class ServerUnavailable(DatabaseUnavailable):
    """A failure every request to this server would meet now, whatever it sends: the server
    unreachable or overloaded after the retries, not a testledger server, or the token refused
    (401, 403). A sync of several runs stops at it instead of trying each run in turn."""


#: Answers that refuse the client (its token, the server's read-only mode), not its body.
_REFUSES_EVERY_REQUEST = frozenset((401, 403))


class _RouteMissing(DatabaseUnavailable):
    """The server has no such route (an older testledger)."""


def _route_missing(response: httpx.Response) -> bool:
    """A 404 from the router itself ("Not Found"), not the ingest API's unknown run."""
    try:
        return bool(response.json().get("detail") == "Not Found")
    except (ValueError, AttributeError):
        return False


#: The compact form's columns: the encoded row's, the observation as one ``watcher`` column.
ROW_BATCH_COLUMNS = [
    "watcher" if name == "watcher_observations" else name
    for name in ROW_COLUMNS
    if name != "watcher_quality"
]
_QUALITY_INDEX = ROW_COLUMNS.index("watcher_quality")


def rows_compact(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Encoded result rows as the compact form's rows: the row without its watcher quality
    (the server reads it from the observation), the observation as the API takes it; metrics
    and details go as their JSON text, as encoded."""
    cut = _QUALITY_INDEX
    compact = []
    for row in rows:
        watcher = row[cut + 1]
        if watcher is None:
            compact.append(row[:cut] + row[cut + 1 :])
        else:
            observation = _observation_body(json.loads(watcher))
            compact.append((*row[:cut], observation, *row[cut + 2 :]))
    return compact


def rows_as_results(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Encoded result rows (``ROW_COLUMNS``) as the ingest API's result objects: JSON columns
    decoded, empty fields left out, the watcher observation under ``watcher``."""
    results = []
    for row in rows:
        result = {
            column: value
            for column, value in zip(ROW_COLUMNS, row, strict=True)
            if value is not None and column not in _SKIPPED_COLUMNS
        }
        for column in ("metrics", "details"):
            if column in result:
                result[column] = json.loads(result[column])
        watcher = row[_WATCHER_INDEX]
        if watcher is not None:
            result["watcher"] = _observation_body(json.loads(watcher))
        results.append(result)
    return results


_WATCHER_INDEX = ROW_COLUMNS.index("watcher_observations")


class HttpSink:
    """Where a run recorded through a server goes (see the module's docstring): the runner's
    Run writes its JSON files as for any run and hands its database side to this."""

    def __init__(self, url: str) -> None:
        self.client = IngestClient(url, os.environ.get(ENV_TOKEN) or None)
        # Unique to this Run: a run joined again later (same run_key) numbers its batches
        # anew, and must not have them taken for this one's.
        self._batch_prefix = uuid.uuid4().hex[:12]
        self._batch_seq = 0

    def open(self, info: RunInfo, run_key: str) -> RunRow:
        return self.client.create_run(info, run_key)

    def _next_key(self) -> str:
        self._batch_seq += 1
        return f"{self._batch_prefix}-{self._batch_seq}"

    def write(
        self,
        run_id: int,
        rows: Sequence[tuple[Any, ...]],
        observations: Sequence[PendingObservation],
    ) -> None:
        """On the writer thread: a batch's results, then the observations attached since the
        previous batch (they may name these results), each under its own key."""
        if rows:
            self.client.post_rows(run_id, self._next_key(), rows)
        if observations:
            self.client.post_observations(run_id, self._next_key(), observations)

    def expect(self, run_id: int, count: int) -> None:
        self.client.set_expected_tests(run_id, count)

    def finish(
        self,
        row: RunRow,
        status: RunStatus,
        notes: str | None,
        wall_clock: float,
        *,
        detect_issues: bool,
        watcher: str | None,
    ) -> RunStats:
        if watcher:
            log.warning(
                "testledger: a run recorded through a server is not watched here (%s): run "
                "`testledger watch` where the database is",
                watcher,
            )
        return self.client.finish(
            row.id, status, notes, None if row.existed else wall_clock, detect_issues
        )

    def close(self) -> None:
        self.client.close()
