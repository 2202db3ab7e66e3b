"""The checks of tests/test_demo.py that read a built demo, on a demo recorded into PostgreSQL.

A module of its own so that pytest-xdist (``--dist loadfile``) builds this demo and the SQLite
one on two workers at once: each build really runs pytest twelve times. Every test of
test_demo.py that takes the built ``demo`` or its ``conn`` runs here too, unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from tests import test_demo
from tests.pgdatabases import drop_database, fresh_database
from tests.test_demo import Demo, conn, run_cli

__all__ = ["conn"]  # the module-scoped fixture, for the tests below

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    directory = tmp_path_factory.mktemp("demo") / "testledger-demo"
    url, name = fresh_database(pg_admin_url)
    try:
        code, output = run_cli("--db", url, "demo", "--dir", str(directory))
        yield Demo(directory, url, code, output)
    finally:
        drop_database(pg_admin_url, name)


def _reads_the_demo(name: str, test: object) -> bool:
    if not name.startswith("test_") or not callable(test):
        return False
    return bool({"demo", "conn"} & set(inspect.signature(test).parameters))


globals().update(
    {name: test for name, test in vars(test_demo).items() if _reads_the_demo(name, test)}
)
