"""Detection over recorded runs, in the order they happened.

Both the explicit ``testledger detect`` and the detection that follows every recorded, imported
or synced run go through here, so that runs are always detected oldest first (an issue's
lifecycle follows time) and with the project's settings.

A run whose rows committed but whose detection never did (the process was killed in between)
keeps ``detected_at`` NULL; whatever detects next completes it first (:func:`undetected_runs`),
so a crash delays detection but never loses it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from testledger.analyze.detect import DetectConfig, DetectionReport, detect_run, runs_in_order
from testledger.analyze.issues.rules import RuleSet
from testledger.analyze.options import detection_settings, regression_settings
from testledger.analyze.regressions.issues import analyses_series
from testledger.config import Settings
from testledger.model import RunStatus
from testledger.store.database import DATABASE_ERRORS, skipped_work_level
from testledger.store.tables import test_runs

__all__ = [
    "CATCH_UP_LIMIT",
    "detect_after_recording",
    "detect_runs",
    "import_ahead",
    "undetected_query",
    "undetected_runs",
]

log = logging.getLogger("testledger")

#: At most this many runs whose detection was lost are completed by one detection, so that a
#: ledger with many (an old one, recorded before detection existed) never stalls a recording:
#: the rest follow with the next ones, oldest first.
CATCH_UP_LIMIT = 20

#: The PostgreSQL advisory lock that serialises detection across processes ("detect" in
#: ASCII): concurrent detections would both number a new issue alike (issues_issue_code_key).
DETECTION_LOCK_KEY = 0x646574656374


def undetected_query(limit: int = CATCH_UP_LIMIT) -> sa.Select[int]:
    """The query of :func:`undetected_runs`, for its plan to be checked."""
    return (
        sa.select(test_runs.c.id)
        .where(test_runs.c.detected_at.is_(None))
        .where(test_runs.c.status.in_((RunStatus.FINISHED.value, RunStatus.ABORTED.value)))
        .order_by(test_runs.c.run_timestamp, test_runs.c.id)
        .limit(limit)
    )


def undetected_runs(connection: Connection, limit: int = CATCH_UP_LIMIT) -> list[int]:
    """Completed runs that detection has not been over, oldest first, at most ``limit``: one
    look-up of the partial index ``idx_test_runs_undetected``, which holds only such runs."""
    return [int(run_id) for run_id in connection.execute(undetected_query(limit)).scalars()]


def detect_runs(
    engine: Engine,
    run_ids: Iterable[int] | None,
    rules: RuleSet,
    config: DetectConfig,
    *,
    catch_up: bool = False,
) -> list[DetectionReport]:
    """Detect ``run_ids`` (every run when None), oldest first, each in its own transaction.
    With ``catch_up``, runs whose detection was lost (:func:`undetected_runs`) are detected
    too, in their place in time."""
    with engine.connect() as connection:
        wanted = None if run_ids is None else set(run_ids)
        if wanted is not None and catch_up:
            wanted.update(undetected_runs(connection))
        ordered = runs_in_order(connection, wanted) if wanted != set() else []
    reports = []
    for run_id in ordered:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Released when this run's transaction ends. (SQLite serialises writers itself.)
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": DETECTION_LOCK_KEY}
                )
            reports.append(detect_run(connection, run_id, rules=rules, config=config))
    return reports


def detect_after_recording(
    engine: Engine, settings: Settings, run_ids: Iterable[int]
) -> list[DetectionReport]:
    """Detection as it runs by itself at the end of recorded, imported or synced runs (none:
    only the runs whose detection was lost): a problem (a bad rules file, the database going
    away) is logged, never raised, since the runs themselves are safely stored and detection
    completes them the next time it runs. A problem that is not an outage (a setting or rules
    file that cannot be used, a schema) is logged as an error, with what to run once it is
    fixed: every detection meets it until then (see skipped_work_level)."""
    run_ids = list(run_ids)
    try:
        rules, config = detection_settings(settings)
        return detect_runs(engine, run_ids, rules, config, catch_up=True)
    except DATABASE_ERRORS as exc:
        shown = ", ".join(str(run_id) for run_id in run_ids) or "left undetected"
        level = skipped_work_level(exc)
        fix = (
            "; once it is fixed, `testledger detect` detects them" if level >= logging.ERROR else ""
        )
        log.log(level, "testledger: issue detection skipped for run(s) %s: %s%s", shown, exc, fix)
        return []


def import_ahead(engine: Engine, settings: Settings, run_id: int) -> None:
    """Import now what detecting the run (being recorded) will import: numpy and the series
    analysis, when its suite and branch have runs enough for regression detection (about 60
    ms). For a caller with time to spare before the detection that follows the run (the
    pytest plugin's writer, while the tests run), which the session then waits less for;
    where detection has no series to analyse, nothing is imported."""
    config = regression_settings(settings)
    if not config.detect:
        return
    with engine.connect() as connection:
        due = analyses_series(connection, run_id, config)
    if due:
        import testledger.analyze.regressions.metric_series  # noqa: F401
