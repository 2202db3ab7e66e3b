"""``testledger demo``: a full 12-run demo, then what its ledger must hold.

The demo is built once (it really runs pytest twelve times: about twenty seconds) through the
command itself, and each test below asserts one part of the story on it. The tests that read a
built demo run again on PostgreSQL in tests/test_demo_postgresql.py: a module of its own, so
that pytest-xdist builds the two demos on two workers at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.flaky.finder import find_flaky
from testledger.cli import main
from testledger.cli.registry import COMMANDS
from testledger.demo.runner import MARKER_FILE, report_steps, rerunfailures_installed
from testledger.store.database import connect_engine
from testledger.store.tables import issue_events, issues, test_results, test_runs

ASSISTANT = "tests/demo_assistant.py::"
PIPELINE = "tests/demo_pipeline.py::"
RETRIES = rerunfailures_installed()

#: The demo's build takes most of this module's time: its files are scheduled first.
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Demo:
    directory: Path
    url: str
    exit_code: int
    output: str


def run_cli(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def demo(sqlite_demo: tuple[Path, int, str]) -> Demo:
    """The demo in its embedded default ledger, a SQLite file in the demo folder. (The same
    checks run on a demo recorded into PostgreSQL in tests/test_demo_postgresql.py.)"""
    directory, code, output = sqlite_demo
    return Demo(directory, f"sqlite:///{directory / 'ledger.db'}", code, output)


@pytest.fixture(scope="module")
def conn(demo: Demo) -> Iterator[sa.Connection]:
    engine = connect_engine(demo.url)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def run_ids(conn: sa.Connection) -> list[int]:
    query = sa.select(test_runs.c.id).order_by(test_runs.c.run_timestamp, test_runs.c.id)
    return list(conn.execute(query).scalars())


def final_statuses(conn: sa.Connection, test_id: str) -> str:
    """The test's last-attempt status in each run, oldest run first: "PPF..."."""
    query = (
        sa.select(test_results.c.run_id, test_results.c.status)
        .where(test_results.c.test_id == test_id)
        .order_by(test_results.c.run_id, test_results.c.attempt)
    )
    finals = {run_id: status for run_id, status in conn.execute(query)}
    return "".join(finals[run_id][0] for run_id in run_ids(conn))


def test_the_command_succeeds_and_prints_every_available_report(demo: Demo) -> None:
    assert demo.exit_code == 0, demo.output
    assert "Recorded 12 runs of the demo suite (git commits" in demo.output
    # Every step's command is in this build: a missing one fails here rather than being
    # reported as "not available" by the demo.
    commands = set(COMMANDS)
    for title, argv in report_steps(demo.directory / "report.html", "PROD-MEDIUM-001"):
        assert argv[0] in commands, f"`testledger {argv[0]}` is missing"
        assert title in demo.output
        assert f"$ testledger {' '.join(argv)}" in demo.output
    assert "is not available" not in demo.output
    assert "Explore further:" in demo.output
    # The issue step tells the story of the bug fixed at commit 5 and back at commit 10.
    assert "auto_resolved OPEN->RESOLVED run 7" in demo.output
    assert "regressed RESOLVED->OPEN run 10" in demo.output


def test_twelve_runs_one_per_git_commit_on_main(demo: Demo, conn: sa.Connection) -> None:
    rows = conn.execute(
        sa.select(test_runs.c.commit_hash, test_runs.c.branch_name, test_runs.c.suite)
        .where(test_runs.c.status == "finished")
        .order_by(test_runs.c.run_timestamp, test_runs.c.id)
    ).all()
    commits = subprocess.run(
        ["git", "rev-list", "--reverse", "HEAD"],
        cwd=demo.directory,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [row.commit_hash for row in rows] == commits
    assert len(set(commits)) == 12
    assert {(row.branch_name, row.suite) for row in rows} == {("main", "demo")}


# The story, one letter per run (P pass, F fail, S skip), the last attempt deciding.
STORY = [
    (ASSISTANT + "test_extract_entities", "FFFFPPPPPFFF"),
    (ASSISTANT + "test_weather_tool_call", "PPPPPPPPPPPF"),
    (ASSISTANT + "test_web_search_tool", "FPPPPPFFPPFP" if RETRIES else "FPFFPPFFFPFP"),
    (ASSISTANT + "test_summarize_article", "P" * 12),
    (PIPELINE + "test_render_report", "P" * 12),
    (PIPELINE + "test_price_table[kimi-k2]", "P" * 12),
    (PIPELINE + "test_embeddings_on_gpu", "S" * 12),
]


@pytest.mark.parametrize(("test_id", "expected"), STORY, ids=[t for t, _ in STORY])
def test_each_test_follows_the_story(conn: sa.Connection, test_id: str, expected: str) -> None:
    assert final_statuses(conn, test_id) == expected


def test_the_intermittent_test_is_retried_when_rerunfailures_is_installed(
    conn: sa.Connection,
) -> None:
    attempts = conn.execute(
        sa.select(test_results.c.run_id, sa.func.count())
        .where(test_results.c.test_id == ASSISTANT + "test_web_search_tool")
        .group_by(test_results.c.run_id)
    ).all()
    by_run = dict(attempts)
    counts = "".join(str(by_run[run_id]) for run_id in run_ids(conn))
    assert counts == ("212211222121" if RETRIES else "1" * 12)
    # The demo's own check agrees with what is installed: were it to miss the plugin, the
    # story would quietly switch to the one without retries.
    installed = importlib.util.find_spec("pytest_rerunfailures") is not None
    assert installed is RETRIES


def test_find_flaky_flags_the_intermittent_test_only(conn: sa.Connection) -> None:
    found = find_flaky(conn)
    assert [(f.test_id, f.suite) for f in found] == [(ASSISTANT + "test_web_search_tool", "demo")]
    assert any(reason.startswith("flipped") for reason in found[0].reasons)


def test_the_fixed_bug_is_resolved_then_reopened_as_regressed(conn: sa.Connection) -> None:
    ids = run_ids(conn)
    issue = conn.execute(
        sa.select(issues).where(issues.c.title.like("AssertionError: assert {'people'%"))
    ).one()
    events = conn.execute(
        sa.select(issue_events.c.kind, issue_events.c.run_id)
        .where(issue_events.c.issue_id == issue.id)
        .order_by(issue_events.c.id)
    ).all()
    assert [tuple(e) for e in events] == [
        ("created", ids[0]),
        ("auto_resolved", ids[6]),  # passed in runs 5, 6, 7
        ("regressed", ids[9]),  # the same error again at commit 10
    ]
    assert (issue.status, issue.regressed_run_id, issue.resolved_run_id) == ("OPEN", ids[9], None)
    # Runs 11 and 12 saw it again: the latest movement is "recurring".
    assert issue.lifecycle == "recurring"


def test_issues_are_grouped_by_fingerprint_and_by_the_demo_rule(conn: sa.Connection) -> None:
    ids = run_ids(conn)
    rows = conn.execute(
        sa.select(
            issues.c.issue_code,
            issues.c.title,
            issues.c.rule_name,
            issues.c.first_detected_run_id,
            issues.c.lifecycle,
        )
        .where(issues.c.origin == "detected")
        .order_by(issues.c.issue_code)
    ).all()
    assert [(r.issue_code, r.rule_name, r.first_detected_run_id, r.lifecycle) for r in rows] == [
        ("INFR-LOW-001", "search-backend-timeout", ids[0], "recurring"),
        ("PROD-MEDIUM-001", None, ids[0], "recurring"),
        ("PROD-MEDIUM-002", None, ids[11], "new"),
    ]
    assert rows[2].title == "KeyError: 'arguments'"


LLM_TESTS = [
    ("test_summarize_article", "glm", "glm-4.5-air"),
    ("test_translate_support_ticket", "moonshot", "kimi-k2"),
    ("test_extract_entities", "openai", "gpt-4o-mini"),
    ("test_weather_tool_call", "glm", "glm-4.5"),
]


@pytest.mark.parametrize(("name", "provider", "model"), LLM_TESTS)
def test_model_backed_tests_carry_provider_model_tokens_and_cost(
    conn: sa.Connection, name: str, provider: str, model: str
) -> None:
    r = test_results.c
    rows = conn.execute(
        sa.select(
            r.provider, r.model, r.tokens_input, r.tokens_output, r.tokens_total, r.cost_usd
        ).where(r.test_id == ASSISTANT + name)
    ).all()
    assert len(rows) == 12
    assert {(row.provider, row.model) for row in rows} == {(provider, model)}
    for row in rows:
        assert row.tokens_total == row.tokens_input + row.tokens_output > 0
        assert row.cost_usd > 0
    # Deterministic, but not constant: the trend has something to show.
    assert len({row.tokens_total for row in rows}) > 6


def test_the_renderer_slows_down_from_commit_8(conn: sa.Connection) -> None:
    query = (
        sa.select(test_results.c.duration_secs)
        .where(test_results.c.test_id == PIPELINE + "test_render_report")
        .order_by(test_results.c.run_id)
    )
    durations = list(conn.execute(query).scalars())
    assert max(durations[:7]) < 0.06
    assert min(durations[7:]) >= 0.1


def test_the_slowdown_is_found_as_the_only_regression(demo: Demo, conn: sa.Connection) -> None:
    ids = run_ids(conn)
    rows = conn.execute(
        sa.select(issues.c.category, issues.c.status, issues.c.details)
        .where(issues.c.origin == "regression")
        .order_by(issues.c.category)
    ).all()
    # Exactly the planted slowdown, with the default settings (the millisecond tests' timings
    # jitter by tens of percent, more under load, but by far less than the 50 ms minimum), and
    # the heuristic watcher's view of it: its score drops with the anomaly it sees each run.
    found = [(r.category, r.status, r.details["test_id"], r.details["metric"]) for r in rows]
    assert found == [
        ("performance", "OPEN", PIPELINE + "test_render_report", "duration"),
        ("quality", "OPEN", PIPELINE + "test_render_report", "quality"),
    ]
    for row in rows:
        details = row.details
        assert details["first_run_id"] == ids[7]  # commit 8 changed the renderer
        assert details["n_before"] == 7 and details["n_after"] == 5
    duration, quality = rows[0].details, rows[1].details
    assert 0.019 < duration["before_mean"] < 0.03 and duration["after_mean"] >= 0.1
    assert (quality["before_mean"], quality["after_mean"]) == (9, 7)
    assert re.search(r"\b2 regressions in \d+ series", demo.output)


def test_the_heuristic_watcher_scores_every_run_and_sees_the_slowdown(
    conn: sa.Connection,
) -> None:
    from testledger.store.tables import watcher_insights

    w, r = watcher_insights.c, test_results.c
    rows = conn.execute(
        sa.select(r.run_id, r.test_id, w.quality_score, w.anomalies, w.watcher)
        .select_from(watcher_insights.join(test_results, r.id == w.test_result_id))
        .order_by(r.run_id)
    ).all()
    ids = run_ids(conn)
    assert {row.run_id for row in rows} == set(ids)
    assert {row.watcher for row in rows} == {"heuristic"}
    render = [row for row in rows if row.test_id == PIPELINE + "test_render_report"]
    flagged = [ids.index(row.run_id) + 1 for row in render if row.anomalies]
    assert flagged == [8, 9, 10, 11, 12]
    assert all("duration" in row.anomalies[0] for row in render if row.anomalies)
    quality = conn.execute(
        sa.select(test_runs.c.avg_watcher_quality).order_by(test_runs.c.id)
    ).scalars()
    assert all(value is not None for value in quality)


def test_the_html_report_is_written(demo: Demo) -> None:
    html = demo.directory / "report.html"
    assert html.is_file()
    assert f"HTML report: {html.as_uri()}" in demo.output


def test_the_demo_folder_is_a_project_one_can_keep_using(demo: Demo) -> None:
    assert (demo.directory / MARKER_FILE).is_file()
    assert json.loads((demo.directory / "demo_state.json").read_text())["iteration"] == 12
    assert sorted(p.name for p in (demo.directory / "tests").iterdir()) == [
        "conftest.py",
        "demo_assistant.py",
        "demo_pipeline.py",
    ]
    assert len(list((demo.directory / "pytest-logs").iterdir())) == 12
    status = subprocess.run(
        ["git", "status", "--porcelain"],
        cwd=demo.directory,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert status == ""  # the ledger, results and logs are ignored; nothing else changed


# -- refusing to overwrite --------------------------------------------------------------------


def _other_folder(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    return path


def _a_file(path: Path) -> Path:
    path.write_text("mine")
    return path


def _earlier_demo(path: Path) -> Path:
    path.mkdir()
    (path / MARKER_FILE).write_text("")
    (path / "ledger.db").write_text("old")
    return path


REFUSALS = [
    (_other_folder, [], "is not a testledger demo folder; choose another --dir"),
    (_other_folder, ["--force"], "is not a testledger demo folder; choose another --dir"),
    (_a_file, ["--force"], "exists and is not a folder; choose another --dir"),
    (_earlier_demo, [], "holds an earlier demo; use --force to replace it"),
]


@pytest.mark.parametrize(("make", "options", "message"), REFUSALS)
def test_refuses_to_overwrite(
    tmp_path: Path, make: object, options: list[str], message: str
) -> None:
    assert callable(make)
    target = make(tmp_path / "target")
    before = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()
    code, output = run_cli("demo", "--dir", str(target), "--runs", "1", *options)
    assert code == 1
    assert output.startswith("error: ") and message in output
    after = sorted(p.name for p in target.iterdir()) if target.is_dir() else target.read_text()
    assert after == before


def test_force_replaces_an_earlier_demo(tmp_path: Path) -> None:
    target = _earlier_demo(tmp_path / "target")
    code, output = run_cli("demo", "--dir", str(target), "--runs", "1", "--force", "--json")
    assert code == 0, output
    data = json.loads(output)
    assert [run["iteration"] for run in data["runs"]] == [1]
    assert data["database_url"] == f"sqlite:///{target / 'ledger.db'}"
    assert (target / "ledger.db").read_bytes()[:15] == b"SQLite format 3"


def test_refuses_a_database_that_already_holds_runs(
    ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    with ledger.start_run(branch="main", suite="mine", detect_environment=False) as run:
        run.record(tool_name="chat", variation="basic", status="PASS")
    code, output = run_cli("--db", db_url, "demo", "--dir", str(tmp_path / "d"), "--runs", "1")
    assert code == 1
    assert "error: the database already holds 1 run(s); the demo records into an empty one" in (
        output
    )
    assert not (tmp_path / "d").exists()


def test_refuses_to_nest_a_demo_in_a_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`testledger demo` run again from inside the demo folder (as "Explore further" leaves the
    reader there) would make testledger-demo/testledger-demo: a second project and git
    repository inside the first."""
    earlier = _earlier_demo(tmp_path / "testledger-demo")
    monkeypatch.chdir(earlier)
    for options in ([], ["--dir", "sub/deeper"], ["--force"]):
        code, output = run_cli("demo", "--runs", "1", *options)
        assert code == 1, output
        assert output == (
            f"error: {earlier} is a testledger demo folder: run the demo from outside it, or "
            "give --dir a folder outside it\n"
        )
    assert sorted(p.name for p in earlier.iterdir()) == [MARKER_FILE, "ledger.db"]
