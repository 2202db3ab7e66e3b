"""The scripted history the web app's tests serve: two suites, two branches, a test that fails
for good (an issue), a flaky one, one whose duration jumps (a regression), LLM costs per provider
and model, watcher observations, and hostile strings (a test named like a script tag, terminal
escapes and NUL in messages)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from testledger import Ledger, api
from testledger.model import WatcherObservation
from testledger.store.tables import test_results
from tests.histories import START, record_test, scripted_run

__all__ = ["ESCAPES", "RUNS", "XSS", "XSS_TEST", "record_scenario"]

XSS = "<script>alert(1)</script>"
XSS_TEST = f"xss/{XSS}"
ESCAPES = "colour \x1b[31mred\x1b[0m and a NUL \x00 here"
#: Runs in the scenario: 12 on main/suite "web", 3 on a feature branch, 3 of another suite.
RUNS = 18


def _main_run(ledger: Ledger, index: int) -> None:
    with scripted_run(
        ledger, index, start=START, suite="web", commit=f"c{index:03d}", run_key=f"main-{index}"
    ) as run:
        record_test(run, "calc/add", "PASS", duration_secs=0.5 + index * 0.01, memory_mb=100)
        # A regression: 1 s for six runs, then 3 s.
        record_test(run, "calc/slow", "PASS", duration_secs=1.0 if index < 6 else 3.0)
        # Broken from run 4 on: one issue.
        broken = "FAIL" if index >= 4 else "PASS"
        record_test(run, "calc/div", broken, error_message="ZeroDivisionError: division by zero")
        # Flaky: fails every third run, then passes on retry.
        if index % 3 == 1:
            record_test(run, "net/fetch", "FAIL", error_message="timeout after 5 s")
        record_test(run, "net/fetch", "PASS", duration_secs=0.2)
        for provider, model, cost in (("openai", "gpt-4o", 0.02), ("anthropic", "claude", 0.03)):
            record_test(
                run,
                f"llm/{model}",
                "PASS",
                provider=provider,
                model=model,
                cost_usd=cost + index * 0.001,
                tokens_total=1000 + index * 10,
            )
        record_test(
            run, XSS_TEST, "FAIL" if index == 11 else "PASS", error_message=f"{XSS} {ESCAPES}"
        )


def _observe(ledger: Ledger) -> None:
    with ledger.engine().connect() as conn:
        result_id = conn.execute(
            sa.select(sa.func.max(test_results.c.id)).where(test_results.c.test_id == "llm/gpt-4o")
        ).scalar_one()
    api.record_observation(
        ledger,
        int(result_id),
        WatcherObservation(
            quality_score=4,
            anomalies=[f"answer quoted {XSS}"],
            recommendations=["pin the model version"],
            watcher="heuristic",
        ),
    )


def record_scenario(ledger: Ledger) -> None:
    for index in range(12):
        _main_run(ledger, index)
    for index in range(3):
        with scripted_run(
            ledger,
            12 + index,
            start=START + timedelta(minutes=10),
            branch="feature/x",
            suite="web",
            run_key=f"feature-{index}",
        ) as run:
            record_test(run, "calc/add", "PASS", duration_secs=0.4)
            record_test(run, "calc/div", "PASS")
    for index in range(3):
        with scripted_run(
            ledger, 15 + index, start=START + timedelta(minutes=20), suite="other"
        ) as run:
            record_test(run, "other/one", "PASS" if index else "ERROR", error_message=ESCAPES)
    _observe(ledger)
