"""Importer for JUnit XML, in the dialects the tools that write it actually produce.

**Streaming.** The file is read through
:class:`~testledger.ingest.formats.xml_stream.XmlEventStream`
(defusedxml's ``iterparse``, ``start`` and ``end`` events; any DTD is refused, which rules out XXE
and entity bombs), and every ``<testcase>`` and
``<testsuite>`` is cleared and detached from its parent once handled, so memory stays flat however
many testcases the file holds. :func:`parse` reads only the header (the root, the first suite and
its ``<properties>``) eagerly; the results come from the same iterator, lazily.

Dialects and how they map:

* ``<testsuites>`` or bare ``<testsuite>`` root; ``<testsuites/>`` empty is zero results.
* pytest xunit1 (``file`` / ``line`` on testcases) and xunit2 (``<properties>`` in testcases).
* Maven Surefire: ``<flakyFailure>`` / ``<flakyError>`` (a test that passed on a rerun) and
  ``<rerunFailure>`` / ``<rerunError>`` (one that failed every rerun) are earlier attempts of the
  test: each becomes its own result, attempts 1..n, and the testcase's own outcome is attempt n+1.
  (Surefire writes the first run in ``<failure>``; it is numbered last as the test's verdict.)
* Gradle (retry plugin without ``mergeReruns``): the same testcase repeated = retries, numbered by
  the test_id's repeat count within the file. Only tests whose last attempt failed are remembered
  (a retry follows a failure), so this costs memory per failing test, not per testcase.
* jest-junit, mocha / Cypress (``file`` on the "Root Suite" applies to the suites after it),
  go-junit-report / gotestsum (``classname=""``: the suite, i.e. the package, is the tool),
  PHPUnit (nested suites: the innermost names ``details["suite"]``; ``class`` when no
  ``classname``), Robot Framework ``--xunit`` (its run ``<properties>`` follow the tests: they
  reach ``run.metadata`` once the results are consumed), .NET loggers (BOM, no declaration).

A testcase is ``test_id = "classname::name"`` (just ``name`` without classname), ``tool_name`` the
classname (else the suite, else the file), ``variation`` the name. ``<failure>`` is FAIL,
``<error>`` ERROR, ``<skipped>`` SKIP, none PASS. Long messages, tracebacks and output are bounded
as every importer bounds them (:func:`testledger.common.text.bounded`: head and tail around
an explicit ``[... truncated N bytes]``).
"""

from __future__ import annotations

import io
import re
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from testledger.common.text import (
    MESSAGE_LIMIT,
    OUTPUT_LIMIT,
    TRACEBACK_LIMIT,
    bounded,
    join_output,
)
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.formats.junit_values import int_or_none, parse_duration, parse_timestamp
from testledger.ingest.formats.xml_stream import XmlEventStream, xml_head_text
from testledger.model import RunInfo, Status, TestResult

__all__ = [
    "FORMAT",
    "MESSAGE_LIMIT",
    "OUTPUT_LIMIT",
    "PARSE_AHEAD",
    "READS_FOLDERS",
    "SUFFIXES",
    "TRACEBACK_LIMIT",
    "parse",
    "parse_duration",
    "parse_timestamp",
    "sniff",
]

FORMAT = "junit"
# Streamed element by element: a large file is worth parsing ahead (ingest.parse_ahead).
PARSE_AHEAD = True
READS_FOLDERS = False
SUFFIXES = (".xml",)

#: Roots of other formats' XML, named so the user learns what the file is instead of a vague
#: "wrong root" (and which importer to use).
_FOREIGN_ROOTS = {
    "test-run": "this is an NUnit 3 result file, not JUnit XML",
    "test-results": "this is an NUnit 2 result file, not JUnit XML",
    "TestRun": "this is a TRX (Visual Studio test results) file, not JUnit XML",
    "robot": "this is a Robot Framework output.xml file, not JUnit XML (use robot --xunit)",
    "assemblies": "this is an xUnit.net result file, not JUnit XML",
}

#: Root names that tools write by default: they say nothing about which suite ran.
_GENERIC_SUITE_NAMES = {"", "pytest", "pytest tests", "jest tests", "mocha tests", "root suite"}
_GENERIC_SUITE_NAMES |= {"all tests", "alltests", "default", "test results"}

_RETRY_TAGS = {"flakyFailure": Status.FAIL, "flakyError": Status.ERROR}
_RETRY_TAGS.update(rerunFailure=Status.FAIL, rerunError=Status.ERROR)

_PROLOG = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)", re.DOTALL)
_JUNIT_ROOT = re.compile(r"<(?:[\w.-]+:)?testsuites?[\s/>]")
_FOREIGN_ROOT = re.compile(r"<(?:test-run|test-results|TestRun|robot|assemblies)[\s/>]")


def sniff(path: Path, head: bytes) -> bool:
    """Whether ``head`` looks like JUnit XML: its root (past BOM, declaration, comments) is
    ``<testsuites>`` or ``<testsuite>``. NUnit, TRX and Robot output.xml are not."""
    text = xml_head_text(head)
    pos = 0
    while True:
        match = _PROLOG.match(text, pos)
        if match is None:
            break
        pos = match.end()
    rest = text[pos:].lstrip()
    if rest.startswith("<!--") or rest.startswith("<?"):
        # A prolog longer than the head (a licence comment): judge by the first root-like tag.
        junit = _JUNIT_ROOT.search(rest)
        foreign = _FOREIGN_ROOT.search(rest)
        return junit is not None and (foreign is None or junit.start() < foreign.start())
    return _JUNIT_ROOT.match(rest) is not None


def parse(path: Path) -> ParsedFile:
    """Read the header of ``path`` now; return it with the results as a lazy iterator."""
    path = Path(path)
    xml = XmlEventStream(path, "JUnit XML")
    try:
        reader = _Reader(path, xml)
        run = reader.read_header()
    except BaseException:
        xml.close()
        raise
    return ParsedFile(
        path=path, format=FORMAT, run=run, results=reader.results(), warnings=reader.warnings
    )


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(slots=True)
class _Suite:
    name: str | None
    file: str | None


class _Results(Iterator[TestResult]):
    """The results iterator. A thin wrapper so that the file is closed even when the consumer
    drops it before (or without ever) starting it, which a bare generator would not do."""

    def __init__(self, gen: Generator[TestResult, None, None], stream: io.BufferedIOBase) -> None:
        self._gen = gen
        self._finalizer = weakref.finalize(self, stream.close)

    def __next__(self) -> TestResult:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()
        self._finalizer()


class _Reader:
    def __init__(self, path: Path, xml: XmlEventStream) -> None:
        self.path = path
        self.xml = xml
        self.events = xml.events()
        self.warnings: list[str] = []
        # Events pulled while reading the header, replayed first by results().
        self.buffered: list[tuple[str, Element]] = []
        # Repeat counts only of tests whose latest attempt failed: a retry follows a failure, so
        # this grows with the failing tests, never with the file.
        self.failing: dict[str, int] = {}
        self.root_file: str | None = None
        self.run = RunInfo(source="junit")
        # The elements whose <properties> describe the run (Robot writes them after the tests).
        self.header_elems: tuple[Element, ...] = ()

    # -- header -------------------------------------------------------------------------------

    def _pull(self) -> tuple[str, Element] | None:
        item = next(self.events, None)
        if item is not None:
            self.buffered.append(item)
        return item

    def read_header(self) -> RunInfo:
        first = self._pull()
        if first is None:  # pragma: no cover - expat raises "no element found" first
            raise ImportFormatError(self.path, "empty file: expected JUnit XML")
        root = first[1]
        tag = _local(root.tag)
        if tag not in ("testsuites", "testsuite"):
            reason = _FOREIGN_ROOTS.get(
                tag, f"root element <{tag}> is not <testsuites> or <testsuite>: not JUnit XML"
            )
            raise ImportFormatError(self.path, reason, 1)
        header_suite = root if tag == "testsuite" else None
        properties: dict[str, Any] = {}
        depth = 1
        # Read on to the first suite and past its <properties>, stopping at the first testcase
        # or nested suite: the buffered events are few, whatever the file's size.
        while (item := self._pull()) is not None:
            event, elem = item
            local = _local(elem.tag)
            if event == "start":
                depth += 1
                if local == "testsuite" and header_suite is None and depth == 2:
                    header_suite = elem
                elif local in ("testcase", "testsuite"):
                    break
            else:
                depth -= 1
                if local == "properties" and depth in (1, 2):
                    properties.update(_properties(elem))
                    if header_suite is not None:
                        break
                elif elem is header_suite or depth == 0:
                    break
        run = self.run
        self.header_elems = (root,) if header_suite is None else (root, header_suite)
        for source in (root, header_suite):
            if source is None:
                continue
            run.started_at = run.started_at or parse_timestamp(source.get("timestamp"))
            run.host = run.host or (source.get("hostname") or "").strip() or None
        name = (root.get("name") or "").strip()
        if name.lower() not in _GENERIC_SUITE_NAMES:
            run.suite = name
        if properties:
            run.metadata["properties"] = properties
        return run

    # -- results ------------------------------------------------------------------------------

    def results(self) -> Iterator[TestResult]:
        return _Results(self._generate(), self.xml.stream)

    def _generate(self) -> Generator[TestResult, None, None]:
        stack: list[Element] = []
        suites: list[_Suite] = []
        events = chain(self.buffered, self.events)
        self.buffered = []
        names = _LOCAL_NAMES
        try:
            for event, elem in events:
                tag = names.get(elem.tag) or _local(elem.tag)
                if event == "start":
                    stack.append(elem)
                    if tag == "testsuite":
                        suites.append(self._open_suite(elem, suites))
                    continue
                stack.pop()
                if tag == "testcase":
                    yield from self._testcase(elem, suites[-1] if suites else None)
                elif tag == "testsuite":
                    suites.pop()
                else:
                    if tag == "properties" and stack and stack[-1] in self.header_elems:
                        self._late_properties(elem)
                    continue
                # Drop what was handled, and its slot in the parent, so the tree never grows.
                # The parser runs ahead by a chunk, so later siblings may already follow it in
                # the parent; removing in document order keeps it near the front, which makes
                # remove() cheap.
                elem.clear()
                if stack:
                    # Not contextlib.suppress: that would cost a context manager per testcase.
                    try:  # noqa: SIM105
                        stack[-1].remove(elem)
                    except ValueError:  # pragma: no cover - the builder put it there
                        pass
        except ImportFormatError:
            raise
        except (ValueError, TypeError) as exc:
            raise ImportFormatError(self.path, f"unusable testcase: {exc}") from None
        finally:
            self.xml.close()

    def _late_properties(self, elem: Element) -> None:
        """Run properties written after the testcases (Robot's xunit): they reach
        ``run.metadata`` once the results are consumed, the header being read by then."""
        props = _properties(elem)
        if props:
            self.run.metadata.setdefault("properties", {}).update(props)

    def _open_suite(self, elem: Element, outer: list[_Suite]) -> _Suite:
        name = elem.get("name") or None
        file = elem.get("file") or elem.get("filepath") or None
        if not outer and name == "Root Suite":
            # mocha / Cypress put the spec file only on the "Root Suite", then write the spec's
            # describe() blocks as sibling suites after it.
            self.root_file = file
        # PHPUnit's data-provider suites sit inside their class's suite: inherit its file.
        return _Suite(name=name, file=file or (outer[-1].file if outer else None))

    def _testcase(self, elem: Element, suite: _Suite | None) -> list[TestResult]:
        """The testcase's results, numbered after the attempts this file already had of the
        test (Gradle's repeated testcases)."""
        get = elem.get
        name = get("name") or ""
        classname = get("classname") or get("class") or ""
        if not name:
            name = "<unnamed>"
            self.warnings.append(f"a testcase of {classname or 'no class'} has no name")
        test_id = f"{classname}::{name}" if classname else name
        suite_name = suite.name if suite else None
        file = get("file") or (suite.file if suite else None) or self.root_file
        tool_name = classname or suite_name or file or name
        details = _case_details(suite_name, file, get("line"))
        stamp = get("timestamp")
        started_at = parse_timestamp(stamp) if stamp else None
        previous = self.failing.get(test_id, 0) if self.failing else 0

        if not len(elem):
            # The common case by far: a passing testcase without children. Handled here, with
            # no object made for it, since this runs for nearly every testcase of a file.
            if previous:
                del self.failing[test_id]
            return [
                TestResult(
                    test_id,
                    tool_name,
                    name,
                    Status.PASS,
                    duration_secs=parse_duration(get("time")),
                    details=details,
                    attempt=previous + 1,
                    started_at=started_at,
                )
            ]
        case = _Case(test_id, tool_name, name, details, started_at)
        return self._attempts(elem, case, previous)

    def _attempts(self, elem: Element, case: _Case, previous: int) -> list[TestResult]:
        """A testcase with children: its Surefire reruns as earlier attempts, then its own
        outcome, each numbered after the ``previous`` attempts."""
        children = _sort_children(elem)
        if children.properties is not None:
            case.details["properties"] = children.properties
        results = [
            _retry_result(case, retry, attempt)
            for attempt, retry in enumerate(children.retries, start=previous + 1)
        ]
        status, (message, error_type, trace) = _verdict(children)
        attempt = previous + len(children.retries) + 1
        # Only a failing last attempt is remembered: a repeat of the testcase is its retry.
        if status.is_failure:
            self.failing[case.test_id] = attempt
        else:
            self.failing.pop(case.test_id, None)
        results.append(
            TestResult(
                case.test_id,
                case.tool_name,
                case.name,
                status,
                duration_secs=parse_duration(elem.get("time")),
                error_type=error_type,
                error_message=message,
                traceback=trace,
                output_excerpt=join_output(children.output),
                details=case.details,
                attempt=attempt,
                started_at=case.started_at,
            )
        )
        return results


# --------------------------------------------------------------------------------------------
# One testcase


@dataclass(slots=True)
class _Case:
    """What every result of one testcase shares."""

    test_id: str
    tool_name: str
    name: str
    details: dict[str, Any]
    started_at: datetime | None


@dataclass(slots=True)
class _Children:
    """A testcase's child elements by role. ``properties`` is None without a ``<properties>``
    child, ``{}`` with an empty one (which still shows in the details)."""

    outcomes: list[Element] = field(default_factory=list)
    skipped: Element | None = None
    retries: list[Element] = field(default_factory=list)
    output: list[tuple[str, str]] = field(default_factory=list)
    properties: dict[str, Any] | None = None


def _case_details(
    suite_name: str | None, file: str | None, line_text: str | None
) -> dict[str, Any]:
    """Where the testcase is: its innermost suite, its file and line (each when known)."""
    details: dict[str, Any] = {}
    if suite_name:
        details["suite"] = suite_name
    if file:
        details["file"] = file
    if line_text is not None and (line := int_or_none(line_text)) is not None:
        details["line"] = line
    return details


def _sort_children(elem: Element) -> _Children:
    """The testcase's children by role; children of no role here are ignored."""
    children = _Children()
    for child in elem:
        tag = _local(child.tag)
        if tag in ("failure", "error"):
            children.outcomes.append(child)
        elif tag == "skipped":
            # The first <skipped> gives the reason; later ones add nothing.
            if children.skipped is None:
                children.skipped = child
        elif tag in _RETRY_TAGS:
            children.retries.append(child)
        elif tag in ("system-out", "system-err") and _has_text(child.text):
            children.output.append((tag, child.text or ""))
        elif tag == "properties":
            # Several <properties> children add up.
            if children.properties is None:
                children.properties = {}
            children.properties.update(_properties(child))
    return children


def _retry_result(case: _Case, retry: Element, attempt: int) -> TestResult:
    """An earlier attempt from a Surefire rerun element (``retry_kind`` in its details names
    which): its status from the element's tag, its trace and output nested inside it."""
    message, error_type, trace = _problem(retry, nested_trace=True)
    return TestResult(
        case.test_id,
        case.tool_name,
        case.name,
        _RETRY_TAGS[_local(retry.tag)],
        duration_secs=parse_duration(retry.get("time")),
        error_type=error_type,
        error_message=message,
        traceback=trace,
        output_excerpt=join_output(_nested_output(retry)),
        details={**case.details, "retry_kind": _local(retry.tag)},
        attempt=attempt,
        started_at=case.started_at,
    )


def _verdict(
    children: _Children,
) -> tuple[Status, tuple[str | None, str | None, str | None]]:
    """The testcase's own status with its ``(message, type, traceback)``: FAIL or ERROR by
    its first ``<failure>``/``<error>``, else SKIP, else PASS. With several failures and errors,
    the traceback holds all their texts, so that none is lost."""
    if children.outcomes:
        first = children.outcomes[0]
        status = Status.FAIL if _local(first.tag) == "failure" else Status.ERROR
        message, error_type, trace = _problem(first, nested_trace=False)
        if len(children.outcomes) > 1:
            texts = [t for o in children.outcomes if _has_text(t := o.text or "")]
            trace = bounded("\n\n".join(texts), TRACEBACK_LIMIT) if texts else trace
        return status, (message, error_type, trace)
    if children.skipped is not None:
        return Status.SKIP, _problem(children.skipped, nested_trace=False)
    return Status.PASS, (None, None, None)


# --------------------------------------------------------------------------------------------
# Helpers


_LOCAL_NAMES: dict[object, str] = {}


def _local(tag: object) -> str:
    """A tag without its namespace (``{ns}TestRun`` -> ``TestRun``). Memoised: a file has a
    handful of distinct tags and this runs twice per element."""
    try:
        return _LOCAL_NAMES[tag]
    except KeyError:
        text = tag if isinstance(tag, str) else str(tag)
        local = _LOCAL_NAMES[tag] = text.rpartition("}")[2]
        return local


def _has_text(text: str | None) -> bool:
    return bool(text and text.strip())


def _problem(elem: Element, *, nested_trace: bool) -> tuple[str | None, str | None, str | None]:
    """``(message, type, traceback)`` of a failure / error / skipped / rerun element.

    Surefire's rerun elements hold the trace in a ``<stackTrace>`` child rather than as text.
    """
    text = elem.text if _has_text(elem.text) else None
    if nested_trace and text is None:
        for child in elem:
            if _local(child.tag) == "stackTrace" and _has_text(child.text):
                text = child.text
                break
    message = elem.get("message") or None
    if message is None and text is not None:
        message = next(line.strip() for line in text.splitlines() if line.strip())
    error_type = (elem.get("type") or "").strip() or None
    return (
        bounded(message, MESSAGE_LIMIT),
        error_type,
        bounded(text, TRACEBACK_LIMIT),
    )


def _nested_output(elem: Element) -> list[tuple[str, str]]:
    return [
        (_local(child.tag), child.text or "")
        for child in elem
        if _local(child.tag) in ("system-out", "system-err") and _has_text(child.text)
    ]


def _properties(elem: Element) -> dict[str, Any]:
    """``<property name= value=>`` children as a dict; a repeated name collects a list."""
    props: dict[str, Any] = {}
    for prop in elem:
        if _local(prop.tag) != "property":
            continue
        name = prop.get("name")
        if name is None:
            continue
        value = prop.get("value")
        if value is None:
            value = prop.text or ""
        if name in props:
            existing = props[name]
            props[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            props[name] = value
    return props
