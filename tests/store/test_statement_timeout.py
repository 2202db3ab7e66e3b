"""No statement of testledger's holds PostgreSQL's locks for minutes: every session it opens has
``statement_timeout`` from ``[tool.testledger] statement_timeout_secs`` (default 300 s; 0: none)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from testledger import Ledger
from testledger.config import load_settings
from testledger.errors import ConfigError


def ledger_with(tmp_path: Path, url: str, setting: str) -> Ledger:
    (tmp_path / "pyproject.toml").write_text(f"[tool.testledger]\n{setting}\n")
    return Ledger(settings=load_settings(url, start=tmp_path))


@pytest.mark.parametrize(
    ("setting", "shown"),
    [("", "5min"), ("statement_timeout_secs = 1.5", "1500ms"), ("statement_timeout_secs = 0", "0")],
)
def test_sessions_get_the_configured_statement_timeout(
    db_url: str, tmp_path: Path, setting: str, shown: str
) -> None:
    with ledger_with(tmp_path, db_url, setting) as ledger:
        with ledger.engine().connect() as connection:
            if connection.dialect.name == "sqlite":  # accepted, and nothing for SQLite to set
                assert connection.exec_driver_sql("SELECT 1").scalar() == 1
                return
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == shown


@pytest.mark.postgres
def test_a_statement_longer_than_the_timeout_is_cancelled(pg_url: str, tmp_path: Path) -> None:
    # PostgreSQL only: SQLite has no statement timeout (a writer waits on a lock with its own).
    with ledger_with(tmp_path, pg_url, "statement_timeout_secs = 0.2") as ledger:
        with ledger.engine().connect() as connection:
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                connection.exec_driver_sql("SELECT pg_sleep(2)")


@pytest.mark.parametrize("value", ["-1", '"300"', "true"])
def test_a_bad_statement_timeout_is_a_config_error(tmp_path: Path, value: str) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f"[tool.testledger]\nstatement_timeout_secs = {value}\n"
    )
    with pytest.raises(ConfigError, match="statement_timeout_secs"):
        load_settings(start=tmp_path)
