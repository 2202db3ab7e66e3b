"""``testledger watch`` on SQLite and PostgreSQL: observations stored, the result's and the
run's quality updated, ``--only-missing`` idempotent, summary and errors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.cli import main
from testledger.store.tables import test_results, test_runs, watcher_insights
from tests.helpers import UNUSED_PLUGINS
from tests.histories import scripted_run

pytest_plugins = ["pytester"]

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def recorded(ledger: Ledger) -> int:
    """Four steady runs, then one where ``slow`` takes 3x as long and ``broken`` fails."""
    for index in range(5):
        last = index == 4
        with scripted_run(
            ledger, index, start=START, run_key=f"r{index}", detect_issues=False
        ) as run:
            run.record(
                tool_name="slow", variation="v", status="PASS", duration_secs=6.0 if last else 2.0
            )
            run.record(
                tool_name="broken",
                variation="v",
                status="FAIL" if last else "PASS",
                duration_secs=1.0,
                error_type="ValueError" if last else None,
            )
            run.record(tool_name="skipped", variation="v", status="SKIP")
    assert run.run_id is not None
    return run.run_id


def test_watch_stores_observations_and_updates_quality(
    capsys: pytest.CaptureFixture[str], db_url: str, ledger: Ledger, recorded: int
) -> None:
    code, out, err = cli(capsys, "--db", db_url, "watch", "--watcher", "heuristic")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"Run {recorded}: heuristic observed 2 of 3 result(s), 0 watcher error(s)",
        "1 result(s) left without observation: skipped tests, or nothing for the watcher to say",
        "Avg quality: 4.50   Anomalies found: 2",
        "Watcher spend: $0.0000 (0 tokens)",
    ]
    with ledger.engine().connect() as conn:
        qualities = dict(
            conn.execute(
                sa.select(test_results.c.test_id, test_results.c.watcher_quality).where(
                    test_results.c.run_id == recorded
                )
            ).all()
        )
        average = conn.execute(
            sa.select(test_runs.c.avg_watcher_quality).where(test_runs.c.id == recorded)
        ).scalar_one()
        anomalies = (
            conn.execute(
                sa.select(watcher_insights.c.anomalies)
                .join(test_results, test_results.c.id == watcher_insights.c.test_result_id)
                .where(test_results.c.run_id == recorded)
                .order_by(test_results.c.test_id)
            )
            .scalars()
            .all()
        )
    # slow: a pass (9) with one anomaly (-2); broken: a failure (3) with one anomaly (-1).
    assert qualities == {"slow/v": 7, "broken/v": 2, "skipped/v": None}
    assert average == 4.5
    assert anomalies == [
        ["failed after passing its last 4 runs"],
        ["duration 3.0x its 4-run median of 2.0 s"],
    ]


def test_only_missing_is_idempotent(
    capsys: pytest.CaptureFixture[str], db_url: str, ledger: Ledger, recorded: int
) -> None:
    code, out, _ = cli(capsys, "--db", db_url, "watch", str(recorded), "--json")
    assert code == 0
    first = json.loads(out)
    assert (first["watched"], first["considered"]) == (2, 3)
    code, out, _ = cli(capsys, "--db", db_url, "watch", str(recorded), "--only-missing", "--json")
    again = json.loads(out)
    assert code == 0
    # The skipped result is considered again (it has no observation) but still gets none.
    assert (again["considered"], again["watched"]) == (1, 0)
    assert again["avg_watcher_quality"] == first["avg_watcher_quality"]
    with ledger.engine().connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(watcher_insights)).scalar()
    assert count == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["watch", "--watcher", "nope"],
            "error: unknown watcher 'nope'; available: heuristic, llm",
        ),
        (["watch", "999"], "error: no run with id or key 999"),
    ],
)
def test_watch_errors(
    capsys: pytest.CaptureFixture[str],
    db_url: str,
    recorded: int,
    args: list[str],
    message: str,
) -> None:
    code, _, err = cli(capsys, "--db", db_url, *args)
    assert (code, err.strip()) == (1, message)


def test_runner_watches_live_at_finish(ledger: Ledger) -> None:
    with ledger.start_run(
        branch="main", suite="live", detect_environment=False, watcher="heuristic"
    ) as run:
        run.record(tool_name="a", variation="v", status="PASS", duration_secs=0.5)
        run.record(tool_name="b", variation="v", status="FAIL", error_type="KeyError")
    assert run.stats is not None
    assert run.stats.avg_watcher_quality == 6.0  # (9 + 3) / 2
    with ledger.engine().connect() as conn:
        stored = conn.execute(
            sa.select(test_runs.c.avg_watcher_quality).where(test_runs.c.id == run.run_id)
        ).scalar_one()
        watchers = conn.execute(sa.select(watcher_insights.c.watcher)).scalars().all()
    assert (stored, watchers) == (6.0, ["heuristic", "heuristic"])


def test_pytest_plugin_watcher_option(pytester: pytest.Pytester, db_url: str) -> None:
    pytester.makepyfile(test_live="def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    outcome = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS,
        f"--ledger={db_url}",
        f"--ledger-results-dir={pytester.path / 'results'}",
        "--watcher=heuristic",
    )
    outcome.assert_outcomes(passed=1, failed=1)
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            average = conn.execute(sa.select(test_runs.c.avg_watcher_quality)).scalar_one()
            scores = sorted(
                conn.execute(sa.select(watcher_insights.c.quality_score)).scalars().all()
            )
    finally:
        engine.dispose()
    assert (average, scores) == (6.0, [3, 9])


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        # Nothing configured: the default endpoint is OpenAI's, which needs a key.
        (
            [],
            "error: the llm watcher has no endpoint and no key: set [tool.testledger.watcher.llm] "
            "base_url (an OpenAI-compatible endpoint) or the environment variable "
            "OPENAI_API_KEY (named by api_key_env) for https://api.openai.com/v1",
        ),
        # A key named but not set: every call would be refused (HTTP 401).
        (
            ["--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "TESTLEDGER_NO_SUCH_KEY"],
            "error: [tool.testledger.watcher.llm] api_key_env names TESTLEDGER_NO_SUCH_KEY, "
            'which is not set in the environment (api_key_env = "" for an endpoint that needs '
            "no key)",
        ),
    ],
    ids=["nothing-configured", "key-not-set"],
)
def test_llm_watcher_without_endpoint_or_key_refuses_before_touching_anything(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    db_url: str,
    ledger: Ledger,
    recorded: int,
    args: list[str],
    missing: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # no project settings: nothing configured
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("TESTLEDGER_NO_SUCH_KEY", raising=False)
    assert cli(capsys, "--db", db_url, "watch", "--watcher", "heuristic")[0] == 0
    code, out, err = cli(capsys, "--db", db_url, "watch", "--watcher", "llm", *args)
    assert (code, out, err.strip()) == (1, "", missing)
    assert len(err.strip().splitlines()) == 1
    with ledger.engine().connect() as conn:
        watchers = conn.execute(sa.select(watcher_insights.c.watcher)).scalars().all()
        average = conn.execute(
            sa.select(test_runs.c.avg_watcher_quality).where(test_runs.c.id == recorded)
        ).scalar_one()
    assert (sorted(watchers), average) == (["heuristic", "heuristic"], 4.5)


def test_pytest_plugin_refuses_a_watcher_that_cannot_work(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """Checked as the session starts: nothing runs and nothing is recorded."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(test_live="def test_ok():\n    pass\n")
    outcome = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS,
        f"--ledger={db_url}",
        f"--ledger-results-dir={pytester.path / 'results'}",
        "--watcher=llm",
    )
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    outcome.stderr.fnmatch_lines(["ERROR: testledger: the llm watcher has no endpoint and no key*"])
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.select(sa.func.count()).select_from(test_runs)).scalar_one()
    finally:
        engine.dispose()
    assert runs == 0
