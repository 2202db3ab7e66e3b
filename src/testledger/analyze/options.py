"""Detection settings from the project's configuration: the rules file and
``[tool.testledger.detect]``, and ``[tool.testledger.regressions]``.

[tool.testledger]
default_branch = "main"            # issues seen only on other branches are theirs (the default:
                                   # main, else master; analyze.detect)

[tool.testledger.detect]
rules = ".testledger/rules.toml"   # the default; a missing default file means "no rules"
auto_resolve_after = 3             # passing runs before an OPEN issue is resolved

[tool.testledger.regressions]      # change points in per-test metrics (analyze.regressions)
p_value = 0.001                    # significance of a change (t-test)
window = 50                        # runs per E-divisive window
min_magnitude = 0.10               # smallest relative change reported (memory: 0.5 at least,
                                   # being the process's RSS; analyze.regressions.metrics)
min_change = { duration = 0.05 }   # smallest absolute change per metric, in its unit (0: none);
                                   # defaults: duration 0.05 s, memory 2 MB, cpu 5 (points),
                                   # tokens 5, cost 0.0001 (USD), quality 0.5
min_runs = 5                       # runs on each side of a change; the window a return needs
metrics = ["duration", "memory", "cpu", "tokens", "cost", "quality"]
history = 200                      # latest runs of a suite and branch analysed
detect = true                      # with testledger detect and after every recorded run
"""

from __future__ import annotations

from math import inf
from pathlib import Path
from typing import Any

from testledger.analyze.detect import DetectConfig
from testledger.analyze.issues.rules import RuleSet, load_rules
from testledger.analyze.regressions.metrics import METRICS, RegressionConfig
from testledger.config import Settings
from testledger.errors import ConfigError

__all__ = ["detection_settings", "regression_settings"]

_KEYS = {"rules", "auto_resolve_after"}


def detection_settings(
    settings: Settings, rules_path: Path | None = None
) -> tuple[RuleSet, DetectConfig]:
    table: Any = settings.tool.get("detect", {})
    where = f"{settings.pyproject}: [tool.testledger.detect]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    after = table.get("auto_resolve_after", 3)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ConfigError(f"{where}: auto_resolve_after must be a whole number >= 0")
    branch = settings.tool.get("default_branch")
    if branch is not None and (not isinstance(branch, str) or not branch.strip()):
        raise ConfigError(f"{settings.pyproject}: default_branch must be a non-empty string")
    config = DetectConfig(
        auto_resolve_after=after,
        regressions=regression_settings(settings),
        default_branch=branch.strip() if branch else None,
    )
    if rules_path is None and "rules" in table:
        rules_path = settings.project_root / str(table["rules"])
    # No path: the project's .testledger/rules.toml when it exists, else no rules.
    return load_rules(rules_path, root=settings.project_root), config


_REGRESSION_KEYS = {
    "p_value",
    "window",
    "min_magnitude",
    "min_change",
    "min_runs",
    "metrics",
    "history",
    "detect",
}


def regression_settings(settings: Settings) -> RegressionConfig:
    """``[tool.testledger.regressions]`` (every key optional)."""
    table: Any = settings.tool.get("regressions", {})
    where = f"{settings.pyproject}: [tool.testledger.regressions]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - _REGRESSION_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    default = RegressionConfig()

    def number(key: str, low: float, high: float, whole: bool = False) -> Any:
        value = table.get(key, getattr(default, key))
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            raise ConfigError(f"{where}: {key} must be {kind} from {low} to {high}")
        return value

    metrics = table.get("metrics", list(default.metrics))
    if not isinstance(metrics, list) or not all(m in METRICS for m in metrics) or not metrics:
        raise ConfigError(f"{where}: metrics must be a list of {', '.join(METRICS)}")
    detect = table.get("detect", True)
    if not isinstance(detect, bool):
        raise ConfigError(f"{where}: detect must be true or false")
    min_change = _min_change(table.get("min_change", {}), where)
    min_runs = number("min_runs", 2, 1000, whole=True)
    window = number("window", 2 * min_runs, 100_000, whole=True)
    return RegressionConfig(
        p_value=float(number("p_value", 1e-12, 0.5)),
        window=window,
        min_magnitude=float(number("min_magnitude", 0.0, 100.0)),
        min_change={**default.min_change, **min_change},
        min_runs=min_runs,
        metrics=tuple(dict.fromkeys(metrics)),
        history=number("history", 2 * min_runs, 1_000_000, whole=True),
        detect=detect,
    )


def _min_change(table: Any, where: str) -> dict[str, float]:
    """``min_change``: a table of metric = smallest absolute change (0 or more)."""
    message = f"{where}: min_change must be a table of metric = number >= 0 ({', '.join(METRICS)})"
    if not isinstance(table, dict):
        raise ConfigError(message)
    for name, value in table.items():
        if name not in METRICS:
            raise ConfigError(
                f"{where}: min_change: unknown metric {name!r} ({', '.join(METRICS)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < inf:
            raise ConfigError(message)
    return {name: float(value) for name, value in table.items()}
