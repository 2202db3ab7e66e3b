"""A run's fractional duration (``test_runs.duration_secs``, migration 0007): backfilled from
the proposal's integer column, written with its fractions by every path that finishes a run
(database, JSON archive, sync), and shown at a precision that suits its size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from testledger.common.formatting import format_seconds
from testledger.model import RunInfo, RunStatus, Status, TestResult
from testledger.record.archive import ArchivedRun, RunArchive, stats_from_events
from testledger.record.sync import _recorded_duration
from testledger.store.database import connect_engine
from testledger.store.engine import create_ledger_engine
from testledger.store.migrate import upgrade
from testledger.store.runs import create_or_join_run, finish_run
from testledger.store.tables import test_runs
from testledger.store.writer import encode_result


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0.0, "0.00"),
        (0.84, "0.84"),
        (9.994, "9.99"),
        (12.34, "12.3"),
        (-11.46, "-11.5"),
        (99.94, "99.9"),
        (123.4, "123"),
        (3725.0, "3,725"),
    ],
)
def test_format_seconds(seconds: float | None, shown: str) -> None:
    assert format_seconds(seconds) == shown


_RUN_0006 = (
    "INSERT INTO test_runs (run_timestamp, branch_name, watcher_model, total_tests,"
    " tests_passed, tests_failed, tests_skipped, total_duration_secs, created_at, run_key,"
    " suite, status, tests_errored, source) VALUES ('2025-01-0{day}T00:00:00.000000Z', 'main',"
    " 'none', 0, 0, 0, 0, {secs}, '2025-01-01T00:00:00.000000Z', 'k{day}', 's', 'finished', 0,"
    " 'test')"
)


def test_migration_0007_backfills_duration_from_the_integer_column(empty_db_url: str) -> None:
    engine = create_ledger_engine(empty_db_url)
    try:
        assert upgrade(engine, "0006")[1] == "0006"
        with engine.begin() as conn:
            for day, secs in ((1, "42"), (2, "NULL"), (3, "45")):
                conn.exec_driver_sql(_RUN_0006.format(day=day, secs=secs))
        assert upgrade(engine, "0007") == ("0006", "0007")
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(test_runs.c.run_key, test_runs.c.duration_secs).order_by(
                    test_runs.c.run_key
                )
            ).all()
            trend = conn.exec_driver_sql(
                "SELECT run_id, total_duration_secs, duration_secs, duration_change"
                " FROM v_run_trend ORDER BY run_id"
            ).all()
    finally:
        engine.dispose()
    assert [(key, secs) for key, secs in stored] == [("k1", 42.0), ("k2", None), ("k3", 45.0)]
    assert [(r[0], r[1], _float(r[2]), _float(r[3])) for r in trend] == [
        (1, 42, 42.0, None),
        (2, None, None, None),
        (3, 45, 45.0, None),  # against run 2, whose duration is unknown
    ]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def test_v_run_trend_prefers_the_fractional_duration(db_url: str) -> None:
    engine = connect_engine(db_url)
    try:
        with engine.begin() as conn:
            for day, secs in ((1, 0.84), (2, 1.3)):
                conn.exec_driver_sql(_RUN_0006.format(day=day, secs=round(secs)))
                conn.execute(
                    sa.update(test_runs)
                    .where(test_runs.c.run_key == f"k{day}")
                    .values(duration_secs=secs)
                )
            trend = conn.exec_driver_sql(
                "SELECT total_duration_secs, duration_secs, duration_change"
                " FROM v_run_trend ORDER BY run_id"
            ).all()
    finally:
        engine.dispose()
    assert [(r[0], _float(r[1]), _float(r[2])) for r in trend] == [
        (1, 0.84, None),
        (1, 1.3, pytest.approx(0.46)),
    ]


@pytest.mark.parametrize(
    ("wall_clock", "durations", "expected"),
    [
        (0.8449, [0.25, None], (0.845, 1)),
        (None, [0.25, 0.125], (0.375, 0)),
        (12.3, [], (12.3, 12)),
    ],
)
def test_finish_run_stores_the_duration_with_its_fractions(
    db_url: str,
    wall_clock: float | None,
    durations: list[float | None],
    expected: tuple[float, int],
) -> None:
    engine = connect_engine(db_url)
    try:
        with engine.begin() as conn:
            row = create_or_join_run(conn, RunInfo(branch="main"), "fractions")
            for index, secs in enumerate(durations):
                conn.execute(
                    sa.text(
                        "INSERT INTO test_results (run_id, tool_name, variation, status,"
                        " duration_secs, created_at, test_id, attempt) VALUES"
                        " (:run, 't', :v, 'PASS', :secs, '2025-01-01T00:00:00.000000Z', :v, 1)"
                    ),
                    {"run": row.id, "v": f"t{index}", "secs": secs},
                )
            stats = finish_run(conn, row.id, RunStatus.FINISHED, wall_clock_secs=wall_clock)
            stored = conn.execute(
                sa.select(test_runs.c.duration_secs, test_runs.c.total_duration_secs)
            ).one()
    finally:
        engine.dispose()
    assert (stats.duration_secs, stats.total_duration_secs) == expected
    assert (stored.duration_secs, stored.total_duration_secs) == expected


@pytest.mark.parametrize(
    ("wall_clock", "expected"),
    [(0.8449, (0.845, 1)), (None, (0.375, 0))],
)
def test_archive_stats_keep_the_fractions(
    tmp_path: Path, wall_clock: float | None, expected: tuple[float, int]
) -> None:
    archive = RunArchive(tmp_path, "archived")
    for name, secs in (("a", 0.25), ("b", 0.125)):
        result = TestResult(
            test_id=name, tool_name=name, variation="x", status=Status.PASS, duration_secs=secs
        )
        result.attempt = 1
        archive.append_row(encode_result(result))
    archive.close()
    stats = stats_from_events(archive.events_path, wall_clock)
    assert (stats.duration_secs, stats.total_duration_secs) == expected


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        ({"duration_secs": 0.84, "total_duration_secs": 1}, 0.84),
        # an archive written before 0007 has only the rounded figure
        ({"total_duration_secs": 3}, 3.0),
        (None, None),
    ],
)
def test_sync_restores_the_archived_duration(
    tmp_path: Path, stats: dict[str, Any] | None, expected: float | None
) -> None:
    run = ArchivedRun(
        folder=tmp_path,
        run_key="k",
        status="finished",
        info=RunInfo(),
        finished_at=None,
        database_state="pending",
        raw={"stats": stats},
    )
    assert _recorded_duration(run) == expected
