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

import copy
import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testledger.ingest.base import ImportFormatError

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

PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "WONT_FIX")
_CATEGORY_PREFIX = {"production": "PROD", "test_infrastructure": "TEST"}
UNCATEGORIZED = "uncategorized"
#: A fix is applied to the issue its title (or description) resembles most, if at least this much.
MATCH_THRESHOLD = 0.3


@dataclass(slots=True)
class BackfilledIssue:
    """One issue as the ``issues`` table wants it, with where in the markdown it came from."""

    issue_code: str
    title: str
    description: str
    category: str
    priority: str
    status: str
    root_cause: str | None
    resolution: str | None
    affected_tools: list[str]
    source_file: str
    source_line: int
    resolved_in: str | None
    extra: dict[str, Any] = field(default_factory=dict)


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


def normalise_title(title: str) -> str:
    """The title as hashed for codes: NFKC, no markdown or punctuation, lower case, one space."""
    text = unicodedata.normalize("NFKC", title).replace("`", "").replace("~~", "")
    text = re.sub(r"[^\w]+", " ", text.lower().replace("_", " "))
    return " ".join(text.split())


def issue_code_for(prefix: str, priority: str, title: str) -> str:
    """``PROD-HIGH-3f9a1c``: stable for as long as the prefix, priority and title are."""
    digest = hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()[:6]
    return f"{prefix}-{priority}-{digest}"


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


# --------------------------------------------------------------------------- merging


_STOPWORD_TEXT = (
    "a an the to be in of for with and not being is are fix fixes fixed enable improve update add"
    " tool tools py"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _tokens(text: str) -> set[str]:
    text = re.sub(r"\([^)]*\)", " ", text)
    out = set()
    for word in normalise_title(text).split():
        if word in _STOPWORDS:
            continue
        for suffix in ("ions", "ion", "ing", "ed", "es", "s", "ly"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                word = word[: -len(suffix)]
                break
        out.add(word)
    return out


def _similarity(a: str, b: str) -> float:
    left, right = _tokens(a), _tokens(b)
    return len(left & right) / len(left | right) if left and right else 0.0


def _score(fix: BackfilledIssue, issue: BackfilledIssue) -> float:
    # Titles are reworded between files ("Fix X" vs "X Failures"); the problem text is often
    # copied, so the better of the two counts, and the same priority breaks near-ties.
    score = max(
        _similarity(fix.title, issue.title), _similarity(fix.description, issue.description)
    )
    return score + (0.1 if fix.priority == issue.priority else 0.0) if score else 0.0


def merge_backfill(
    issues: list[BackfilledIssue],
    fixes: list[BackfilledIssue],
    warnings: list[str] | None = None,
) -> list[BackfilledIssue]:
    """The issues with the fixes applied (copies; the inputs are untouched), then the fixes that
    matched no issue as RESOLVED issues of their own.

    A fix goes to the issue whose code it names, else to the most similar issue (title or
    description, one fix per issue, best pairs first). It sets RESOLVED, fills a missing root
    cause and appends its resolution; an explicit WONT_FIX or IN_PROGRESS ``**Status:**`` line of
    the checklist is a later human verdict and is kept (noted in ``extra``).
    """
    notes: list[str] = [] if warnings is None else warnings
    merged = [copy.deepcopy(issue) for issue in issues]
    by_code = {issue.issue_code: issue for issue in merged}
    pairs: list[tuple[float, int, int]] = []
    assigned: dict[int, tuple[BackfilledIssue, str, float]] = {}
    for f_index, fix in enumerate(fixes):
        ref = fix.extra.get("fixes_code")
        if isinstance(ref, str) and ref in by_code:
            assigned[f_index] = (by_code[ref], "code", 1.0)
            continue
        for i_index, issue in enumerate(merged):
            if (score := _score(fix, issue)) >= MATCH_THRESHOLD:
                pairs.append((score, f_index, i_index))
    taken = {id(target) for target, _, _ in assigned.values()}
    for score, f_index, i_index in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if f_index not in assigned and id(merged[i_index]) not in taken:
            assigned[f_index] = (merged[i_index], "similarity", round(score, 3))
            taken.add(id(merged[i_index]))
    unmatched: list[BackfilledIssue] = []
    for f_index, fix in enumerate(fixes):
        if f_index not in assigned:
            notes.append(f"{fix.source_file}:{fix.source_line}: fix {fix.title!r} matches no issue")
            unmatched.append(copy.deepcopy(fix))
            continue
        target, how, score = assigned[f_index]
        _apply(target, fix, how, score)
    return merged + unmatched


def _apply(issue: BackfilledIssue, fix: BackfilledIssue, how: str, score: float) -> None:
    kept = issue.extra.get("status_source") == "status_line" and issue.status in (
        "WONT_FIX",
        "IN_PROGRESS",
    )
    if kept:
        issue.extra["fix_status_not_applied"] = f"checklist says {issue.status}"
    else:
        issue.status = "RESOLVED"
        issue.resolved_in = issue.resolved_in or fix.resolved_in
    issue.root_cause = issue.root_cause or fix.root_cause
    if fix.resolution:
        label = fix.resolved_in or "fix"
        issue.resolution = (
            f"{issue.resolution}\n\n{label}: {fix.resolution}"
            if issue.resolution
            else fix.resolution
        )
    issue.extra.setdefault("fixed_by", []).append(
        {
            "code": fix.issue_code,
            "title": fix.title,
            "source_file": fix.source_file,
            "source_line": fix.source_line,
            "match": how,
            "score": score,
        }
    )
