"""Tests of the JUnit XML importer (``testledger.ingest.formats.junit``).

``tests/data/junit`` holds one small hand-written file per dialect, in the shape each tool writes
(attribute layout, nesting, indentation, BOM...). The real-world samples in
``shared/fixtures/reports`` are read in place when that folder is present, never copied here.
"""

from __future__ import annotations

import gc
import tracemalloc
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.formats import junit
from testledger.model import Status, TestResult
from tests.bigfiles import write_parse_junit

DATA = Path(__file__).resolve().parents[1] / "data" / "junit"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "reports"

PASS, FAIL, SKIP, ERROR = Status.PASS, Status.FAIL, Status.SKIP, Status.ERROR

Row = tuple[str, Status, int, "float | None"]


def results_of(path: Path) -> list[TestResult]:
    return list(junit.parse(path).results)


def rows(results: list[TestResult]) -> list[Row]:
    return [(r.test_id, r.status, r.attempt or 0, r.duration_secs) for r in results]


# --------------------------------------------------------------------------------------------
# Dialects: (file, expected (test_id, status, attempt, duration) in file order)

CALC = "App.Tests.CalculatorTest"
PHP_CLASS = "App\\Tests\\CalculatorTest"
ORDER = "com.example.OrderServiceTest"
CART = "com.example.CartTest"
GOOD = "example.com/tool/internal/good"

DIALECTS: list[tuple[str, list[Row]]] = [
    (
        "pytest-xunit1.xml",
        [
            ("tests.test_api.TestClient::test_get", PASS, 1, 0.012),
            ('tests.test_api.TestClient::test_post[<json> & "x"]', FAIL, 1, 0.020),
            ("tests.test_api.TestClient::test_delete", ERROR, 1, 0.001),
            ("tests.test_api.TestClient::test_patch", SKIP, 1, 0.0),
            ("tests.test_util::test_slugify", PASS, 1, 1.840),
        ],
    ),
    (
        "pytest-xunit2.xml",
        [
            ("tests.test_models::test_create", PASS, 1, 0.1),
            ("tests.test_models::test_update", FAIL, 1, 0.2),
            ("tests.test_models::test_xfail", SKIP, 1, 0.0),
            ("tests.test_models::test_unicode_ünïcødé[🙂]", PASS, 1, 0.01),
        ],
    ),
    (
        "surefire.xml",
        [
            (f"{ORDER}::placesOrder", FAIL, 1, None),
            (f"{ORDER}::placesOrder", FAIL, 2, None),
            (f"{ORDER}::placesOrder", ERROR, 3, None),
            (f"{ORDER}::placesOrder", PASS, 4, 0.051),
            (f"{ORDER}::cancelsOrder", PASS, 1, 1234.567),
            (f"{ORDER}::refundsOrder", FAIL, 1, None),
            (f"{ORDER}::refundsOrder", FAIL, 2, None),
            (f"{ORDER}::refundsOrder", FAIL, 3, 0.004),
            (f"{ORDER}::shipsOrder", ERROR, 1, None),
            (f"{ORDER}::shipsOrder", ERROR, 2, 0.002),
            (f"{ORDER}::archivesOrder", SKIP, 1, 0.0),
        ],
    ),
    (
        "gradle.xml",
        [
            (f"{CART}::addsItem()", PASS, 1, 0.101),
            (f"{CART}::removesItem()", FAIL, 1, 0.210),
            (f"{CART}::clearsCart()", PASS, 1, 0.050),
            (f"{CART}::removesItem()", FAIL, 2, 0.190),
            (f"{CART}::removesItem()", PASS, 3, 0.180),
        ],
    ),
    (
        "jest-junit.xml",
        [
            ("Calculator adds numbers::Calculator adds numbers", PASS, 1, 0.004),
            ("Calculator divides by zero::Calculator divides by zero", FAIL, 1, 0.012),
            ("Calculator rounds::Calculator rounds", SKIP, 1, 0.0),
            ("formatDate formats ISO::formatDate formats ISO", PASS, 1, 0.001),
        ],
    ),
    (
        "mocha-cypress.xml",
        [
            ("shows the form::Login page shows the form", PASS, 1, 1.234),
            ("rejects a bad password::Login page rejects a bad password", FAIL, 1, 3.301),
            ("remembers the user::Login page remembers the user", PASS, 1, 0.026),
        ],
    ),
    (
        "go-junit-report.xml",
        [
            ("github.com/acme/shop/cart::TestAdd", PASS, 1, 0.001),
            ("github.com/acme/shop/cart::TestRemove", FAIL, 1, 0.010),
            ("github.com/acme/shop/cart::TestRemove/empty", PASS, 1, 0.0),
            ("github.com/acme/shop/cart::TestNetwork", SKIP, 1, 0.0),
        ],
    ),
    (
        "gotestsum.xml",
        [
            ("TestMain", FAIL, 1, 0.0),
            (f"{GOOD}::TestSkipped", SKIP, 1, 0.0),
            (f"{GOOD}::TestPassed", PASS, 1, 0.01),
        ],
    ),
    (
        "phpunit.xml",
        [
            (f"{CALC}::testAdd", PASS, 1, 0.0012),
            (f"{CALC}::testSubtract", FAIL, 1, 0.002),
            (f"{CALC}::testPower", SKIP, 1, 0.0005),
            (f"{PHP_CLASS}::testDivide with data set #0", PASS, 1, 0.00155),
            (f'{PHP_CLASS}::testDivide with data set "by zero"', ERROR, 1, 0.026),
        ],
    ),
    (
        "robot-xunit.xml",
        [
            ("Acceptance.Login::Valid Login", PASS, 1, 1.1),
            ("Acceptance.Login::Invalid Password", FAIL, 1, 1.2),
            ("Acceptance.Login::Two Factor", SKIP, 1, 0.0),
        ],
    ),
    (
        "dotnet-junit.xml",
        [
            ("MyApp.Tests.CalculatorTests::Add_ReturnsSum(a: 1, b: 2)", PASS, 1, 0.0012345),
            ("MyApp.Tests.CalculatorTests::Divide_ByZero_Throws", FAIL, 1, 0.0301),
            ("MyApp.Tests.CalculatorTests::Sqrt_Negative", SKIP, 1, 0.0),
        ],
    ),
    ("empty-testsuites.xml", []),
    (
        "odd-times.xml",
        [
            ("t::grouped", PASS, 1, 1234.5),
            ("t::seconds_suffix", PASS, 1, 1.5),
            ("t::millis", PASS, 1, 0.25),
            ("t::empty", PASS, 1, None),
            ("t::missing", PASS, 1, None),
            ("t::negative", PASS, 1, None),
            ("t::garbage", PASS, 1, None),
            ("t::decimal_comma", PASS, 1, 0.25),
        ],
    ),
]


@pytest.mark.parametrize(("name", "expected"), DIALECTS, ids=[d[0] for d in DIALECTS])
def test_dialect(name: str, expected: list[Row]) -> None:
    path = DATA / name
    assert junit.sniff(path, path.read_bytes()[:4096])
    parsed = junit.parse(path)
    assert parsed.format == "junit"
    assert parsed.run.source == "junit"
    got = rows(list(parsed.results))
    assert [r[:3] for r in got] == [e[:3] for e in expected]
    for (test_id, _, attempt, duration), (_, _, _, want) in zip(got, expected, strict=True):
        assert duration == pytest.approx(want), (test_id, attempt)


def test_pytest_xunit1_details() -> None:
    parsed = junit.parse(DATA / "pytest-xunit1.xml")
    assert parsed.run.started_at == datetime(2024, 6, 1, 12, 30, 45, 123456, tzinfo=timezone.utc)
    assert parsed.run.host == "ci-runner-3"
    assert parsed.run.suite == "default"  # "pytest" says nothing
    results = list(parsed.results)
    first, failed, errored, skipped, _ = results
    assert first.tool_name == "tests.test_api.TestClient"
    assert first.variation == "test_get"
    assert first.details == {"suite": "pytest", "file": "tests/test_api.py", "line": 14}
    assert failed.variation == 'test_post[<json> & "x"]'
    assert failed.error_message == "AssertionError: assert 500 == 201"
    assert failed.traceback is not None and failed.traceback.endswith("AssertionError")
    assert failed.details["properties"] == {"ticket": "API-12"}
    assert failed.output_excerpt is not None
    assert "POST /items -> 500" in failed.output_excerpt
    assert "warning: retrying" in failed.output_excerpt
    assert errored.error_message == 'failed on setup with "RuntimeError: no db"'
    assert skipped.error_message == "PATCH not supported yet"
    assert skipped.error_type == "pytest.skip"


def test_pytest_xunit2_properties_and_timezone() -> None:
    parsed = junit.parse(DATA / "pytest-xunit2.xml")
    # 08:00 at +02:00 is 06:00 UTC
    assert parsed.run.started_at == datetime(2024, 6, 1, 6, 0, 0, 500000, tzinfo=timezone.utc)
    assert parsed.run.metadata["properties"] == {"build": "1234", "python": "3.11.9"}
    results = list(parsed.results)
    assert results[0].details["properties"] == {"owner": "alice", "tag": ["smoke", "models"]}
    assert "file" not in results[0].details
    assert results[1].error_message == "assert 1 == 2"
    assert results[2].error_type == "pytest.xfail"
    assert results[2].error_message is None


def test_surefire_retries_are_attempts() -> None:
    parsed = junit.parse(DATA / "surefire.xml")
    assert parsed.run.suite == "com.example.OrderServiceTest"
    assert parsed.run.metadata["properties"]["java.version"] == "17.0.9"
    results = list(parsed.results)
    flaky = [r for r in results if r.variation == "placesOrder"]
    assert [r.details.get("retry_kind") for r in flaky] == [
        "flakyFailure",
        "flakyFailure",
        "flakyError",
        None,
    ]
    assert flaky[0].error_type == "org.opentest4j.AssertionFailedError"
    assert flaky[0].error_message == "expected:<1> but was:<0>"
    assert flaky[0].traceback is not None and "OrderServiceTest.java:31" in flaky[0].traceback
    assert flaky[0].output_excerpt is not None and "attempt 1 out" in flaky[0].output_excerpt
    assert flaky[2].error_type == "java.net.ConnectException"
    rerun = [r for r in results if r.variation == "refundsOrder"]
    assert rerun[-1].error_message == "refund not issued"
    assert rerun[-1].output_excerpt is not None and "refund attempt" in rerun[-1].output_excerpt
    assert results[-1].error_message == "@Disabled: flaky on CI"
    assert {r.tool_name for r in results} == {ORDER}


def test_gotestsum_and_cypress_tools() -> None:
    go = results_of(DATA / "gotestsum.xml")
    assert go[0].tool_name == "example.com/tool/cmd/badmain"  # classname="" -> the package
    assert go[0].traceback is not None and "FAIL\texample.com/tool/cmd/badmain" in go[0].traceback
    assert go[1].error_message is not None and "good_test.go:23: not on CI" in go[1].error_message
    assert junit.parse(DATA / "gotestsum.xml").run.started_at is None  # 0001-01-01
    cypress = junit.parse(DATA / "mocha-cypress.xml")
    assert cypress.run.suite == "default"
    results = list(cypress.results)
    assert {r.details["file"] for r in results} == {"cypress/e2e/login.cy.js"}
    assert results[1].error_type == "AssertionError"
    assert results[0].details["suite"] == "Login page"


def test_phpunit_nested_suites() -> None:
    results = results_of(DATA / "phpunit.xml")
    assert [r.details["suite"] for r in results] == [PHP_CLASS] * 3 + [
        f"{PHP_CLASS}::testDivide"
    ] * 2
    assert results[3].tool_name == PHP_CLASS  # no classname: the class attribute
    assert results[3].details["file"] == "/app/tests/CalculatorTest.php"  # from its suite
    assert results[4].error_type == "DivisionByZeroError"
    assert results[4].error_message == (
        'App\\Tests\\CalculatorTest::testDivide with data set "by zero" (4, 0)'
    )


def test_robot_properties_after_tests_reach_metadata() -> None:
    parsed = junit.parse(DATA / "robot-xunit.xml")
    assert parsed.run.suite == "Acceptance"
    assert parsed.run.started_at == datetime(2024, 1, 15, 11, 22, 33, 456000, tzinfo=timezone.utc)
    results = list(parsed.results)
    assert parsed.run.metadata["properties"]["Version"] == "2.1"
    assert results[1].error_message is not None
    assert results[1].error_message.startswith("Page should have contained")
    assert results[2].error_type == "SkipExecution"


def test_dotnet_bom_without_declaration() -> None:
    path = DATA / "dotnet-junit.xml"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf<testsuites>")
    parsed = junit.parse(path)
    assert parsed.run.host == "build-agent-7"
    results = list(parsed.results)
    assert results[1].error_message is not None
    assert results[1].error_message.startswith("Assert.Throws() Failure\r\nExpected:")
    assert results[1].traceback is not None and "CalculatorTests.cs:line 27" in results[1].traceback


def test_gradle_suite_output_is_not_a_testcase_excerpt() -> None:
    parsed = junit.parse(DATA / "gradle.xml")
    assert parsed.run.host == "gradle-worker"
    assert parsed.run.started_at == datetime(2024, 5, 20, 14, 3, 7, tzinfo=timezone.utc)
    assert all(r.output_excerpt is None for r in parsed.results)


# --------------------------------------------------------------------------------------------
# Units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1.5", 1.5),
        ("1,234.5", 1234.5),
        ("1,234", 1234.0),
        ("0,25", 0.25),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("2 min", 120.0),
        ("1e-3", 0.001),
        ("", None),
        ("  ", None),
        (None, None),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("1.2.3", None),
        ("5 parsecs", None),
    ],
)
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    assert junit.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-09-04T16:18:04.966371", datetime(2020, 9, 4, 16, 18, 4, 966371, timezone.utc)),
        ("2024-01-01T10:00:00Z", datetime(2024, 1, 1, 10, tzinfo=timezone.utc)),
        ("2024-01-01T10:00:00-05:00", datetime(2024, 1, 1, 15, tzinfo=timezone.utc)),
        ("2024-01-01 10:00:00.1", datetime(2024, 1, 1, 10, 0, 0, 100000, timezone.utc)),
        ("0001-01-01T00:00:00Z", None),
        ("1970-01-01T00:00:00", None),
        ("1970-01-01T05:00:00+05:00", None),
        ("yesterday", None),
        ("", None),
        (None, None),
        ("2024-13-45T00:00:00", None),
    ],
)
def test_parse_timestamp(text: str | None, expected: datetime | None) -> None:
    assert junit.parse_timestamp(text) == expected


def test_truncation_is_never_silent(tmp_path: Path) -> None:
    # Bounded like every importer's text (common.text.bounded): the head and the tail (where
    # a traceback says what was raised) around a marker saying how much was cut.
    big = "first line\n" + "x" * junit.TRACEBACK_LIMIT + "\nValueError: the end"
    out = "é" * junit.OUTPUT_LIMIT  # 2 bytes each: twice the limit
    path = tmp_path / "big.xml"
    root = ET.Element("testsuite", name="s")
    case = ET.SubElement(root, "testcase", classname="c", name="n")
    ET.SubElement(case, "failure", message="m").text = big
    ET.SubElement(case, "system-out").text = out
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    (result,) = results_of(path)
    assert result.traceback is not None
    assert result.traceback.startswith("first line\n")
    assert result.traceback.endswith("\nValueError: the end")
    dropped = len(big.encode()) - junit.TRACEBACK_LIMIT
    assert f"\n[... truncated {dropped} bytes]\n" in result.traceback
    assert len(result.traceback.encode()) <= junit.TRACEBACK_LIMIT + 40
    assert result.output_excerpt is not None
    assert "[... truncated" in result.output_excerpt
    assert len(result.output_excerpt.encode()) <= junit.OUTPUT_LIMIT + 40


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0"?>\n<testsuites name="x">', True),
        (b"\xef\xbb\xbf<testsuite name='x'>", True),
        (b"<!-- generated -->\n<?xml-stylesheet href='x'?>\n<testsuites>", True),
        (b"<testsuites/>", True),
        (b"<!-- a very long licence comment that goes on " + b"x" * 5000, False),
        (b"<!-- long licence " + b"x" * 100 + b" -->\n<testsuite>", True),
        ('<testsuites name="x">'.encode("utf-16"), True),
        (b'<?xml version="1.0"?><test-run id="2">', False),
        (b'<?xml version="1.0"?><TestRun xmlns="http://microsoft.com">', False),
        (b'<?xml version="1.0"?><robot generator="Robot 7.0">', False),
        (b'{"results": {}}', False),
        (b"", False),
    ],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert junit.sniff(Path("report.xml"), head) is expected


# --------------------------------------------------------------------------------------------
# Bad input

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuites><testsuite name="s"><testcase name="&xxe;"/></testsuite></testsuites>
"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<testsuite name="&lol2;"/>
"""

# A DTD behind a prolog longer than the parser's first chunk, and one in UTF-16: still refused.
XXE_AFTER_LONG_COMMENT = XXE.replace(b"?>\n", b"?>\n<!--" + b"x" * 100_000 + b"-->\n", 1)
XXE_UTF16 = XXE.decode().replace('"1.0"?>', '"1.0" encoding="utf-16"?>').encode("utf-16")

BAD_INPUTS = [
    ("empty", b"", "empty file", None),
    ("blank", b"  \n\n", "empty file", None),
    ("json", b'{"tests": []}', "not XML", 1),
    ("text", b"PASSED 3 tests\n", "not XML", 1),
    ("truncated", b"<testsuites>\n<testsuite name='s'>\n<testcase name='a'>", "truncated", 3),
    ("unclosed-tag", b"<testsuites>\n<testsuite name='s'", "truncated", 2),
    ("mismatched", b"<testsuites>\n<testsuite></testsuites>", "malformed XML", 2),
    ("bad-utf8", b"<testsuite name='s'>\n<testcase name='\xff\xfe'/>\n</testsuite>", "UTF-8", 2),
    ("xxe", XXE, "DTD/entities", None),
    ("billion-laughs", BILLION_LAUGHS, "DTD/entities", None),
    ("xxe-after-long-comment", XXE_AFTER_LONG_COMMENT, "DTD/entities", None),
    ("xxe-utf16", XXE_UTF16, "DTD/entities", None),
    ("nunit", b'<?xml version="1.0"?>\n<test-run id="2" testcasecount="1"/>', "NUnit", 1),
    (
        "trx",
        b'<TestRun id="1" xmlns="http://microsoft.com/schemas/VisualStudio/TeamTest/2010"/>',
        "TRX",
        1,
    ),
    ("robot", b'<?xml version="1.0"?>\n<robot generator="Robot 7.0"><suite/></robot>', "Robot", 1),
    ("other-root", b"<html><body/></html>", "<html> is not <testsuites>", 1),
]


@pytest.mark.parametrize(
    ("data", "reason", "line"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input(tmp_path: Path, data: bytes, reason: str, line: int | None) -> None:
    path = tmp_path / "report.xml"
    path.write_bytes(data)
    with pytest.raises(ImportFormatError) as info:
        results_of(path)
    assert reason in info.value.reason
    assert info.value.path == path
    assert info.value.line == line
    assert str(path) in str(info.value)


def test_error_after_iteration_started_is_import_format_error(tmp_path: Path) -> None:
    path = tmp_path / "late.xml"
    cases = "".join(f'<testcase classname="c" name="t{i}" time="0.1"/>\n' for i in range(2000))
    path.write_text(f"<testsuites><testsuite name='s'>\n{cases}<testcase name='broken'")
    parsed = junit.parse(path)  # the header is fine
    seen = 0
    with pytest.raises(ImportFormatError) as info:
        for _ in parsed.results:
            seen += 1
    assert seen == 2000
    assert "truncated" in info.value.reason
    assert info.value.line == 2002


def test_nameless_testcase_warns(tmp_path: Path) -> None:
    path = tmp_path / "nameless.xml"
    path.write_text('<testsuite name="s"><testcase classname="c"/></testsuite>')
    parsed = junit.parse(path)
    (result,) = list(parsed.results)
    assert result.test_id == "c::<unnamed>"
    assert parsed.warnings


def test_gzip_file(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "report.xml.gz"
    path.write_bytes(gzip.compress((DATA / "gradle.xml").read_bytes()))
    assert len(results_of(path)) == 5


def test_parse_is_lazy_and_closes_the_file() -> None:
    parsed = junit.parse(DATA / "surefire.xml")
    assert isinstance(parsed, ParsedFile)
    assert next(parsed.results).test_id == f"{ORDER}::placesOrder"
    parsed.results.close()  # type: ignore[attr-defined]
    with pytest.raises(StopIteration):
        next(parsed.results)


# --------------------------------------------------------------------------------------------
# Round trip: random suites written with ElementTree parse back to what was written

_XML_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
) | st.sampled_from("<>&\"' \t\n")
_names = st.text(_XML_CHARS, min_size=1, max_size=20)
_case = st.tuples(
    st.text(_XML_CHARS, max_size=15),  # classname, may be empty
    _names,
    st.sampled_from(list(Status)),
    st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.text(_XML_CHARS, max_size=40),  # message
)
_suites = st.lists(
    st.tuples(_names, st.lists(_case, max_size=8, unique_by=lambda c: (c[0], c[1]))),
    min_size=0,
    max_size=4,
)
_TAGS = {FAIL: "failure", ERROR: "error", SKIP: "skipped"}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suites=_suites)
def test_round_trip(tmp_path: Path, suites: list[tuple[str, list[tuple[object, ...]]]]) -> None:
    root = ET.Element("testsuites")
    expected = []
    failing: dict[str, int] = {}  # the importer's rule: a repeat after a failure is a retry
    for suite_name, cases in suites:
        suite = ET.SubElement(root, "testsuite", name=suite_name)
        for classname, name, status, seconds, message in cases:
            assert isinstance(classname, str) and isinstance(name, str)
            assert isinstance(status, Status) and isinstance(message, str)
            attrs = {"classname": classname, "name": name}
            if seconds is not None:
                attrs["time"] = repr(seconds)
            case = ET.SubElement(suite, "testcase", attrs)
            if status in _TAGS:
                ET.SubElement(case, _TAGS[status], message=message)
            test_id = f"{classname}::{name}" if classname else name
            attempt = failing.pop(test_id, 0) + 1
            if status.is_failure:
                failing[test_id] = attempt
            expected.append(
                (test_id, classname or suite_name, name, status, seconds, message, attempt)
            )
    path = tmp_path / "random.xml"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    results = results_of(path)
    assert len(results) == len(expected)
    for result, (test_id, tool, name, status, seconds, message, attempt) in zip(
        results, expected, strict=True
    ):
        assert (result.test_id, result.tool_name, result.variation) == (test_id, tool, name)
        assert result.status is status
        assert result.attempt == attempt
        assert result.duration_secs == (None if seconds is None else pytest.approx(seconds))
        if status is not PASS:
            assert result.error_message == (message or None)


# --------------------------------------------------------------------------------------------
# Memory: 200,000 testcases in flat memory


def test_memory_stays_flat(tmp_path: Path) -> None:
    """A bounded check (about 2 s): the 200,000-testcase version is bench/memory.py."""
    path = tmp_path / "huge.xml"
    count = 40_000
    write_parse_junit(path, count)
    assert path.stat().st_size > 3_000_000

    gc.collect()
    tracemalloc.start()
    try:
        parsed = junit.parse(path)
        statuses: Counter[Status] = Counter()
        samples: dict[int, int] = {}
        for n, result in enumerate(parsed.results, start=1):
            statuses[result.status] += 1
            if n in (5_000, 38_000):
                samples[n] = tracemalloc.get_traced_memory()[0]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert statuses == {PASS: count - count // 100, FAIL: count // 100}
    # Less than the file itself: a parse that read it whole, or built its tree, could not
    # stay under this (a streaming parse peaks at ~0.3 MB).
    assert peak < 2 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    # Flat, not merely small: 33,000 more testcases must not add up. A leak of one element per
    # testcase would be ~2.4 MB here; what does grow (~110 KB measured) is the parser's note of
    # each of the 330 failing tests (to number a later attempt of it), one in a hundred.
    growth = samples[38_000] - samples[5_000]
    assert growth < 512 * 1024, f"grew {growth / 1e3:.0f} KB over 33,000 testcases"


# --------------------------------------------------------------------------------------------
# Real-world samples, read in place


def shared(relative: str) -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared fixtures not present at {SHARED}")
    path = SHARED / relative
    # With ../shared present, a sample missing from it is a failure, not a skip.
    assert path.is_file(), f"shared fixture {relative} is missing from {SHARED}"
    return path


def test_shared_surefire_flaky_and_rerun() -> None:
    path = shared("junit-surefire/surefire-2.22.1-flaky-and-rerun.xml")
    assert junit.sniff(path, path.read_bytes()[:4096])
    parsed = junit.parse(path)
    assert parsed.run.suite == "surefire3.FlakyTest"
    assert parsed.run.metadata["properties"]["java.version"] == "1.8.0_161"
    results = list(parsed.results)
    # 3 testcases: test1 flaky x3 then passed, test2 passed, test3 failed + 5 reruns.
    assert len({r.test_id for r in results}) == 3
    assert rows(results) == (
        [("surefire3.FlakyTest::test1", FAIL, n, None) for n in (1, 2, 3)]
        + [("surefire3.FlakyTest::test1", PASS, 4, 0.0)]
        + [("surefire3.FlakyTest::test2", PASS, 1, 0.001)]
        + [("surefire3.FlakyTest::test3", FAIL, n, None) for n in range(1, 6)]
        + [("surefire3.FlakyTest::test3", FAIL, 6, 0.0)]
    )
    # The file's own failures="9" counts these attempts the same way.
    assert sum(r.status is FAIL for r in results) == 9
    assert (
        results[-1].output_excerpt is not None and "test 3 system out" in results[-1].output_excerpt
    )


def test_shared_gotestsum() -> None:
    path = shared("junit-go/gotestsum-report.xml")
    parsed = junit.parse(path)
    assert parsed.run.started_at is None  # 0001-01-01 everywhere
    assert parsed.run.metadata["properties"] == {"go.version": "go7.7.7"}
    results = list(parsed.results)
    assert len(results) == 60
    assert Counter(r.status for r in results) == {PASS: 42, FAIL: 13, SKIP: 5}
    main = results[0]
    assert (main.test_id, main.tool_name) == (
        "TestMain",
        "gotest.tools/gotestsum/testjson/internal/badmain",
    )
    assert all(r.attempt == 1 for r in results)


def test_shared_jest_suite_failed_to_run() -> None:
    parsed = junit.parse(shared("junit-jest/jest-suite-failed-to-run.xml"))
    assert parsed.run.started_at is None  # 1970-01-01
    results = list(parsed.results)
    assert [(r.test_id, r.status) for r in results] == [
        ("Test suite failed to run::libs/foo.spec.ts", ERROR),
        ("Test suite failed to run::libs/bar.spec.ts", ERROR),
    ]
    assert results[0].error_message == "● Test suite failed to run"
    assert results[0].traceback is not None and "TS6258" in results[0].traceback


def test_shared_pytest_xunit1() -> None:
    parsed = junit.parse(shared("junit-pytest-xunit1/horovod-spark-fail.xml"))
    assert parsed.run.host == "3f909e363d82"
    assert parsed.run.started_at == datetime(2020, 9, 4, 16, 18, 4, 966371, tzinfo=timezone.utc)
    results = list(parsed.results)
    assert Counter(r.status for r in results) == {PASS: 3, SKIP: 1, FAIL: 1}
    failed = next(r for r in results if r.status is FAIL)
    assert failed.test_id == "test.test_spark.SparkTests::test_rsh_events"
    assert failed.details == {"suite": "pytest", "file": "test/test_spark.py", "line": 819}
    assert failed.error_message is not None and failed.error_message.endswith("143 != 0")
    assert failed.duration_secs == pytest.approx(7.541)


def test_shared_pytest_xunit2() -> None:
    parsed = junit.parse(shared("junit-pytest-xunit2/pytest8-xunit2-props.xml"))
    assert parsed.run.metadata["properties"] == {"custom_prop": "custom_val"}
    assert parsed.run.started_at == datetime(2025, 11, 15, 16, 51, 49, 548396, tzinfo=timezone.utc)
    results = list(parsed.results)
    assert len(results) == 10
    assert Counter(r.status for r in results) == {PASS: 6, SKIP: 2, FAIL: 2}
    by_id = {r.test_id: r for r in results}
    assert by_id["tests.test_lib::test_with_record_property"].details["properties"] == {
        "example_key": "1"
    }
    assert by_id["custom_classname::test_with_record_xml_attribute"].status is PASS


@pytest.mark.parametrize(
    ("relative", "reason"),
    [("odd/horovod-truncated.xml", "truncated"), ("odd/xxe-doctype.xml", "DTD/entities")],
)
def test_shared_bad_files(relative: str, reason: str) -> None:
    path = shared(relative)
    with pytest.raises(ImportFormatError) as info:
        results_of(path)
    assert reason in info.value.reason
    assert not junit.sniff(path, path.read_bytes()[:4096]) or reason == "truncated"
