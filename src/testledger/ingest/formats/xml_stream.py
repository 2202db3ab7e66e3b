"""Streaming a possibly huge XML report safely: ``(event, element)`` pairs, chunk by chunk.

The events come from :func:`defusedxml.ElementTree.iterparse` with ``forbid_dtd=True``: XML only
declares entities inside a DTD, so refusing any DTD rules out XXE and entity expansion bombs, and
JUnit XML never needs one. (The standard library's C pull parser is cheaper per element, but the
parse is a few percent of an import; defusedxml keeps the guard in a maintained library.)

Errors come out as :class:`ImportFormatError` naming the file and line: truncated files, invalid
UTF-8 and malformed XML each said in plain words.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from xml.etree.ElementTree import Element, ParseError
from xml.parsers.expat import errors as expat_errors

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from testledger.ingest._common import head_text, open_maybe_gzip
from testledger.ingest.base import ImportFormatError

__all__ = ["DTD_REASON", "XmlEventStream", "xml_head_text"]

DTD_REASON = "refusing XML with a DTD/entities (possible XXE)"

_TRUNCATED = {
    expat_errors.codes[expat_errors.XML_ERROR_NO_ELEMENTS],
    expat_errors.codes[expat_errors.XML_ERROR_UNCLOSED_TOKEN],
    expat_errors.codes[expat_errors.XML_ERROR_UNCLOSED_CDATA_SECTION],
}
_INVALID_TOKEN = expat_errors.codes[expat_errors.XML_ERROR_INVALID_TOKEN]


def xml_head_text(head: bytes) -> str:
    """The first bytes of an XML file as text, for sniffing and for error messages."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore").lstrip("\ufeff")
    if head.startswith(b"\x1f\x8b"):
        return head_text(head)
    return head.decode("utf-8", errors="ignore").lstrip("\ufeff")


class XmlEventStream:
    """The ``start`` / ``end`` events of one XML file, with its first bytes checked up front.

    Opening it raises :class:`ImportFormatError` for an empty file and one that is not XML.
    :meth:`events` yields the events lazily and raises ImportFormatError where the file turns
    out to hold a DTD or malformed XML (with the line). The caller closes it (``close``), also
    when it stops early.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.stream = open_maybe_gzip(path)
        try:
            self.head = self._read_head(what)
        except BaseException:
            self.stream.close()
            raise

    def close(self) -> None:
        self.stream.close()

    def events(self) -> Iterator[tuple[str, Element]]:
        # With only start and end events asked for, every event is (name, element).
        parsed = cast(
            "Iterator[tuple[str, Element]]",
            iterparse(self.stream, events=("start", "end"), forbid_dtd=True),
        )
        try:
            yield from parsed
        except ParseError as exc:
            raise self._parse_error(exc) from None
        except DefusedXmlException:
            raise ImportFormatError(self.path, DTD_REASON) from None
        except LookupError as exc:
            # Expat asks Python's codecs for an encoding the XML declaration names.
            raise ImportFormatError(self.path, f"unknown encoding ({exc})", 1) from None
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise ImportFormatError(self.path, f"cannot read: {exc}") from None

    # -- checks -------------------------------------------------------------------------------

    def _read_head(self, what: str) -> bytes:
        """The first bytes, for plain messages on the commonest bad inputs."""
        try:
            head = self.stream.read(4096)
            self.stream.seek(0)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise ImportFormatError(self.path, f"cannot read: {exc}") from None
        text = xml_head_text(head).strip()
        if not text:
            raise ImportFormatError(self.path, f"empty file: expected {what}")
        if not text.startswith("<"):
            raise ImportFormatError(self.path, f"not XML: the file starts with {text[:20]!r}", 1)
        return head

    def _parse_error(self, exc: ParseError) -> ImportFormatError:
        line, _col = exc.position
        code = getattr(exc, "code", None)
        detail = str(exc)
        if code in _TRUNCATED:
            reason = f"truncated XML: the file ends before its elements are closed ({detail})"
        elif code == _INVALID_TOKEN and _invalid_utf8_on_line(self.path, line, self.head):
            reason = f"invalid UTF-8 ({detail})"
        else:
            reason = f"malformed XML ({detail})"
        return ImportFormatError(self.path, reason, line)


def _invalid_utf8_on_line(path: Path, line: int, head: bytes) -> bool:
    """Whether ``line`` of a file meant to be UTF-8 is not valid UTF-8 (expat only says
    "invalid token" for both that and a stray ``<``)."""
    declared = re.search(rb"encoding=[\"']([\w.-]+)", head[:200])
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return False
    stream: io.BufferedIOBase | None = None
    try:
        stream = open_maybe_gzip(path)
        for number, raw in enumerate(stream, start=1):
            if number == line:
                raw.decode("utf-8")
                return False
    except UnicodeDecodeError:
        return True
    except (ImportFormatError, OSError, EOFError):
        return False
    finally:
        if stream is not None:
            stream.close()
    return False
