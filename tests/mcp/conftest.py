"""Driving the real ``testledger mcp`` with the SDK's own client, and the scripted history the
MCP tests ask about.

:class:`Client` holds one ``ClientSession`` (over stdio or streamable HTTP) open on its own event
loop thread and answers synchronously, so that a module's tests share one server process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from testledger import WatcherObservation, api
from tests.histories import pin_run_durations, record_test, scripted_run
from tests.pgdatabases import admin_execute, database_url

# The SDK is in the test extra: these tests run wherever the suite does.

#: How long a server may take to start or to answer.
TIMEOUT = 60.0
#: Keys whose values are the clock's (when a row was written), not the history's; an issue
#: event's ``at`` too.
VOLATILE = {"created_at", "updated_at", "finished_at", "resolved_at"}

Transport = Callable[[], AbstractAsyncContextManager[Any]]
_databases = itertools.count()
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


class Client:
    """A ``ClientSession`` over ``transport``, initialized, kept open on a thread's event loop
    until :meth:`close`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._opened: Future[Any] = Future()
        self._closing: asyncio.Event | None = None
        self._main = asyncio.run_coroutine_threadsafe(self._hold(), self.loop)
        try:
            self.session = self._opened.result(timeout=TIMEOUT)
        except BaseException:
            self._stop_loop()
            raise

    async def _hold(self) -> None:
        """Open the transport and the session, and hold them in this one task (anyio's scopes
        must be left by the task that entered them) until :meth:`close`."""
        from mcp import ClientSession

        self._closing = asyncio.Event()
        try:
            async with self.transport() as (read, write), ClientSession(read, write) as session:
                self.initialized = await session.initialize()
                self._opened.set_result(session)
                await self._closing.wait()
        except BaseException as exc:
            if not self._opened.done():
                self._opened.set_exception(exc)
            raise

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=TIMEOUT)

    def call(self, tool: str, **arguments: Any) -> Any:
        """The tool's ``CallToolResult``."""
        from mcp.types import CallToolResult

        result = self.run(self.session.call_tool(tool, arguments))
        assert isinstance(result, CallToolResult)
        return result

    def answer(self, tool: str, **arguments: Any) -> dict[str, Any]:
        """A successful call's structured answer, after checking the text blocks tell it."""
        result = self.call(tool, **arguments)
        assert not result.is_error, result.content
        data = result.structured_content
        assert isinstance(data, dict)
        summary, whole = result.content
        assert summary.type == "text" and summary.text == data["summary"]
        assert whole.type == "text" and json.loads(whole.text) == data
        return data

    def error(self, tool: str, **arguments: Any) -> str:
        """A refused call's message."""
        result = self.call(tool, **arguments)
        assert result.is_error, result.structured_content
        assert result.structured_content is None
        [block] = result.content
        assert block.type == "text"
        return block.text

    def close(self) -> None:
        if self._closing is not None:
            self.loop.call_soon_threadsafe(self._closing.set)
        try:
            self._main.result(timeout=TIMEOUT)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=TIMEOUT)
        self.loop.close()


def server_args(url: str, *options: str) -> list[str]:
    return ["-m", "testledger", "--db", url, "mcp", *options]


def server_env() -> dict[str, str]:
    """The environment without testledger's variables: the server's ledger is its --db."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TESTLEDGER_")}


@contextmanager
def stdio_session(url: str, folder: Path, *options: str) -> Iterator[Client]:
    """``testledger --db URL mcp OPTIONS`` started by the SDK's stdio client, in ``folder``."""
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=server_args(url, *options), env=server_env(), cwd=folder
    )
    client = Client(lambda: stdio_client(params))
    try:
        yield client
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def http_server(url: str, folder: Path, *options: str) -> Iterator[str]:
    """``testledger mcp --http`` on a free port, until it answers; yields its endpoint URL."""
    port = free_port()
    log = (folder / f"mcp-http-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, *server_args(url, "--http", "--port", str(port), *options)],
        cwd=folder,
        env=server_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert process.poll() is None, (folder / log.name).read_text()
            try:
                httpx.get(endpoint, timeout=1.0)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "testledger mcp --http did not start"
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def http_session(endpoint: str) -> Iterator[Client]:
    """The SDK's streamable HTTP client on ``endpoint``."""
    from mcp.client.streamable_http import streamable_http_client

    @asynccontextmanager
    async def transport() -> AsyncIterator[Any]:
        async with streamable_http_client(endpoint) as streams:
            yield streams

    client = Client(transport)
    try:
        yield client
    finally:
        client.close()


def steady(data: Any) -> Any:
    """``data`` with the clock's timestamps (when rows were written) as ``"<now>"``: everything
    else in the scripted history is fixed."""
    if isinstance(data, dict):
        volatile = VOLATILE | ({"at"} if "actor" in data else set())
        return {
            key: "<now>" if key in volatile and isinstance(value, str) else steady(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [steady(item) for item in data]
    return data


# -- the scripted history ---------------------------------------------------------------------
#
# One run of branch "dev", then twelve hourly runs of suite "s" on main:
# chat/basic always passes (its cost and tokens triple in the last run); search/web flips
# (flaky); extract/entities fails in runs 0-2, is fixed, and fails again from run 10;
# weather/call breaks in the last run (a new failure); render/report becomes five times slower
# from run 6 (a duration change point) and its watcher quality drops in the last run.

RUNS = 12


def _chat(run: Any, index: int) -> None:
    last = index == RUNS - 1
    record_test(
        run,
        "chat/basic",
        "PASS",
        provider="glm",
        model="glm-4.5",
        duration_secs=1.0,
        tokens_total=3000 if last else 1000,
        cost_usd=0.003 if last else 0.001,
    )


def _search(run: Any, index: int) -> None:
    record_test(
        run,
        "search/web",
        "FAIL" if index % 2 else "PASS",
        error_type="TimeoutError",
        error_message="search backend timed out after 30 s",
        provider="moonshot",
        model="kimi-k2",
        duration_secs=2.0,
        tokens_total=500,
        cost_usd=0.002,
    )


def _extract(run: Any, index: int) -> None:
    broken = index <= 2 or index >= 10
    record_test(
        run,
        "extract/entities",
        "FAIL" if broken else "PASS",
        error_message="orgs missing: expected ['ACME'] got []\nfull diff follows",
        provider="openai",
        model="gpt-4o-mini",
        duration_secs=0.5,
        tokens_total=2000,
        cost_usd=0.0005,
        traceback='File "extract.py", line 12, in extract\n    assert orgs == ["ACME"]',
    )


def _weather(run: Any, index: int) -> None:
    broken = index == RUNS - 1
    record_test(
        run,
        "weather/call",
        "FAIL" if broken else "PASS",
        error_type="KeyError",
        error_message="'arguments'",
        provider="glm",
        model="glm-4.5-air",
        duration_secs=0.2,
        tokens_total=600,
        cost_usd=0.0004,
    )


def _render(run: Any, index: int) -> None:
    quality = 5 if index == RUNS - 1 else 9
    run.record(
        test_id="render/report",
        tool_name="render",
        variation="report",
        status="PASS",
        duration_secs=0.5 if index >= 6 else 0.1,
        watcher=WatcherObservation(quality_score=quality, watcher="scripted"),
    )


def record_history(url: str, folder: Path) -> None:
    """The scripted history (see above) into the ledger at ``url``."""
    with api.Ledger(url, results_dir=folder / "results") as ledger:
        for index in range(RUNS):
            key = f"main-{index:02d}"
            with scripted_run(ledger, index, commit=f"c{index:02d}", run_key=key) as run:
                for record in (_chat, _search, _extract, _weather, _render):
                    record(run, index)
        with scripted_run(ledger, -1, branch="dev", commit="d00", run_key="dev-00") as run:
            record_test(run, "chat/basic", "PASS", duration_secs=1.0)
        durations = {f"main-{i:02d}": 10.0 + i for i in range(RUNS)}
        pin_run_durations(ledger, {**durations, "dev-00": 5.0})


@pytest.fixture(scope="session")
def sqlite_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite ledger holding the scripted history, recorded once per session (its schema
    made by the ledger's first use) and closed, so that its file is the whole database."""
    folder = tmp_path_factory.mktemp("sqlite-history")
    path = folder / "ledger.db"
    record_history(f"sqlite:///{path}", folder)
    assert not path.with_name("ledger.db-wal").exists()
    return path


def _pg_database(
    admin_url: str, request: pytest.FixtureRequest, template: str | None = None
) -> str:
    """A new database (a copy of ``template`` when given), dropped when the requesting scope
    ends."""
    name = f"tl_mcp_{os.getpid()}_{next(_databases)}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin_execute(admin_url, f'CREATE DATABASE "{name}"{copy}')
    request.addfinalizer(
        lambda: admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    )
    return name


@pytest.fixture(scope="session")
def pg_history(request: pytest.FixtureRequest, pg_admin_url: str) -> str:
    """The name of a PostgreSQL database holding the scripted history, recorded once per
    session, to be copied (nothing stays connected to it)."""
    name = _pg_database(pg_admin_url, request)
    record_history(database_url(pg_admin_url, name), Path(tempfile.mkdtemp(prefix="tl-mcp-")))
    return name


@pytest.fixture(scope="module", params=BACKENDS)
def history_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A copy of the scripted history's ledger of each kind, shared by a module's tests."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("history") / "ledger.db"
        shutil.copyfile(request.getfixturevalue("sqlite_history"), path)
        return f"sqlite:///{path}"
    admin: str = request.getfixturevalue("pg_admin_url")
    return database_url(admin, _pg_database(admin, request, request.getfixturevalue("pg_history")))


@pytest.fixture(scope="module")
def server_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where servers run: no pyproject.toml, so no project settings."""
    return tmp_path_factory.mktemp("mcp-server")
