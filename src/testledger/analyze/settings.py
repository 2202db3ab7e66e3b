"""Detection settings: the rules file and ``[tool.testledger.detect]``.

[tool.testledger.detect]
rules = ".testledger/rules.toml"   # the default; a missing default file means "no rules"
auto_resolve_after = 3             # passing runs before an OPEN issue is resolved
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from testledger.analyze.detect import DetectConfig, DetectionReport, detect_run
from testledger.analyze.rules import RuleSet, load_rules
from testledger.config import Settings
from testledger.errors import ConfigError
from testledger.store.database import DATABASE_ERRORS

__all__ = ["detect_after_recording", "detection_settings"]

log = logging.getLogger("testledger")

_KEYS = {"rules", "auto_resolve_after"}


def detection_settings(
    settings: Settings, rules_path: Path | None = None
) -> tuple[RuleSet, DetectConfig]:
    table: Any = settings.tool.get("detect", {})
    where = f"{settings.pyproject}: [tool.testledger.detect]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    after = table.get("auto_resolve_after", 3)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ConfigError(f"{where}: auto_resolve_after must be a whole number >= 0")
    config = DetectConfig(auto_resolve_after=after)
    if rules_path is None and "rules" in table:
        rules_path = settings.project_root / str(table["rules"])
    # No path: the project's .testledger/rules.toml when it exists, else no rules.
    return load_rules(rules_path, root=settings.project_root), config


def detect_after_recording(
    engine: Engine, settings: Settings, run_id: int
) -> DetectionReport | None:
    """Detection as it runs by itself at the end of a recorded, imported or synced run: a
    problem (a bad rules file, the database going away) is logged, never raised, since the run
    itself is safely stored and ``testledger detect`` can be run again."""
    try:
        rules, config = detection_settings(settings)
        with engine.begin() as connection:
            return detect_run(connection, run_id, rules=rules, config=config)
    except DATABASE_ERRORS as exc:
        log.warning("testledger: issue detection skipped for run %s: %s", run_id, exc)
        return None
