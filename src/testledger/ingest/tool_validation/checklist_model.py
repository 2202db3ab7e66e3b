"""A backfilled issue as the ``issues`` table wants it, and its stable generated code.

Shared by the checklist parser (:mod:`testledger.ingest.tool_validation.checklist`) and the
merging of fixes into issues (:mod:`testledger.ingest.tool_validation.checklist_merge`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MATCH_THRESHOLD",
    "PRIORITIES",
    "STATUSES",
    "UNCATEGORIZED",
    "BackfilledIssue",
    "issue_code_for",
    "normalise_title",
]

PRIORITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
STATUSES = ("OPEN", "IN_PROGRESS", "RESOLVED", "WONT_FIX")
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


def normalise_title(title: str) -> str:
    """The title as hashed for codes: NFKC, no markdown or punctuation, lower case, one space."""
    text = unicodedata.normalize("NFKC", title).replace("`", "").replace("~~", "")
    text = re.sub(r"[^\w]+", " ", text.lower().replace("_", " "))
    return " ".join(text.split())


def issue_code_for(prefix: str, priority: str, title: str) -> str:
    """``PROD-HIGH-3f9a1c``: stable for as long as the prefix, priority and title are."""
    digest = hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()[:6]
    return f"{prefix}-{priority}-{digest}"
