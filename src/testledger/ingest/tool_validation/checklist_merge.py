"""Applying the fixes of ``PHASE_*_COMPLETE.md`` to the checklists' issues they resolve.

A fix goes to the issue whose code it names, else to the issue its title or description
resembles most (word overlap after dropping stopwords and suffixes), if at least
:data:`~testledger.ingest.tool_validation.checklist_model.MATCH_THRESHOLD`.
"""

from __future__ import annotations

import copy
import re

from testledger.ingest.tool_validation.checklist_model import (
    MATCH_THRESHOLD,
    BackfilledIssue,
    normalise_title,
)

__all__ = ["merge_backfill"]

#: Words too common in issue titles to say which issue a fix is about.
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
