"""Plain dataclasses for what testledger records: runs, results and watcher observations.

These carry no database logic; the store, the recorders and the importers all speak them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from testledger.common.text import bounded_id

__all__ = [
    "NO_WATCHER",
    "RunInfo",
    "RunStats",
    "RunStatus",
    "Status",
    "TestResult",
    "WatcherObservation",
    "utcnow",
]

#: ``test_runs.watcher_model`` is NOT NULL; runs without a watcher store this.
NO_WATCHER = "none"


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (every timestamp testledger writes is UTC)."""
    return datetime.now(timezone.utc)


class Status(str, enum.Enum):
    """A test's outcome, as ``test_results.status`` spells it."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"
    ERROR = "ERROR"

    @classmethod
    def parse(cls, value: str | Status) -> Status:
        """Accept the stored spelling (PASS, FAIL, SKIP, ERROR) and the synonyms tools write."""
        if isinstance(value, Status):
            return value
        key = value.strip().lower()
        try:
            return _STATUS_SYNONYMS[key]
        except KeyError:
            raise ValueError(
                f"unknown test status {value!r}: expected one of PASS, FAIL, SKIP, ERROR"
            ) from None

    @property
    def is_failure(self) -> bool:
        return self in (Status.FAIL, Status.ERROR)


_STATUS_SYNONYMS: dict[str, Status] = {
    "pass": Status.PASS,
    "passed": Status.PASS,
    "success": Status.PASS,
    "ok": Status.PASS,
    "fail": Status.FAIL,
    "failed": Status.FAIL,
    "failure": Status.FAIL,
    "skip": Status.SKIP,
    "skipped": Status.SKIP,
    "pending": Status.SKIP,
    "error": Status.ERROR,
    "errored": Status.ERROR,
    "broken": Status.ERROR,
}


class RunStatus(str, enum.Enum):
    """Where a run is in its life. A run that died with an exception is ``aborted``."""

    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(slots=True)
class WatcherObservation:
    """An independent observer's verdict on one result (a ``watcher_insights`` row).

    ``quality_score`` is 1-10. When the watcher itself failed (the tool-validation suite writes a
    score of 0 then) ``quality_score`` is None and ``error`` says why: that is a failed
    observation, never a score.
    """

    quality_score: int | None
    strengths: list[str] = field(default_factory=list)
    weaknesses: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    confidence_level: str | None = None
    confidence: float | None = None
    raw: dict[str, Any] | None = None
    watcher: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    #: The watcher's own model and usage, kept apart from the test's (an LLM watcher fills them).
    watcher_model: str | None = None
    watcher_input_tokens: int | None = None
    watcher_output_tokens: int | None = None
    watcher_cost_usd: float | None = None
    #: Whether the text the watcher saw was cut to fit its input bound.
    truncated: bool = False

    def __post_init__(self) -> None:
        if self.quality_score is not None:
            if isinstance(self.quality_score, bool) or not 1 <= int(self.quality_score) <= 10:
                raise ValueError(f"watcher quality_score must be 1-10, got {self.quality_score!r}")
            self.quality_score = int(self.quality_score)
        elif not self.error:
            raise ValueError("a watcher observation without a quality_score must carry an error")
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"watcher confidence must be 0-1, got {self.confidence!r}")
        if self.confidence_level is None and self.confidence is not None:
            self.confidence_level = confidence_level_for(self.confidence)

    def as_json(self) -> dict[str, Any]:
        """The observation as stored in ``test_results.watcher_observations``."""
        return {
            "quality_score": self.quality_score,
            "strengths": list(self.strengths),
            "weaknesses": list(self.weaknesses),
            "anomalies": list(self.anomalies),
            "recommendations": list(self.recommendations),
            "confidence_level": self.confidence_level,
            "confidence": self.confidence,
            "watcher": self.watcher,
            "error": self.error,
            "raw": self.raw,
            "created_at": _iso(self.created_at),
            "watcher_model": self.watcher_model,
            "watcher_input_tokens": self.watcher_input_tokens,
            "watcher_output_tokens": self.watcher_output_tokens,
            "watcher_cost_usd": self.watcher_cost_usd,
            "truncated": self.truncated,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WatcherObservation:
        return cls(
            quality_score=data.get("quality_score"),
            strengths=list(data.get("strengths") or []),
            weaknesses=list(data.get("weaknesses") or []),
            anomalies=list(data.get("anomalies") or []),
            recommendations=list(data.get("recommendations") or []),
            confidence_level=data.get("confidence_level"),
            confidence=data.get("confidence"),
            raw=data.get("raw"),
            watcher=data.get("watcher"),
            error=data.get("error"),
            created_at=_from_iso(data.get("created_at")),
            watcher_model=data.get("watcher_model"),
            watcher_input_tokens=data.get("watcher_input_tokens"),
            watcher_output_tokens=data.get("watcher_output_tokens"),
            watcher_cost_usd=data.get("watcher_cost_usd"),
            truncated=bool(data.get("truncated", False)),
        )


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _from_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def confidence_level_for(confidence: float) -> str:
    """Map a 0-1 confidence to ``watcher_insights.confidence_level``'s high / medium / low."""
    if confidence >= 0.8:
        return "high"
    if confidence >= 0.5:
        return "medium"
    return "low"


@dataclass(slots=True)
class TestResult:
    """One test's outcome in one run (one attempt of it, when the test was retried).

    ``test_id`` is the test's full, stable identity (a pytest node id, ``tool/variation``,
    ``classname.name``). ``tool_name`` and ``variation`` split it in two levels (the
    ``test_results`` columns of those names).
    ``provider`` and ``model`` are None for tests that do not call an LLM.
    ``attempt`` None means "number it for me": the recorder counts repeats of a test_id.
    """

    __test__ = False  # not a pytest test class, despite the name

    test_id: str
    tool_name: str
    variation: str
    status: Status
    provider: str | None = None
    model: str | None = None
    execution_status: str | None = None
    duration_secs: float | None = None
    memory_mb: int | None = None
    cpu_percent: float | None = None
    tokens_total: int | None = None
    tokens_input: int | None = None
    tokens_output: int | None = None
    cost_usd: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    output_excerpt: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    attempt: int | None = None
    started_at: datetime | None = None
    watcher: WatcherObservation | None = None

    def __post_init__(self) -> None:
        self.status = Status.parse(self.status)
        if not self.test_id:
            raise ValueError("a test result needs a non-empty test_id")
        # A test's identity is bounded (ID_LIMIT) as its messages are, whatever produced it.
        self.test_id = bounded_id(self.test_id)
        self.tool_name = bounded_id(self.tool_name)
        self.variation = bounded_id(self.variation)
        if self.attempt is not None and self.attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {self.attempt}")
        for name, value in self.metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"custom metric {name!r} must be a number, got {value!r}")


@dataclass(slots=True)
class RunInfo:
    """What is known about a run when it starts."""

    branch: str = "unknown"
    commit: str | None = None
    suite: str = "default"
    watcher_model: str = NO_WATCHER
    notes: str | None = None
    run_key: str | None = None
    started_at: datetime | None = None
    ci_provider: str | None = None
    ci_job_url: str | None = None
    host: str | None = None
    source: str = "runner"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class RunStats:
    """A run's statistics, computed at finish from its results (the last attempt of each test).

    ``tests_failed`` counts FAIL and ERROR, as the three counters of ``test_runs`` leave no other
    place for errors; ``tests_errored`` tells how many of them were ERROR.
    ``pass_rate`` is 100 * passed / (total - skipped), None when nothing ran.
    """

    total_tests: int
    tests_passed: int
    tests_failed: int
    tests_skipped: int
    tests_errored: int
    pass_rate: float | None
    avg_watcher_quality: float | None
    total_duration_secs: int | None
    total_cost_usd: float | None
    total_tokens: int | None
    #: The wall-clock duration with its fractions; ``total_duration_secs`` is it rounded.
    duration_secs: float | None = None
