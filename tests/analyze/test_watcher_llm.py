"""The llm watcher over real HTTP, against an in-test OpenAI-compatible chat-completions server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.watcher import watch_run
from testledger.analyze.watcher.heuristic import HeuristicWatcher
from testledger.analyze.watcher.llm import LlmWatcher, create
from testledger.errors import ConfigError
from testledger.store.tables import test_results, test_runs, watcher_insights
from tests.histories import scripted_run

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
GOOD_ANSWER = {
    "quality_score": 8,
    "strengths": ["clear answer"],
    "weaknesses": [],
    "anomalies": ["slower than usual"],
    "recommendations": ["cache the lookup"],
    "confidence": 0.9,
}


@dataclass
class Reply:
    status: int = 200
    content: str = json.dumps(GOOD_ANSWER)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 1000, "completion_tokens": 200}
    )


class ChatServer:
    """Answers POST /v1/chat/completions from a script; the last reply repeats."""

    def __init__(self) -> None:
        self.script: list[Reply] = [Reply()]
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the stdlib names it so
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    reply = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                time.sleep(reply.delay)
                with lock:
                    server.in_flight -= 1
                if reply.status == 200:
                    payload = json.dumps(
                        {
                            "choices": [
                                {"message": {"role": "assistant", "content": reply.content}}
                            ],
                            "usage": reply.usage,
                        }
                    ).encode()
                else:
                    payload = b'{"error": "scripted"}'
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def prompts(self) -> list[str]:
        return [str(r["messages"][1]["content"]) for r in self.requests]


@pytest.fixture
def server() -> Iterator[ChatServer]:
    chat = ChatServer()
    # shutdown() waits for the serving loop's next poll: 0.5 s by default, at every teardown.
    serve = {"poll_interval": 0.02}
    thread = threading.Thread(target=chat.httpd.serve_forever, kwargs=serve, daemon=True)
    thread.start()
    yield chat
    chat.httpd.shutdown()
    chat.httpd.server_close()


def watcher(server: ChatServer, **options: Any) -> LlmWatcher:
    settings: dict[str, Any] = {
        "base_url": server.url,
        "model": "test-model",
        # No key: the in-test server needs none (a key is tested on its own below).
        "api_key_env": "",
        "timeout": 5.0,
        "retries": 0,
        "backoff": 0.01,
        "concurrency": 1,
        "price_input_per_mtok": 1.0,
        "price_output_per_mtok": 2.0,
    }
    settings.update(options)
    return create(settings)


def record(ledger: Ledger, runs: list[list[dict[str, Any]]]) -> list[int]:
    ids = []
    for index, results in enumerate(runs):
        with scripted_run(
            ledger,
            index,
            start=START,
            step=timedelta(days=1),
            run_key=f"r{index}",
            detect_issues=False,
        ) as run:
            for fields in results:
                run.record(**{"tool_name": "chat", "variation": "basic", **fields})
        assert run.run_id is not None
        ids.append(run.run_id)
    return ids


def rows(ledger: Ledger, run_id: int) -> list[dict[str, Any]]:
    with ledger.engine().connect() as conn:
        found = conn.execute(
            sa.select(watcher_insights, test_results.c.test_id)
            .join(test_results, test_results.c.id == watcher_insights.c.test_result_id)
            .where(test_results.c.run_id == run_id, watcher_insights.c.watcher == "llm")
            .order_by(test_results.c.test_id)
        ).mappings()
        return [dict(row) for row in found]


def one_result(ledger: Ledger, **fields: Any) -> int:
    [run_id] = record(ledger, [[{"status": "PASS", "duration_secs": 1.5, **fields}]])
    return run_id


def test_well_formed_answer_with_history_in_prompt(
    ledger: Ledger, server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTLEDGER_TEST_WATCHER_KEY", "sk-test")
    first, second = record(
        ledger,
        [
            [{"status": "PASS", "duration_secs": 2.0, "tokens_total": 900}],
            [{"status": "FAIL", "duration_secs": 3.0, "error_type": "AssertionError"}],
        ],
    )
    watch_run(ledger.engine(), first, HeuristicWatcher())
    llm = watcher(server, api_key_env="TESTLEDGER_TEST_WATCHER_KEY")
    summary = watch_run(ledger.engine(), second, llm)
    [row] = rows(ledger, second)
    assert {
        key: row[key]
        for key in (
            "quality_score",
            "strengths",
            "anomalies",
            "recommendations",
            "confidence",
            "watcher_model",
            "watcher_input_tokens",
            "watcher_output_tokens",
            "watcher_cost_usd",
            "truncated",
            "watcher_error",
        )
    } == {
        "quality_score": 8,
        "strengths": ["clear answer"],
        "anomalies": ["slower than usual"],
        "recommendations": ["cache the lookup"],
        "confidence": 0.9,
        "watcher_model": "test-model",
        "watcher_input_tokens": 1000,
        "watcher_output_tokens": 200,
        "watcher_cost_usd": 0.0014,
        "truncated": False,
        "watcher_error": None,
    }
    assert (summary.watched, summary.watcher_cost_usd, summary.watcher_tokens) == (1, 0.0014, 1200)
    [prompt] = server.prompts()
    assert "Status: FAIL" in prompt
    assert (
        f"- run {first} 2026-01-05: PASS, duration_secs=2.0, tokens_total=900, "
        "cost_usd=None, quality=9" in prompt
    )
    assert f"- run {first} (heuristic): quality=9, anomalies=[], recommendations=[]" in prompt
    assert server.requests[0]["model"] == "test-model"
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(content="not json {"), "malformed answer: not JSON"),
        (
            Reply(content='{"quality_score": 11, "strengths": []}'),
            "invalid answer: quality_score must be an integer 1-10, got 11",
        ),
        (
            Reply(content='{"quality_score": 5, "anomalies": "slow"}'),
            "invalid answer: anomalies must be a list of strings",
        ),
        (Reply(status=400), "watcher call failed: HTTP 400"),
    ],
    ids=["malformed-json", "score-out-of-range", "list-not-a-list", "http-400"],
)
def test_bad_answers_become_low_confidence_observations(
    ledger: Ledger, server: ChatServer, reply: Reply, error: str
) -> None:
    server.script = [reply]
    run_id = one_result(ledger)
    summary = watch_run(ledger.engine(), run_id, watcher(server))
    [row] = rows(ledger, run_id)
    assert row["quality_score"] is None
    assert row["confidence"] == 0.0
    assert row["confidence_level"] == "low"
    assert row["watcher_error"].startswith(error)
    assert (summary.watched, summary.failed, summary.avg_watcher_quality) == (1, 1, None)


def test_slow_answer_times_out(ledger: Ledger, server: ChatServer) -> None:
    server.script = [Reply(delay=1.0)]
    run_id = one_result(ledger)
    watch_run(ledger.engine(), run_id, watcher(server, timeout=0.2))
    [row] = rows(ledger, run_id)
    assert (row["quality_score"], row["watcher_error"]) == (
        None,
        "watcher call timed out: ReadTimeout",
    )


def test_429_honours_retry_after_then_succeeds(ledger: Ledger, server: ChatServer) -> None:
    server.script = [Reply(status=429, headers={"Retry-After": "0.3"}), Reply()]
    run_id = one_result(ledger)
    began = time.monotonic()
    # A backoff of 5 s would be used without Retry-After: the elapsed time tells them apart.
    watch_run(ledger.engine(), run_id, watcher(server, retries=2, backoff=5.0))
    elapsed = time.monotonic() - began
    assert 0.3 <= elapsed < 3.0
    assert len(server.requests) == 2
    [row] = rows(ledger, run_id)
    assert (row["quality_score"], row["watcher_error"]) == (8, None)


def test_500s_until_retries_are_exhausted(ledger: Ledger, server: ChatServer) -> None:
    server.script = [Reply(status=500)]
    run_id = one_result(ledger)
    watch_run(ledger.engine(), run_id, watcher(server, retries=2))
    assert len(server.requests) == 3
    [row] = rows(ledger, run_id)
    assert (row["quality_score"], row["watcher_error"]) == (None, "watcher call failed: HTTP 500")


def test_budget_stops_calls_and_leaves_later_results_unobserved(
    ledger: Ledger, server: ChatServer
) -> None:
    [run_id] = record(ledger, [[{"test_id": f"t{i}", "status": "PASS"} for i in range(3)]])
    llm = watcher(server, budget_usd=0.001)
    summary = watch_run(ledger.engine(), run_id, llm)
    assert len(server.requests) == 1
    assert [row["test_id"] for row in rows(ledger, run_id)] == ["t0"]
    assert (summary.watched, summary.not_watched, summary.watcher_cost_usd) == (1, 2, 0.0014)
    assert llm.budget_reached
    # A later watch with a fresh budget fills in only what is missing.
    again = watch_run(ledger.engine(), run_id, watcher(server), only_missing=True)
    assert (again.considered, again.watched) == (2, 2)
    assert [row["test_id"] for row in rows(ledger, run_id)] == ["t0", "t1", "t2"]


def test_truncation_is_recorded_and_told_to_the_model(ledger: Ledger, server: ChatServer) -> None:
    run_id = one_result(ledger, output_excerpt="x" * 5000)
    watch_run(ledger.engine(), run_id, watcher(server, max_input_chars=1000))
    [prompt] = server.prompts()
    assert (
        "NOTE: the output excerpt was truncated: 500 of 5000 characters shown (4500 cut)." in prompt
    )
    assert "[... 4500 more characters truncated]" in prompt
    assert "x" * 501 not in prompt
    [row] = rows(ledger, run_id)
    assert row["truncated"] is True


def test_concurrency_limit_is_kept(ledger: Ledger, server: ChatServer) -> None:
    [run_id] = record(ledger, [[{"test_id": f"t{i}", "status": "PASS"} for i in range(8)]])
    server.script = [Reply(delay=0.2)]
    summary = watch_run(ledger.engine(), run_id, watcher(server, concurrency=3))
    assert server.peak_in_flight == 3
    assert (summary.watched, len(rows(ledger, run_id))) == (8, 8)


def test_watcher_errors_leave_other_watchers_verdicts_standing(
    ledger: Ledger, server: ChatServer
) -> None:
    """An endpoint that fails on every result stores its errors, but the results' and the run's
    quality stay those of the watcher that did judge them."""
    [run_id] = record(
        ledger,
        [[{"test_id": "ok", "status": "PASS"}, {"test_id": "bad", "status": "FAIL"}]],
    )
    first = watch_run(ledger.engine(), run_id, HeuristicWatcher())
    assert first.avg_watcher_quality == 6.0  # (9 + 3) / 2
    server.script = [Reply(status=500)]
    summary = watch_run(ledger.engine(), run_id, watcher(server))
    assert (summary.watched, summary.failed, summary.avg_watcher_quality) == (2, 2, 6.0)
    assert [row["watcher_error"] for row in rows(ledger, run_id)] == [
        "watcher call failed: HTTP 500"
    ] * 2
    with ledger.engine().connect() as conn:
        results = conn.execute(
            sa.select(
                test_results.c.test_id,
                test_results.c.watcher_quality,
                test_results.c.watcher_observations,
            )
            .where(test_results.c.run_id == run_id)
            .order_by(test_results.c.test_id)
        ).all()
        run = conn.execute(
            sa.select(test_runs.c.avg_watcher_quality, test_runs.c.watcher_model).where(
                test_runs.c.id == run_id
            )
        ).one()
        watchers = conn.execute(
            sa.select(watcher_insights.c.watcher).order_by(watcher_insights.c.id)
        ).scalars()
        assert list(watchers) == ["heuristic", "heuristic", "llm", "llm"]
    assert [(test_id, quality) for test_id, quality, _ in results] == [("bad", 3), ("ok", 9)]
    kept = [json.loads(o) if isinstance(o, str) else o for _, _, o in results]
    assert [(o["watcher"], o["error"]) for o in kept] == [("heuristic", None)] * 2
    assert tuple(run) == (6.0, "heuristic")


@pytest.mark.parametrize(
    ("options", "environment", "message"),
    [
        ({}, {}, "has no endpoint and no key: set [tool.testledger.watcher.llm] base_url"),
        (
            {"base_url": "https://api.openai.com/v1/"},
            {},
            "or the environment variable OPENAI_API_KEY (named by api_key_env)",
        ),
        (
            {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "TESTLEDGER_TEST_WATCHER_KEY"},
            {"TESTLEDGER_TEST_WATCHER_KEY": ""},
            "api_key_env names TESTLEDGER_TEST_WATCHER_KEY, which is not set",
        ),
        ({"api_key_env": ""}, {}, "has no endpoint and no key"),
        # Configured well enough to call: no error.
        ({}, {"OPENAI_API_KEY": "sk-test"}, None),
        ({"base_url": "http://127.0.0.1:11434/v1"}, {}, None),  # a local server needs no key
        ({"base_url": "http://127.0.0.1:9/v1", "api_key_env": ""}, {}, None),
        (
            {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "TESTLEDGER_TEST_WATCHER_KEY"},
            {"TESTLEDGER_TEST_WATCHER_KEY": "sk-test"},
            None,
        ),
    ],
)
def test_create_refuses_settings_that_cannot_call(
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    environment: dict[str, str],
    message: str | None,
) -> None:
    for name in ("OPENAI_API_KEY", "TESTLEDGER_TEST_WATCHER_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    if message is None:
        assert isinstance(create(options), LlmWatcher)
        return
    with pytest.raises(ConfigError) as raised:
        create(options)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
