"""Issue titles: a failed comparison whose two sides pytest cut to the same text is titled by
what differs; a title too long is cut around the first difference of its comparison. The
messages are pytest's own (8.x), as the plugin records them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.analyze.issues.titles import TITLE_LIMIT, failure_title
from testledger.store.tables import issues
from tests.histories import record_test, scripted_run

DICTS = (
    "assert {'people': ['...': ['London']} == {'people': ['...': ['London']}\n  \n"
    "  Omitting 2 identical items, use -vv to show\n  Differing items:\n"
    "  {'orgs': ['Analytical Engines Ltd']} != {'orgs': ['ACME Corp', 'Analytical Engines Ltd']}\n"
    "  Use -v to get more diff"
)
LISTS = (
    "assert [0, 1, 2, 3, 4, 5, ...] == [0, 1, 2, 3, 4, 5, ...]\n  \n"
    "  At index 30 diff: 1 != 2\n  Use -v to get more diff"
)
STRINGS = (
    "assert 'xxxxxxxxxxxx...yyyyyyyyyyyyy' == 'xxxxxxxxxxxx...yyyyyyyyyyyyy'\n  \n"
    f"  - {'x' * 40}b{'y' * 40}\n  ?{' ' * 41}^\n  + {'x' * 40}a{'y' * 40}\n  ?{' ' * 41}^"
)
ATTRIBUTES = (
    "assert P(name='Ada L...ited Kingdom') == P(name='Ada L...ited Kingdom')\n  \n"
    "  Omitting 2 identical items, use -vv to show\n  Differing attributes:\n  ['city']\n  \n"
    "  Drill down into differing attribute city:\n    city: 'London' != 'Paris'\n"
    "    - Paris\n    + London"
)
SETS = (
    "assert {0, 1, 2, 3, 4, 5, ...} == {1, 2, 3, 4, 5, 6, ...}\n  \n"
    "  Extra items in the left set:\n  0\n  Extra items in the right set:\n  20"
)
LONG_LEFT, LONG_RIGHT = "'" + "x" * 300 + "a'", "'" + "x" * 300 + "b'"


@pytest.mark.parametrize(
    ("message", "title"),
    [
        (
            DICTS,
            "AssertionError: assert {'people': ['...': ['London']} == …, Differing items: "
            "{'orgs': ['Analytical Engines Ltd']} != {'orgs': ['ACME Corp', 'Analytical Engines "
            "Ltd']}",
        ),
        (LISTS, "AssertionError: assert [0, 1, 2, 3, 4, 5, ...] == …, At index 30 diff: 1 != 2"),
        (
            STRINGS,
            "AssertionError: assert 'xxxxxxxxxxxx...yyyyyyyyyyyyy' == …, differs: "
            f"…{'x' * 12}a{'y' * 40} != …{'x' * 12}b{'y' * 40}",
        ),
        (
            ATTRIBUTES,
            "AssertionError: assert P(name='Ada L...ited Kingdom') == …, city: 'London' != 'Paris'",
        ),
        # The sides differ already: as it was.
        (SETS, "AssertionError: assert {0, 1, 2, 3, 4, 5, ...} == {1, 2, 3, 4, 5, 6, ...}"),
        # Too long for the limit: both sides from just before where they differ.
        (
            f"assert {LONG_LEFT} == {LONG_RIGHT}",
            f"AssertionError: assert …{'x' * 12}a' == …{'x' * 12}b'",
        ),
        (f"{LONG_LEFT} != {LONG_RIGHT}", f"AssertionError: …{'x' * 12}a' != …{'x' * 12}b'"),
        ("assert 1 == 2", "AssertionError: assert 1 == 2"),
    ],
    ids=[
        "dicts",
        "lists",
        "strings",
        "attributes",
        "sets",
        "long-assert",
        "long-unittest",
        "short",
    ],
)
def test_a_comparison_is_titled_by_what_differs(message: str, title: str) -> None:
    made = failure_title("AssertionError", message, None, "t FAIL")
    assert made == title
    assert len(made) <= TITLE_LIMIT


def test_a_long_difference_is_cut_around_it() -> None:
    """Differing items longer than the title's room: each side starts just before the
    difference, so the two still read differently."""
    common = "{'people': ['Ada Lovelace'], 'orgs': ['" + "Analytical Engines " * 6
    message = (
        "assert {'people': ['...': ['London']} == {'people': ['...': ['London']}\n"
        f"  Differing items:\n  {common}Ltd']}} != {common}plc']}}"
    )
    title = failure_title("AssertionError", message, None, "t FAIL")
    assert len(title) <= TITLE_LIMIT
    assert title.startswith(
        "AssertionError: assert {'people': ['...': ['London']} == …, Differing items: …"
    )
    left, right = title.split(" != ")
    assert left.endswith("Engines Ltd']}") and right.endswith("Engines plc']}")


def test_detection_titles_the_issue_by_what_differs(ledger: Ledger) -> None:
    with scripted_run(ledger, 0) as run:
        record_test(run, "extract/entities", "FAIL", error_message=DICTS)
    with ledger.engine().connect() as conn:
        titles = conn.execute(sa.select(issues.c.title)).scalars().all()
    assert titles == [
        "AssertionError: assert {'people': ['...': ['London']} == …, Differing items: "
        "{'orgs': ['Analytical Engines Ltd']} != {'orgs': ['ACME Corp', 'Analytical Engines Ltd']}"
    ]
