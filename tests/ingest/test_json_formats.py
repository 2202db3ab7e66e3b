"""Tests of the JSON report importers: pytest-json-report, pytest-reportlog, CTRF and Allure.

The pytest-json-report and reportlog files are generated here with ``pytester`` from a small suite
(pass, fail, error in setup and teardown, skip, xfail, xpass, strict xpass, parametrised, a flaky
test rerun by pytest-rerunfailures, a module that fails to collect). The files under
``tests/data/{pytest_json,reportlog,allure}`` are the same suite's output kept as static fixtures
(the Allure folder written by allure-pytest 2.16 with ``--reruns 1``); ``tests/data/ctrf`` is
hand-made in Playwright's CTRF shape. The real-world samples in ``shared/fixtures/reports`` are
read in place when present.
"""

from __future__ import annotations

import gc
import gzip
import json
import shutil
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testledger.common import nodeids
from testledger.common import text as common_text
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.formats import allure, ctrf, pytest_json, reportlog
from testledger.model import Status, TestResult
from tests.bigfiles import write_reportlog

pytest_plugins = ["pytester"]

DATA = Path(__file__).resolve().parents[1] / "data"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "reports"

PASS, FAIL, SKIP, ERROR = Status.PASS, Status.FAIL, Status.SKIP, Status.ERROR

SUITE = """
import sys
import pytest

@pytest.fixture
def bad_setup():
    raise RuntimeError("setup boom")

@pytest.fixture
def bad_teardown():
    yield
    raise ValueError("teardown boom")

def test_pass():
    print("hello out")

def test_fail():
    print("to stdout"); print("to err", file=sys.stderr)
    raise KeyError("nope")

def test_setup_error(bad_setup):
    pass

def test_teardown_error(bad_teardown):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

def test_skip_inside():
    pytest.skip("inner")

@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 1 == 2

@pytest.mark.xfail(reason="should fail")
def test_xpass():
    pass

@pytest.mark.xfail(reason="strict", strict=True)
def test_xpass_strict():
    pass

@pytest.mark.parametrize("x", [1, 2, "a::b"])
def test_param(x):
    assert x == 1

COUNT = {"n": 0}
def test_flaky():
    COUNT["n"] += 1
    assert COUNT["n"] > 1

class TestK:
    def test_m(self):
        pass
"""

#: Per node id, the statuses of its attempts in order, as the reportlog importer must give them
#: for SUITE run with ``--reruns 1`` (every failure is retried once).
REPORTLOG_EXPECTED: dict[str, list[Status]] = {
    "test_collerr.py": [ERROR],
    "test_s.py::test_pass": [PASS],
    "test_s.py::test_fail": [FAIL, FAIL],
    "test_s.py::test_setup_error": [ERROR, ERROR],
    "test_s.py::test_teardown_error": [ERROR, ERROR],
    "test_s.py::test_skip": [SKIP],
    "test_s.py::test_skip_inside": [SKIP],
    "test_s.py::test_xfail": [SKIP],
    "test_s.py::test_xpass": [PASS],
    "test_s.py::test_xpass_strict": [FAIL, FAIL],
    "test_s.py::test_param[1]": [PASS],
    "test_s.py::test_param[2]": [FAIL, FAIL],
    "test_s.py::test_param[a::b]": [FAIL, FAIL],
    "test_s.py::test_flaky": [FAIL, PASS],
    "test_s.py::TestK::test_m": [PASS],
}

#: The same run through pytest-json-report, which keeps one entry per test (its last attempt).
PYTEST_JSON_EXPECTED: dict[str, Status] = {
    nodeid: statuses[-1] for nodeid, statuses in REPORTLOG_EXPECTED.items()
}


def _all(parsed: ParsedFile) -> list[TestResult]:
    return list(parsed.results)


def _attempts(results: list[TestResult]) -> dict[str, list[tuple[Status, int | None]]]:
    out: dict[str, list[tuple[Status, int | None]]] = {}
    for result in results:
        out.setdefault(result.test_id, []).append((result.status, result.attempt))
    return out


def _by_id(results: list[TestResult]) -> dict[str, TestResult]:
    return {result.test_id: result for result in results}


def _assert_reportlog_run(results: list[TestResult]) -> None:
    attempts = _attempts(results)
    assert set(attempts) == set(REPORTLOG_EXPECTED)
    for nodeid, statuses in REPORTLOG_EXPECTED.items():
        numbers: list[int | None] = (
            list(range(1, len(statuses) + 1)) if len(statuses) > 1 else [None]
        )
        assert attempts[nodeid] == list(zip(statuses, numbers, strict=True)), nodeid
    assert len(results) == 22
    last = {r.test_id: r for r in results}  # the final attempt of each
    assert last["test_s.py::test_fail"].error_type == "KeyError"
    assert last["test_s.py::test_fail"].error_message == "'nope'"
    assert "raise KeyError" in (last["test_s.py::test_fail"].traceback or "")
    assert "to err" in (last["test_s.py::test_fail"].output_excerpt or "")
    # the second attempt's output is its own, not the first attempt's again
    assert (last["test_s.py::test_fail"].output_excerpt or "").count("to stdout") == 1
    assert last["test_s.py::test_setup_error"].error_type == "RuntimeError"
    assert last["test_s.py::test_setup_error"].details["failed_in"] == "setup"
    assert last["test_s.py::test_teardown_error"].error_type == "ValueError"
    assert last["test_s.py::test_teardown_error"].details["failed_in"] == "teardown"
    assert last["test_s.py::test_xfail"].details["xfail"] is True
    assert last["test_s.py::test_xfail"].details["xfail_reason"] == "known bug"
    assert last["test_s.py::test_xfail"].error_type is None
    assert last["test_s.py::test_xpass"].details["xpass"] is True
    assert last["test_s.py::test_skip"].details["skip_reason"] == "not today"
    assert last["test_s.py::test_xpass_strict"].error_message == "[XPASS(strict)] strict"
    assert last["test_collerr.py"].error_type == "ModuleNotFoundError"
    assert last["test_collerr.py"].details["collect"] is True
    param = last["test_s.py::test_param[a::b]"]
    assert (param.tool_name, param.variation) == ("test_s.py", "test_param[a::b]")
    method = last["test_s.py::TestK::test_m"]
    assert (method.tool_name, method.variation) == ("test_s.py::TestK", "test_m")
    for result in results:
        assert result.started_at is None or result.started_at.tzinfo is timezone.utc
        if result.test_id != "test_collerr.py":
            assert result.duration_secs is not None and result.duration_secs > 0


def _assert_pytest_json_run(results: list[TestResult]) -> None:
    got = {r.test_id: r.status for r in results}
    assert got == PYTEST_JSON_EXPECTED
    by_id = _by_id(results)
    assert by_id["test_s.py::test_xfail"].details["xfail"] is True
    assert by_id["test_s.py::test_xpass"].details["xpass"] is True
    assert by_id["test_s.py::test_flaky"].details == {
        "outcome": "rerun",
        "rerun": True,
        "lineno": by_id["test_s.py::test_flaky"].details["lineno"],
    }
    assert by_id["test_s.py::test_fail"].error_type == "KeyError"
    assert by_id["test_s.py::test_setup_error"].error_message == "setup boom"
    assert by_id["test_s.py::test_teardown_error"].error_type == "ValueError"
    assert by_id["test_s.py::test_param[2]"].error_type == "AssertionError"
    assert by_id["test_collerr.py"].status is ERROR
    assert all(r.attempt is None for r in results)


def _run_suite(pytester: pytest.Pytester, *args: str) -> None:
    pytester.makepyfile(test_s=SUITE, test_collerr="import nonexistent_module_xyz\n")
    result = pytester.runpytest_subprocess(
        # Not the suite's usual UNUSED_PLUGINS: these sessions write the reports under test.
        *("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest"),
        *("-p", "rerunfailures", "--reruns", "1"),
        "--continue-on-collection-errors", *args,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# --------------------------------------------------------------------------- generated files


def test_pytester_pytest_json_report(pytester: pytest.Pytester) -> None:
    report = pytester.path / "report.json"
    _run_suite(pytester, "--json-report", f"--json-report-file={report}")
    assert pytest_json.sniff(report, report.read_bytes()[:4096])
    parsed = pytest_json.parse(report)
    assert parsed.format == "pytest-json"
    assert parsed.run.started_at is not None and parsed.run.started_at.tzinfo is timezone.utc
    assert parsed.run.metadata["root"] == str(pytester.path)
    _assert_pytest_json_run(_all(parsed))


def test_pytester_reportlog(pytester: pytest.Pytester) -> None:
    log = pytester.path / "report.jsonl"
    _run_suite(pytester, f"--report-log={log}")
    assert reportlog.sniff(log, log.read_bytes()[:4096])
    parsed = reportlog.parse(log)
    assert parsed.run.metadata["pytest_version"] == pytest.__version__
    results = _all(parsed)
    _assert_reportlog_run(results)
    assert parsed.run.metadata["exitstatus"] == 1


# --------------------------------------------------------------------------- static fixtures


def test_pytest_json_fixture() -> None:
    parsed = pytest_json.parse(DATA / "pytest_json" / "rerun-session.json")
    _assert_pytest_json_run(_all(parsed))
    assert parsed.run.metadata["summary"]["total"] == 14


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip-without-gz-name"])
def test_reportlog_fixture(tmp_path: Path, compress: bool) -> None:
    source = DATA / "reportlog" / "rerun-session.jsonl"
    path = source
    if compress:
        path = tmp_path / "report.jsonl"  # gzip content, no .gz suffix: found by magic bytes
        path.write_bytes(gzip.compress(source.read_bytes()))
        assert reportlog.sniff(path, path.read_bytes()[:4096])
    parsed = reportlog.parse(path)
    _assert_reportlog_run(_all(parsed))


def test_reportlog_bad_line_names_its_line() -> None:
    path = DATA / "reportlog" / "bad-line.jsonl"
    with pytest.raises(ImportFormatError) as info:  # from parse's read-ahead or the iterator
        list(reportlog.parse(path).results)
    assert info.value.line == 4
    assert info.value.path == path
    assert f"{path}:4" in str(info.value)


def test_reportlog_interrupted_session_keeps_its_tests(tmp_path: Path) -> None:
    lines = (DATA / "reportlog" / "rerun-session.jsonl").read_text("utf-8").splitlines()
    cut = next(i for i, line in enumerate(lines) if '"when": "call"' in line)
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(lines[: cut + 1]) + "\n", "utf-8")
    parsed = reportlog.parse(path)
    results = _all(parsed)
    assert [(r.test_id, r.status) for r in results] == [
        ("test_collerr.py", ERROR),
        ("test_s.py::test_pass", PASS),
    ]
    assert results[-1].details["incomplete"] is True
    assert any("test_s.py::test_pass" in w for w in parsed.warnings)


def test_reportlog_windows_location_and_teardown_after_skip(tmp_path: Path) -> None:
    def rec(when: str, outcome: str, **extra: Any) -> str:
        base = {
            "nodeid": "tests/t.py::test_w",
            "location": ["tests\\t.py", 3, "test_w"],
            "outcome": outcome,
            "longrepr": None,
            "when": when,
            "sections": [],
            "duration": 0.5,
            "start": 1700000000.0,
            "$report_type": "TestReport",
        }
        base.update(extra)
        return json.dumps(base)

    crash = {
        "reprcrash": {"path": "t.py", "lineno": 9, "message": "OSError: disk gone"},
        "reprtraceback": {
            "reprentries": [
                {
                    "type": "ReprEntry",
                    "data": {
                        "lines": [">   cleanup()", "E   OSError: disk gone"],
                        "reprfileloc": {"path": "t.py", "lineno": 9, "message": "OSError"},
                    },
                }
            ],
            "extraline": None,
            "style": "long",
        },
        "sections": [],
        "chain": None,
    }
    path = tmp_path / "w.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"pytest_version": "8.0.0", "$report_type": "SessionStart"}),
                rec("setup", "passed"),
                rec("call", "skipped", longrepr=["tests\\t.py", 4, "Skipped: later"]),
                rec("teardown", "failed", longrepr=crash),
                json.dumps({"message": "w", "$report_type": "WarningMessage"}),
            ]
        ),
        "utf-8",
    )
    parsed = reportlog.parse(path)
    [result] = _all(parsed)
    assert result.status is ERROR
    assert result.details["file"] == "tests/t.py"
    assert (result.error_type, result.error_message) == ("OSError", "disk gone")
    assert "t.py:9: OSError" in (result.traceback or "")
    assert result.duration_secs == pytest.approx(1.5)
    assert result.started_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert parsed.run.started_at == result.started_at
    assert parsed.warnings == ["the session recorded 1 pytest warning(s)"]


def test_reportlog_streams_its_tests_in_flat_memory(tmp_path: Path) -> None:
    """A bounded check (about 2 s): the 200,000-test version is bench/memory.py."""
    path = tmp_path / "big.jsonl.gz"
    tests = 10_000
    write_reportlog(path, tests)

    gc.collect()
    tracemalloc.start()
    try:
        parsed = reportlog.parse(path)
        counts: Counter[Status] = Counter()
        samples: dict[int, int] = {}
        for n, result in enumerate(parsed.results, start=1):
            counts[result.status] += 1
            if n in (1_000, 9_500):
                samples[n] = tracemalloc.get_traced_memory()[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert counts == {PASS: tests - tests // 1000, FAIL: tests // 1000}
    # The file holds ~10 MB of JSON lines: reading it whole, or keeping its parsed lines, would
    # pass 2 MiB many times over (a streaming parse peaks at ~0.1 MB).
    assert peak < 2 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    # Flat, not merely small: keeping anything per test (a node id is ~70 bytes) would add
    # over 0.5 MB across these 8,500 tests; a streaming parse stays within ~1 KB.
    growth = samples[9_500] - samples[1_000]
    assert growth < 128 * 1024, f"grew {growth / 1e3:.0f} KB over 8,500 tests"


# --------------------------------------------------------------------------- CTRF


def test_ctrf_fixture_table() -> None:
    path = DATA / "ctrf" / "playwright-like.json"
    assert ctrf.sniff(path, path.read_bytes()[:4096])
    parsed = ctrf.parse(path)
    results = _all(parsed)
    assert [(r.test_id, r.status, r.attempt) for r in results] == [
        ("auth.spec.ts > login::logs in", PASS, None),
        ("auth.spec.ts > login::rejects a bad password", FAIL, 1),
        ("auth.spec.ts > login::rejects a bad password", FAIL, 2),
        ("profile.spec.ts::uploads an avatar", FAIL, 1),
        ("profile.spec.ts::uploads an avatar", FAIL, 2),
        ("profile.spec.ts::uploads an avatar", PASS, 3),
        ("profile.spec.ts::exports pdf", SKIP, None),
        ("tests/theme.spec.ts::dark mode", SKIP, None),
        ("long upload", SKIP, None),
    ]
    first, retry1, final = results[0], results[1], results[2]
    assert (first.tool_name, first.variation) == ("auth.spec.ts > login", "logs in")
    assert first.duration_secs == 1.25
    assert first.started_at == datetime(2024, 6, 1, 12, 0, 1, tzinfo=timezone.utc)
    assert first.details["tags"] == ["@smoke"]
    assert (retry1.error_type, retry1.error_message) == ("TimeoutError", "waited 2000ms")
    assert retry1.duration_secs == 2.9
    assert final.error_type == "Error"
    assert (final.error_message or "").startswith("expect(received).toBe(expected)")
    assert final.traceback == "at tests/auth.spec.ts:42:17"
    assert "got 500" in (final.output_excerpt or "")
    assert results[5].details["flaky"] is True
    assert results[6].details["message"] == "not on CI"
    assert results[7].details["ctrf_status"] == "pending"
    assert results[8].details == {"ctrf_status": "other", "raw_status": "interrupted"}
    assert results[8].tool_name == "playwright"
    run = parsed.run
    assert run.started_at == datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
    assert run.branch == "feature/login"
    assert run.commit == "0123456789abcdef0123456789abcdef01234567"
    assert run.metadata["environment"]["buildNumber"] == "118"


_CTRF_STATUS = {"passed": PASS, "failed": FAIL, "skipped": SKIP, "pending": SKIP, "other": SKIP}


@st.composite
def _ctrf_tests(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(sorted(_CTRF_STATUS)))
    duration = draw(st.integers(min_value=0, max_value=10**7))
    test: dict[str, Any] = {
        "name": draw(st.text(min_size=1, max_size=30)),
        "status": status,
        "duration": duration,
    }
    if draw(st.booleans()):
        test["suite"] = draw(st.text(min_size=1, max_size=20))
    if draw(st.booleans()):
        test["message"] = draw(st.text(max_size=200))
    retries = draw(st.integers(min_value=0, max_value=3))
    if retries:
        attempts = [
            {"attempt": n, "status": "failed", "duration": draw(st.integers(0, 10**6))}
            for n in range(1, retries + 1)
        ]
        if draw(st.booleans()):  # the list holds the final run too, as in the CTRF example
            attempts.append({"attempt": retries + 1, "status": status, "duration": duration})
        test["retries"] = retries
        test["retryAttempts"] = draw(st.permutations(attempts))
    return test


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tests=st.lists(_ctrf_tests(), max_size=12), start=st.integers(0, 4 * 10**12))
def test_ctrf_roundtrip_property(tests: list[dict[str, Any]], start: int) -> None:
    doc = {"results": {"tool": {"name": "gen"}, "summary": {"start": start}, "tests": tests}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ctrf.json"
        path.write_text(json.dumps(doc), "utf-8")
        assert ctrf.sniff(path, path.read_bytes()[:4096])
        parsed = ctrf.parse(path)
        results = _all(parsed)
    expected_started = datetime.fromtimestamp(start / 1000, tz=timezone.utc) if start else None
    assert parsed.run.started_at == expected_started
    assert len(results) == sum(t.get("retries", 0) + 1 for t in tests)
    index = 0
    for test in tests:
        runs = test.get("retries", 0) + 1
        mine = results[index : index + runs]
        index += runs
        prefix = test.get("suite")
        assert {r.test_id for r in mine} == {
            f"{prefix}::{test['name']}" if prefix else test["name"]
        }
        assert [r.attempt for r in mine] == (list(range(1, runs + 1)) if runs > 1 else [None])
        assert all(r.status is FAIL for r in mine[:-1])
        assert mine[-1].status is _CTRF_STATUS[test["status"]]
        assert mine[-1].duration_secs == pytest.approx(test["duration"] / 1000)


# --------------------------------------------------------------------------- Allure


def test_allure_folder_from_allure_pytest() -> None:
    folder = DATA / "allure" / "pytest-rerun"
    assert allure.sniff(folder, b"")
    parsed = allure.parse(folder)
    results = _all(parsed)
    assert len(results) == 21  # 21 *-result.json; containers and attachments skipped
    assert parsed.run.metadata["result_files"] == 21
    assert parsed.run.host == "vm"
    attempts = _attempts(results)
    expected: dict[str, list[tuple[Status, int | None]]] = {
        "test_s#test_pass": [(PASS, None)],
        "test_s#test_fail": [(ERROR, 1), (ERROR, 2)],  # KeyError: allure says broken
        "test_s#test_setup_error": [(ERROR, 1), (ERROR, 2)],
        "test_s#test_teardown_error": [(ERROR, 1), (ERROR, 2)],
        "test_s#test_skip": [(SKIP, None)],
        "test_s#test_skip_inside": [(SKIP, None)],
        "test_s#test_xfail": [(SKIP, None)],
        "test_s#test_xpass": [(PASS, None)],
        "test_s#test_xpass_strict": [(FAIL, 1), (FAIL, 2)],
        "test_s#test_param[x=1]": [(PASS, None)],
        "test_s#test_param[x=2]": [(FAIL, 1), (FAIL, 2)],
        "test_s.test_param[a#test_param[x='a::b']": [(FAIL, 1), (FAIL, 2)],
        "test_s#test_flaky": [(FAIL, 1), (PASS, 2)],
        "test_s.TestK#test_m": [(PASS, None)],
    }
    assert attempts == expected
    by_id = _by_id(results)
    fail = by_id["test_s#test_param[x=2]"]
    assert (fail.tool_name, fail.variation) == ("test_s", "test_param[2]")
    assert (fail.error_type, fail.error_message) == ("AssertionError", "assert 2 == 1")
    assert fail.details["labels"]["framework"] == "pytest"
    assert fail.details["parameters"] == {"x": "2"}
    assert by_id["test_s.TestK#test_m"].tool_name == "test_s.TestK"
    assert by_id["test_s#test_xfail"].details["xfail"] is True
    assert by_id["test_s#test_skip"].details["skip_reason"] == "not today"
    starts = [r.started_at for r in results if r.started_at is not None]
    assert parsed.run.started_at == min(starts)


def _allure_result(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "uuid": "u-1",
        "historyId": "h-1",
        "fullName": "com.example.CartTest.addsItem",
        "name": "addsItem",
        "status": "passed",
        "start": 1700000000000,
        "stop": 1700000002500,
        "labels": [
            {"name": "package", "value": "com.example"},
            {"name": "testClass", "value": "com.example.CartTest"},
            {"name": "testMethod", "value": "addsItem"},
            {"name": "suite", "value": "CartTest"},
            {"name": "host", "value": "ci-7"},
        ],
        "parameters": [{"name": "qty", "value": "3"}],
    }
    doc.update(overrides)
    return doc


def test_allure_java_shaped_retries_and_unknown(tmp_path: Path) -> None:
    docs = [
        _allure_result(uuid="b", start=1700000005000, stop=1700000006000),
        _allure_result(
            uuid="a",
            status="broken",
            statusDetails={"message": "java.lang.IllegalStateException: no cart", "trace": "t"},
        ),
        _allure_result(uuid="c", historyId="h-2", name="slow", fullName="x.Y.slow", parameters=[]),
    ]
    docs[2]["status"] = "unknown"
    for doc in docs:
        (tmp_path / f"{doc['uuid']}-result.json").write_text(json.dumps(doc), "utf-8")
    (tmp_path / "z-container.json").write_text('{"uuid": "z", "children": ["a"]}', "utf-8")
    (tmp_path / "q-attachment.txt").write_text("log", "utf-8")
    parsed = allure.parse(tmp_path)
    results = _all(parsed)
    assert [(r.test_id, r.status, r.attempt) for r in results] == [
        ("com.example.CartTest.addsItem[qty=3]", ERROR, 1),
        ("com.example.CartTest.addsItem[qty=3]", PASS, 2),
        ("x.Y.slow", SKIP, None),
    ]
    broken = results[0]
    assert (broken.tool_name, broken.variation) == ("com.example.CartTest", "addsItem[3]")
    assert broken.error_type == "java.lang.IllegalStateException"
    assert broken.duration_secs == 2.5
    assert results[2].details["allure_status"] == "unknown"
    assert parsed.run.started_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert parsed.run.host == "ci-7"


def test_allure_sniff_and_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not allure.sniff(empty, b"")
    with pytest.raises(ImportFormatError, match=r"no \*-result\.json"):
        allure.parse(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "1-result.json").write_text(json.dumps(_allure_result()), "utf-8")
    (bad / "2-result.json").write_text('{\n"uuid": "2",\n"status": ', "utf-8")
    with pytest.raises(ImportFormatError) as info:
        allure.parse(bad)
    assert info.value.path == bad / "2-result.json" and info.value.line == 3
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "1-result.json").write_text(json.dumps(_allure_result(status="exploded")), "utf-8")
    parsed = allure.parse(odd)
    with pytest.raises(ImportFormatError, match="unknown Allure status"):
        list(parsed.results)


# --------------------------------------------------------------------------- shared samples


def _shared(relative: str) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared samples are not present at {SHARED}")
    path = SHARED / relative
    # With ../shared present, a sample missing from it is a failure, not a skip.
    assert path.exists(), f"shared sample {relative} is missing from {SHARED}"
    return path


def test_shared_pytest_json_report_sample() -> None:
    parsed = pytest_json.parse(_shared("pytest-json-report/sample_report.json"))
    results = _all(parsed)
    assert len(results) == 10
    assert Counter(r.status for r in results) == {PASS: 3, FAIL: 3, ERROR: 2, SKIP: 2}
    by_id = _by_id(results)
    nested = by_id["test_create_report.py::test_fail_nested"]
    assert nested.error_type == "TypeError"
    assert "unsupported operand" in (nested.error_message or "")
    assert "foo\n0\nbar" in (nested.output_excerpt or "")
    with_fixture = by_id["test_create_report.py::test_fail_with_fixture"]
    assert (with_fixture.error_type, with_fixture.error_message) == (
        "AssertionError",
        "assert False",
    )
    assert with_fixture.duration_secs == pytest.approx(
        0.0001995563507080078 + 0.00015997886657714844 + 0.00015306472778320312
    )
    assert "Captured stderr teardown" in (with_fixture.output_excerpt or "")
    assert by_id["test_create_report.py::test_xfail"].details["xfail"] is True
    assert by_id["test_create_report.py::test_xfail_but_passing"].details["xpass"] is True
    assert by_id["test_create_report.py::test_fail_during_setup"].status is ERROR
    assert by_id["test_create_report.py::test_fail_during_teardown"].status is ERROR
    assert parsed.run.metadata["environment"]["Python"] == "3.7.1"
    assert parsed.run.started_at == datetime.fromtimestamp(
        1548185151.2609472 - 0.04589128494262695, tz=timezone.utc
    )


def test_shared_reportlog_sample() -> None:
    path = _shared("pytest-reportlog/pytest7.4-reportlog.jsonl")
    assert reportlog.sniff(path, path.read_bytes()[:4096])
    parsed = reportlog.parse(path)
    results = _all(parsed)
    assert len(results) == 11
    assert {r.status for r in results} == {PASS}
    assert {r.tool_name for r in results} == {
        "tests/test_pipeline.py::TestLectureCSV",
        "tests/test_pipeline.py::TestIntegrationDB",
        "tests/test_pipeline.py::TestEnrichissementAPI",
        "tests/test_pipeline.py::TestLogiqueMetier",
    }
    assert {r.details["file"] for r in results} == {"tests/test_pipeline.py"}
    assert any("à" in (r.output_excerpt or "") for r in results)
    assert parsed.run.metadata["pytest_version"] == "7.4.0"
    assert parsed.run.started_at is not None and parsed.run.started_at.year == 2025


def test_shared_ctrf_sample() -> None:
    parsed = ctrf.parse(_shared("ctrf/ctrf-cli-with-retries.json"))
    results = _all(parsed)
    assert [(r.test_id, r.status, r.attempt) for r in results] == [
        ("stable test", PASS, None),
        ("flaky test", FAIL, 1),
        ("flaky test", FAIL, 2),
        ("flaky test", PASS, 3),
    ]
    assert results[1].error_message == "Connection timeout"
    assert results[3].details["flaky"] is True
    assert [r.duration_secs for r in results] == [0.15, 0.12, 0.13, 0.14]
    assert parsed.run.started_at == datetime(2021, 1, 1, tzinfo=timezone.utc)


def test_shared_samples_are_not_claimed_by_the_wrong_importer() -> None:
    if not SHARED.exists():
        pytest.skip("shared samples are not here")
    sniffers = {
        "pytest-json": pytest_json.sniff,
        "pytest-reportlog": reportlog.sniff,
        "ctrf": ctrf.sniff,
        "allure": allure.sniff,
    }
    expected = {
        "pytest-json-report/sample_report.json": "pytest-json",
        "pytest-reportlog/pytest7.4-reportlog.jsonl": "pytest-reportlog",
        "ctrf/ctrf-cli-with-retries.json": "ctrf",
        "junit-pytest-xunit2/pytest8-xunit2-props.xml": None,
        "odd/horovod-truncated.xml": None,
    }
    for relative, fmt in expected.items():
        path = SHARED / relative
        if not path.exists():
            continue
        head = path.read_bytes()[:4096]
        claimed = [name for name, sniff in sniffers.items() if sniff(path, head)]
        assert claimed == ([fmt] if fmt else []), relative


# --------------------------------------------------------------------------- bad input


ParseFn = Callable[[Path], ParsedFile]
FILE_PARSERS: dict[str, ParseFn] = {
    "pytest-json": pytest_json.parse,
    "reportlog": reportlog.parse,
    "ctrf": ctrf.parse,
    "allure-file": allure.parse,
}

BAD_INPUTS: list[tuple[str, bytes, str, int | None]] = [
    ("empty", b"", "empty file", None),
    ("blank", b"  \n\n", "empty file", None),
    ("truncated", b'{\n  "tests": [\n    {"nodeid": "a", ', "invalid JSON", 3),
    ("invalid-utf8", b'{"tests": [],\n "x": "\xff\xfe"}', "invalid UTF-8", 2),
    ("other-shape", b'{"hello": "world"}\n', "", None),
    ("a-list", b"[1, 2, 3]\n", "", None),
]


@pytest.mark.parametrize("fmt", sorted(FILE_PARSERS))
@pytest.mark.parametrize(
    ("content", "reason", "line"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_an_import_format_error(
    tmp_path: Path, fmt: str, content: bytes, reason: str, line: int | None
) -> None:
    path = tmp_path / "x-result.json"
    path.write_bytes(content)
    with pytest.raises(ImportFormatError) as info:
        list(FILE_PARSERS[fmt](path).results)
    assert info.value.path == path
    if fmt == "reportlog" and content.strip():
        # read line by line: the first line is already wrong (not JSON, or not a record)
        assert info.value.line == 1
        return
    assert reason in info.value.reason
    assert info.value.line == line


MALFORMED_ENTRIES: list[tuple[str, ParseFn, Any]] = [
    (
        "pytest-json-test-not-object",
        pytest_json.parse,
        {"exitcode": 0, "summary": {}, "tests": [1]},
    ),
    (
        "pytest-json-no-nodeid",
        pytest_json.parse,
        {"exitcode": 0, "summary": {}, "tests": [{"outcome": "passed"}]},
    ),
    (
        "pytest-json-bad-stage",
        pytest_json.parse,
        {"exitcode": 0, "summary": {}, "tests": [{"nodeid": "a::b", "outcome": "x", "call": 3}]},
    ),
    (
        "pytest-json-unknown-outcome",
        pytest_json.parse,
        {"exitcode": 0, "summary": {}, "tests": [{"nodeid": "a::b", "outcome": "weird"}]},
    ),
    ("ctrf-test-not-object", ctrf.parse, {"results": {"tests": ["x"]}}),
    ("ctrf-no-name", ctrf.parse, {"results": {"tests": [{"status": "passed", "duration": 1}]}}),
    (
        "ctrf-bad-status",
        ctrf.parse,
        {"results": {"tests": [{"name": "a", "status": "exploded", "duration": 1}]}},
    ),
    (
        "ctrf-bad-retry",
        ctrf.parse,
        {"results": {"tests": [{"name": "a", "status": "passed", "retryAttempts": [1]}]}},
    ),
]


@pytest.mark.parametrize(
    ("parse", "doc"),
    [case[1:] for case in MALFORMED_ENTRIES],
    ids=[case[0] for case in MALFORMED_ENTRIES],
)
def test_malformed_entries_raise_import_format_error(
    tmp_path: Path, parse: ParseFn, doc: Any
) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(doc), "utf-8")
    parsed = parse(path)
    with pytest.raises(ImportFormatError) as info:
        list(parsed.results)
    assert info.value.path == path


REPORTLOG_BAD_LINES: list[tuple[str, str, str]] = [
    ("no-nodeid", '{"$report_type": "TestReport", "when": "call", "outcome": "passed"}', "nodeid"),
    (
        "bad-when",
        '{"$report_type": "TestReport", "nodeid": "a", "when": 1, "outcome": "x"}',
        "when",
    ),
    (
        "bad-outcome",
        '{"$report_type": "TestReport", "nodeid": "a", "when": "call", "outcome": "odd"}',
        "unknown outcome",
    ),
    ("not-object", "[1]", "JSON object"),
    ("no-type", '{"nodeid": "a"}', "$report_type"),
]


@pytest.mark.parametrize(
    ("line", "reason"),
    [case[1:] for case in REPORTLOG_BAD_LINES],
    ids=[case[0] for case in REPORTLOG_BAD_LINES],
)
def test_reportlog_malformed_record_names_its_line(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"pytest_version": "8.0", "$report_type": "SessionStart"}\n\n' + line + "\n", "utf-8"
    )
    with pytest.raises(ImportFormatError) as info:  # from parse's read-ahead or the iterator
        list(reportlog.parse(path).results)
    assert info.value.line == 3
    assert reason in info.value.reason


def test_reportlog_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress((DATA / "reportlog" / "rerun-session.jsonl").read_bytes())
    path = tmp_path / "r.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImportFormatError) as info:
        list(reportlog.parse(path).results)
    assert info.value.path == path and info.value.line is not None


# --------------------------------------------------------------------------- sniffing


def _heads() -> dict[str, bytes]:
    return {
        "pytest-json": (DATA / "pytest_json" / "rerun-session.json").read_bytes()[:4096],
        "pytest-reportlog": (DATA / "reportlog" / "rerun-session.jsonl").read_bytes()[:4096],
        "ctrf": (DATA / "ctrf" / "playwright-like.json").read_bytes()[:4096],
        "ctrf-minimal": b'{"results": {"tool": {"name": "jest"}, "summary": {}, "tests": []}}',
        "reportlog-gzip": gzip.compress((DATA / "reportlog" / "rerun-session.jsonl").read_bytes())[
            :4096
        ],
        "junit": b'<?xml version="1.0"?><testsuites><testsuite name="x"/></testsuites>',
        "other-json": b'{"name": "package", "version": "1.0.0"}',
        "empty": b"",
    }


SNIFF_EXPECTED = {
    "pytest-json": "pytest-json",
    "pytest-reportlog": "pytest-reportlog",
    "ctrf": "ctrf",
    "ctrf-minimal": "ctrf",
    "reportlog-gzip": "pytest-reportlog",
    "junit": None,
    "other-json": None,
    "empty": None,
}


@pytest.mark.parametrize("sample", sorted(SNIFF_EXPECTED))
def test_sniff_claims_only_its_own_format(tmp_path: Path, sample: str) -> None:
    path = tmp_path / "report.json"
    head = _heads()[sample]
    path.write_bytes(head)
    modules = {m.FORMAT: m.sniff for m in (pytest_json, reportlog, ctrf, allure)}
    claimed = [name for name, sniff in modules.items() if sniff(path, head)]
    expected = SNIFF_EXPECTED[sample]
    assert claimed == ([expected] if expected else [])


def test_allure_sniffs_a_single_result_file(tmp_path: Path) -> None:
    folder = DATA / "allure" / "pytest-rerun"
    one = sorted(folder.glob("*-result.json"))[0]
    copy = tmp_path / one.name
    shutil.copyfile(one, copy)
    assert allure.sniff(copy, copy.read_bytes()[:4096])
    assert len(_all(allure.parse(copy))) == 1


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "limit", "kept"),
    [
        (None, 10, None),
        ("", 10, None),
        ("short", 10, "short"),
        ("x" * 100, 100, "x" * 100),
    ],
)
def test_bounded_keeps_short_text(text: str | None, limit: int, kept: str | None) -> None:
    assert common_text.bounded(text, limit) == kept


def test_bounded_marks_what_it_cut() -> None:
    text = "head-" + "é" * 50_000 + "-tail"
    out = common_text.bounded(text, common_text.TRACEBACK_LIMIT // 8)
    assert out is not None
    assert out.startswith("head-") and out.endswith("-tail")
    marker = out[out.index("[... truncated ") :].split("]")[0]
    dropped = int(marker.removeprefix("[... truncated ").removesuffix(" bytes"))
    kept = len(out.encode()) - len(f"\n{marker}]\n".encode())
    assert kept + dropped == len(text.encode())
    assert kept <= common_text.TRACEBACK_LIMIT // 8


def test_long_traceback_is_bounded_with_marker(tmp_path: Path) -> None:
    longrepr = "E   RuntimeError: deep\n" + "frame line\n" * 20_000 + "t.py:1: RuntimeError"
    doc = {
        "created": 1700000000,
        "exitcode": 1,
        "summary": {},
        "tests": [
            {
                "nodeid": "t.py::test_deep",
                "outcome": "failed",
                "call": {"duration": 1, "outcome": "failed", "longrepr": longrepr},
                "setup": {"duration": 1, "outcome": "passed", "stdout": "o" * 20_000},
            }
        ],
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc), "utf-8")
    [result] = _all(pytest_json.parse(path))
    assert result.traceback is not None and "[... truncated " in result.traceback
    assert len(result.traceback.encode()) < common_text.TRACEBACK_LIMIT + 100
    assert result.traceback.endswith("t.py:1: RuntimeError")
    assert result.output_excerpt is not None and "[... truncated " in result.output_excerpt
    assert len(result.output_excerpt.encode()) < common_text.OUTPUT_LIMIT + 100
    assert result.error_type == "RuntimeError"


@pytest.mark.parametrize(
    ("nodeid", "tool", "variation"),
    [
        ("t.py::test_a", "t.py", "test_a"),
        ("pkg/t.py::Cls::test_a[1-x]", "pkg/t.py::Cls", "test_a[1-x]"),
        ("t.py::test_p[a::b]", "t.py", "test_p[a::b]"),
        ("t.py", "t.py", "<module>"),
        ("tests\\t.py::test_w", "tests\\t.py", "test_w"),
    ],
)
def test_split_nodeid(nodeid: str, tool: str, variation: str) -> None:
    assert nodeids.split_nodeid(nodeid) == (tool, variation)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("KeyError: 'nope'", ("KeyError", "'nope'")),
        ("assert False", (None, "assert False")),
        ("mod.sub.MyError: a\nb", ("mod.sub.MyError", "a\nb")),
        ("Failed: because", ("Failed", "because")),
        ("", (None, None)),
    ],
)
def test_split_exception(message: str, expected: tuple[str | None, str | None]) -> None:
    assert common_text.split_exception(message) == expected
