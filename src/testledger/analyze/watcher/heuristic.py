"""The ``heuristic`` watcher: offline, deterministic, judged against the test's own history.

A result is scored from its status, whether it carries an error, and how far its duration,
memory, tokens and cost stray from the test's median over its last runs on the same branch.
"Far" needs both a ratio (at least ``ratio`` times the median) and a robust spread (more than
``mads`` scaled MADs above it), so a test whose timings always wobble is not flagged for a wobble,
and at least the metric's absolute minimum change of regression detection (50 ms, 2 MB, 5
tokens, $0.0001), so a 1 ms test taking 3 ms is not either, and its relative one where it has
one (memory, the process's RSS: half its level, whatever ``ratio`` says).
Every finding is a concrete sentence with the numbers behind it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from testledger.analyze.regressions.metrics import METRICS as REGRESSION_METRICS
from testledger.analyze.watcher.base import HistoryPoint, RecentHistory, ResultContext
from testledger.analyze.watcher.history import DEFAULT_HISTORY_RUNS
from testledger.errors import ConfigError
from testledger.model import WatcherObservation

__all__ = ["HeuristicWatcher", "create"]

#: The MAD of normally distributed values times this is their standard deviation.
_MAD_SCALE = 1.4826
#: Fewer earlier values than this and a metric is not judged against its history.
_MIN_HISTORY = 3

_BASE_SCORE = {"PASS": 9, "FAIL": 3, "ERROR": 2}


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 0.1 else f"{value:.3f} s"


def _megabytes(value: float) -> str:
    return f"{value:.0f} MB"


def _tokens(value: float) -> str:
    return f"{value:,.0f} tokens"


def _dollars(value: float) -> str:
    return f"${value:.4f}"


@dataclass(frozen=True, slots=True)
class _Metric:
    label: str
    current: Callable[[ResultContext], float | None]
    past: Callable[[HistoryPoint], float | None]
    fmt: Callable[[float], str]


_METRICS = (
    _Metric("duration", lambda r: r.duration_secs, lambda p: p.duration_secs, _seconds),
    _Metric("memory", lambda r: r.memory_mb, lambda p: p.memory_mb, _megabytes),
    _Metric(
        "tokens",
        lambda r: None if r.tokens_total is None else float(r.tokens_total),
        lambda p: None if p.tokens_total is None else float(p.tokens_total),
        _tokens,
    ),
    _Metric("cost", lambda r: r.cost_usd, lambda p: p.cost_usd, _dollars),
)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 120 else line[:117] + "..."


class HeuristicWatcher:
    """Scores: PASS 9, FAIL 3, ERROR 2; a pass that reports an error loses 1; each anomaly costs
    2 on a pass and 1 on a failure (never below 1). Skipped results get no observation."""

    name = "heuristic"
    wants_observations = False

    def __init__(
        self, *, window: int = DEFAULT_HISTORY_RUNS, ratio: float = 1.5, mads: float = 3.0
    ):
        self.window = window
        self.ratio = ratio
        self.mads = mads

    def spend(self) -> tuple[float, int]:
        return 0.0, 0

    def watch(
        self, items: Sequence[tuple[ResultContext, RecentHistory]]
    ) -> list[WatcherObservation | None]:
        return [self.observe(result, history) for result, history in items]

    def observe(self, result: ResultContext, history: RecentHistory) -> WatcherObservation | None:
        status = result.status.upper()
        if status not in _BASE_SCORE:
            return None  # a skipped test did nothing to judge
        points = history.points[: self.window]
        passed = status == "PASS"
        strengths: list[str] = []
        weaknesses: list[str] = []
        anomalies: list[str] = []
        recommendations: list[str] = []
        score = _BASE_SCORE[status]
        medians: dict[str, float] = {}
        usual_duration = True
        for metric in _METRICS:
            value = metric.current(result)
            past = [v for v in (metric.past(p) for p in points) if v is not None]
            if value is None or len(past) < _MIN_HISTORY:
                continue
            median = statistics.median(past)
            spread = _MAD_SCALE * statistics.median(abs(v - median) for v in past)
            medians[metric.label] = median
            far = value - median > self.mads * spread
            floors = REGRESSION_METRICS[metric.label]
            big = value - median >= max(floors.min_change, floors.min_relative * median)
            if median > 0 and value >= self.ratio * median and far and big:
                if metric.label == "duration":
                    usual_duration = False
                anomalies.append(
                    f"{metric.label} {value / median:.1f}x its {len(past)}-run median "
                    f"of {metric.fmt(median)}"
                )
                recommendations.append(
                    f"check what made {metric.label} grow from {metric.fmt(median)} "
                    f"to {metric.fmt(value)}"
                )
        if passed:
            if result.duration_secs is None:
                strengths.append("passed")
            elif "duration" in medians and usual_duration:
                strengths.append(
                    f"passed in {_seconds(result.duration_secs)}, within its usual range"
                )
            else:
                strengths.append(f"passed in {_seconds(result.duration_secs)}")
            if result.error_message:
                score -= 1
                weaknesses.append(
                    f"passed but reported an error: {_first_line(result.error_message)}"
                )
        else:
            what = "errored" if status == "ERROR" else "failed"
            cause = ": ".join(
                part
                for part in (result.error_type, _first_line(result.error_message or ""))
                if part
            )
            weaknesses.append(f"{what}: {cause}" if cause else what)
            earlier = [p.status.upper() for p in points]
            if earlier and all(s == "PASS" for s in earlier):
                anomalies.append(f"{what} after passing its last {len(earlier)} runs")
                recommendations.append(
                    f"look at what changed since run {points[0].run_id}, its last pass"
                )
            elif len(earlier) >= _MIN_HISTORY and all(s in ("FAIL", "ERROR") for s in earlier):
                recommendations.append(
                    f"it has failed in each of its last {len(earlier)} runs: fix or quarantine it"
                )
        score -= (2 if passed else 1) * len(anomalies)
        confidence = round(0.3 + 0.65 * min(len(points), self.window) / self.window, 2)
        raw: dict[str, Any] = {"history_runs": len(points), "medians": medians}
        return WatcherObservation(
            quality_score=max(1, score),
            strengths=strengths,
            weaknesses=weaknesses,
            anomalies=anomalies,
            recommendations=recommendations,
            confidence=confidence,
            raw=raw,
            watcher=self.name,
        )


def create(options: dict[str, Any]) -> HeuristicWatcher:
    """The entry point factory: options ``window`` (runs of history), ``ratio``, ``mads``."""
    unknown = sorted(set(options) - {"window", "ratio", "mads"})
    if unknown:
        raise ConfigError(
            f"[tool.testledger.watcher.heuristic] unknown key(s): {', '.join(unknown)}"
        )
    try:
        window = int(options.get("window", DEFAULT_HISTORY_RUNS))
        if window < 1:
            raise ValueError("window must be at least 1 run")
        return HeuristicWatcher(
            window=window,
            ratio=float(options.get("ratio", 1.5)),
            mads=float(options.get("mads", 3.0)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[tool.testledger.watcher.heuristic] {exc}") from exc
