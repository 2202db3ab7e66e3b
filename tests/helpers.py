"""Small helpers shared by the test modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger.store.database import connect_engine
from testledger.store.engine import create_ledger_engine

#: ``-p no:...`` for the suite's inner pytest sessions: the installed plugins that have no part in
#: what those sessions test (the plugin under test, xdist and rerunfailures stay). Loading them
#: took most of each session's time: schemathesis 0.5 s, hypothesis 0.45 s, the rest 0.1 s.
UNUSED_PLUGINS = tuple(
    f"-pno:{name}"
    for name in (
        "cacheprovider",
        "randomly",
        "schemathesis",
        "hypothesispytest",
        "anyio",
        "metadata",
        "pytest_jsonreport",
        "pytest_reportlog",
    )
)


def query_rows(url: str, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` on the database at ``url``, as dicts, without the ledger's schema
    check (for databases another process wrote, as they are)."""
    engine = create_ledger_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on the ledger at ``url``, as plain tuples."""
    engine = connect_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def run_ledger(
    pytester: pytest.Pytester, ledger_url: str, *args: str, results: Path | None = None
) -> pytest.RunResult:
    """A pytest session of pytester's files, in a subprocess, recording into ``ledger_url``
    (the run's files in ``results``; by default the test folder's ``results``)."""
    return pytester.runpytest_subprocess(
        *UNUSED_PLUGINS,
        f"--ledger={ledger_url}",
        f"--ledger-results-dir={results or pytester.path / 'results'}",
        *args,
    )
