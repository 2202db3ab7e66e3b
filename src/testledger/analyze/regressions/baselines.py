"""Regression baselines: what detection keeps per (suite, branch, test, metric) to tell, from
one row, that a test's latest value cannot have made a change, so that only the few tests
whose values stand out get their whole series read and analysed (issue 18: detection's cost
per run in the run's tests, not in the history's length).

A baseline (table ``regression_baselines``) holds the latest :func:`recent_size` values of the
series, oldest first (``recent``: little-endian float64 bytes), and decayed sums of the older
values since the series' latest change point: their weight, their sum, and their sum and sum of
squares on the change-point test's scale (the logarithms while every value was positive, as
:mod:`testledger.analyze.regressions.changepoint` tests them). Each run folds its value in once
(``last_run_id``): the oldest recent value moves into the sums, which decay by
``1 - 1/history`` per value, about the span of runs the full analysis reads.

**The screen** (:func:`suspects`) flags a test when, for some split of its values into an older
part and a suffix of at least ``min_runs`` values (the fewest a change point has after it), the
suffix is worse than the older part both by at least :data:`SCREEN_MARGIN` of the smallest
change reported (the metric's relative and absolute floors) and by a t statistic of at least
:data:`SCREEN_T` on the test's scale. The older part is the decayed sums plus the recent values
before the split, or the recent values before it alone (a change right after an older one). A
change point is reported only at p <= ``p_value`` (0.001 by default: t above 3.3 even before the
Bonferroni correction over the positions it could take), of at least the floors, with
``min_runs`` values after it, so a change the full analysis reports is flagged before. Single-run
outliers are replaced first, as the analysis does, so a spike neither makes nor hides a
suspect.

Whatever the screen says, a test with a regression issue open, in progress or won't fix is
analysed every run (its resolution and occurrences need the series), and so is a test without
a baseline (the first run after ``db upgrade`` to 0011, or after retention removed the run that
last folded it): its baseline is then built from the series it was analysed on, from the
series' latest change point on. Detection replayed over a run older than a baseline's
(``testledger detect`` over past runs) analyses every test and leaves the baselines alone.

The baselines of a suite and branch are handled a metric at a time as numpy arrays
(:class:`Block`): the recent values right-aligned in a (tests x recent) array, NaN on the left
of a baseline with fewer, so that folding a run in is one shift of the whole array.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray
from sqlalchemy.engine import Connection

from testledger.analyze.regressions.changepoint import find_outliers
from testledger.analyze.regressions.metric_series import driver_rows
from testledger.analyze.regressions.metrics import METRICS, RegressionConfig
from testledger.model import Status
from testledger.store.engine import dialect_insert
from testledger.store.tables import regression_baselines, test_results

__all__ = [
    "SCREEN_MARGIN",
    "SCREEN_T",
    "Block",
    "built_from_series",
    "dormant",
    "load_blocks",
    "newer_baselines",
    "recent_size",
    "run_values",
    "save_blocks",
    "suspects",
]

#: The longest key (suite, branch, test and metric, in bytes) a baseline is kept for: well
#: within the 2,704 bytes of a PostgreSQL btree entry.
_KEY_BYTES = 2000
#: The t statistic from which a worse suffix makes a test suspect: well below the t of the
#: p-value a change point needs (3.3 at p = 0.001 before any correction).
SCREEN_T = 2.0
#: The share of the smallest reported change a worse suffix must reach to make a test suspect.
SCREEN_MARGIN = 0.5

Floats = NDArray[np.float64]
_VALUE = np.dtype("<f8")


@dataclass(slots=True)
class Block:
    """The baselines of one metric of a suite and branch: row ``i`` is ``tests[i]``'s."""

    tests: list[str]
    run_ids: NDArray[np.int64]
    log_scale: NDArray[np.bool_]
    #: (tests x recent_size) latest values, oldest first, right-aligned, NaN where none.
    recent: Floats
    #: (tests x 4) decayed weight, sum, and sum and squares on the test's scale.
    older: Floats

    @classmethod
    def empty(cls, size: int) -> Block:
        return cls(
            [],
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=bool),
            np.empty((0, size)),
            np.empty((0, 4)),
        )

    def rows(self, wanted: Sequence[int]) -> Block:
        index = np.asarray(wanted, dtype=np.int64)
        return Block(
            [self.tests[i] for i in wanted],
            self.run_ids[index],
            self.log_scale[index],
            self.recent[index],
            self.older[index],
        )


def recent_size(config: RegressionConfig) -> int:
    """How many latest values a baseline keeps: room for a change with ``min_runs`` values on
    each side, twice over."""
    return 4 * config.min_runs


def _decay(config: RegressionConfig) -> float:
    return 1.0 - 1.0 / max(config.history, 2)


def run_values(
    connection: Connection, run_id: int, metrics: Iterable[str]
) -> dict[str, dict[str, float]]:
    """metric -> test -> the run's value (its passing results, the latest when it has several,
    as the series take them; NULLs left out)."""
    names = list(metrics)
    columns = [sa.cast(METRICS[name].column, sa.Float) for name in names]
    query = (
        sa.select(test_results.c.test_id, *columns)
        .where(test_results.c.run_id == run_id)
        .where(test_results.c.status == Status.PASS.value)
        .order_by(test_results.c.id)
    )
    found: dict[str, dict[str, float]] = {name: {} for name in names}
    for row in driver_rows(connection, query):
        for offset, name in enumerate(names):
            value = row[1 + offset]
            if value is not None and math.isfinite(value):
                found[name][row[0]] = float(value)
    return found


def load_blocks(
    connection: Connection, suite: str, branch: str, config: RegressionConfig
) -> dict[str, Block]:
    """metric -> its baselines, for one suite and branch. Read through the driver: every
    baseline is read every run, and SQLAlchemy's rows cost several times the read itself."""
    b = regression_baselines.c
    query = (
        sa.select(
            b.metric,
            b.test_id,
            b.last_run_id,
            b.log_scale,
            b.recent,
            b.older_weight,
            b.older_sum,
            b.older_test_sum,
            b.older_test_squares,
        )
        .where(b.suite == suite)
        .where(b.branch_name == branch)
    )
    size = recent_size(config)
    by_metric: dict[str, list[tuple[Any, ...]]] = {}
    for row in driver_rows(connection, query):
        by_metric.setdefault(row[0], []).append(row)
    blocks = {}
    full = size * _VALUE.itemsize
    for metric, rows in by_metric.items():
        recent = np.full((len(rows), size), np.nan)
        # Most baselines hold all their recent values: those are decoded in one go.
        whole = [i for i, row in enumerate(rows) if len(row[4]) == full]
        if whole:
            joined = b"".join(bytes(rows[i][4]) for i in whole)
            recent[whole] = np.frombuffer(joined, dtype=_VALUE).reshape(len(whole), size)
        for i, row in enumerate(rows):
            if len(row[4]) != full:
                values = np.frombuffer(bytes(row[4]), dtype=_VALUE)[-size:]
                if len(values):
                    recent[i, size - len(values) :] = values
        blocks[metric] = Block(
            [row[1] for row in rows],
            np.asarray([row[2] for row in rows], dtype=np.int64),
            np.asarray([bool(row[3]) for row in rows], dtype=bool),
            recent,
            np.asarray([row[5:9] for row in rows], dtype=np.float64).reshape(len(rows), 4),
        )
    return blocks


def newer_baselines(connection: Connection, suite: str, branch: str, run: Any) -> bool:
    """Whether a baseline of the suite and branch has folded a run later than ``run`` (a
    ``test_runs`` row): detection is replayed over an older run."""
    b = regression_baselines.c
    later = sa.or_(
        b.last_run_at > run.run_timestamp,
        sa.and_(b.last_run_at == run.run_timestamp, b.last_run_id > run.id),
    )
    found = connection.execute(
        sa.select(b.last_run_id)
        .where(b.suite == suite)
        .where(b.branch_name == branch)
        .where(later)
        .limit(1)
    ).first()
    return found is not None


def fold(block: Block, values: Floats, run_id: int, config: RegressionConfig) -> Block:
    """The block with each row's value of the run appended (rows that hold the run already
    are left as they are: detected again): the oldest recent value moves into the decayed
    sums once the recent values are full."""
    todo = block.run_ids != run_id
    recent = block.recent.copy()
    older = block.older.copy()
    log_scale = block.log_scale & (~todo | (values > 0))
    # A value <= 0 leaves the logarithms: the older sums were on them.
    older[log_scale != block.log_scale] = 0.0
    leaving = recent[:, 0]
    moves = todo & ~np.isnan(leaving)
    decay = _decay(config)
    on_scale = np.where(log_scale, np.log(np.where(leaving > 0, leaving, 1.0)), leaving)
    added = np.stack([np.ones_like(leaving), leaving, on_scale, on_scale * on_scale], axis=1)
    older[moves] = older[moves] * decay + added[moves]
    recent[todo, :-1] = block.recent[todo, 1:]
    recent[todo, -1] = values[todo]
    run_ids = np.where(todo, run_id, block.run_ids)
    return Block(block.tests, run_ids, log_scale, recent, older)


def built_from_series(
    values: Floats, cleaned: Floats, segment_start: int, config: RegressionConfig
) -> tuple[bool, Floats, Floats]:
    """A baseline from a series' present values (oldest first) and the same with single-run
    outliers replaced (``cleaned``; ``segment_start``: the index of the first value after its
    latest change point, 0 without one): (log scale, recent row, older sums), the latest values
    as they are and the older ones of the latest segment, cleaned, into the decayed sums."""
    size = recent_size(config)
    log_scale = bool(np.all(values > 0))
    row = np.full(size, np.nan)
    recent = values[-size:]
    if len(recent):
        row[size - len(recent) :] = recent
    end = max(len(values) - size, 0)
    older = cleaned[min(segment_start, end) : end]
    weights = _decay(config) ** np.arange(len(older) - 1, -1, -1, dtype=np.float64)
    on_scale = np.log(older) if log_scale else older
    sums = np.asarray(
        [
            weights.sum(),
            (weights * older).sum(),
            (weights * on_scale).sum(),
            (weights * on_scale * on_scale).sum(),
        ],
        dtype=np.float64,
    )
    return log_scale, row, sums


def dormant(
    metric: str, block: Block, values: Floats, config: RegressionConfig
) -> NDArray[np.bool_]:
    """Rows that can neither open nor reopen an issue as of the run, whatever their history, and
    whose baseline need not change: a metric where higher is worse, whose latest ``2 x
    min_runs`` values (the run's ``values`` included) all lie in ``[0, SCREEN_MARGIN x
    min_change)``. A change is reported only when it moves the mean by ``min_change`` or more,
    and an issue opens only when the latest ``min_runs`` values are not back within half of it
    (see ``issues._recovered``): values below half of ``min_change`` are always back. Most
    tests' durations (a few milliseconds, against 50 ms) are such. A dormant baseline keeps its
    values: while the test stays dormant they say the same, and its first value at or above
    the limit makes it a suspect, analysed from its series and its baseline built again."""
    spec = METRICS[metric]
    floor = config.floor(metric)
    if not spec.higher_is_worse or floor <= 0 or not len(block.tests):
        return np.zeros(len(block.tests), dtype=bool)
    limit = SCREEN_MARGIN * floor
    present = ~np.isnan(block.recent)
    with np.errstate(invalid="ignore"):
        low = np.where(present, (block.recent >= 0) & (block.recent < limit), True).all(axis=1)
    enough = present.sum(axis=1) >= 2 * config.min_runs
    return np.asarray(low & enough & (values >= 0) & (values < limit), dtype=bool)


def suspects(metric: str, block: Block, config: RegressionConfig) -> NDArray[np.bool_]:
    """Which rows' values may hold a change the full analysis would report (see the module
    docstring); the block folded up to the run."""
    flagged = np.zeros(len(block.tests), dtype=bool)
    lengths = (~np.isnan(block.recent)).sum(axis=1)
    size = block.recent.shape[1]
    # sorted(set()), not np.unique: that imports numpy.ma on its first call (10 ms), and this
    # is most detections' only use of it.
    for length in sorted(set(lengths.tolist())):
        if length < config.min_runs:
            continue  # fewer values than a change point needs after it
        rows = np.flatnonzero(lengths == length)
        flagged[rows] = _screen(
            metric,
            block.recent[rows, size - length :],
            block.log_scale[rows],
            block.older[rows],
            config,
        )
    return flagged


def _screen(
    metric: str, raw: Floats, log_flags: NDArray[np.bool_], older: Floats, config: RegressionConfig
) -> NDArray[np.bool_]:
    spec = METRICS[metric]
    count, length = raw.shape
    _, raw = find_outliers(raw, config.params(metric))
    log_scale = log_flags & np.all(raw > 0, axis=1)
    on_scale = np.where(log_scale[:, None], np.log(np.where(raw > 0, raw, 1.0)), raw)
    zero = np.zeros((count, 1))
    raw_prefix = np.concatenate([zero, np.cumsum(raw, axis=1)], axis=1)
    sums = np.concatenate([zero, np.cumsum(on_scale, axis=1)], axis=1)
    squares = np.concatenate([zero, np.cumsum(on_scale * on_scale, axis=1)], axis=1)
    # The older sums are on the logarithms only while the test's scale is: otherwise unused.
    older = older * (log_scale == log_flags)[:, None]
    taus = np.arange(0, length - config.min_runs + 1)
    sign = 1.0 if spec.higher_is_worse else -1.0
    flagged = np.zeros(count, dtype=bool)
    for part in (older, np.zeros_like(older)):
        weight, total, test_sum, test_squares = part.T
        n_b = weight[:, None] + taus[None, :]
        n_a = (length - taus)[None, :].astype(np.float64)
        s_b = test_sum[:, None] + sums[:, taus]
        q_b = test_squares[:, None] + squares[:, taus]
        s_a = sums[:, -1:] - sums[:, taus]
        q_a = squares[:, -1:] - squares[:, taus]
        with np.errstate(divide="ignore", invalid="ignore"):
            raw_b = (total[:, None] + raw_prefix[:, taus]) / n_b
            raw_a = (raw_prefix[:, -1:] - raw_prefix[:, taus]) / n_a
            mean_b, mean_a = s_b / n_b, s_a / n_a
            spread = (q_b - s_b * mean_b) + (q_a - s_a * mean_a)
            variance = np.maximum(spread, 0.0) / (n_b + n_a - 2.0)
            t = sign * (mean_a - mean_b) / np.sqrt(variance * (1.0 / n_b + 1.0 / n_a))
            worse = sign * (raw_a - raw_b)
            floor = np.maximum(config.relative_floor(metric) * np.abs(raw_b), config.floor(metric))
            big_enough = worse >= SCREEN_MARGIN * floor
            sure_enough = np.where(variance > 0, t >= SCREEN_T, worse > 0)
        hit = (n_b >= config.min_runs) & big_enough & sure_enough
        flagged |= hit.any(axis=1)
    return flagged


def save_blocks(
    connection: Connection, suite: str, branch: str, run: Any, blocks: dict[str, Block]
) -> None:
    """Insert or replace the blocks' baselines, folded up to ``run`` (a ``test_runs`` row): on
    PostgreSQL COPY into a temporary table and one upsert from it, on SQLite one statement run
    for each row, both through the driver."""
    # A key PostgreSQL's btree cannot hold (over about 2,700 bytes) keeps no baseline: its
    # test is analysed from its series every run, as without baselines.
    room = _KEY_BYTES - len(suite.encode()) - len(branch.encode())
    blocks = {
        metric: block.rows(
            [i for i, test in enumerate(block.tests) if len(test.encode()) + len(metric) <= room]
        )
        for metric, block in blocks.items()
    }
    total = sum(len(block.tests) for block in blocks.values())
    if not total:
        return
    columns = [column.name for column in regression_baselines.columns]
    data: dict[str, list[Any]] = {name: [] for name in columns}
    for metric, block in blocks.items():
        count = len(block.tests)
        data["test_id"] += block.tests
        data["metric"] += [metric] * count
        data["last_run_id"] += block.run_ids.tolist()
        data["log_scale"] += block.log_scale.tolist()
        data["recent"] += _encoded(block.recent)
        for offset, name in enumerate(columns[-4:]):
            data[name] += block.older[:, offset].tolist()
    data["suite"] = [suite] * total
    data["branch_name"] = [branch] * total
    at = regression_baselines.c.last_run_at.type.bind_processor(connection.dialect)
    data["last_run_at"] = [at(run.run_timestamp) if at is not None else run.run_timestamp] * total
    cursor = connection.connection.cursor()
    try:
        if connection.dialect.name == "postgresql":
            # COPY into a table of this transaction, then one upsert from it: psycopg writes
            # COPY rows in C, where array parameters (unnest) are dumped element by element.
            psycopg_cursor: Any = cursor
            psycopg_cursor.execute(_STAGING)
            names = [name for name, _ in _STAGED]
            with psycopg_cursor.copy(
                f"COPY regression_baselines_in ({', '.join(names)}) FROM STDIN"
            ) as copy:
                for row in zip(*(data[name] for name in names), strict=True):
                    copy.write_row(row)
            psycopg_cursor.execute(_UPSERT_STAGED, (suite, branch, data["last_run_at"][0]))
        else:
            statement = dialect_insert(connection)(regression_baselines).values(
                {name: sa.bindparam(name) for name in columns}
            )
            statement = statement.on_conflict_do_update(
                index_elements=columns[:4],
                set_={name: statement.excluded[name] for name in columns[4:]},
            )
            compiled = statement.compile(dialect=connection.dialect)
            in_order = (data[name] for name in compiled.positiontup or ())
            cursor.executemany(compiled.string, list(zip(*in_order, strict=True)))
    finally:
        cursor.close()


def _encoded(recent: Floats) -> list[bytes]:
    """Each row's values (NaN padding left out) as little-endian float64 bytes: the full rows
    encoded in one go and cut."""
    complete = ~np.isnan(recent).any(axis=1)
    encoded: list[bytes] = [b""] * len(recent)
    width = recent.shape[1] * _VALUE.itemsize
    joined = recent[complete].astype(_VALUE).tobytes()
    for n, i in enumerate(np.flatnonzero(complete).tolist()):
        encoded[i] = joined[n * width : (n + 1) * width]
    for i in np.flatnonzero(~complete).tolist():
        row = recent[i]
        encoded[i] = row[~np.isnan(row)].astype(_VALUE).tobytes()
    return encoded


#: The columns that differ from row to row in one run's save (suite, branch and time do not).
_STAGED = (
    ("test_id", "text"),
    ("metric", "text"),
    ("last_run_id", "bigint"),
    ("log_scale", "boolean"),
    ("recent", "bytea"),
    ("older_weight", "float8"),
    ("older_sum", "float8"),
    ("older_test_sum", "float8"),
    ("older_test_squares", "float8"),
)
_STAGING = (
    "CREATE TEMPORARY TABLE regression_baselines_in ("
    + ", ".join(f"{name} {kind}" for name, kind in _STAGED)
    + ") ON COMMIT DROP"
)
_UPSERT_STAGED = (
    "INSERT INTO regression_baselines (suite, branch_name, last_run_at, "
    + ", ".join(name for name, _ in _STAGED)
    + ") SELECT %s::text, %s::text, %s::timestamptz, "
    + ", ".join(name for name, _ in _STAGED)
    + " FROM regression_baselines_in"
    + " ON CONFLICT (suite, branch_name, test_id, metric) DO UPDATE SET "
    + ", ".join(
        f"{column.name} = excluded.{column.name}"
        for column in list(regression_baselines.columns)[4:]
    )
)
