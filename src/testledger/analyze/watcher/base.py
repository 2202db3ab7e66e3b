"""The watcher interface and the registry that finds watchers by name.

A watcher gets a batch of results, each with its history from the ledger, and answers one
observation per result (or None: "nothing to say", e.g. a skipped test or a spent budget).
Batches let a watcher that calls a service work concurrently and keep a budget across calls.

Watchers are found through the entry point group ``testledger.watchers``: an entry point names a
factory ``(options: dict) -> Watcher``, where ``options`` is the ``[tool.testledger.watcher.NAME]``
table merged with command-line overrides. The built-ins are also known without their entry
points, so a source checkout that was never installed still has them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Protocol

from testledger.errors import ConfigError
from testledger.model import WatcherObservation

__all__ = [
    "ENTRY_POINT_GROUP",
    "HistoryPoint",
    "OpenIssue",
    "PreviousObservation",
    "RecentHistory",
    "RecordedChange",
    "ResultContext",
    "Watcher",
    "WatcherFactory",
    "available_watchers",
    "load_watcher",
    "watcher_options",
]

ENTRY_POINT_GROUP = "testledger.watchers"
_BUILT_IN = {
    "heuristic": "testledger.analyze.watcher.heuristic:create",
    "llm": "testledger.analyze.watcher.llm:create",
}


@dataclass(frozen=True, slots=True)
class ResultContext:
    """One recorded result, as a watcher sees it."""

    result_id: int
    test_id: str
    attempt: int
    tool_name: str
    variation: str
    status: str
    provider: str | None = None
    model: str | None = None
    duration_secs: float | None = None
    memory_mb: float | None = None
    tokens_total: int | None = None
    cost_usd: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    output_excerpt: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The same test in an earlier run of the same suite and branch."""

    run_id: int
    run_timestamp: datetime
    status: str
    duration_secs: float | None
    memory_mb: float | None
    tokens_total: int | None
    cost_usd: float | None
    error_type: str | None
    watcher_quality: int | None
    #: The result this point is (its attempt in the run: a retried test has a point for each).
    result_id: int | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class OpenIssue:
    """An issue still open (OPEN or IN_PROGRESS) that the test's failures, or its metrics'
    regressions, are occurrences of; ``occurrences`` counts the test's own."""

    code: str
    title: str
    status: str
    priority: str
    category: str
    origin: str
    lifecycle: str | None
    occurrences: int
    last_seen_run_id: int | None


@dataclass(frozen=True, slots=True)
class RecordedChange:
    """A change point of one of the test's metrics, as regression detection recorded it in an
    issue: the mean before and after, from ``first_run_id`` on (``status`` RESOLVED: the
    metric came back since)."""

    issue_code: str
    status: str
    metric: str
    before_mean: float
    after_mean: float
    magnitude_pct: float | None
    first_run_id: int
    commit_range: str
    p_value: float | None


@dataclass(frozen=True, slots=True)
class PreviousObservation:
    """What a watcher said about the same test in an earlier run."""

    run_id: int
    watcher: str | None
    quality_score: int | None
    anomalies: tuple[str, ...]
    recommendations: tuple[str, ...]
    error: str | None


@dataclass(frozen=True, slots=True)
class RecentHistory:
    """A test's recent history, newest first."""

    points: tuple[HistoryPoint, ...] = ()
    observations: tuple[PreviousObservation, ...] = ()
    #: What the ledger says about the test beside its outcomes (see ``watcher.context``).
    open_issues: tuple[OpenIssue, ...] = ()
    changes: tuple[RecordedChange, ...] = ()


class Watcher(Protocol):
    """What every watcher provides."""

    #: The name stored in ``watcher_insights.watcher``.
    name: str
    #: Whether ``watch`` wants previous observations in the histories (costs one more query).
    wants_observations: bool

    def watch(
        self, items: Sequence[tuple[ResultContext, RecentHistory]]
    ) -> list[WatcherObservation | None]:
        """One observation (or None) per item, in order. Must not raise for a bad answer."""
        ...

    def spend(self) -> tuple[float, int]:
        """The watcher's own spend so far: (USD, tokens)."""
        ...


WatcherFactory = Callable[[dict[str, Any]], Watcher]


def _entry_point_targets() -> dict[str, str]:
    targets = dict(_BUILT_IN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        targets[entry.name] = entry.value
    return targets


def available_watchers() -> list[str]:
    """The names ``--watcher`` accepts."""
    return sorted(_entry_point_targets())


def watcher_options(tool: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``[tool.testledger.watcher.NAME]`` as a dict (empty when absent)."""
    section = tool.get("watcher", {})
    if not isinstance(section, Mapping):
        raise ConfigError("[tool.testledger] watcher must be a table")
    options = section.get(name, {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"[tool.testledger.watcher] {name} must be a table")
    return dict(options)


def load_watcher(
    name: str | None,
    tool: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Watcher:
    """The watcher called ``name`` (else ``[tool.testledger.watcher] name``, else heuristic),
    configured from ``[tool.testledger.watcher.NAME]`` and ``overrides`` (None values ignored).
    Raises ConfigError for an unknown name or bad options."""
    tool = tool or {}
    section = tool.get("watcher", {})
    chosen = name or (section.get("name") if isinstance(section, Mapping) else None) or "heuristic"
    targets = _entry_point_targets()
    target = targets.get(chosen)
    if target is None:
        raise ConfigError(f"unknown watcher {chosen!r}; available: {', '.join(sorted(targets))}")
    module_name, _, attribute = target.partition(":")
    factory: WatcherFactory = getattr(import_module(module_name), attribute)
    options = watcher_options(tool, chosen)
    options.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return factory(options)
