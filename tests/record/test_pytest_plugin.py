"""The pytest plugin end to end: real pytest sessions in subprocesses (the plugin loaded through
its entry point), every row checked in SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import UNUSED_PLUGINS, run_ledger
from tests.helpers import query_rows as rows

pytest_plugins = ["pytester"]


def as_dict(value: Any) -> Any:
    # JSON columns: dicts on PostgreSQL, JSON text on SQLite.
    return json.loads(value) if isinstance(value, str) else value


OUTCOMES = """
import pytest

@pytest.fixture
def bad_setup():
    raise ValueError("setup boom")

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown boom")

def test_pass():
    print("hello out")

def test_fail():
    assert 1 == 2

def test_setup_error(bad_setup):
    pass

def test_teardown_error(bad_teardown):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    raise KeyError("k")

@pytest.mark.xfail(reason="maybe")
def test_xpass():
    pass

@pytest.mark.xfail(reason="must fail", strict=True)
def test_xpass_strict():
    pass

class TestGroup:
    @pytest.mark.parametrize("x, y", [(1, "a"), (2, "b-c")])
    def test_param(self, x, y):
        pass
"""


def test_outcomes(pytester: pytest.Pytester, db_url: str) -> None:
    pytester.makepyfile(test_outcomes=OUTCOMES)
    result = run_ledger(pytester, db_url)
    result.assert_outcomes(passed=4, failed=2, errors=2, skipped=1, xfailed=1, xpassed=1)
    result.stdout.fnmatch_lines(["testledger: recorded 10 results (run 1) into *"])
    got = {
        r["test_id"]: r
        for r in rows(db_url, "SELECT * FROM test_results ORDER BY id")
        if r.pop("id") and r.pop("created_at")
    }
    p = "test_outcomes.py::"
    assert {k: (v["status"], v["attempt"]) for k, v in got.items()} == {
        p + "test_pass": ("PASS", 1),
        p + "test_fail": ("FAIL", 1),
        p + "test_setup_error": ("ERROR", 1),
        p + "test_teardown_error": ("ERROR", 1),
        p + "test_skip": ("SKIP", 1),
        p + "test_xfail": ("SKIP", 1),
        p + "test_xpass": ("PASS", 1),
        p + "test_xpass_strict": ("FAIL", 1),
        p + "TestGroup::test_param[1-a]": ("PASS", 1),
        p + "TestGroup::test_param[2-b-c]": ("PASS", 1),
    }
    param = got[p + "TestGroup::test_param[2-b-c]"]
    assert (param["tool_name"], param["variation"]) == (
        "test_outcomes.py::TestGroup",
        "test_param[2-b-c]",
    )
    assert (got[p + "test_pass"]["tool_name"], got[p + "test_pass"]["variation"]) == (
        "test_outcomes.py",
        "test_pass",
    )
    assert "hello out" in got[p + "test_pass"]["output_excerpt"]
    fail = got[p + "test_fail"]
    assert (fail["error_type"], fail["error_message"]) == ("AssertionError", "assert 1 == 2")
    assert "assert 1 == 2" in fail["traceback"]
    setup = got[p + "test_setup_error"]
    assert (setup["error_type"], setup["error_message"]) == ("ValueError", "setup boom")
    assert as_dict(setup["details"]) == {"phase": "setup"}
    teardown = got[p + "test_teardown_error"]
    assert (teardown["error_type"], teardown["error_message"]) == ("RuntimeError", "teardown boom")
    assert as_dict(teardown["details"]) == {"phase": "teardown"}
    assert as_dict(got[p + "test_skip"]["details"]) == {"skip_reason": "not today"}
    assert as_dict(got[p + "test_xfail"]["details"]) == {"xfail": "known bug"}
    assert as_dict(got[p + "test_xpass"]["details"]) == {"xpass": True}
    assert got[p + "test_xpass_strict"]["error_message"] == "[XPASS(strict)] must fail"
    for row in got.values():
        assert row["duration_secs"] is not None and row["duration_secs"] >= 0
        assert row["memory_mb"] > 0 and row["cpu_percent"] is not None
        assert row["started_at"] is not None
        assert row["provider"] is None and row["model"] is None
    (run,) = rows(db_url, "SELECT * FROM test_runs")
    assert (run["status"], run["source"], run["total_tests"], run["tests_passed"]) == (
        "finished",
        "pytest",
        10,
        4,
    )
    assert (run["tests_failed"], run["tests_errored"], run["tests_skipped"]) == (4, 2, 2)
    assert run["branch_name"] == "unknown" and run["commit_hash"] is None  # no git here
    metadata = as_dict(run["run_metadata"])
    assert metadata["environment"]["python"] and metadata["pytest"]["version"] == pytest.__version__


def test_truncation_is_explicit(pytester: pytest.Pytester, db_url: str) -> None:
    pytester.makepyfile(
        test_big="""
        def test_big():
            print("x" * 20000)
            raise ValueError("y" * 100000)
        """
    )
    run_ledger(pytester, db_url).assert_outcomes(failed=1)
    (row,) = rows(db_url, "SELECT traceback, output_excerpt, error_type FROM test_results")
    assert row["error_type"] == "ValueError"
    assert "[... truncated " in row["traceback"] and len(row["traceback"]) < 70 * 1024
    assert "[... truncated " in row["output_excerpt"] and len(row["output_excerpt"]) < 9 * 1024


def test_ledger_fixture_and_marker(pytester: pytest.Pytester, db_url: str) -> None:
    pytester.makepyfile(
        test_llm="""
        import pytest
        from testledger import WatcherObservation

        pytestmark = pytest.mark.ledger(provider="module-level")

        @pytest.mark.ledger(provider="glm", model="glm-4.5-air")
        def test_marked(ledger):
            ledger.set(tokens_total=1200, tokens_input=1000, tokens_output=200, cost_usd=0.0012,
                       execution_status="success")
            ledger.metric("latency_ms", 840)
            ledger.watch(WatcherObservation(quality_score=8, strengths=["clear"],
                                            confidence=0.9))

        def test_fixture_only(ledger):
            ledger.set(model="m2", tool_name="chat", variation="basic")
            ledger.watch(quality_score=None, error="watcher timed out")
            ledger.watch(quality_score=3, weaknesses=["vague"])

        def test_bad_field(ledger):
            with pytest.raises(TypeError, match="unknown field"):
                ledger.set(modle="x")

        @pytest.mark.ledger(model="class-model")
        class TestGrouped:
            def test_in_class(self):
                pass
        """
    )
    run_ledger(pytester, db_url).assert_outcomes(passed=4)
    got = {r["variation"]: r for r in rows(db_url, "SELECT * FROM test_results")}
    marked = got["test_marked"]
    assert (marked["provider"], marked["model"], marked["tokens_total"]) == (
        "glm",
        "glm-4.5-air",
        1200,
    )
    assert (marked["tokens_input"], marked["tokens_output"]) == (1000, 200)
    assert float(marked["cost_usd"]) == pytest.approx(0.0012)
    assert marked["execution_status"] == "success"
    assert as_dict(marked["metrics"]) == {"latency_ms": 840}
    assert marked["watcher_quality"] == 8
    plain = got["basic"]  # tool_name and variation set by the test; test_id stays the node id
    assert plain["test_id"] == "test_llm.py::test_fixture_only"
    assert (plain["tool_name"], plain["provider"], plain["model"]) == ("chat", "module-level", "m2")
    assert plain["watcher_quality"] == 3
    assert got["test_bad_field"]["provider"] == "module-level"
    grouped = got["test_in_class"]  # the class's marker, and the module's under it
    assert (grouped["provider"], grouped["model"]) == ("module-level", "class-model")
    insights = rows(
        db_url,
        "SELECT r.variation, w.quality_score, w.confidence, w.watcher_error "
        "FROM watcher_insights w JOIN test_results r ON r.id = w.test_result_id "
        "ORDER BY w.id",
    )
    assert [(i["variation"], i["quality_score"], i["watcher_error"]) for i in insights] == [
        ("test_marked", 8, None),
        ("basic", None, "watcher timed out"),
        ("basic", 3, None),
    ]
    assert float(insights[0]["confidence"]) == pytest.approx(0.9)
    (run,) = rows(db_url, "SELECT avg_watcher_quality FROM test_runs")
    assert float(run["avg_watcher_quality"]) == pytest.approx(5.5)


@pytest.mark.parametrize("xdist", [(), ("-p", "xdist", "-n", "2")], ids=["local", "xdist"])
def test_unknown_marker_field_errors_its_test(
    pytester: pytest.Pytester, db_url: str, xdist: tuple[str, ...]
) -> None:
    """The markers are read at collection, not at each test's setup; a bad one still fails
    its own test at setup, and only that test (with and without xdist)."""
    pytester.makepyfile(
        test_marks="""
        import pytest

        @pytest.mark.ledger(modle="glm")
        def test_typo():
            pass

        @pytest.mark.ledger(model="glm")
        def test_fine():
            pass
        """
    )
    result = run_ledger(pytester, db_url, *xdist)
    result.assert_outcomes(passed=1, errors=1)
    got = {r["variation"]: r for r in rows(db_url, "SELECT * FROM test_results")}
    assert got["test_fine"]["model"] == "glm"
    typo = got["test_typo"]
    assert (typo["status"], typo["error_type"], typo["model"]) == ("ERROR", "TypeError", None)
    assert typo["error_message"].startswith("@pytest.mark.ledger: unknown field(s) modle;")


def test_memory_and_cpu_are_each_tests_own(pytester: pytest.Pytester, db_url: str) -> None:
    """RSS right after each test (a test keeping 64 MB raises it by that much), and CPU over
    the test's own time (sleeping is idle, spinning is busy)."""
    pytester.makepyfile(
        test_measured="""
        import time

        kept = []

        def test_before():
            pass

        def test_keeps_64_mb():
            kept.append(bytearray(b"x" * (64 << 20)))

        def test_sleeps():
            time.sleep(0.3)

        def test_spins():
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                pass
        """
    )
    run_ledger(pytester, db_url).assert_outcomes(passed=4)
    got = {r["variation"]: r for r in rows(db_url, "SELECT * FROM test_results")}
    grown = got["test_keeps_64_mb"]["memory_mb"] - got["test_before"]["memory_mb"]
    assert 60 <= grown <= 80, grown
    # Loose bounds: on a loaded machine (CI, xdist) a spinning test gets a third of a core or
    # less; a sleeping one uses next to nothing whatever the load.
    sleeps, spins = (float(got[name]["cpu_percent"]) for name in ("test_sleeps", "test_spins"))
    assert sleeps < 20 and spins > max(4 * sleeps, 10), (sleeps, spins)


FLAKY = """
import pathlib

def test_flaky():
    counter = pathlib.Path(__file__).with_name("count.txt")
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    assert n >= 2, f"attempt {n + 1}"

def test_steady():
    pass
"""


def test_reruns_are_attempts(pytester: pytest.Pytester, db_url: str) -> None:
    pytester.makepyfile(test_flaky=FLAKY)
    result = run_ledger(pytester, db_url, "-p", "rerunfailures", "--reruns", "2")
    assert result.parseoutcomes() == {"passed": 2, "rerun": 2}
    got = rows(
        db_url, "SELECT test_id, attempt, status, error_message FROM test_results ORDER BY id"
    )
    assert [(r["test_id"], r["attempt"], r["status"]) for r in got] == [
        ("test_flaky.py::test_flaky", 1, "FAIL"),
        ("test_flaky.py::test_flaky", 2, "FAIL"),
        ("test_flaky.py::test_flaky", 3, "PASS"),
        ("test_flaky.py::test_steady", 1, "PASS"),
    ]
    assert got[1]["error_message"].startswith("attempt 2")
    (run,) = rows(db_url, "SELECT total_tests, tests_passed, tests_failed FROM test_runs")
    assert (run["total_tests"], run["tests_passed"], run["tests_failed"]) == (2, 2, 0)


def test_run_duration_is_the_sessions(pytester: pytest.Pytester, db_url: str) -> None:
    # The writer process starts its Run only after its imports and migrations, while the first
    # tests already run: the run's duration must still be the whole session's, at least the sum
    # of its (sequential) tests' durations.
    pytester.makepyfile(
        test_slow="""
        import time

        def test_first():
            time.sleep(0.5)

        def test_second():
            time.sleep(0.5)
        """
    )
    result = run_ledger(pytester, db_url)
    assert result.parseoutcomes() == {"passed": 2}
    (tests,) = rows(db_url, "SELECT SUM(duration_secs) AS total FROM test_results")
    (run,) = rows(db_url, "SELECT duration_secs, total_duration_secs FROM test_runs")
    assert float(tests["total"]) >= 1.0
    assert float(tests["total"]) <= float(run["duration_secs"]) < float(tests["total"]) + 30
    assert run["total_duration_secs"] == round(float(run["duration_secs"]))


def test_without_a_terminal_summary_the_run_is_still_finished(
    pytester: pytest.Pytester, db_url: str
) -> None:
    """The writer is waited for when the summary is printed, or, with no summary, when pytest
    unconfigures: the run is finished before pytest exits either way."""
    pytester.makepyfile(test_quiet="def test_one(): pass\ndef test_two(): pass\n")
    result = run_ledger(pytester, db_url, "-p", "no:terminal")
    assert result.ret == 0 and "testledger" not in result.stdout.str()
    (run,) = rows(db_url, "SELECT status, total_tests, tests_passed FROM test_runs")
    assert (run["status"], run["total_tests"], run["tests_passed"]) == ("finished", 2, 2)


def test_node_ids_split_as_the_importers_split_them(pytester: pytest.Pytester, db_url: str) -> None:
    """A test recorded live gets the tool and variation that importing pytest's own report of
    it gives (testledger.common.nodeids), ``::`` inside its parameters included."""
    pytester.makepyfile(
        test_ids="""
        import pytest

        @pytest.mark.parametrize("where", ["a::b"])
        def test_passes(where):
            pass

        @pytest.mark.parametrize("where", ["c::d"])
        def test_fails(where):
            assert False
        """
    )
    run_ledger(pytester, db_url).assert_outcomes(passed=1, failed=1)
    got = rows(db_url, "SELECT tool_name, variation FROM test_results ORDER BY variation")
    assert [(r["tool_name"], r["variation"]) for r in got] == [
        ("test_ids.py", "test_fails[c::d]"),
        ("test_ids.py", "test_passes[a::b]"),
    ]


def test_xdist_is_one_run(pytester: pytest.Pytester, db_url: str) -> None:
    pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("i", range(18))
        def test_n(i, ledger):
            ledger.set(provider=f"p{i}")
            assert i != 5

        @pytest.mark.ledger(model="marked")
        def test_marked():
            pass

        def test_skip():
            pytest.skip("because")
        """
    )
    result = run_ledger(pytester, db_url, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=18, failed=1, skipped=1)
    got = rows(db_url, "SELECT * FROM test_results")
    assert len(got) == 20 and len({r["test_id"] for r in got}) == 20
    assert {r["run_id"] for r in got} == {1}
    assert len(rows(db_url, "SELECT id FROM test_runs")) == 1
    by_id = {r["test_id"].split("::")[-1]: r for r in got}
    assert by_id["test_n[7]"]["provider"] == "p7" and by_id["test_marked"]["model"] == "marked"
    assert by_id["test_n[5]"]["status"] == "FAIL"
    assert by_id["test_n[5]"]["error_type"] == "AssertionError"
    assert all(r["memory_mb"] > 0 for r in got)


def test_unreachable_database(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="""
        def test_ok():
            pass

        def test_bad():
            assert False
        """
    )
    result = run_ledger(pytester, "postgresql://u:pw@127.0.0.1:9/x")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "pw" not in output
    lines = [line for line in output.splitlines() if "testledger:" in line]
    assert len(lines) == 1, lines
    assert "unreachable" in lines[0] and "postgresql://u:***@127.0.0.1:9/x" in lines[0]
    assert "testledger sync" in lines[0] and "recorded 2 results" in lines[0]
    (run_json,) = (pytester.path / "results").glob("runs/*/run.json")
    assert str(run_json.parent) in lines[0]
    run = json.loads(run_json.read_text())
    assert run["database"]["state"] == "pending" and run["status"] == "finished"
    assert run["stats"]["total_tests"] == 2
    events = [json.loads(line) for line in (run_json.parent / "results.jsonl").open()]
    assert [e["event"] for e in events] == ["columns", "result", "result"]


def test_interrupted_session_is_aborted(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        test_stop="""
        import pytest

        def test_first():
            pass

        def test_stop():
            pytest.exit("enough")

        def test_never():
            pass
        """
    )
    db = tmp_path / "abort.db"
    result = run_ledger(pytester, f"sqlite:///{db}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (run,) = rows(f"sqlite:///{db}", "SELECT status, notes, total_tests FROM test_runs")
    assert run["status"] == "aborted" and run["total_tests"] == 1
    assert "enough" in run["notes"]


def test_ini_options_turn_it_on(pytester: pytest.Pytester, tmp_path: Path) -> None:
    db = tmp_path / "ini.db"
    pytester.makeini(f"[pytest]\nledger_url = sqlite:///{db}\n")
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest_subprocess(
        *UNUSED_PLUGINS,
        "--ledger-suite=nightly",
        "--ledger-branch=feature/x",
        "--ledger-run-key=k-1",
    )
    result.assert_outcomes(passed=1)
    (run,) = rows(f"sqlite:///{db}", "SELECT suite, branch_name, run_key FROM test_runs")
    assert run == {"suite": "nightly", "branch_name": "feature/x", "run_key": "k-1"}


def test_ledger_value_that_is_a_path_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one(): pass")
    result = pytester.runpytest_subprocess(*UNUSED_PLUGINS, "--ledger", "test_one.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ledger got 'test_one.py'*--ledger=URL*"])


def test_off_writes_nothing_and_fixture_still_works(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_off="""
        import pytest

        @pytest.mark.ledger(provider="x")
        def test_uses_ledger(ledger):
            ledger.set(model="m")
            ledger.metric("n", 1)
            ledger.watch(quality_score=5)
        """
    )
    result = pytester.runpytest_subprocess(*UNUSED_PLUGINS, "--strict-markers")
    result.assert_outcomes(passed=1)
    assert "testledger:" not in result.stdout.str()
    written = [p for p in pytester.path.rglob("*") if p.suffix in (".db", ".json", ".jsonl")]
    assert written == [] and not (pytester.path / ".testledger").exists()
    assert not (pytester.path / "results").exists()


def test_import_is_cheap() -> None:
    """Loading the plugin (every pytest session does) must not import SQLAlchemy."""
    code = textwrap.dedent(
        """
        import sys
        import testledger.record.pytest_plugin
        print(sorted(m for m in ("sqlalchemy", "testledger.record.runner",
                                 "testledger.record.pytest_support") if m in sys.modules))
        """
    )
    # The plugin module on its own, with the package's __init__ kept out of the way: this is
    # what the plugin controls.
    isolated = (
        "import importlib.util, sys, types\n"
        "spec = importlib.util.find_spec('testledger')\n"
        "pkg = types.ModuleType('testledger')\n"
        "pkg.__path__ = list(spec.submodule_search_locations)\n"
        "sys.modules['testledger'] = pkg\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    alone = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", isolated + code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert alone.stdout.strip() == "[]", alone.stdout
    assert "sqlalchemy" not in alone.stderr  # -X importtime lists every module imported
    # Through the package, as the entry point loads it.
    package = subprocess.run(
        [sys.executable, "-c", "import sys, testledger; print('sqlalchemy' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    # testledger/__init__.py loads the runner (and SQLAlchemy) only when first used.
    assert package.stdout.strip() == "False", "importing testledger loads SQLAlchemy"
    full = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert full.stdout.strip() == "[]", full.stdout


def _report(when: str, outcome: str = "passed", **attrs: Any) -> pytest.TestReport:
    start = 1_700_000_000.25 + {"setup": 0.0, "call": 0.1, "teardown": 0.7}[when]
    report = pytest.TestReport(
        "tests/test_a.py::TestA::test_x[1]",
        ("tests/test_a.py", 1, "TestA.test_x[1]"),
        {},
        outcome,  # type: ignore[arg-type]
        None,
        when,  # type: ignore[arg-type]
        sections=attrs.pop("sections", ()),
        duration={"setup": 0.013, "call": 0.25, "teardown": 0.0071}[when],
        start=start,
        stop=start + 0.1,
    )
    for name, value in attrs.items():
        setattr(report, name, value)
    return report


# (name, teardown attributes, call attributes, extra earlier reports, takes the fast path)
PASSING_ROW_CASES = [
    ("measured", {"testledger": {"rss": 51.7, "cpu": 93.5}}, {}, 0, True),
    ("rss_only", {"testledger": {"rss": 12.4}}, {}, 0, True),
    ("not_measured", {}, {}, 0, True),
    ("fields", {"testledger": {"rss": 1.0, "fields": {"model": "m"}}}, {}, 0, False),
    ("metrics", {"testledger": {"rss": 1.0, "metrics": {"score": 1.0}}}, {}, 0, False),
    ("output", {"sections": [("Captured stdout teardown", "hi\n")]}, {}, 0, False),
    ("xpass", {}, {"wasxfail": "reason"}, 0, False),
    ("failed_call", {}, {"outcome": "failed"}, 0, False),
    ("repeated_setup", {}, {}, 1, False),
]


@pytest.mark.parametrize(
    ("name", "teardown_attrs", "call_attrs", "extra", "fast"),
    PASSING_ROW_CASES,
    ids=[case[0] for case in PASSING_ROW_CASES],
)
def test_passing_row_is_the_encoded_result(
    name: str,
    teardown_attrs: dict[str, Any],
    call_attrs: dict[str, Any],
    extra: int,
    fast: bool,
) -> None:
    """The plugin's shortcut for passing tests (a compact tuple, expanded by the writer
    process) writes exactly what the general path writes."""
    from testledger.record.pytest_plugin import passing_compact
    from testledger.record.pytest_support import build_result
    from testledger.record.writer_process import expand_passing
    from testledger.store.writer import encode_result

    outcome = call_attrs.pop("outcome", "passed")
    earlier = [_report("setup")] * (1 + extra) + [_report("call", outcome, **call_attrs)]
    teardown = _report("teardown", **teardown_attrs)
    compact = passing_compact(teardown, earlier, 3, teardown_attrs.get("testledger"))
    if not fast:
        assert compact is None
        return
    assert compact is not None
    result = build_result(teardown, earlier)[0]
    result.attempt = 3
    assert expand_passing(compact) == encode_result(result)
