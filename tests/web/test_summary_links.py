"""`testledger summary --markdown` links to the web dashboard's pages when the project says where
it is served (``[tool.testledger.web] base_url``); without it, no link."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger.config import Settings, web_base_url
from testledger.errors import ConfigError
from testledger.report.markdown import build_summary, render_markdown

from .scenario import XSS_TEST

BASE = "https://ledger.example.com/tl"


def _summary(url: str, base_url: str | None) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return render_markdown(build_summary(conn, "main-11", base_url=base_url))
    finally:
        engine.dispose()


def test_summary_links_to_the_pages(scenario: str) -> None:
    text = _summary(scenario, BASE + "/")
    assert f"[run #12]({BASE}/runs/12)" in text
    assert f"[the comparison]({BASE}/compare?current=12&baseline=11)" in text
    assert f"[trends]({BASE}/trends?suite=web&branch=main)" in text
    xss_path = "/tests/xss/%3Cscript%3Ealert%281%29%3C/script%3E"
    assert f"[`{XSS_TEST}`]({BASE}{xss_path})" in text
    assert f"({BASE}/issues/UNCA-" in text


def test_summary_without_a_base_url_has_no_links(scenario: str) -> None:
    text = _summary(scenario, None)
    assert "](" not in text and f"- `{XSS_TEST}`" in text


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({}, None),
        ({"web": {"base_url": "https://x.example/"}}, "https://x.example"),
        ({"web": {"base_url": "http://127.0.0.1:8000"}}, "http://127.0.0.1:8000"),
        ({"web": {"base_url": "javascript:alert(1)"}}, ConfigError),
        ({"web": {"base_url": 8000}}, ConfigError),
    ],
)
def test_web_base_url_setting(tmp_path: Path, table: dict[str, object], expected: object) -> None:
    settings = Settings(database_url="sqlite://", results_dir=tmp_path, tool=table)
    if expected is ConfigError:
        with pytest.raises(ConfigError, match="base_url must be an http"):
            web_base_url(settings)
    else:
        assert web_base_url(settings) == expected
