"""Issue backfill from the tool-validation suite's hand-kept markdown: parsing only, no database.

Three shapes, told apart by their entry headings (level 3, outside fenced code blocks):

* ``ISSUES_CHECKLIST.md``: ``### [PRIORITY] Title`` entries under ``# ... Production System
  Issues`` / ``# ... Test Suite Infrastructure Issues`` sections (the H1 decides ``category``:
  ``production`` / ``test_infrastructure``), with ``**Affected Tools:**``, ``**Problem:**``,
  ``- **ROOT CAUSE:**``, ``**Resolution:**`` and ``- **Status:**`` lines;
* ``ISSUES_CHECKLIST_2.md``: ``### ISSUE-C1: Title`` entries with ``**Status:**`` and
  ``**Priority:**`` lines. The file has no production/test split: ``category`` is
  ``uncategorized`` rather than a guess;
* ``PHASE_*_COMPLETE.md``: ``### 1. CRITICAL: Fix ...`` entries (under a "Completed Fixes"
  section) with ``**Issue:**``, ``**Root Cause:**``, ``**Resolution:**`` / ``**Changes:**``. They
  are RESOLVED records; :func:`merge_backfill` applies them to the checklist issues they fix.

**Codes.** The first checklist has none, so they are generated: ``PROD-HIGH-3f9a1c`` is the
category (``PROD`` / ``TEST``), the priority and the first six hex digits of the SHA-1 of the
normalised title (NFKC, markdown and punctuation dropped, lower case, spaces collapsed). It depends
on nothing but the entry itself: re-runs, reordering and edits of other entries keep it. Editing
an entry's title, priority or section gives it a new code: it is then, honestly, another entry.
Two entries with the same normalised title in one category and priority get ``-2``, ``-3`` in
file order (with a warning). Fixes are ``PHASE2-HIGH-<hash>`` by the same rule.

**Status.** In order: the entry's ``**Status:**`` line; else a ``✅ **RESOLVED ...**`` marker line;
else its checkboxes (all ticked RESOLVED, some IN_PROGRESS); else OPEN. Words, checked in this
order: "won't fix", "working as designed", "not a bug" -> WONT_FIX; "in progress", "partial",
"remaining", "need(s)" -> IN_PROGRESS; "fixed", "resolved", "complete", "done", ✅ -> RESOLVED;
"new", "open", "todo", ❌ -> OPEN. ``extra["status_source"]`` says which rule decided.

**Malformed input.** An entry heading with no title, an unknown priority, an entry outside any
category section, or a duplicate ``ISSUE-`` code raises :class:`ImportFormatError` with file and
line: skipping it would silently drop an issue from the backfill, and its code could not be made.
Safe to skip, reported in the ``warnings`` list given by the caller: a level-3 heading that is no
entry, an entry without a description, a status line no rule understands, a priority that
disagrees with its section heading, a fix that matches no issue.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testledger.ingest.base import ImportFormatError
from testledger.ingest.tool_validation.checklist_merge import merge_backfill
from testledger.ingest.tool_validation.checklist_model import (
    MATCH_THRESHOLD,
    PRIORITIES,
    STATUSES,
    UNCATEGORIZED,
    BackfilledIssue,
    issue_code_for,
    normalise_title,
)

__all__ = [
    "MATCH_THRESHOLD",
    "PRIORITIES",
    "STATUSES",
    "UNCATEGORIZED",
    "BackfilledIssue",
    "classify_status",
    "issue_code_for",
    "merge_backfill",
    "normalise_title",
    "parse_checklist",
]

_CATEGORY_PREFIX = {"production": "PROD", "test_infrastructure": "TEST"}


# --------------------------------------------------------------------------- markdown blocks


@dataclass
class _Section:
    level: int
    heading: str
    line: int
    body: list[tuple[int, str]] = field(default_factory=list)


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FIELD = re.compile(r"^\*\*([^*]+?):\*\*\s*(.*)$")
_STATUS_LINE = re.compile(r"^\s*(?:[-*]\s+)?\*\*Status:\*\*\s*(.+?)\s*$", re.IGNORECASE)
_ROOT_CAUSE_LINE = re.compile(r"^\s*[-*]\s+\*\*ROOT CAUSE:\*\*\s*(.+?)\s*$")
_MARKER = re.compile(
    r"^\s*(?:✅|❌|🔄)?\s*\*\*((?:PARTIALLY )?(?:RESOLVED|FIXED)|IN PROGRESS|OPEN|WON'?T FIX)\b"
)
_CHECKBOX = re.compile(r"^\s*[-*]\s+\[([ xX])\]\s*(.*)$")
_PHASE_ENTRY = re.compile(r"^(\d+)\.\s*([A-Za-z]+)\s*:\s*(.*)$")
_CODED_ENTRY = re.compile(r"^(ISSUE-[A-Z]+\d+)\s*:?\s*(.*)$")
_ISSUE_REF = re.compile(r"\bISSUE-[A-Z]+\d+\b")
_PHASE_REF = re.compile(r"\bPhase\s*(\d+)\b", re.IGNORECASE)


def _sections(path: Path) -> list[_Section]:
    """The file as headings with their bodies; ``#`` lines inside code fences are body text."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(path, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ImportFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    sections = [_Section(0, "", 0)]
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match is not None:
            sections.append(_Section(len(match.group(1)), match.group(2), number))
        else:
            sections[-1].body.append((number, line))
    return sections


def _fields(body: list[tuple[int, str]]) -> dict[str, str]:
    """``**Name:** value`` lines and the lines after them, up to the next such line or ``---``."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for _, line in body:
        match = _FIELD.match(line)
        if match is not None:
            current = out.setdefault(match.group(1).strip().lower(), [])
            if match.group(2):
                current.append(match.group(2))
        elif line.strip() == "---" or _MARKER.match(line):
            current = None  # a rule or a "✅ **RESOLVED**" verdict ends the paragraph above it
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in out.items()}


def _field(fields: dict[str, str], *names: str) -> str | None:
    for name in names:
        if fields.get(name):
            return fields[name]
    return None


# --------------------------------------------------------------------------- codes


def _dedupe_codes(issues: list[BackfilledIssue], path: Path, warnings: list[str]) -> None:
    seen: Counter[str] = Counter()
    for issue in issues:
        seen[issue.issue_code] += 1
        if seen[issue.issue_code] > 1:
            warnings.append(
                f"{path}:{issue.source_line}: same title as an earlier entry; code suffixed "
                f"-{seen[issue.issue_code]}"
            )
            issue.issue_code = f"{issue.issue_code}-{seen[issue.issue_code]}"


# --------------------------------------------------------------------------- field values


def classify_status(text: str) -> str | None:
    """A status line's or marker's words as OPEN / IN_PROGRESS / RESOLVED / WONT_FIX, or None."""
    low = text.lower()
    if re.search(r"won'?t[ _]fix|working as designed|by design|not a bug", low):
        return "WONT_FIX"
    if re.search(r"in[ _]progress|partial|remaining|\bneeds?\b|need to|\bwip\b", low):
        return "IN_PROGRESS"
    if re.search(r"\bfixed\b|\bresolved\b|\bcomplete[d]?\b|\bdone\b|✅|\bclosed\b", low):
        return "RESOLVED"
    if re.search(r"\bnew\b|\bopen\b|🆕|❌|\btodo\b|not started", low):
        return "OPEN"
    return None


def _status(
    body: list[tuple[int, str]], where: str, warnings: list[str]
) -> tuple[str, dict[str, Any]]:
    extra: dict[str, Any] = {}
    for _, line in body:
        match = _STATUS_LINE.match(line)
        if match is None:
            continue
        extra["status_text"] = match.group(1)
        status = classify_status(match.group(1))
        if status is not None:
            return status, {**extra, "status_source": "status_line"}
        warnings.append(f"{where}: status {match.group(1)!r} not understood; other signs used")
        break
    for _, line in body:
        marker = _MARKER.match(line)
        if marker is not None and (status := classify_status(marker.group(1))) is not None:
            return status, {**extra, "status_text": line.strip(), "status_source": "marker"}
    boxes = [m.group(1) != " " for _, line in body if (m := _CHECKBOX.match(line))]
    if boxes and any(boxes):
        status = "RESOLVED" if all(boxes) else "IN_PROGRESS"
        return status, {**extra, "status_source": "checkboxes"}
    return "OPEN", {**extra, "status_source": "checkboxes" if boxes else "default"}


def _checklist_items(body: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Every ``- [x]`` line with the field it sits under (resolution done vs fix recommended)."""
    items: list[dict[str, Any]] = []
    under = None
    for _, line in body:
        if (match := _FIELD.match(line)) is not None:
            under = match.group(1).strip().lower()
        elif (box := _CHECKBOX.match(line)) is not None:
            items.append(
                {"done": box.group(1) != " ", "text": box.group(2).strip(), "under": under}
            )
    return items


_NOT_TOOLS = {"others", "etc", "etc."}
_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


def _affected_tools(text: str | None) -> list[str]:
    """``"19 tools (chat, consensus, and others)"`` -> the names; counts and prose give none."""
    if not text:
        return []
    paren = re.search(r"\(([^)]*)\)", text)
    head = text[: paren.start()] if paren else text
    # "19 tools (a, b)" / "ALL tools (...)": the list, if any, is inside the parentheses.
    if paren and re.match(r"^\s*(?:\d+\+?|all|multiple|several)\b", head, re.IGNORECASE):
        head = paren.group(1)
    tools: list[str] = []
    for item in head.replace("`", "").split(","):
        name = re.sub(r"^\s*and\s+", "", item).strip().rstrip(".")
        if name and name not in _NOT_TOOLS and _TOOL_NAME.match(name) and name not in tools:
            tools.append(name)
    return tools


def _priority(value: str, path: Path, line: int) -> str:
    priority = value.strip().upper()
    if priority not in PRIORITIES:
        raise ImportFormatError(
            path,
            f"unknown priority {value.strip()!r}: expected one of {', '.join(PRIORITIES)}",
            line,
        )
    return priority


def _section_priority(heading: str) -> str | None:
    words = set(re.findall(r"[A-Z]+", heading.upper()))
    found = [p for p in PRIORITIES if p in words]
    return found[0] if len(found) == 1 else None


def _category(heading: str) -> str | None:
    low = heading.lower()
    if "production" in low:
        return "production"
    if "test" in low and ("infrastructure" in low or "suite" in low):
        return "test_infrastructure"
    return None


def _keep(fields: dict[str, str], *names: str) -> dict[str, str]:
    """Fields kept verbatim in ``extra`` (``affected_tools_text`` beside the parsed list)."""
    out = {name.replace(" ", "_"): fields[name] for name in names if fields.get(name)}
    if "affected_tools" in out:
        out["affected_tools_text"] = out.pop("affected_tools")
    return out


def _resolved_in(status: str, extra: dict[str, Any]) -> str | None:
    phase = _PHASE_REF.search(str(extra.get("status_text", "")))
    return f"Phase {phase.group(1)}" if phase and status in ("RESOLVED", "IN_PROGRESS") else None


# --------------------------------------------------------------------------- the three shapes


def parse_checklist(path: Path | str, warnings: list[str] | None = None) -> list[BackfilledIssue]:
    """The issues (or fixes) of one markdown file, in file order. Skippable problems are appended
    to ``warnings`` when given; unrecoverable ones raise :class:`ImportFormatError`."""
    path = Path(path)
    notes: list[str] = [] if warnings is None else warnings
    sections = _sections(path)
    entries = [s for s in sections if s.level == 3]
    if any(_CODED_ENTRY.match(s.heading) for s in entries):
        return _parse_coded(path, sections, notes)
    if path.name.upper().startswith("PHASE_") or any(
        _PHASE_ENTRY.match(s.heading) for s in entries
    ):
        return _parse_phase(path, sections, notes)
    if any(s.heading.startswith("[") for s in entries):
        return _parse_bracketed(path, sections, notes)
    raise ImportFormatError(
        path,
        "no issue entries: expected '### [PRIORITY] Title', "
        "'### ISSUE-C1: Title' or '### 1. PRIORITY: Title' headings",
    )


def _parse_bracketed(
    path: Path, sections: list[_Section], warnings: list[str]
) -> list[BackfilledIssue]:
    issues: list[BackfilledIssue] = []
    category: str | None = None
    section_priority: str | None = None
    for section in sections:
        if section.level == 1:
            category, section_priority = _category(section.heading), None
            continue
        if section.level == 2:
            section_priority = _section_priority(section.heading)
            continue
        if section.level != 3:
            continue
        where = f"{path}:{section.line}"
        match = re.match(r"^\[([^\]]*)\]\s*(.*)$", section.heading)
        if match is None:
            if category is not None:
                warnings.append(
                    f"{where}: heading {section.heading!r} is not an issue entry: skipped"
                )
            continue
        priority = _priority(match.group(1), path, section.line)
        title = match.group(2).strip()
        if not title:
            raise ImportFormatError(path, "issue entry without a title", section.line)
        if category is None:
            raise ImportFormatError(
                path, "issue entry outside a production / test infrastructure section", section.line
            )
        if section_priority and section_priority != priority:
            warnings.append(f"{where}: [{priority}] under a {section_priority} heading")
        fields = _fields(section.body)
        description = _field(fields, "problem", "description", "issue")
        if description is None:
            warnings.append(f"{where}: {title!r} has no Problem paragraph")
        status, extra = _status(section.body, where, warnings)
        root = next(
            (m.group(1) for _, ln in section.body if (m := _ROOT_CAUSE_LINE.match(ln))), None
        )
        extra.update(format="issues_checklist", checklist=_checklist_items(section.body))
        extra.update(
            _keep(fields, "affected tools", "affected tests", "affected files", "evidence")
        )
        issues.append(
            BackfilledIssue(
                issue_code=issue_code_for(_CATEGORY_PREFIX[category], priority, title),
                title=title,
                description=description or "",
                category=category,
                priority=priority,
                status=status,
                root_cause=root or _field(fields, "root cause"),
                resolution=_field(fields, "resolution"),
                affected_tools=_affected_tools(fields.get("affected tools")),
                source_file=str(path),
                source_line=section.line,
                resolved_in=_resolved_in(status, extra),
                extra=extra,
            )
        )
    _dedupe_codes(issues, path, warnings)
    return issues


def _parse_coded(
    path: Path, sections: list[_Section], warnings: list[str]
) -> list[BackfilledIssue]:
    issues: list[BackfilledIssue] = []
    seen: dict[str, int] = {}
    section_priority: str | None = None
    for section in sections:
        if section.level in (1, 2):
            section_priority = _section_priority(section.heading)
            continue
        match = _CODED_ENTRY.match(section.heading) if section.level == 3 else None
        if match is None:
            continue
        code, title = match.group(1), match.group(2).strip()
        if not title:
            raise ImportFormatError(path, f"{code} has no title", section.line)
        if code in seen:
            raise ImportFormatError(
                path, f"duplicate issue code {code} (first at line {seen[code]})", section.line
            )
        seen[code] = section.line
        where = f"{path}:{section.line}"
        fields = _fields(section.body)
        if fields.get("priority"):
            priority = _priority(fields["priority"], path, section.line)
            if section_priority and section_priority != priority:
                warnings.append(f"{where}: {code} is {priority} under a {section_priority} heading")
        elif section_priority:
            priority = section_priority
            warnings.append(f"{where}: {code} has no Priority line; {priority} from its section")
        else:
            raise ImportFormatError(path, f"{code} has no priority", section.line)
        status, extra = _status(section.body, where, warnings)
        extra["format"] = "issues_checklist_coded"
        kept = ("affected tools", "affected components", "affected tests", "impact", "remediation")
        extra.update(_keep(fields, *kept, "evidence", "occurrences"))
        description = _field(fields, "description", "problem")
        if description is None:
            warnings.append(f"{where}: {code} has no Description paragraph")
        issues.append(
            BackfilledIssue(
                issue_code=code,
                title=title,
                description=description or "",
                category=UNCATEGORIZED,
                priority=priority,
                status=status,
                root_cause=_field(fields, "root cause"),
                resolution=_field(fields, "resolution"),
                affected_tools=_affected_tools(fields.get("affected tools")),
                source_file=str(path),
                source_line=section.line,
                resolved_in=_resolved_in(status, extra),
                extra=extra,
            )
        )
    return issues


def _parse_phase(
    path: Path, sections: list[_Section], warnings: list[str]
) -> list[BackfilledIssue]:
    phase_match = re.search(r"PHASE_(\d+)", path.name.upper()) or next(
        (m for s in sections if s.level == 1 and (m := _PHASE_REF.search(s.heading))), None
    )
    phase = phase_match.group(1) if phase_match else None
    preamble = _fields([line for s in sections if s.level <= 1 for line in s.body])
    fixes: list[BackfilledIssue] = []
    in_fixes = False
    for section in sections:
        if section.level <= 2:
            in_fixes = section.level == 2 and bool(
                re.search(r"fix|complete", section.heading, re.I)
            )
            continue
        if section.level != 3 or not in_fixes:
            continue
        where = f"{path}:{section.line}"
        match = _PHASE_ENTRY.match(section.heading)
        if match is None:
            warnings.append(f"{where}: heading {section.heading!r} is not a fix entry: skipped")
            continue
        priority = _priority(match.group(2), path, section.line)
        title = match.group(3).strip()
        extra: dict[str, Any] = {"format": "phase_fixes", "phase": phase}
        extra["number"] = int(match.group(1))
        # "Fix X (19 tools) - INVESTIGATED": the suffixes are notes, not part of the issue's name.
        if re.search(r"\s+-\s+INVESTIGATED\s*$", title):
            title, extra["investigated_only"] = re.sub(r"\s+-\s+INVESTIGATED\s*$", "", title), True
        if (scope := re.search(r"\s*\(([^)]*)\)\s*$", title)) is not None:
            title, extra["scope"] = title[: scope.start()].strip(), scope.group(1)
        if not title:
            raise ImportFormatError(path, "fix entry without a title", section.line)
        fields = _fields(section.body)
        kept = ("changes", "impact", "remaining", "note", "analysis", "verification")
        extra.update(_keep(fields, *kept, "files fixed", "file fixed", "file created"))
        if preamble.get("date"):
            extra["phase_date"] = preamble["date"]
        refs = _ISSUE_REF.findall(section.heading + "\n" + fields.get("issue", ""))
        if refs:
            extra["fixes_code"] = refs[0]
        prefix = f"PHASE{phase}" if phase else "PHASE"
        fixes.append(
            BackfilledIssue(
                issue_code=issue_code_for(prefix, priority, title),
                title=title,
                description=_field(fields, "issue", "problem", "description") or "",
                category=UNCATEGORIZED,
                priority=priority,
                status="RESOLVED",
                root_cause=_field(fields, "root cause", "root cause identified"),
                resolution=_field(fields, "resolution", "changes"),
                affected_tools=[],
                source_file=str(path),
                source_line=section.line,
                resolved_in=f"Phase {phase}" if phase else None,
                extra=extra,
            )
        )
    if not fixes:
        raise ImportFormatError(
            path, "no fix entries ('### 1. PRIORITY: Title') in a fixes section"
        )
    _dedupe_codes(fixes, path, warnings)
    return fixes
