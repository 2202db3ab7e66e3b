"""The E-divisive statistic (Matteson and James 2014) over many windows at once: for every
split of a window, the energy distance between the values before and after it, scaled by the
sizes of both sides; the best split of each interval is confirmed by a t-test and the search
recurses into both halves (see :mod:`testledger.analyze.regressions.changepoint`)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from testledger.analyze.regressions.student_t import pooled_t

__all__ = ["best_splits", "e_divisive", "prefix_sums"]

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

#: Elements of one (windows, length, length) distance block: bounds the memory of a step.
_BLOCK_ELEMENTS = 4_000_000


def best_splits(block: Floats, min_segment: int) -> tuple[Floats, Ints]:
    """For each row of ``block`` (rows, L): the E-divisive statistic's best split tau (the first
    index of the right side, min_segment <= tau <= L - min_segment) and its value."""
    rows, length = block.shape
    taus = np.arange(min_segment, length - min_segment + 1)
    n1 = taus.astype(np.float64)
    n2 = length - n1
    # Distances in float32 halve the memory traffic of the largest arrays of the whole
    # analysis; their sums (50 terms a window) go on in float64.
    upper = np.triu(np.ones((length, length), dtype=np.float32), k=1)
    best_q = np.empty(rows)
    best_tau = np.empty(rows, dtype=np.int64)
    chunk = max(1, _BLOCK_ELEMENTS // (length * length))
    for start in range(0, rows, chunk):
        part = block[start : start + chunk].astype(np.float32)
        distances = np.abs(part[:, :, None] - part[:, None, :])
        distances *= upper
        columns = distances.sum(axis=1, dtype=np.float64)
        rows_ = distances.sum(axis=2, dtype=np.float64)
        within_left = np.cumsum(columns, axis=1)  # pairs i < k < tau
        within_right = np.cumsum(rows_[:, ::-1], axis=1)[:, ::-1]  # pairs tau <= j < k
        wx = within_left[:, taus - 1]
        wy = within_right[:, taus]
        cross = within_left[:, -1:] - wx - wy
        q = (
            2.0 / length * cross
            - 2.0 * n2 / (length * (n1 - 1.0)) * wx
            - 2.0 * n1 / (length * (n2 - 1.0)) * wy
        )
        at = np.argmax(q, axis=1)
        best_q[start : start + chunk] = q[np.arange(len(part)), at]
        best_tau[start : start + chunk] = taus[at]
    return best_q, best_tau


def prefix_sums(values: Floats) -> tuple[Floats, Floats]:
    zeros = np.zeros((values.shape[0], 1))
    return (
        np.concatenate([zeros, np.cumsum(values, axis=1)], axis=1),
        np.concatenate([zeros, np.cumsum(values * values, axis=1)], axis=1),
    )


def e_divisive(windows: Floats, min_segment: int, p_value: float) -> list[list[int]]:
    """Change points of each row of ``windows`` (all one length), E-divisive style: the best
    candidate of all intervals of a row is tested; significant ones split their interval and
    the search goes on, the first failure ends the row."""
    rows, length = windows.shape
    sums, squares = prefix_sums(windows)
    found: list[list[int]] = [[] for _ in range(rows)]
    intervals: dict[int, list[tuple[int, int]]] = {row: [(0, length)] for row in range(rows)}
    while intervals:
        items = [
            (row, a, b)
            for row, spans in intervals.items()
            for a, b in spans
            if b - a >= 2 * min_segment
        ]
        if not items:
            break
        item_rows = np.array([i[0] for i in items], dtype=np.int64)
        starts = np.array([i[1] for i in items], dtype=np.int64)
        ends = np.array([i[2] for i in items], dtype=np.int64)
        q = np.empty(len(items))
        tau = np.empty(len(items), dtype=np.int64)
        # sorted(set()), not np.unique: that imports numpy.ma on its first call (10 ms).
        for span in sorted(set((ends - starts).tolist())):
            pick = np.flatnonzero(ends - starts == span)
            index = starts[pick, None] + np.arange(span)[None, :]
            q[pick], local = best_splits(windows[item_rows[pick, None], index], min_segment)
            tau[pick] = starts[pick] + local
        # Per row, the interval whose candidate is strongest.
        order = np.lexsort((-q, item_rows))
        first = order[np.r_[True, item_rows[order][1:] != item_rows[order][:-1]]]
        r, a, b, t = item_rows[first], starts[first], ends[first], tau[first]
        p, *_ = pooled_t(
            sums[r, t] - sums[r, a],
            squares[r, t] - squares[r, a],
            (t - a).astype(np.float64),
            sums[r, b] - sums[r, t],
            squares[r, b] - squares[r, t],
            (b - t).astype(np.float64),
        )
        next_intervals: dict[int, list[tuple[int, int]]] = {}
        for row, start, end, split, prob in zip(r, a, b, t, p, strict=True):
            if prob > p_value:
                continue
            found[int(row)].append(int(split))
            spans = [s for s in intervals[int(row)] if s != (int(start), int(end))]
            spans += [(int(start), int(split)), (int(split), int(end))]
            next_intervals[int(row)] = spans
        intervals = next_intervals
    return found
