"""Change points and single-run outliers in metric series: pure numpy, no database.

The design follows Apache Otava (formerly Hunter, Fleming et al. 2023, "Hunter: Using Change
Point Detection to Hunt for Performance Regressions"), itself MongoDB's E-Divisive means with the
permutation test replaced by Student's t-test:

1. **Outliers.** A value is a single-run outlier when its robust z-score (distance to the
   median of its neighbours over the series' MAD-based noise) is above ``outlier_z`` against
   the runs before it *and* against the runs after it (the last run has only the runs before
   it). Asking both sides is what tells a spike from the first runs of a new level. Outliers
   are reported, and replaced by the median before them for the steps below, so that one bad
   run can neither make nor hide a change. A value nearer its neighbours than ``min_change``
   (or ``min_magnitude`` of their level) is never an outlier, however steady they are.
2. **Split.** The series is cut into windows of ``window`` values, half a window apart. In each
   window the E-divisive statistic Q(tau) (energy distance between the values before and after
   tau, scaled by the sizes of both sides) names the candidate split; a two-sided Student's
   t-test between both sides confirms it at a relaxed ``10 * p_value`` ("weak" change points),
   and the search recurses into both halves until a candidate fails.
3. **Merge.** Over the whole series, each weak change point is tested again against its
   neighbours (the values between the previous and the next change point); the weakest is
   dropped while its p-value is above ``p_value``, or, once all are significant, while its
   change is below ``min_magnitude`` (relative) or ``min_change`` (absolute, in the metric's
   unit); its neighbours are then tested again.
4. **Refine.** Each change point that stays moves to the split of largest mean difference
   within half a window (between its neighbours), and is described: means, spreads, sizes of
   both sides and the p-value.
5. **Returns.** Two change points that enclose a stretch of at most half a window which the
   series comes back from (a dip or a burst: the second change undoes at least half of the
   first) stay only when the stretch differs from the values around it at ``p_value`` once
   Bonferroni-corrected for every start and length it could have had. On a noisy test a few
   slow runs in a row pass each single change's test; a regression reverted after some runs,
   far above the noise, stays two changes.
6. **Hold.** A change stays when ``min_segment`` values on each side are nearer their own
   side's mean than the other's.

Two departures from Otava, both measured on flat noisy series (the false alarms of
``tests/analyze/test_changepoint.py``): the p-value of the merge is Bonferroni-corrected for
the number of positions the split could have taken (it was chosen as the best of them), and an
all-positive series is tested on its logarithms (timings and costs vary by a factor, with a
long right tail). Means and magnitudes are always those of the values themselves.

Everything is vectorised over many series of one length at a time (2-D arrays): the pairwise
distances of each window, their triangular sums by cumulative sums, and the t-tests of every
candidate at once (:mod:`testledger.analyze.regressions.e_divisive`); the t distribution's
tail comes from a vectorised incomplete beta function
(:mod:`testledger.analyze.regressions.student_t`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from testledger.analyze.regressions.e_divisive import e_divisive, prefix_sums
from testledger.analyze.regressions.student_t import pooled_t, t_test_p_value

__all__ = [
    "ChangePoint",
    "ChangePointParams",
    "SeriesAnalysis",
    "analyze_batch",
    "analyze_many",
    "analyze_series",
    "find_outliers",
    "row_medians",
    "t_test_p_value",
]

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ChangePointParams:
    """Detection parameters; the defaults are Otava's (p 0.001, window 50) plus ours."""

    p_value: float = 0.001
    window: int = 50
    min_magnitude: float = 0.10
    #: Smallest absolute change reported, in the series' unit: relative changes of tiny values
    #: (a 1 ms test taking 2 ms) are noise a reader cannot act on. 0 means none.
    min_change: float = 0.0
    #: Fewest values on either side of a change: a shorter burst is not (yet) a change.
    min_segment: int = 5
    outlier_z: float = 3.5

    #: How many runs on each side the outlier test compares a value with: the median of three
    #: is robust to a second bad run, and a level that holds four runs or more is already the
    #: median on one side of each of its runs, so it stays a level (a change), not outliers.
    outlier_neighbours: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.p_value < 1:
            raise ValueError("p_value must be between 0 and 1")
        if self.window < 4 or self.min_segment < 2 or 2 * self.min_segment > self.window:
            raise ValueError("need window >= 4, min_segment >= 2 and window >= 2 * min_segment")
        if self.min_magnitude < 0 or self.min_change < 0 or self.outlier_z <= 0:
            raise ValueError("need min_magnitude >= 0, min_change >= 0 and outlier_z > 0")
        if self.outlier_neighbours < 1:
            raise ValueError("outlier_neighbours must be at least 1")


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A lasting change of level. ``index`` is the position of the first value of the new
    level in the series as given (gaps included); n/means/stds describe the values between the
    previous and the next change point."""

    index: int
    mean_before: float
    mean_after: float
    std_before: float
    std_after: float
    n_before: int
    n_after: int
    p_value: float

    @property
    def relative_change(self) -> float:
        """(after - before) / |before|; infinite when a metric starts from zero."""
        return _relative(self.mean_before, self.mean_after)


@dataclass(frozen=True, slots=True)
class SeriesAnalysis:
    """What one series holds: change points (oldest first), outlier positions, and the cleaned
    values (outliers replaced, gaps dropped) with the position of each in the given series."""

    change_points: tuple[ChangePoint, ...]
    outliers: tuple[int, ...]
    cleaned: Floats = field(repr=False)
    positions: Ints = field(repr=False)


def _relative(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


# --- outliers ------------------------------------------------------------------------------


def _window_medians(values: Floats, size: int) -> Floats:
    """Median of every window ``values[:, j : j + size]`` (shape (S, n - size + 1))."""
    windows = np.lib.stride_tricks.sliding_window_view(values, size, axis=1)
    lo, hi = (size - 1) // 2, size // 2
    part = np.partition(windows, (lo, hi), axis=-1)
    return np.asarray((part[..., lo] + part[..., hi]) / 2.0, dtype=np.float64)


def row_medians(values: Floats) -> Floats:
    """``np.median(values, axis=1)`` (NaN for a row holding one), the same floats, without
    np.median: its NaN check imports numpy.ma on first use (16 ms), and this runs in every
    detection of a run with history (the screening against the baselines)."""
    size = values.shape[1]
    lo, hi = (size - 1) // 2, size // 2
    part = np.partition(values, (lo, hi), axis=1)
    middle = (part[:, lo] + part[:, hi]) / 2.0
    return np.asarray(np.where(np.isnan(values).any(axis=1), np.nan, middle), dtype=np.float64)


def find_outliers(values: Floats, params: ChangePointParams) -> tuple[NDArray[np.bool_], Floats]:
    """Outlier flags of a (series, length) array and the values to use instead (the median of
    the runs before, or after for the first runs). See the module docstring.

    The centres are medians of the ``outlier_neighbours`` runs on each side; the scale is one
    per series, from the median absolute difference of consecutive runs (1.4826 * MAD / sqrt 2
    for normal noise): a level shift moves a single difference, so the scale ignores changes
    and spikes alike, and it rests on the whole series rather than on ten runs."""
    count, n = values.shape
    h = params.outlier_neighbours
    flags = np.zeros((count, n), dtype=bool)
    if n < h + 2:
        return flags, values.copy()
    median = _window_medians(values, h)  # window j covers values[j : j + h]
    nan = np.full((count, n), np.nan)
    before_median = nan.copy()
    before_median[:, h:] = median[:, : n - h]
    after_median = nan.copy()
    after_median[:, : n - h] = median[:, 1:]
    # The first and last runs have fewer than h runs on one side: the median of what is there.
    for remaining in range(1, h):
        before_median[:, remaining] = row_medians(values[:, :remaining])
        at = n - 1 - remaining
        after_median[:, at] = row_medians(values[:, at + 1 :])
    noise = 1.4826 / math.sqrt(2.0) * row_medians(np.abs(np.diff(values, axis=1)))
    scale = noise[:, None]

    def beyond(center: Floats) -> NDArray[np.bool_]:
        limit = np.maximum(params.outlier_z * scale, params.min_magnitude * np.abs(center))
        limit = np.maximum(limit, params.min_change)
        with np.errstate(invalid="ignore"):
            return np.asarray(np.abs(values - center) > np.maximum(limit, 1e-12), dtype=bool)

    has_before, has_after = ~np.isnan(before_median), ~np.isnan(after_median)
    flags = (
        (has_before | has_after)
        & (beyond(before_median) | ~has_before)
        & (beyond(after_median) | ~has_after)
    )
    replacement = np.where(flags, np.where(has_before, before_median, after_median), values)
    return flags, replacement


# --- split: E-divisive candidates (analyze.e_divisive) over overlapping windows ------------


def _split(values: Floats, params: ChangePointParams) -> list[set[int]]:
    """Weak change points of every row: E-divisive over windows half a window apart."""
    count, n = values.shape
    weak: list[set[int]] = [set() for _ in range(count)]
    first_pass = params.p_value * 10 if params.p_value < 0.05 else params.p_value
    step = max(params.window // 2, 1)
    starts_by_length: dict[int, list[int]] = {}
    for start in range(0, n, step):
        length = min(params.window, n - start)
        if length >= 2 * params.min_segment:
            starts_by_length.setdefault(length, []).append(start)
        if start + params.window >= n:
            break
    for length, starts in starts_by_length.items():
        index = np.asarray(starts)[:, None] + np.arange(length)[None, :]
        windows = values[:, index].reshape(count * len(starts), length)
        for position, points in enumerate(e_divisive(windows, params.min_segment, first_pass)):
            row, which = divmod(position, len(starts))
            weak[row].update(starts[which] + point for point in points)
    return weak


# --- merge: keep the change points that stand against their neighbours ------------------------


@dataclass(frozen=True, slots=True)
class _Stats:
    """Tests of many change points at once: row, position, neighbours, and the results."""

    rows: Ints
    at: Ints
    n1: Floats
    n2: Floats
    p: Floats
    mean1: Floats
    mean2: Floats
    std1: Floats
    std2: Floats
    magnitude: Floats
    difference: Floats


def _flatten(points: dict[int, list[int]], n: int) -> tuple[Ints, Ints, Ints, Ints]:
    """(row, position, previous change or 0, next change or n) of every change point."""
    rows, at, before, after = [], [], [], []
    for row, cps in points.items():
        bounds = [0, *cps, n]
        for i, cp in enumerate(cps):
            rows.append(row)
            at.append(cp)
            before.append(bounds[i])
            after.append(bounds[i + 2])
    return (
        np.asarray(rows, dtype=np.int64),
        np.asarray(at, dtype=np.int64),
        np.asarray(before, dtype=np.int64),
        np.asarray(after, dtype=np.int64),
    )


@dataclass(frozen=True, slots=True)
class _Sums:
    """Prefix sums of each row: of the values (centred on ``base``, for means and spreads) and
    of what the t-test reads (the logarithms of an all-positive row, else the same values)."""

    sums: Floats
    squares: Floats
    base: Floats
    test: Floats
    test_sums: Floats
    test_squares: Floats

    @property
    def n(self) -> int:
        return int(self.sums.shape[1] - 1)


def _sums(cleaned: Floats) -> _Sums:
    # Centred on each row's first value: sums of squares then lose no precision to the level.
    base = cleaned[:, 0].copy()
    sums, squares = prefix_sums(cleaned - base[:, None])
    # Timings, memory, cost and tokens vary by a factor rather than by an amount, with a long
    # right tail: the t-test reads their logarithms, where that noise is about normal (on the
    # raw values a few slow runs in a row pass for a change).
    positive = np.all(cleaned > 0, axis=1)
    test = np.where(positive[:, None], np.log(np.where(cleaned > 0, cleaned, 1.0)), cleaned)
    test = test - test[:, :1]
    test_sums, test_squares = prefix_sums(test)
    return _Sums(sums, squares, base, test, test_sums, test_squares)


def _test(prefix: _Sums, points: dict[int, list[int]], params: ChangePointParams) -> _Stats:
    rows, at, before, after = _flatten(points, prefix.n)
    n1 = (at - before).astype(np.float64)
    n2 = (after - at).astype(np.float64)
    ts, tq = prefix.test_sums, prefix.test_squares
    p, *_ = pooled_t(
        ts[rows, at] - ts[rows, before],
        tq[rows, at] - tq[rows, before],
        n1,
        ts[rows, after] - ts[rows, at],
        tq[rows, after] - tq[rows, at],
        n2,
    )
    sums, squares = prefix.sums, prefix.squares
    _, mean1, mean2, std1, std2 = pooled_t(
        sums[rows, at] - sums[rows, before],
        squares[rows, at] - squares[rows, before],
        n1,
        sums[rows, after] - sums[rows, at],
        squares[rows, after] - squares[rows, at],
        n2,
    )
    mean1, mean2 = mean1 + prefix.base[rows], mean2 + prefix.base[rows]
    # The split was the best of every position between its neighbours, which makes the plain
    # p-value far too hopeful on noise: Bonferroni over those positions.
    positions = np.maximum(n1 + n2 - 2 * params.min_segment + 1, 1.0)
    p = np.minimum(p * positions, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.abs(mean2 - mean1) / np.abs(mean1)
    magnitude = np.where(mean1 == 0, np.where(mean2 == 0, 0.0, np.inf), magnitude)
    difference = np.abs(mean2 - mean1)
    return _Stats(rows, at, n1, n2, p, mean1, mean2, std1, std2, magnitude, difference)


def _size_ratio(stats: _Stats, params: ChangePointParams) -> Floats:
    """Each change's size against both minimums (relative and absolute): the smaller of its two
    ratios to them, so that below 1 it is too small to report."""
    ratio = np.full(stats.magnitude.shape, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        if params.min_magnitude > 0:
            ratio = np.minimum(ratio, stats.magnitude / params.min_magnitude)
        if params.min_change > 0:
            ratio = np.minimum(ratio, stats.difference / params.min_change)
    return ratio


def _merge(prefix: _Sums, weak: list[set[int]], params: ChangePointParams) -> dict[int, list[int]]:
    """Otava's merge over every row at once: each round drops the weakest change point of each
    row that has one to drop."""
    points = {row: sorted(found) for row, found in enumerate(weak) if found}
    final: dict[int, list[int]] = {}
    while points:
        stats = _test(prefix, points, params)
        short = (stats.n1 < params.min_segment) | (stats.n2 < params.min_segment)
        size = _size_ratio(stats, params)
        offset = 0
        next_points: dict[int, list[int]] = {}
        for row, cps in points.items():
            span = slice(offset, offset + len(cps))
            offset += len(cps)
            row_p, row_short, row_size = stats.p[span], short[span], size[span]
            # Weakest first: a too-short side, then the largest p-value, then the smallest
            # change (Otava's order, with the short-side rule ahead of it).
            worst = int(np.argmax(np.where(row_short, 2.0 + row_p, row_p)))
            if row_short[worst] or row_p[worst] > params.p_value:
                drop = worst
            else:
                drop = int(np.argmin(row_size))
                if row_size[drop] >= 1.0:
                    final[row] = cps
                    continue
            rest = cps[:drop] + cps[drop + 1 :]
            if rest:
                next_points[row] = rest
        points = next_points
    return final


def _refine(
    prefix: _Sums, points: dict[int, list[int]], params: ChangePointParams
) -> dict[int, list[int]]:
    """Move each change point to the split of largest mean difference (in standard errors)
    within half a window of it, between its neighbours: the windows' E-divisive candidates can
    sit a few runs off, and the first run of the change is what a reader acts on."""
    if not points:
        return points
    n, sums = prefix.n, prefix.test_sums
    rows, at, before, after = _flatten(points, n)
    reach = params.window // 2
    taus = at[:, None] + np.arange(-reach, reach + 1)[None, :]
    low = before[:, None] + params.min_segment
    high = after[:, None] - params.min_segment
    valid = (taus >= low) & (taus <= high)
    taus = np.clip(taus, 0, n)
    left = (taus - before[:, None]).astype(np.float64)
    right = (after[:, None] - taus).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean1 = (sums[rows[:, None], taus] - sums[rows, before][:, None]) / left
        mean2 = (sums[rows, after][:, None] - sums[rows[:, None], taus]) / right
        score = np.abs(mean2 - mean1) * np.sqrt(left * right / (left + right))
    score = np.where(valid, np.nan_to_num(score, nan=-1.0), -1.0)
    best = taus[np.arange(len(at)), np.argmax(score, axis=1)]
    moved = np.where(valid.any(axis=1), best, at)
    refined: dict[int, list[int]] = {}
    for row, position in zip(rows.tolist(), moved.tolist(), strict=True):
        refined.setdefault(row, []).append(position)
    return {row: sorted(set(cps)) for row, cps in refined.items()}


def _excursion_p(
    prefix: _Sums, row: int, bounds: tuple[int, int, int, int], params: ChangePointParams
) -> float | None:
    """The corrected p-value of the stretch ``[a, b)`` against the values around it (``[low,
    a)`` and ``[b, high)`` together) when the level comes back after it; None when it does not
    come back (the second change keeps at most half of the first): two changes then."""
    low, a, b, high = bounds
    ts, tq = prefix.test_sums[row], prefix.test_squares[row]
    n_left, n_mid, n_right = a - low, b - a, high - b
    left = (ts[a] - ts[low]) / n_left
    middle = (ts[b] - ts[a]) / n_mid
    right = (ts[high] - ts[b]) / n_right
    if (middle - left) * (middle - right) <= 0 or abs(right - left) > abs(middle - left) / 2:
        return None
    outer_sum = ts[a] - ts[low] + ts[high] - ts[b]
    outer_squares = tq[a] - tq[low] + tq[high] - tq[b]
    p, *_ = pooled_t(
        np.array([outer_sum]),
        np.array([outer_squares]),
        np.array([float(n_left + n_right)]),
        np.array([ts[b] - ts[a]]),
        np.array([tq[b] - tq[a]]),
        np.array([float(n_mid)]),
    )
    # The stretch was the best of every start and length (up to half a window): Bonferroni
    # over those pairs, where a single change pays for its positions only.
    pairs = max(high - low - 2 * params.min_segment, 1) * max(params.window // 2, 1)
    return float(min(p[0] * pairs, 1.0))


def _returning(
    prefix: _Sums, points: dict[int, list[int]], params: ChangePointParams
) -> dict[int, list[int]]:
    """Drop the pairs of change points that enclose a dip or a burst the series comes back
    from, within half a window, unless the stretch stands against the values around it at
    ``p_value`` once corrected for every stretch it could have been. Noise on a noisy test
    makes such stretches (a few slow runs in a row), and a single change's correction, over
    its positions only, lets them through; a regression reverted after some runs still stands:
    its level is far from the noise for as long as it lasts."""
    kept: dict[int, list[int]] = {}
    for row, cps in points.items():
        cps = list(cps)
        i = 0
        while i + 1 < len(cps):
            bounds = [0, *cps, prefix.n]
            a, b = cps[i], cps[i + 1]
            if b - a <= params.window // 2:
                p = _excursion_p(prefix, row, (bounds[i], a, b, bounds[i + 3]), params)
                if p is not None and p > params.p_value:
                    del cps[i : i + 2]
                    i = max(i - 1, 0)
                    continue
            i += 1
        if cps:
            kept[row] = cps
    return kept


def _holding(
    values: Floats, points: dict[int, list[int]], params: ChangePointParams
) -> dict[int, list[int]]:
    """Keep the change points whose new level holds: at least ``min_segment`` values on each
    side nearer their own side's mean than the other's. A split pushed against the end of the
    series by a fresh burst shorter than that is not a change (yet), however sure the t-test is
    on values that barely vary; it is found once the burst has lasted ``min_segment`` runs."""
    need = params.min_segment
    kept: dict[int, list[int]] = {}
    for row, cps in points.items():
        bounds = [0, *cps, values.shape[1]]
        holding = []
        for i, cp in enumerate(cps):
            left, right = values[row, bounds[i] : cp], values[row, cp : bounds[i + 2]]
            middle = (left.mean() + right.mean()) / 2.0
            rose = right.mean() > left.mean()
            on_left = np.count_nonzero((left < middle) if rose else (left > middle))
            on_right = np.count_nonzero((right > middle) if rose else (right < middle))
            if on_left >= need and on_right >= need:
                holding.append(cp)
        if holding:
            kept[row] = holding
    return kept


def _describe(
    prefix: _Sums, points: dict[int, list[int]], count: int, params: ChangePointParams
) -> list[list[ChangePoint]]:
    described: list[list[ChangePoint]] = [[] for _ in range(count)]
    if not points:
        return described
    stats = _test(prefix, points, params)
    for i in range(len(stats.at)):
        described[int(stats.rows[i])].append(
            ChangePoint(
                index=int(stats.at[i]),
                mean_before=float(stats.mean1[i]),
                mean_after=float(stats.mean2[i]),
                std_before=float(stats.std1[i]),
                std_after=float(stats.std2[i]),
                n_before=int(stats.n1[i]),
                n_after=int(stats.n2[i]),
                p_value=float(stats.p[i]),
            )
        )
    return described


# --- entry points ----------------------------------------------------------------------------


def analyze_batch(
    values: ArrayLike, params: ChangePointParams | None = None
) -> list[SeriesAnalysis]:
    """Analyse many series of one length, without gaps: a (series, length) array."""
    params = params or ChangePointParams()
    array = np.atleast_2d(np.asarray(values, dtype=np.float64))
    count, n = array.shape
    if count == 0:
        return []
    flags, cleaned = find_outliers(array, params)
    change_points: list[list[ChangePoint]] = [[] for _ in range(count)]
    if n >= 2 * params.min_segment:
        prefix = _sums(cleaned)
        kept = _merge(prefix, _split(prefix.test, params), params)
        kept = _returning(prefix, _refine(prefix, kept, params), params)
        kept = _holding(cleaned, kept, params)
        change_points = _describe(prefix, kept, count, params)
    positions = np.arange(n, dtype=np.int64)
    results = []
    for row in range(count):
        points = tuple(change_points[row])
        outliers = tuple(int(i) for i in np.flatnonzero(flags[row]))
        results.append(SeriesAnalysis(points, outliers, cleaned[row], positions))
    return results


def analyze_many(
    series: Sequence[ArrayLike], params: ChangePointParams | None = None
) -> list[SeriesAnalysis]:
    """Analyse series of any lengths with gaps (None/NaN are dropped; positions still count
    them), batching the series of equal length together."""
    params = params or ChangePointParams()
    kept: list[tuple[Floats, Ints]] = []
    by_length: dict[int, list[int]] = {}
    for number, raw in enumerate(series):
        array = np.asarray(
            [np.nan if v is None else v for v in raw] if isinstance(raw, (list, tuple)) else raw,
            dtype=np.float64,
        ).ravel()
        present = np.flatnonzero(~np.isnan(array))
        kept.append((array[present], present.astype(np.int64)))
        by_length.setdefault(len(present), []).append(number)
    results: list[SeriesAnalysis | None] = [None] * len(kept)
    for length, numbers in by_length.items():
        if length == 0:
            for number in numbers:
                empty = np.empty(0)
                results[number] = SeriesAnalysis((), (), empty, np.empty(0, dtype=np.int64))
            continue
        batch = np.stack([kept[number][0] for number in numbers])
        for number, analysis in zip(numbers, analyze_batch(batch, params), strict=True):
            positions = kept[number][1]
            results[number] = SeriesAnalysis(
                tuple(_at_positions(cp, positions) for cp in analysis.change_points),
                tuple(int(positions[i]) for i in analysis.outliers),
                analysis.cleaned,
                positions,
            )
    return [r for r in results if r is not None]


def _at_positions(cp: ChangePoint, positions: Ints) -> ChangePoint:
    return ChangePoint(
        index=int(positions[cp.index]),
        mean_before=cp.mean_before,
        mean_after=cp.mean_after,
        std_before=cp.std_before,
        std_after=cp.std_after,
        n_before=cp.n_before,
        n_after=cp.n_after,
        p_value=cp.p_value,
    )


def analyze_series(
    values: ArrayLike | Sequence[float | None], params: ChangePointParams | None = None
) -> SeriesAnalysis:
    """Analyse one series (gaps allowed)."""
    return analyze_many([values], params)[0]  # type: ignore[list-item]
