"""Where testledger's settings come from: ``--db``, the environment, ``[tool.testledger]``.

Precedence, highest first: an explicit argument (``--db URL``), ``TESTLEDGER_DATABASE_URL`` (and
``TESTLEDGER_RESULTS_DIR``), the ``[tool.testledger]`` table of the nearest ``pyproject.toml``
above the working directory, then the default: a SQLite file ``.testledger/ledger.db`` beside that
pyproject (or in the working directory when there is none).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from testledger.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "DEFAULT_DIRNAME",
    "DEFAULT_STATEMENT_TIMEOUT_SECS",
    "RetentionPolicy",
    "Settings",
    "find_pyproject",
    "load_settings",
    "parse_age",
    "retention_policy",
    "web_base_url",
]

DEFAULT_DIRNAME = ".testledger"
ENV_DATABASE_URL = "TESTLEDGER_DATABASE_URL"
ENV_RESULTS_DIR = "TESTLEDGER_RESULTS_DIR"
#: The longest any one statement of testledger's may run on PostgreSQL before the server cancels
#: it, so that none holds its locks for longer (on a database a team shares); generous, since a
#: detection or an import of a large run writes much in one statement. 0: no limit.
DEFAULT_STATEMENT_TIMEOUT_SECS = 300.0

# Top-level keys; nested tables (gate, detect, flaky, watcher, regressions...) belong to the
# layers that read them. max_run_cost_usd is the run budget that `cost` and `gate` enforce.
_KNOWN_KEYS = {
    "database_url",
    "results_dir",
    "suite",
    "batch_size",
    "max_run_cost_usd",
    "statement_timeout_secs",
    "default_branch",  # issues' default branch (analyze.detect; default main, else master)
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings. ``tool`` keeps the whole ``[tool.testledger]`` table for later layers
    (gate rules, watcher and detection options live in their own sub-tables)."""

    database_url: str
    results_dir: Path
    suite: str = "default"
    batch_size: int = 10_000
    statement_timeout_secs: float = DEFAULT_STATEMENT_TIMEOUT_SECS
    project_root: Path = field(default_factory=Path.cwd)
    pyproject: Path | None = None
    tool: dict[str, Any] = field(default_factory=dict)


def find_pyproject(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _read_tool_table(pyproject: Path) -> dict[str, Any]:
    try:
        with pyproject.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: not valid TOML ({exc})") from None
    table = data.get("tool", {}).get("testledger", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.testledger] must be a table")
    return table


def load_settings(
    database_url: str | None = None,
    results_dir: str | Path | None = None,
    *,
    start: Path | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    pyproject = find_pyproject(start)
    root = pyproject.parent if pyproject else (start or Path.cwd()).resolve()
    tool = _read_tool_table(pyproject) if pyproject else {}
    unknown = sorted(
        key for key, value in tool.items() if key not in _KNOWN_KEYS and not isinstance(value, dict)
    )
    if unknown:
        raise ConfigError(f"{pyproject}: unknown [tool.testledger] key(s): {', '.join(unknown)}")

    url = database_url or env.get(ENV_DATABASE_URL) or tool.get("database_url")
    if url is None:
        url = "sqlite:///" + str(root / DEFAULT_DIRNAME / "ledger.db")
    elif not isinstance(url, str):
        raise ConfigError(f"{pyproject}: database_url must be a string")

    folder = results_dir or env.get(ENV_RESULTS_DIR) or tool.get("results_dir")
    resolved_dir = Path(folder) if folder else root / DEFAULT_DIRNAME / "results"
    if not resolved_dir.is_absolute():
        resolved_dir = root / resolved_dir

    batch_size = tool.get("batch_size", 10_000)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"{pyproject}: batch_size must be a positive integer")
    timeout = tool.get("statement_timeout_secs", DEFAULT_STATEMENT_TIMEOUT_SECS)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ConfigError(f"{pyproject}: statement_timeout_secs must be a number >= 0 (0: none)")
    suite = tool.get("suite", "default")
    if not isinstance(suite, str) or not suite:
        raise ConfigError(f"{pyproject}: suite must be a non-empty string")
    return Settings(
        database_url=url,
        results_dir=resolved_dir,
        suite=suite,
        batch_size=batch_size,
        statement_timeout_secs=float(timeout),
        project_root=root,
        pyproject=pyproject,
        tool=tool,
    )


_AGE = re.compile(r"\s*(\d{1,6})\s*([hdw])\s*", re.IGNORECASE)
_AGE_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_age(text: str) -> timedelta:
    """An age such as ``90d``, ``36h`` or ``2w`` (hours, days, weeks; more than zero)."""
    matched = _AGE.fullmatch(text) if isinstance(text, str) else None
    if matched is None or int(matched.group(1)) == 0:
        shown = text[:40] if isinstance(text, str) else type(text).__name__
        raise ConfigError(
            f"not an age: {shown!r} (expected a number of hours, days or weeks: 36h, 90d, 2w)"
        )
    return int(matched.group(1)) * _AGE_UNITS[matched.group(2).lower()]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which finished runs retention removes (``testledger prune``, or
    ``[tool.testledger.retention]`` after each run): those beyond the ``keep_runs`` newest of
    their suite, and/or older than ``older_than``; with both, a run goes only when neither keeps
    it. ``suite`` and ``branch`` narrow it to their runs. ``keep_aggregates``: the removed
    results' daily sums per test are kept in ``test_daily_stats``."""

    keep_runs: int | None = None
    older_than: timedelta | None = None
    suite: str | None = None
    branch: str | None = None
    keep_aggregates: bool = True

    def __post_init__(self) -> None:
        if self.keep_runs is None and self.older_than is None:
            raise ConfigError("a retention policy needs keep_runs or older_than")
        if self.keep_runs is not None and (
            isinstance(self.keep_runs, bool)
            or not isinstance(self.keep_runs, int)
            or self.keep_runs < 1
        ):
            raise ConfigError("keep_runs must be a whole number of runs, at least 1")
        if self.older_than is not None and self.older_than <= timedelta(0):
            raise ConfigError("older_than must be an age greater than zero")


_RETENTION_KEYS = {"keep_runs", "older_than", "keep_aggregates"}


def retention_policy(settings: Settings) -> RetentionPolicy | None:
    """The ``[tool.testledger.retention]`` policy applied after each finished run; None when
    there is none. Raises ConfigError for a malformed table."""
    table = settings.tool.get("retention")
    if table is None:
        return None
    where = f"{settings.pyproject}: [tool.testledger.retention]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _RETENTION_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s): {', '.join(unknown)}")
    if not table:
        return None
    keep_aggregates = table.get("keep_aggregates", True)
    older_than = table.get("older_than")
    try:
        if not isinstance(keep_aggregates, bool):
            raise ConfigError("keep_aggregates must be true or false")
        return RetentionPolicy(
            keep_runs=table.get("keep_runs"),
            older_than=None if older_than is None else parse_age(older_than),
            keep_aggregates=keep_aggregates,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def web_base_url(settings: Settings) -> str | None:
    """``[tool.testledger.web] base_url``: where the team's ``testledger serve`` is reached, for
    links to its pages (the markdown summary's); None when unset. Raises ConfigError for a value
    that is not an http(s) URL."""
    table = settings.tool.get("web")
    value = table.get("base_url") if isinstance(table, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"https?://[^\s/]+", value):
        raise ConfigError(
            f"{settings.pyproject}: [tool.testledger.web] base_url must be an http(s) URL"
        )
    return value.rstrip("/")
