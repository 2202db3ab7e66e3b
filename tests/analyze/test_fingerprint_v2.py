"""Fingerprint version 2 (``raised-at``): one cause across call paths is one fingerprint; what a
careful reader tells apart stays apart. Table-driven, with property tests of the message
normalisation and of the hash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testledger.analyze.issues.fingerprint import explain, fingerprint
from testledger.analyze.issues.origin import normalize_origin_message, project_module
from testledger.model import Status, TestResult

CHECKOUT_A = "/home/runner/work/shop/shop/"
CHECKOUT_B = "/builds/acme/shop/"
PY = "/opt/hostedtoolcache/Python/3.12.7/x64/lib/python3.12/"


def _tb(
    frames: list[tuple[str, str]], exc: str, *, checkout: str = CHECKOUT_A, shift: int = 0
) -> str:
    lines = ["Traceback (most recent call last):"]
    for i, (path, func) in enumerate(frames):
        root = PY if path.startswith(("site-packages/", "asyncio/", "json/")) else checkout
        lines.append(f'  File "{root}{path}", line {20 + 7 * i + shift}, in {func}')
        lines.append("    do()")
    return "\n".join([*lines, exc])


def _failure(
    message: str,
    frames: list[tuple[str, str]] | None = None,
    error_type: str = "ValueError",
    *,
    test_id: str = "tests/test_a.py::test_one",
    checkout: str = CHECKOUT_A,
    shift: int = 0,
    traceback: str | None = None,
) -> TestResult:
    if traceback is None and frames is not None:
        traceback = _tb(frames, f"{error_type}: {message}", checkout=checkout, shift=shift)
    return TestResult(
        test_id=test_id,
        tool_name="a",
        variation="one",
        status=Status.FAIL,
        error_type=error_type,
        error_message=message,
        traceback=traceback,
    )


TEST_A = ("tests/billing/test_invoice.py", "test_total")
TEST_B = ("tests/checkout/test_flow.py", "test_pay")
SEND = ("src/shop/billing/client.py", "_send")
POST = ("src/shop/billing/client.py", "post")
SERVICE = ("src/shop/billing/service.py", "create_invoice")
FLOW = ("src/shop/checkout/flow.py", "complete")
REQUESTS = ("site-packages/requests/models.py", "raise_for_status")
HTTP500 = "500 Server Error: Internal Server Error for url: http://127.0.0.1:{}/v2/invoices/{}"
UUIDS = ("550e8400-e29b-41d4-a716-446655440000", "123e4567-e89b-12d3-a456-426614174000")

# (name, first, second): the same cause, which must have one fingerprint.
SAME_CAUSE = [
    (
        "call_depths",
        _failure(HTTP500.format(40001, UUIDS[0]), [TEST_A, SERVICE, POST, SEND, REQUESTS],
                 "requests.exceptions.HTTPError"),
        _failure(HTTP500.format(51234, UUIDS[1]),
                 [TEST_B, FLOW, ("src/shop/billing/service.py", "charge"), SERVICE, POST, SEND,
                  REQUESTS], "requests.exceptions.HTTPError", test_id="tests/b.py::test_b"),
    ),
    (
        "status_code_within_class",
        _failure(HTTP500.format(40001, UUIDS[0]), [TEST_A, SEND, REQUESTS], "HTTPError"),
        _failure("503 Server Error: Service Unavailable for url: http://127.0.0.1:9/v2/x",
                 [TEST_A, POST, SEND, REQUESTS], "HTTPError"),
    ),
    (
        "raised_right_under_different_tests",
        _failure("'arguments'", [TEST_A, ("src/shop/llm/tools.py", "parse_call")], "KeyError"),
        _failure("'arguments'", [TEST_B, ("src/shop/llm/agent.py", "step"),
                                 ("src/shop/llm/tools.py", "parse_call")], "KeyError"),
    ),
    (
        "line_numbers_and_checkouts",
        _failure("bad input 3", [TEST_A, SERVICE], checkout=CHECKOUT_A),
        _failure("bad input 7", [TEST_A, SERVICE], checkout=CHECKOUT_B, shift=40),
    ),
    (
        "library_frames_below",
        _failure("timed out after 30.0s", [TEST_A, ("src/shop/streaming/reader.py", "read"),
                 ("asyncio/tasks.py", "wait_for")], "TimeoutError"),
        _failure("timed out after 31.2s", [TEST_B, ("src/shop/streaming/sse.py", "consume"),
                 ("src/shop/streaming/reader.py", "read")], "TimeoutError"),
    ),
    (
        "import_error_at_module_level",
        _failure("cannot import name 'Cart' from 'shop.cart' (/home/ci/shop/src/shop/cart.py)",
                 [TEST_A, ("src/shop/checkout/__init__.py", "<module>")], "ImportError"),
        _failure("cannot import name 'Cart' from 'shop.cart' (/builds/x/shop/src/shop/cart.py)",
                 [TEST_B, ("src/shop/checkout/legacy.py", "<module>"),
                  ("src/shop/checkout/__init__.py", "<module>")], "ImportError"),
    ),
    (
        "assert_counts",
        _failure("assert 7 == 12\n +  where 7 = len([1, 2])", error_type="AssertionError"),
        _failure("assert 3 == 12\n +  where 3 = len([])", error_type="AssertionError"),
    ),
    (
        "temp_uploads",
        _failure("[Errno 2] No such file or directory: '/tmp/pytest-of-ci/pytest-3/up0/a-1f.csv'",
                 [TEST_A, ("src/shop/catalog/loader.py", "load_file")], "FileNotFoundError"),
        _failure("[Errno 2] No such file or directory: '/tmp/pytest-of-ci/pytest-9/up2/b-77.csv'",
                 [TEST_B, ("src/shop/catalog/loader.py", "load_file")], "FileNotFoundError"),
    ),
    (
        "repo_file_in_two_checkouts",
        _failure(f"[Errno 2] No such file or directory: '{CHECKOUT_A}data/catalog.json'",
                 [TEST_A, ("src/shop/catalog/loader.py", "load_file")], "FileNotFoundError"),
        _failure(f"[Errno 2] No such file or directory: '{CHECKOUT_B}data/catalog.json'",
                 [TEST_A, ("src/shop/catalog/loader.py", "load_file")], "FileNotFoundError",
                 checkout=CHECKOUT_B),
    ),
    (
        "volatile_parts_inside_an_assertion_literal",
        _failure(f"assert 'order {UUIDS[0]} paid' == 'paid'", error_type="AssertionError"),
        _failure(f"assert 'order {UUIDS[1]} paid' == 'paid'", error_type="AssertionError"),
    ),
]  # fmt: skip

# (name, first, second, why): what a careful reader keeps apart.
MUST_SPLIT = [
    (
        "missing_key",
        _failure("'arguments'", [TEST_A, ("src/shop/llm/tools.py", "parse_call")], "KeyError"),
        _failure("'tool_calls'", [TEST_A, ("src/shop/llm/tools.py", "parse_call")], "KeyError"),
    ),
    (
        "http_status_class",
        _failure(HTTP500.format(1, UUIDS[0]), [TEST_A, SEND, REQUESTS], "HTTPError"),
        _failure("404 Client Error: Not Found for url: http://127.0.0.1:1/v2/x",
                 [TEST_A, SEND, REQUESTS], "HTTPError"),
    ),
    (
        "module_of_origin",
        _failure("404 Client Error: Not Found for url: http://h:1/x", [TEST_A, SEND], "HTTPError"),
        _failure("404 Client Error: Not Found for url: http://h:1/x",
                 [TEST_A, ("src/shop/inventory/client.py", "_send")], "HTTPError"),
    ),
    (
        "repo_file_vs_temp_upload",
        _failure(f"[Errno 2] No such file or directory: '{CHECKOUT_A}data/catalog.json'",
                 [TEST_A, ("src/shop/catalog/loader.py", "load_file")], "FileNotFoundError"),
        _failure("[Errno 2] No such file or directory: '/tmp/pytest-of-ci/pytest-3/up0/a.json'",
                 [TEST_A, ("src/shop/catalog/loader.py", "load_file")], "FileNotFoundError"),
    ),
    (
        "assert_string_literals",
        _failure("assert 'glm-4.5-air' == 'glm-4.5'", error_type="AssertionError"),
        _failure("assert 'gpt-4o-mini' == 'glm-4.5-air'", error_type="AssertionError"),
    ),
    (
        "same_message_other_function",
        _failure("'NoneType' object has no attribute 'currency'",
                 [TEST_A, ("src/shop/pricing/rules.py", "apply_discount")], "AttributeError"),
        _failure("'NoneType' object has no attribute 'currency'",
                 [TEST_A, ("src/shop/billing/tax.py", "compute")], "AttributeError"),
    ),
    (
        "exception_type",
        _failure("boom", [TEST_A, SEND], "ValueError"),
        _failure("boom", [TEST_A, SEND], "TypeError"),
    ),
    (
        "pytest_long_format_test_functions",
        _failure("assert 3 == 4", error_type="AssertionError", traceback=(
            "    def test_rows(self):\n>       assert count() == 4\nE       assert 3 == 4\n\n"
            "tests/reports/test_export.py:41: AssertionError")),
        _failure("assert 3 == 4", error_type="AssertionError", traceback=(
            "    def test_columns(self):\n>       assert width() == 4\nE       assert 3 == 4\n\n"
            "tests/reports/test_export.py:77: AssertionError")),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "first", "second"), SAME_CAUSE, ids=[c[0] for c in SAME_CAUSE])
def test_one_cause_is_one_fingerprint(name: str, first: TestResult, second: TestResult) -> None:
    a, b = fingerprint(first, version=2), fingerprint(second, version=2)
    assert a.hash == b.hash, (a.components, b.components)


@pytest.mark.parametrize(("name", "first", "second"), MUST_SPLIT, ids=[c[0] for c in MUST_SPLIT])
def test_what_a_reader_splits_stays_split(name: str, first: TestResult, second: TestResult) -> None:
    assert fingerprint(first, version=2).hash != fingerprint(second, version=2).hash


def test_version_1_split_the_call_depths_that_version_2_joins() -> None:
    """The problem version 2 solves, kept visible: version 1 hashes up to three callers."""
    [(_, first, second)] = [c for c in SAME_CAUSE if c[0] == "raised_right_under_different_tests"]
    assert fingerprint(first, version=1).hash != fingerprint(second, version=1).hash


def test_explain_shows_where_it_was_raised_and_the_path_as_evidence() -> None:
    [(_, _, second)] = [case for case in SAME_CAUSE if case[0] == "call_depths"]
    explained = explain(second, version=2)
    assert (explained.version, explained.algorithm) == (2, "raised-at")
    parts = {part.name: part for part in explained}
    assert [part.name for part in explained] == [
        "exception_type", "message", "raised_in", "call_path", "test_id", "status",
    ]  # fmt: skip
    assert parts["raised_in"].normalized == "shop/billing/client.py:_send"
    assert parts["raised_in"].contributes
    assert parts["call_path"].normalized == (
        "tests/checkout/test_flow.py:test_pay > shop/checkout/flow.py:complete > "
        "shop/billing/service.py:charge > shop/billing/service.py:create_invoice > "
        "shop/billing/client.py:post > shop/billing/client.py:_send"
    )
    assert not parts["call_path"].contributes
    assert parts["message"].normalized == "5xx Server Error for url: <url>"
    assert parts["message"].rules == ("http_status_class", "url")


def test_pytest_long_format_raises_in_the_test_function() -> None:
    [(_, first, _)] = [c for c in MUST_SPLIT if c[0] == "pytest_long_format_test_functions"]
    parts = {part.name: part for part in explain(first, version=2)}
    assert parts["raised_in"].normalized == "tests/reports/test_export.py:test_rows"


def test_java_frames_are_class_and_method() -> None:
    result = _failure(
        "closed",
        error_type="java.lang.IllegalStateException",
        traceback="java.lang.IllegalStateException: closed\n"
        "\tat com.acme.Pool.take(Pool.java:42)\n"
        "\tat java.base/java.util.Objects.x(Objects.java:1)\n",
    )
    parts = {part.name: part for part in explain(result, version=2)}
    assert parts["raised_in"].normalized == "com.acme.Pool:take"


def test_unexplained_failures_fall_back_to_the_test() -> None:
    blank = TestResult(test_id="tests/a.py::test_x[1]", tool_name="a", variation="x", status="FAIL")
    other = TestResult(test_id="tests/a.py::test_y", tool_name="a", variation="y", status="FAIL")
    contributing = [c.name for c in fingerprint(blank, version=2).components if c.contributes]
    assert contributing == ["test_id", "status"]
    assert fingerprint(blank, version=2).hash != fingerprint(other, version=2).hash


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("/home/runner/work/shop/shop/src/shop/billing/client.py", "shop/billing/client.py"),
        ("/builds/acme/shop/src/shop/billing/client.py", "shop/billing/client.py"),
        ("/builds/acme/shop/tests/billing/test_a.py", "tests/billing/test_a.py"),
        ("tests/billing/test_a.py", "tests/billing/test_a.py"),
        ("src/shop/x.py", "shop/x.py"),
        ("shop/x.py", "shop/x.py"),
        ("/opt/work/shop/pkg/mod.py", "pkg/mod.py"),
        ("C:\\work\\shop\\src\\shop\\mod.py", "shop/mod.py"),
    ],
)
def test_project_module(path: str, module: str) -> None:
    assert project_module(path) == module


# (input, expected): version 2's message pre-pass, then version 1's normalisation.
MESSAGE_CASES = [
    ("assert 'sonnet-4' == 'sonnet-4.5'", "assert 'sonnet-4' == 'sonnet-4.5'"),
    ("assert 'abc' == 'abd'", "assert 'abc' == 'abd'"),
    ("AssertionError: assert 'a' in 'b 12'", "AssertionError: assert 'a' in 'b 12'"),
    ("assert 'job 0x7f00aa 123456' == 'x'", "assert 'job <hex> <num>' == 'x'"),
    ("expected 'sonnet-4' got 'x'", "expected <quoted> got 'x'"),
    ("HTTP 404 from server", "HTTP 4xx from server"),
    ("upstream status=503 after 3 tries", "upstream status=5xx after <num> tries"),
    ("502 Server Error: Bad Gateway for url: http://x:1/y", "5xx Server Error for url: <url>"),
    ("No such file: '/tmp/pytest-of-a/pytest-1/t0/x.json'", "No such file: '<tmp_path>'"),
    ("No such file: '/srv/ci/9/app/data/x.json'", "No such file: '<repo>/data/x.json'"),
    ("read /x failed", "read /x failed"),
    ("see http://h/a/b", "see <url>"),
    ("line 1 column 30 (char 29)", "line <num> column <num> (char <num>)"),
]


@pytest.mark.parametrize(
    ("text", "expected"), MESSAGE_CASES, ids=[c[0][:40] for c in MESSAGE_CASES]
)
def test_message_normalisation(text: str, expected: str) -> None:
    assert normalize_origin_message(text)[0] == expected


_texty = st.text(alphabet=st.sampled_from(list("ab0x19 .:-'\"/[]@\n<>Ef_T+?as=HTP\\")), max_size=80)
_messages = st.one_of(
    st.text(max_size=200),
    _texty,
    st.builds(lambda a, b: f"assert {a} == {b}", _texty, _texty),
    st.builds(lambda a: f"No such file: '/home/ci/{a}'", _texty),
)


@settings(max_examples=400, deadline=None)
@given(_messages)
def test_message_normalisation_is_idempotent(text: str) -> None:
    # Lines within the 200-character cut (a line cut mid-token can normalise again).
    once = normalize_origin_message(text)[0]
    assert normalize_origin_message(once)[0] == once


@settings(max_examples=200, deadline=None)
@given(_messages, st.sampled_from([None, "KeyError", "AssertionError"]), st.integers(0, 3))
def test_hash_ignores_line_numbers_and_checkout(
    text: str, error_type: str | None, depth: int
) -> None:
    frames = [TEST_A, *[(f"src/shop/m{i}.py", f"f{i}") for i in range(depth)], SEND]
    first = _failure(text, frames, error_type or "ValueError")
    moved = _failure(text, frames, error_type or "ValueError", checkout=CHECKOUT_B, shift=11)
    assert fingerprint(first, version=2).hash == fingerprint(moved, version=2).hash
