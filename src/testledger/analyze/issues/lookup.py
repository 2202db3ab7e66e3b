"""The issues failures already have, looked up for many failures at once.

Detection decides a failure's issue by the first rule it matches (the oldest issue of that
rule), else by its fingerprint (the issue that has it, ``issue_fingerprints``). A run's failures
share few rules and fingerprints, so a chunk of them is looked up with a few queries instead of
one per failure; only those found nowhere go the slow way (secondary fingerprint, new issue).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.store.tables import issue_fingerprints, issues

__all__ = ["IssueKey", "known_issues"]

#: What decides a failure's issue: ``("rule", name, 0)`` or ``("fingerprint", hash, version)``.
IssueKey = tuple[str, str, int]
_CHUNK = 500


def known_issues(connection: Connection, keys: Iterable[IssueKey]) -> dict[IssueKey, int]:
    """Key -> the id of the issue it already decides, for the keys some issue has."""
    names: set[str] = set()
    by_version: dict[int, set[str]] = {}
    for kind, value, version in keys:
        if kind == "rule":
            names.add(value)
        else:
            by_version.setdefault(version, set()).add(value)
    known: dict[IssueKey, int] = {}
    wanted = sorted(names)
    for start in range(0, len(wanted), _CHUNK):
        for name, issue_id in connection.execute(
            sa.select(issues.c.rule_name, sa.func.min(issues.c.id))
            .where(issues.c.rule_name.in_(wanted[start : start + _CHUNK]))
            .group_by(issues.c.rule_name)
        ):
            known["rule", name, 0] = int(issue_id)
    for version, found in by_version.items():
        hashes = sorted(found)
        for start in range(0, len(hashes), _CHUNK):
            for hash_, issue_id in connection.execute(
                sa.select(issue_fingerprints.c.fingerprint, issue_fingerprints.c.issue_id)
                .where(issue_fingerprints.c.fingerprint.in_(hashes[start : start + _CHUNK]))
                .where(issue_fingerprints.c.fingerprint_version == version)
            ):
                known["fingerprint", hash_, version] = int(issue_id)
    return known
