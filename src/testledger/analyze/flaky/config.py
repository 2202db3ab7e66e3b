"""``[tool.testledger.flaky]``: the options of flaky-test detection (see
:mod:`testledger.analyze.flaky.finder` for the rules they tune)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from testledger.errors import ConfigError

__all__ = ["FlakyConfig"]

_WHOLE = ("window", "min_flips", "min_runs", "expire_after_passes", "outage_min_tests", "history")
_NUMBERS = ("outage_share", "half_life", "neighbour_share", "min_confidence")


@dataclass(frozen=True)
class FlakyConfig:
    """``[tool.testledger.flaky]``; see the finder's docstring for what each knob means.

    The first six tune the recent-window rules (same commit, retry, flips); the last four the
    score rule over a longer, decaying history: ``history`` counted runs read at most,
    ``half_life`` runs after which a run's weight halves, ``neighbour_share`` the share of the
    run's other tests failing at which a failure stops being evidence, and ``min_confidence``
    the confidence (0..1) the score rule needs (1 turns it off)."""

    window: int = 30
    min_flips: int = 3
    min_runs: int = 5
    outage_share: float = 0.5
    expire_after_passes: int = 30
    outage_min_tests: int = 5
    history: int = 200
    half_life: float = 200.0
    neighbour_share: float = 0.2
    min_confidence: float = 0.6

    def __post_init__(self) -> None:
        for name in _WHOLE:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"flaky.{name} must be an integer, not {value!r}")
        for name in _NUMBERS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"flaky.{name} must be a number, not {value!r}")
        # A flip needs two runs, so a window of one could never show one.
        if self.window < 2:
            raise ConfigError("flaky.window must be at least 2")
        if not 1 <= self.min_flips < self.window:
            raise ConfigError("flaky.min_flips must be at least 1 and less than flaky.window")
        if not 2 <= self.min_runs <= self.window:
            raise ConfigError("flaky.min_runs must be between 2 and flaky.window")
        if not 0 < self.outage_share <= 1:
            raise ConfigError("flaky.outage_share must be greater than 0 and at most 1")
        if self.expire_after_passes < 1:
            raise ConfigError("flaky.expire_after_passes must be at least 1")
        if self.outage_min_tests < 1:
            raise ConfigError("flaky.outage_min_tests must be at least 1")
        if not 2 <= self.history <= 5000:
            raise ConfigError("flaky.history must be between 2 and 5000")
        if self.half_life <= 0:
            raise ConfigError("flaky.half_life must be greater than 0")
        if not 0 < self.neighbour_share <= 1:
            raise ConfigError("flaky.neighbour_share must be greater than 0 and at most 1")
        if not 0 < self.min_confidence <= 1:
            raise ConfigError("flaky.min_confidence must be greater than 0 and at most 1")

    @classmethod
    def from_settings(cls, tool_table: Mapping[str, Any]) -> FlakyConfig:
        """The config from the ``[tool.testledger]`` table (``Settings.tool``): its ``flaky``
        sub-table, every key optional. The sub-table itself is accepted too (callers pass
        either): a mapping without a ``flaky`` key that names any flaky option is taken as
        the sub-table. Raises ConfigError on unknown keys or bad values."""
        known = {f.name for f in fields(cls)}
        if "flaky" in tool_table:
            table = tool_table["flaky"]
        elif known.intersection(tool_table):
            table = tool_table
        else:
            table = {}  # a [tool.testledger] table without a flaky section
        if not isinstance(table, Mapping):
            raise ConfigError("[tool.testledger.flaky] must be a table")
        unknown = sorted(str(key) for key in table if key not in known)
        if unknown:
            raise ConfigError(f"unknown [tool.testledger.flaky] key(s): {', '.join(unknown)}")
        return cls(**{str(key): value for key, value in table.items()})

    @property
    def keep(self) -> int:
        """Runs read per test: enough for the window and for the expiry check."""
        return max(self.window, self.expire_after_passes)

    @property
    def score_rule(self) -> bool:
        """Whether the score rule is on (``min_confidence`` below 1)."""
        return self.min_confidence < 1
