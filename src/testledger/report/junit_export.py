"""One run as a JUnit XML report (what ``testledger import`` reads back): a ``<testsuite>`` with a
``<testcase>`` per test's last attempt, failures and errors with their message and traceback.

The results are streamed in test order; XML-illegal characters (NUL, terminal escapes) are
written as ``\\xNN`` text, so that any recorded string gives a well-formed file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from testledger.report.runs import find_run, is_final_attempt
from testledger.store.tables import test_results

__all__ = ["run_junit"]

# Characters XML 1.0 does not allow, even escaped.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _clean(text: str | None) -> str:
    return _ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text or "")


def _attr(text: str | None) -> str:
    return quoteattr(_clean(text))


def run_junit(connection: Connection, run: str | int | None) -> Iterator[str]:
    """The run's JUnit XML, in pieces. Raises NotFound (before the first piece)."""
    summary = find_run(connection, run)
    r = test_results
    rows = connection.execute(
        sa.select(
            r.c.test_id,
            r.c.tool_name,
            r.c.variation,
            r.c.status,
            r.c.duration_secs,
            r.c.error_type,
            r.c.error_message,
            r.c.traceback,
        )
        .where(r.c.run_id == summary.id, is_final_attempt())
        .order_by(r.c.test_id)
    ).all()
    return _pieces(summary.suite, summary.run_key, summary.duration_secs, rows)


def _pieces(suite: str, key: str, duration: float | None, rows: Sequence[Any]) -> Iterator[str]:
    failures = sum(1 for row in rows if row.status == "FAIL")
    errors = sum(1 for row in rows if row.status == "ERROR")
    skipped = sum(1 for row in rows if row.status == "SKIP")
    yield '<?xml version="1.0" encoding="utf-8"?>\n'
    yield (
        f'<testsuite name={_attr(suite)} id={_attr(key)} tests="{len(rows)}"'
        f' failures="{failures}" errors="{errors}" skipped="{skipped}"'
        f' time="{duration or 0:.3f}">\n'
    )
    for row in rows:
        yield (
            f"  <testcase classname={_attr(row.tool_name)} name={_attr(row.variation)}"
            f' file={_attr(row.test_id)} time="{row.duration_secs or 0:.3f}"'
        )
        if row.status in ("FAIL", "ERROR"):
            tag = "failure" if row.status == "FAIL" else "error"
            yield (
                f"><{tag} type={_attr(row.error_type)} message={_attr(row.error_message)}>"
                f"{escape(_clean(row.traceback or row.error_message))}</{tag}></testcase>\n"
            )
        elif row.status == "SKIP":
            yield "><skipped/></testcase>\n"
        else:
            yield "/>\n"
    yield "</testsuite>\n"
