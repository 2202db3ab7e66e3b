"""Fixtures shared by the analysis tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testledger.analyze.issues.fingerprint import (
    CURRENT_VERSION,
    SECONDARY_VERSION,
    select_algorithms,
)


@pytest.fixture
def version_1_first() -> Iterator[None]:
    """Version 1 selected alone (a ledger before the change); the shipped selection after."""
    assert (CURRENT_VERSION, SECONDARY_VERSION) == (2, 1)
    select_algorithms(1)
    try:
        yield
    finally:
        select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
