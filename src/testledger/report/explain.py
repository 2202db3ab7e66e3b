"""How a stored failure's fingerprint is made: each part, what it was normalised to, the rules
that fired, and the fingerprint stored at detection time beside the one made now."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.analyze.issues.fingerprint import explain, fingerprint
from testledger.analyze.issues.refingerprint import result_from_row
from testledger.common.jsondata import JsonData
from testledger.errors import NotFound, TestledgerError
from testledger.report.history import resolve_test
from testledger.report.runs import find_run
from testledger.store.tables import test_results

__all__ = ["ExplainedPart", "FingerprintExplanation", "explain_result", "find_result_id"]


@dataclass(frozen=True, slots=True)
class ExplainedPart(JsonData):
    """One part of the fingerprint: its raw text, its normalised text and the rules that fired;
    ``contributes`` is False for a part left out of the hash."""

    name: str
    raw: str | None
    normalized: str | None
    rules: tuple[str, ...]
    contributes: bool


@dataclass(frozen=True, slots=True)
class FingerprintExplanation(JsonData):
    result_id: int
    test_id: str
    status: str
    fingerprint: str
    version: int
    stored_fingerprint: str | None
    stored_version: int | None
    components: tuple[ExplainedPart, ...]

    @property
    def stored_differs(self) -> bool:
        """Whether detection grouped the result under another fingerprint than the one made
        now (an older algorithm): the stored one is kept for grouping."""
        return self.stored_fingerprint is not None and (
            self.stored_fingerprint,
            self.stored_version,
        ) != (self.fingerprint, self.version)


def find_result_id(connection: Connection, test: str, run: str | int | None = None) -> int:
    """The id of ``test``'s last attempt in ``run`` (default the latest run); ``test`` is its
    id, tool/variation or a unique part of its id. Raises NotFound or AmbiguousTest."""
    test_id = resolve_test(connection, test)
    found = find_run(connection, run)
    result_id = connection.execute(
        sa.select(test_results.c.id)
        .where(test_results.c.run_id == found.id, test_results.c.test_id == test_id)
        .order_by(test_results.c.attempt.desc())
        .limit(1)
    ).scalar()
    if result_id is None:
        raise NotFound(f"{test_id} has no result in run {found.id}")
    return int(result_id)


def explain_result(connection: Connection, result_id: int) -> FingerprintExplanation:
    """The explanation of result ``result_id``'s fingerprint. Raises NotFound, or
    TestledgerError for a result that did not fail (it has no fingerprint)."""
    row = connection.execute(sa.select(test_results).where(test_results.c.id == result_id)).first()
    if row is None:
        raise NotFound(f"no result with id {result_id}")
    if row.status not in ("FAIL", "ERROR"):
        raise TestledgerError(
            f"result {result_id} ({row.test_id}) is {row.status}, not a failure: only failures "
            "have a fingerprint"
        )
    result = result_from_row(row)
    made = fingerprint(result)
    parts = tuple(
        ExplainedPart(
            name=part.name,
            raw=part.raw,
            normalized=part.normalized,
            rules=tuple(part.rules),
            contributes=part.contributes,
        )
        for part in explain(result)
    )
    return FingerprintExplanation(
        result_id=result_id,
        test_id=result.test_id,
        status=result.status.value,
        fingerprint=made.hash,
        version=made.version,
        stored_fingerprint=row.fingerprint,
        stored_version=row.fingerprint_version,
        components=parts,
    )
