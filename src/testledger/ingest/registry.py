"""Which importer reads which file: formats by name, detection by content, paths expanded.

Detection reads a file's first 4 KiB (decompressed when gzip) and asks each importer's
``sniff`` in a fixed order: the built-ins, most specific first, then the importer plugins by name
(:mod:`.discovery`). A file nobody recognises gets a clear error naming the formats testledger
knows, plugins' included.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from testledger.ingest.base import (
    FolderHistoryImporter,
    Importer,
    ImportFormatError,
    ParsedFile,
    checked,
    unexpected_error,
)
from testledger.ingest.discovery import BUILT_IN_FORMATS, FORMATS, sniffs
from testledger.ingest.formats import junit

__all__ = [
    "BUILT_IN_FORMATS",
    "FORMATS",
    "Found",
    "detect_format",
    "expand_paths",
    "is_report",
    "parse_source",
]

_HEAD_BYTES = 4096


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(_HEAD_BYTES)
        except (OSError, EOFError) as exc:
            raise ImportFormatError(path, f"not a readable gzip file ({exc})") from None
    return head


#: The tool-validation suite's hand-kept issue files, which ``testledger backfill`` reads.
_ISSUE_MARKDOWN = re.compile(r"^(?:ISSUES_CHECKLIST.*|PHASE_.*_COMPLETE)\.md$", re.IGNORECASE)


def _folder_reader(path: Path) -> Importer | None:
    """The importer reading the folder ``path`` as one source, if any."""
    for importer in FORMATS.values():
        if importer.READS_FOLDERS and sniffs(importer, path, b""):
            return importer
    return None


def detect_format(path: Path) -> Importer:
    """The importer for ``path`` (a file, or a results folder: Allure, tool-validation...)."""
    if path.is_dir():
        reader = _folder_reader(path)
        if reader is None:
            readers = ", ".join(name for name, imp in FORMATS.items() if imp.READS_FOLDERS)
            raise ImportFormatError(path, f"not a results folder testledger knows ({readers})")
        return reader
    try:
        head = _head(path)
    except OSError as exc:
        raise ImportFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    if not head.strip():
        raise ImportFormatError(path, "empty file")
    for importer in FORMATS.values():
        if sniffs(importer, path, head):
            return importer
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        # Some XML that is not JUnit: the JUnit reader says precisely what it is instead
        # (a DTD it refuses, an NUnit / TRX / Robot Framework file, a truncated document).
        return junit
    known = ", ".join(FORMATS)
    reason = f"not a report format testledger knows ({known})"
    if _ISSUE_MARKDOWN.match(path.name):
        reason += "; an issue checklist: use testledger backfill"
    raise ImportFormatError(path, reason)


@dataclass(frozen=True, slots=True)
class Found:
    """A path to import; ``explicit`` when named on the command line rather than found in a
    folder (a file found in a folder that is no report is skipped, not an error)."""

    path: Path
    explicit: bool


def _is_results_folder(path: Path) -> bool:
    return _folder_reader(path) is not None


def _suffixes() -> tuple[str, ...]:
    """How the report files searched for in folders end: any importer's, or ``.gz`` (detection
    reads a gzip's content, whatever it was called before it was compressed)."""
    ends = {suffix for importer in FORMATS.values() for suffix in importer.SUFFIXES}
    return (*sorted(ends), ".gz")


def _walk(folder: Path) -> Iterator[Found]:
    """Report files under ``folder``; a results folder (Allure, tool-validation...) met on the
    way is one source (its side files are part of it, not reports of their own)."""
    suffixes = _suffixes()
    for current, subfolders, files in os.walk(folder):
        here = Path(current)
        keep = []
        for name in sorted(subfolders):
            child = here / name
            if _is_results_folder(child):
                yield Found(child, explicit=False)
            else:
                keep.append(name)
        subfolders[:] = keep
        for name in sorted(files):
            if name.endswith(suffixes):
                yield Found(here / name, explicit=False)


def expand_paths(arguments: list[str]) -> Iterator[Found | ImportFormatError]:
    """Files, folders and globs, in a stable order. A folder that is itself a results folder
    (Allure, tool-validation...) is one source; any other folder contributes the report files
    under it. A pattern matching nothing is reported, not ignored."""
    for argument in arguments:
        candidates: list[Path]
        if glob.has_magic(argument):
            candidates = [Path(p) for p in sorted(glob.glob(argument, recursive=True))]
            if not candidates:
                yield ImportFormatError(argument, "no file matches this pattern")
                continue
        else:
            candidates = [Path(argument)]
        for path in candidates:
            if not path.exists():
                yield ImportFormatError(path, "no such file or folder")
            elif path.is_dir() and not _is_results_folder(path):
                found = list(_walk(path))
                if not found:
                    yield ImportFormatError(path, "folder holds no report files")
                yield from found
            else:
                yield Found(path, explicit=True)


def parse_source(path: Path, format_name: str | None = None) -> Iterator[ParsedFile]:
    """Parse one source into its runs (one for a report file; a results folder with archives
    gives several, oldest first)."""
    if format_name is not None:
        try:
            importer = FORMATS[format_name]
        except KeyError:
            known = ", ".join(FORMATS)
            raise ImportFormatError(path, f"unknown format {format_name!r} ({known})") from None
    else:
        importer = detect_format(path)
    if path.is_dir() and isinstance(importer, FolderHistoryImporter):
        runs = importer.parse_folder(path)
        while True:
            try:
                parsed = next(runs)
            except StopIteration:
                return
            except ImportFormatError:
                raise
            except Exception as exc:  # as checked() does, for each run of the folder
                raise unexpected_error(path, exc) from exc
            yield checked(path, lambda _, run=parsed: run)  # type: ignore[misc]
        return
    yield checked(path, importer.parse)


def is_report(path: Path) -> bool:
    """Whether some importer recognises the file (for files met while walking a folder)."""
    try:
        detect_format(path)
    except ImportFormatError as exc:
        # Recognised as XML but broken (truncated, DTD...) is still a report to complain about.
        return "not a report format" not in exc.reason
    return True
