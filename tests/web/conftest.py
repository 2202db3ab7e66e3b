"""The web app's scripted history (tests/web/scenario.py), recorded once per database kind for
the whole session: the page, access, schema and summary tests read it (writers take a
copy_database)."""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS, _migrated_database
from tests.histories import record_once

from .scenario import record_scenario


def _recorded(request: pytest.FixtureRequest, backend: str) -> str:
    folder = request.getfixturevalue("tmp_path_factory").mktemp(f"web-{backend}")
    url = _migrated_database(request, backend, folder / "web.db")
    return record_once(url, request.getfixturevalue("tmp_path_factory"), record_scenario)


# One session fixture per kind (not one parametrised fixture): pytest keeps a single instance of
# a parametrised fixture at a time, and would record the scenario again for every module.
@pytest.fixture(scope="session")
def scenario_sqlite(request: pytest.FixtureRequest) -> str:
    return _recorded(request, "sqlite")


@pytest.fixture(scope="session")
def scenario_postgresql(request: pytest.FixtureRequest) -> str:
    return _recorded(request, "postgresql")


@pytest.fixture(scope="module", params=BACKENDS)
def scenario(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"scenario_{request.param}")
    return url
