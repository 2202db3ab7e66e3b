"""Moving a ledger's issues to the current fingerprint algorithm, once, before it groups anything.

A new algorithm version hashes the same failures differently. Detection finds an issue by a
failure's secondary (older) hash when no issue has its current one, but that only helps a
failure whose older hash some issue has. When the older version had split one cause into
several issues (one per call path), the first failure after the move that comes by yet another
path has an older hash no issue has, and a current hash no issue has yet: it would open one
more issue for a cause that already has several.

So before detection first hashes with a version selected with a secondary (the selection that
moves issues over; without one, a selection regroups from scratch), every issue that carries
fingerprints of other versions is *re-fingerprinted*: the latest few failures of each of its
fingerprints (``SAMPLES_PER_FINGERPRINT``, not every occurrence: bounded on a ledger of
millions of results) are hashed with the current algorithm, and each hash made is linked to an
issue, then a failure of the cause joins that issue whatever path it came by:

* a hash some issue has already stays that issue's;
* a hash made from several issues' failures (issues the older version split) goes to one of
  them, deterministically: an active one (OPEN, IN_PROGRESS) before a RESOLVED one before a
  WONT_FIX one, the default branch's before a branch's, then the oldest. The others keep their
  older fingerprints and occurrences: an issue split by the older version stays split, and
  resolves in time, but it opens no new sibling;
* hashes made from one issue's failures are that issue's; nothing is linked to an issue none
  of whose failures made it, so causes the current version tells apart are not merged by it.

Each issue re-fingerprinted gets one ``refingerprinted`` event saying what its failures were
hashed to and where each hash went (``testledger issue CODE`` shows it, and the issue's
fingerprints). That event is also the marker that it was done: an issue with older
fingerprints and no such event for the current version is pending, so the step runs once per
issue, again for an issue an older version opens later (a process that selected it), and is
idempotent. (A key-value table of the ledger's state would be a cheaper marker than the
anti-join over the issues' events: it needs a migration, so it is left to one.) Detection runs
under one lock per ledger on PostgreSQL (``analyze.pipeline``) and SQLite serialises writers;
the step takes its own advisory lock besides (a second process waits, then finds nothing
pending), and a hash linked meanwhile by anything else (``testledger issue link``) is claimed
by one (the unique key on ``issue_fingerprints``, ``ON CONFLICT DO NOTHING``): the other
finds it taken and leaves it where it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.algorithm import FingerprintAlgorithm
from testledger.analyze.issues.lifecycle import DETECTOR, IssueStatus
from testledger.model import Status, TestResult
from testledger.store.engine import dialect_insert
from testledger.store.tables import (
    issue_events,
    issue_fingerprints,
    issue_occurrences,
    issues,
    test_results,
)

__all__ = [
    "EVENT_KIND",
    "RESULT_COLUMNS",
    "SAMPLES_PER_FINGERPRINT",
    "Refingerprinted",
    "pending_issues",
    "refingerprint_issues",
    "result_from_row",
]

#: The latest failures of each older fingerprint of an issue that are hashed again.
SAMPLES_PER_FINGERPRINT = 10
#: The kind of the event that says what an issue's failures were hashed to (and marks it done).
EVENT_KIND = "refingerprinted"
_CHUNK = 500
#: The PostgreSQL advisory lock taken while issues are re-fingerprinted ("refprint" in ASCII).
_LOCK_KEY = 0x7265667072696E74
_SHOWN_HASHES = 8
_RANK = {
    IssueStatus.OPEN.value: 0,
    IssueStatus.IN_PROGRESS.value: 0,
    IssueStatus.RESOLVED.value: 1,
    IssueStatus.WONT_FIX.value: 2,
}

#: What ``result_from_row`` reads of a test_results row.
RESULT_COLUMNS = (
    test_results.c.id,
    test_results.c.test_id,
    test_results.c.attempt,
    test_results.c.tool_name,
    test_results.c.variation,
    test_results.c.provider,
    test_results.c.model,
    test_results.c.status,
    test_results.c.execution_status,
    test_results.c.error_type,
    test_results.c.error_message,
    test_results.c.traceback,
)


def result_from_row(row: Any) -> TestResult:
    """A TestResult with what detection and ``explain`` need, from a test_results row."""
    return TestResult(
        test_id=row.test_id,
        tool_name=row.tool_name,
        variation=row.variation,
        status=Status(row.status),
        provider=row.provider,
        model=row.model,
        execution_status=row.execution_status,
        error_type=row.error_type,
        error_message=row.error_message,
        traceback=row.traceback,
        attempt=row.attempt,
    )


@dataclass(slots=True)
class Refingerprinted:
    """What one pass did: the issues re-fingerprinted (codes), the failures hashed again, and
    the hashes linked (code -> hashes)."""

    issues: list[str] = field(default_factory=list)
    rehashed: int = 0
    linked: dict[str, list[str]] = field(default_factory=dict)


def _marker(version: int) -> str:
    """How the note of an issue's ``refingerprinted`` event for ``version`` starts."""
    return f"v{version} "


def pending_issues(connection: Connection, version: int) -> dict[int, list[tuple[str, int]]]:
    """Issue id -> its fingerprints of other versions (hash, version), for the issues with such
    fingerprints that were not re-fingerprinted under ``version`` yet."""
    done = (
        sa.select(issue_events.c.id)
        .where(issue_events.c.issue_id == issue_fingerprints.c.issue_id)
        .where(issue_events.c.kind == EVENT_KIND)
        .where(issue_events.c.note.like(_marker(version) + "%"))
    )
    rows = connection.execute(
        sa.select(
            issue_fingerprints.c.issue_id,
            issue_fingerprints.c.fingerprint,
            issue_fingerprints.c.fingerprint_version,
        )
        .where(issue_fingerprints.c.fingerprint_version != version)
        .where(~sa.exists(done))
        .order_by(issue_fingerprints.c.issue_id, issue_fingerprints.c.id)
    )
    pending: dict[int, list[tuple[str, int]]] = {}
    for issue_id, hash_, old_version in rows:
        pending.setdefault(int(issue_id), []).append((hash_, int(old_version)))
    return pending


def _latest_failures(connection: Connection, issue: Any, hash_: str) -> list[TestResult]:
    """The issue's latest failures stored with the fingerprint ``hash_``: those
    of the run it was last seen in (one run's rows, by its index), else its latest anywhere."""
    query = (
        sa.select(*RESULT_COLUMNS)
        .select_from(
            issue_occurrences.join(
                test_results, test_results.c.id == issue_occurrences.c.test_result_id
            )
        )
        .where(issue_occurrences.c.issue_id == issue.id)
        # The hash alone: a SHA-1 of one version's components is no other version's hash, and
        # a condition on test_results would make the database join every row before the limit.
        .where(issue_occurrences.c.fingerprint == hash_)
        .limit(SAMPLES_PER_FINGERPRINT)
    )
    rows: list[Any] = []
    if issue.last_seen_run_id is not None:
        in_run = query.where(issue_occurrences.c.run_id == issue.last_seen_run_id)
        rows = list(connection.execute(in_run.order_by(issue_occurrences.c.id.desc())))
    if not rows:
        # Sorted on an expression: a planner must not walk the whole table backwards by id
        # looking for an issue last seen long ago; the issue's own occurrences are read.
        newest = (issue_occurrences.c.id + 0).desc()
        rows = list(connection.execute(query.order_by(newest)))
    return [result_from_row(row) for row in rows]


def _owners(connection: Connection, hashes: Iterable[str], version: int) -> dict[str, int]:
    """Hash -> the issue that has it (of ``version``), for those some issue has."""
    wanted = sorted(set(hashes))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), _CHUNK):
        found.update(
            (hash_, int(issue_id))
            for hash_, issue_id in connection.execute(
                sa.select(issue_fingerprints.c.fingerprint, issue_fingerprints.c.issue_id)
                .where(issue_fingerprints.c.fingerprint.in_(wanted[start : start + _CHUNK]))
                .where(issue_fingerprints.c.fingerprint_version == version)
            )
        )
    return found


def _claim(connection: Connection, issue_id: int, hash_: str, version: int, at: datetime) -> bool:
    """Link ``hash_`` to the issue unless some issue has it (True when this linked it)."""
    statement = (
        dialect_insert(connection)(issue_fingerprints)
        .values(issue_id=issue_id, fingerprint=hash_, fingerprint_version=version, created_at=at)
        .on_conflict_do_nothing(index_elements=["fingerprint", "fingerprint_version"])
        .returning(issue_fingerprints.c.id)
    )
    return connection.execute(statement).first() is not None


def _issue_rows(connection: Connection, issue_ids: Iterable[int]) -> dict[int, Any]:
    wanted = sorted(set(issue_ids))
    rows: dict[int, Any] = {}
    for start in range(0, len(wanted), _CHUNK):
        for row in connection.execute(
            sa.select(
                issues.c.id,
                issues.c.issue_code,
                issues.c.status,
                issues.c.branch_name,
                issues.c.last_seen_run_id,
            ).where(issues.c.id.in_(wanted[start : start + _CHUNK]))
        ):
            rows[int(row.id)] = row
    return rows


def _preference(row: Any) -> tuple[int, bool, int]:
    """Which of the issues a hash was made from gets it: the smallest (see the docstring)."""
    return (_RANK.get(row.status, len(_RANK)), row.branch_name is not None, int(row.id))


def _note(
    algorithm: FingerprintAlgorithm,
    olds: list[tuple[str, int]],
    made: Counter[str],
    owner_codes: dict[str, str],
    code: str,
) -> str:
    versions = "/".join(f"v{v}" for v in sorted({v for _, v in olds}))
    head = f"{_marker(algorithm.version)}({algorithm.name}): "
    if not made:
        return head + f"no stored failure of its {versions} fingerprints is left to hash again"
    parts = []
    for hash_, count in sorted(made.items(), key=lambda item: (-item[1], item[0])):
        owner = owner_codes.get(hash_)
        where = "linked here" if owner == code else f"{owner}'s" if owner else "not linked"
        parts.append(f"{hash_[:12]} ({count} failure(s), {where})")
    if len(parts) > _SHOWN_HASHES:
        parts[_SHOWN_HASHES:] = [f"{len(parts) - _SHOWN_HASHES} more"]
    return head + (
        f"its latest {sum(made.values())} failure(s) of its {versions} fingerprints "
        f"hashed again: " + "; ".join(parts)
    )


def refingerprint_issues(
    connection: Connection,
    algorithm: FingerprintAlgorithm,
    *,
    at: datetime,
    run_id: int | None = None,
) -> Refingerprinted:
    """Re-fingerprint the pending issues under ``algorithm`` (see the module docstring), in the
    caller's transaction; ``run_id``: the run whose detection did it, for the events."""
    done = Refingerprinted()
    pending = pending_issues(connection, algorithm.version)
    if not pending:
        return done
    if connection.dialect.name == "postgresql":
        # Two processes moving at once (outside the detection lock): the second waits for the
        # first to commit, then finds nothing pending. (SQLite serialises writers itself.)
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        pending = pending_issues(connection, algorithm.version)
        if not pending:
            return done
    rows = _issue_rows(connection, pending)
    made: dict[int, Counter[str]] = {}
    for issue_id, olds in pending.items():
        counts: Counter[str] = Counter()
        for hash_, _version in olds:
            for result in _latest_failures(connection, rows[issue_id], hash_):
                counts[algorithm.fingerprint(result).hash] += 1
        done.rehashed += sum(counts.values())
        made[issue_id] = counts
    makers: dict[str, list[int]] = {}
    for issue_id, counts in made.items():
        for hash_ in counts:
            makers.setdefault(hash_, []).append(issue_id)
    owners = _owners(connection, makers, algorithm.version)
    rows.update(_issue_rows(connection, set(owners.values()) - set(rows)))
    for hash_ in sorted(makers):
        if hash_ in owners:
            continue
        best = min((rows[issue_id] for issue_id in makers[hash_]), key=_preference)
        if _claim(connection, int(best.id), hash_, algorithm.version, at):
            owners[hash_] = int(best.id)
            done.linked.setdefault(best.issue_code, []).append(hash_)
        else:  # another process linked it meanwhile: it is that issue's
            owners.update(_owners(connection, [hash_], algorithm.version))
    missing = set(owners.values()) - set(rows)
    rows.update(_issue_rows(connection, missing))
    owner_codes = {hash_: rows[issue_id].issue_code for hash_, issue_id in owners.items()}
    events: list[dict[str, Any]] = []
    for issue_id in sorted(pending):
        code = rows[issue_id].issue_code
        note = _note(algorithm, pending[issue_id], made[issue_id], owner_codes, code)
        events.append(
            {"issue_id": issue_id, "run_id": run_id, "kind": EVENT_KIND, "note": note}
            | {"actor": DETECTOR, "created_at": at, "status_from": None, "status_to": None}
        )
        done.issues.append(code)
    connection.execute(sa.insert(issue_events), events)  # as lifecycle.add_event, at once
    return done
