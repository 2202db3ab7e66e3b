"""Detection over recorded runs, in the order they happened.

Both the explicit ``testledger detect`` and the detection that follows every recorded, imported
or synced run go through here, so that runs are always detected oldest first (an issue's
lifecycle follows time) and with the project's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.engine import Engine

from testledger.analyze.detect import DetectConfig, DetectionReport, detect_run, runs_in_order
from testledger.analyze.issues.rules import RuleSet
from testledger.analyze.options import detection_settings
from testledger.config import Settings
from testledger.store.database import DATABASE_ERRORS

__all__ = ["detect_after_recording", "detect_runs"]

log = logging.getLogger("testledger")


def detect_runs(
    engine: Engine, run_ids: Iterable[int] | None, rules: RuleSet, config: DetectConfig
) -> list[DetectionReport]:
    """Detect ``run_ids`` (every run when None), oldest first, each in its own transaction."""
    with engine.connect() as connection:
        ordered = runs_in_order(connection, None if run_ids is None else set(run_ids))
    reports = []
    for run_id in ordered:
        with engine.begin() as connection:
            reports.append(detect_run(connection, run_id, rules=rules, config=config))
    return reports


def detect_after_recording(
    engine: Engine, settings: Settings, run_ids: Iterable[int]
) -> list[DetectionReport]:
    """Detection as it runs by itself at the end of recorded, imported or synced runs: a
    problem (a bad rules file, the database going away) is logged, never raised, since the runs
    themselves are safely stored and ``testledger detect`` can be run again."""
    run_ids = list(run_ids)
    try:
        rules, config = detection_settings(settings)
        return detect_runs(engine, run_ids, rules, config)
    except DATABASE_ERRORS as exc:
        shown = ", ".join(str(run_id) for run_id in run_ids)
        log.warning("testledger: issue detection skipped for run(s) %s: %s", shown, exc)
        return []
