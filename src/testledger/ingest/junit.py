"""Importer for JUnit XML, in the dialects the tools that write it actually produce.

**Streaming.** The file is read with :func:`defusedxml.ElementTree.iterparse` (``start`` and
``end`` events, 16 KiB at a time) and every ``<testcase>`` and ``<testsuite>`` is cleared and
detached from its parent once handled, so memory stays flat however many testcases the file
holds. :func:`parse` reads only the header (the root, the first suite and its ``<properties>``)
eagerly; the results come from the same iterator, lazily. DTDs and entities are refused
(``forbid_dtd=True``): JUnit XML never needs them and they are the door to XXE.

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
``<error>`` ERROR, ``<skipped>`` SKIP, none PASS.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from testledger.ingest._common import head_text, open_maybe_gzip
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.model import RunInfo, Status, TestResult

__all__ = ["FORMAT", "parse", "parse_duration", "parse_timestamp", "sniff"]

FORMAT = "junit"

#: Bounds in UTF-8 bytes; longer text keeps its head and says how much was cut.
TRACEBACK_LIMIT = 64 * 1024
OUTPUT_LIMIT = 8 * 1024
MESSAGE_LIMIT = 8 * 1024

_DTD_REASON = "refusing XML with a DTD/entities (possible XXE)"

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

#: JUnit writers put dates 0001-01-01 (Go's zero time) or the epoch where they had none.
_SENTINEL_BEFORE = datetime(1971, 1, 1, tzinfo=timezone.utc)

_PROLOG = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)", re.DOTALL)
_JUNIT_ROOT = re.compile(r"<(?:[\w.-]+:)?testsuites?[\s/>]")
_FOREIGN_ROOT = re.compile(r"<(?:test-run|test-results|TestRun|robot|assemblies)[\s/>]")


def sniff(path: Path, head: bytes) -> bool:
    """Whether ``head`` looks like JUnit XML: its root (past BOM, declaration, comments) is
    ``<testsuites>`` or ``<testsuite>``. NUnit, TRX and Robot output.xml are not."""
    text = _head_text(head)
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
    stream = open_maybe_gzip(path)
    try:
        head = _read_head(path, stream)
        events = iterparse(stream, events=("start", "end"), forbid_dtd=True)
        reader = _Reader(path, stream, events, head)
        run = reader.read_header()
    except BaseException:
        stream.close()
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
    def __init__(
        self, path: Path, stream: io.BufferedIOBase, events: Iterator[Any], head: bytes
    ) -> None:
        self.path = path
        self.stream = stream
        self.events = events
        self.head = head
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

    # -- low level --------------------------------------------------------------------------

    def _pull(self) -> tuple[str, Element] | None:
        try:
            event, elem = next(self.events)
        except StopIteration:
            return None
        except ParseError as exc:
            raise self._parse_error(exc) from None
        except DefusedXmlException:
            raise ImportFormatError(self.path, _DTD_REASON) from None
        except (OSError, EOFError, ValueError) as exc:  # gzip errors, I/O errors
            raise ImportFormatError(self.path, f"cannot read: {exc}") from None
        return event, elem

    def _parse_error(self, exc: ParseError) -> ImportFormatError:
        line, _col = exc.position
        code = getattr(exc, "code", None)
        truncated = {
            expat_errors.codes[expat_errors.XML_ERROR_NO_ELEMENTS],
            expat_errors.codes[expat_errors.XML_ERROR_UNCLOSED_TOKEN],
            expat_errors.codes[expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION],
        }
        detail = str(exc)
        if code in truncated:
            reason = f"truncated XML: the file ends before its elements are closed ({detail})"
        elif code == expat_errors.codes[
            expat_errors.XML_ERROR_INVALID_TOKEN
        ] and _invalid_utf8_on_line(self.path, line, self.head):
            reason = f"invalid UTF-8 ({detail})"
        else:
            reason = f"malformed XML ({detail})"
        return ImportFormatError(self.path, reason, line)

    # -- header -------------------------------------------------------------------------------

    def read_header(self) -> RunInfo:
        first = self._pull()
        if first is None:  # pragma: no cover - expat raises "no element found" first
            raise ImportFormatError(self.path, "empty file: expected JUnit XML")
        self.buffered.append(first)
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
        while True:
            item = self._pull()
            if item is None:
                break
            self.buffered.append(item)
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
        return _Results(self._generate(), self.stream)

    def _events(self) -> Iterator[tuple[str, Element]]:
        yield from self.buffered
        self.buffered = []
        while (item := self._pull()) is not None:
            yield item

    def _generate(self) -> Generator[TestResult, None, None]:
        stack: list[Element] = []
        suites: list[_Suite] = []
        try:
            for event, elem in self._events():
                if event == "start":
                    stack.append(elem)
                    if _local(elem.tag) == "testsuite":
                        suites.append(self._open_suite(elem, suites))
                    continue
                stack.pop()
                local = _local(elem.tag)
                if local == "testcase":
                    yield from self._testcase(elem, suites[-1] if suites else None)
                elif local == "testsuite":
                    suites.pop()
                else:
                    if local == "properties" and stack and stack[-1] in self.header_elems:
                        self._late_properties(elem)
                    continue
                # Drop what was handled, and its slot in the parent, so the tree never grows.
                # Events come in batches, so later siblings may already follow it in the parent;
                # removing in document order keeps it near the front, which makes remove() cheap.
                elem.clear()
                if stack:
                    with contextlib.suppress(ValueError):
                        stack[-1].remove(elem)
        except ImportFormatError:
            raise
        except (ValueError, TypeError) as exc:
            raise ImportFormatError(self.path, f"unusable testcase: {exc}") from None
        finally:
            self.stream.close()

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
        name = elem.get("name") or ""
        classname = elem.get("classname") or elem.get("class") or ""
        if not name:
            name = "<unnamed>"
            self.warnings.append(f"a testcase of {classname or 'no class'} has no name")
        test_id = f"{classname}::{name}" if classname else name
        suite_name = suite.name if suite else None
        file = elem.get("file") or (suite.file if suite else None) or self.root_file
        tool_name = classname or suite_name or file or name

        details: dict[str, Any] = {}
        if suite_name:
            details["suite"] = suite_name
        if file:
            details["file"] = file
        line = _int_or_none(elem.get("line"))
        if line is not None:
            details["line"] = line

        outcomes: list[Element] = []
        skipped: Element | None = None
        retries: list[Element] = []
        output: list[tuple[str, str]] = []
        for child in elem:
            tag = _local(child.tag)
            if tag in ("failure", "error"):
                outcomes.append(child)
            elif tag == "skipped":
                skipped = skipped if skipped is not None else child
            elif tag in _RETRY_TAGS:
                retries.append(child)
            elif tag in ("system-out", "system-err") and _has_text(child.text):
                output.append((tag, child.text or ""))
            elif tag == "properties":
                details.setdefault("properties", {}).update(_properties(child))

        base: dict[str, Any] = dict(
            test_id=test_id,
            tool_name=tool_name,
            variation=name,
            started_at=parse_timestamp(elem.get("timestamp")),
        )
        previous = self.failing.get(test_id, 0)
        results: list[TestResult] = []
        for attempt, retry in enumerate(retries, start=previous + 1):
            message, error_type, trace = _problem(retry, nested_trace=True)
            results.append(
                TestResult(
                    **base,
                    status=_RETRY_TAGS[_local(retry.tag)],
                    duration_secs=parse_duration(retry.get("time")),
                    error_type=error_type,
                    error_message=message,
                    traceback=trace,
                    output_excerpt=_join_output(_nested_output(retry)),
                    details={**details, "retry_kind": _local(retry.tag)},
                    attempt=attempt,
                )
            )

        message = error_type = trace = None
        if outcomes:
            status = Status.FAIL if _local(outcomes[0].tag) == "failure" else Status.ERROR
            message, error_type, trace = _problem(outcomes[0], nested_trace=False)
            if len(outcomes) > 1:
                texts = [t for o in outcomes if _has_text(t := o.text or "")]
                trace = _bounded("\n\n".join(texts), TRACEBACK_LIMIT) if texts else trace
        elif skipped is not None:
            status = Status.SKIP
            message, error_type, trace = _problem(skipped, nested_trace=False)
        else:
            status = Status.PASS
        attempt = previous + len(retries) + 1
        if status.is_failure:
            self.failing[test_id] = attempt
        else:
            self.failing.pop(test_id, None)
        results.append(
            TestResult(
                **base,
                status=status,
                duration_secs=parse_duration(elem.get("time")),
                error_type=error_type,
                error_message=message,
                traceback=trace,
                output_excerpt=_join_output(output),
                details=details,
                attempt=attempt,
            )
        )
        return results


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
        _bounded(message, MESSAGE_LIMIT),
        error_type,
        _bounded(text, TRACEBACK_LIMIT),
    )


def _nested_output(elem: Element) -> list[tuple[str, str]]:
    return [
        (_local(child.tag), child.text or "")
        for child in elem
        if _local(child.tag) in ("system-out", "system-err") and _has_text(child.text)
    ]


def _join_output(parts: list[tuple[str, str]]) -> str | None:
    if not parts:
        return None
    return _bounded("\n".join(f"----- {tag} -----\n{text}" for tag, text in parts), OUTPUT_LIMIT)


def _bounded(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` UTF-8 bytes; a cut is always said, never silent."""
    if not text:
        return None
    if len(text) * 4 <= limit:  # cannot be over the limit: skip encoding the common short case
        return text
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")
    dropped = len(data) - len(kept.encode("utf-8"))
    return f"{kept}\n[... truncated {dropped} bytes]"


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


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text else None
    except ValueError:
        return None


_DURATION = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zµ]*)$")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_UNITS = {"": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "m": 60.0, "h": 3600.0}
_UNITS.update(dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0))
_UNITS.update(min=60.0)


def parse_duration(text: str | None) -> float | None:
    """A JUnit ``time`` in seconds: ``"1.5"``, ``"1,234.5"``, ``"1.5s"``, ``"250ms"``...

    None for missing, empty, unparseable, non-finite or negative values. A comma is a thousands
    separator when it groups digits by three (Surefire's ``"1,234.5"``), else a decimal comma
    (``"0,25"`` from a writer in a European locale).
    """
    if text is None:
        return None
    try:
        # The common case by far, a plain number of seconds, without the regexes.
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    value = text.strip().lower()
    if not value:
        return None
    number_part = value.rstrip("abcdefghijklmnopqrstuvwxyzµ ")
    if "," in number_part:
        if _THOUSANDS.match(number_part):
            value = value.replace(",", "")
        elif number_part.count(",") == 1 and "." not in number_part:
            value = value.replace(",", ".")
        else:
            return None
    match = _DURATION.match(value)
    if match is None or match.group(2) not in _UNITS:
        return None
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO 8601 ``timestamp`` as an aware UTC datetime (naive ones are taken as UTC).

    None for missing or unparseable values and for the placeholder dates writers put when they had
    no time (Go's 0001-01-01, the 1970 epoch).
    """
    if not text:
        return None
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(year) < 1971:
        return None
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        stamp = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            micro, tzinfo=timezone.utc,
        )  # fmt: skip
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        stamp -= sign * offset
    return None if stamp < _SENTINEL_BEFORE else stamp


def _head_text(head: bytes) -> str:
    """The first bytes as text, for sniffing and for error messages."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore").lstrip("\ufeff")
    if head.startswith(b"\x1f\x8b"):
        return head_text(head)
    return head.decode("utf-8", errors="ignore").lstrip("\ufeff")


def _read_head(path: Path, stream: io.BufferedIOBase) -> bytes:
    """Check the first bytes before parsing, for plain messages on the commonest bad inputs."""
    try:
        head = stream.read(4096)
        stream.seek(0)
    except (OSError, EOFError, ValueError) as exc:
        raise ImportFormatError(path, f"cannot read: {exc}") from None
    text = _head_text(head).strip()
    if not text:
        raise ImportFormatError(path, "empty file: expected JUnit XML")
    if not text.startswith("<"):
        raise ImportFormatError(path, f"not XML: the file starts with {text[:20]!r}", 1)
    return head


def _invalid_utf8_on_line(path: Path, line: int, head: bytes) -> bool:
    """Whether ``line`` of a file meant to be UTF-8 is not valid UTF-8 (expat only says
    "invalid token" for both that and a stray ``<``)."""
    declared = re.search(rb"encoding=[\"']([\w.-]+)", head[:200])
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return False
    try:
        with open_maybe_gzip(path) as stream:
            for number, raw in enumerate(stream, start=1):
                if number == line:
                    raw.decode("utf-8")
                    return False
    except UnicodeDecodeError:
        return True
    except (ImportFormatError, OSError, EOFError):
        return False
    return False
