"""The data of the pages' charts, shaped for ``static/charts.js`` (uPlot).

A chart is a dict: ``title``; ``x``, the runs' times (Unix seconds, ascending); ``series``, each
a ``label`` with ``values`` and the ``runs`` (id per point, None where the series has no run at
that time) aligned on ``x``; ``marks``, the times of change points to draw as vertical lines;
``link``, where a click on a point goes (``link`` + the run id). Bars charts (``kind: bars``)
have ``labels`` instead of times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from testledger import api

__all__ = ["TEST_METRICS", "charts_of_test", "trend_charts"]

#: A test's charts: (regression metric name, HistoryPoint attribute, title).
TEST_METRICS = (
    ("duration", "duration_secs", "duration (s)"),
    ("memory", "memory_mb", "memory (MB)"),
    ("cost", "cost_usd", "cost ($)"),
    ("quality", "watcher_quality", "watcher quality"),
)


def _epoch(value: datetime) -> float:
    return round(value.timestamp(), 3)


def _aligned(
    title: str, lines: Mapping[str, Sequence[tuple[float, int, float | None]]]
) -> dict[str, Any]:
    """One chart of several lines, each (time, run id, value) points, on their union of times."""
    times = sorted({t for points in lines.values() for t, _, _ in points})
    index = {t: i for i, t in enumerate(times)}
    series = []
    for label, points in lines.items():
        values: list[float | None] = [None] * len(times)
        runs: list[int | None] = [None] * len(times)
        for t, run_id, value in points:
            values[index[t]] = value
            runs[index[t]] = run_id
        series.append({"label": label, "values": values, "runs": runs})
    return {"title": title, "x": times, "series": series, "marks": [], "link": "/runs/"}


def trend_charts(trends: Mapping[str, api.Trend]) -> list[dict[str, Any]]:
    """A chart per trend metric, a line per trend (one per branch, suite... when split)."""
    charts = []
    for metric in api.TREND_METRICS:
        lines = {
            label: [
                (
                    _epoch(p.run_timestamp),
                    p.run_id,
                    None
                    if getattr(p, metric.attribute) is None
                    else float(getattr(p, metric.attribute)),
                )
                for p in trend.points
            ]
            for label, trend in trends.items()
        }
        chart = _aligned(metric.label, lines)
        chart["id"] = f"trend-{metric.name}"
        charts.append(chart)
    return charts


def _final_points(points: Iterable[Any]) -> list[Any]:
    """A run's last attempt only, oldest run first."""
    final: dict[int, Any] = {}
    for point in points:
        kept = final.get(point.run_id)
        if kept is None or (point.attempt or 0) > (kept.attempt or 0):
            final[point.run_id] = point
    return sorted(final.values(), key=lambda p: (p.run_timestamp, p.run_id))


def charts_of_test(points: Iterable[Any], changes: Iterable[Any]) -> list[dict[str, Any]]:
    """A test's duration, memory, cost and quality over its runs (``points``: one per run or
    attempt, any order), the change points of ``changes`` (each a ``metric`` and the
    ``first_run_id`` it starts at) marked."""
    ordered = _final_points(points)
    when = {p.run_id: _epoch(p.run_timestamp) for p in ordered}
    changes = list(changes)
    charts = []
    for metric, attribute, title in TEST_METRICS:
        values = [
            (
                when[p.run_id],
                p.run_id,
                None if getattr(p, attribute) is None else float(getattr(p, attribute)),
            )
            for p in ordered
        ]
        if all(value is None for _, _, value in values):
            continue
        chart = _aligned(title, {metric: values})
        chart["id"] = f"test-{metric}"
        chart["marks"] = sorted(
            when[c.first_run_id] for c in changes if c.metric == metric and c.first_run_id in when
        )
        charts.append(chart)
    return charts
