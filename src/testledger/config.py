"""Where testledger's settings come from: ``--db``, the environment, ``[tool.testledger]``.

Precedence, highest first: an explicit argument (``--db URL``), ``TESTLEDGER_DATABASE_URL`` (and
``TESTLEDGER_RESULTS_DIR``), the ``[tool.testledger]`` table of the nearest ``pyproject.toml``
above the working directory, then the default: a SQLite file ``.testledger/ledger.db`` beside that
pyproject (or in the working directory when there is none).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
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
    "Settings",
    "find_pyproject",
    "load_settings",
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
