"""How figures are written for people: durations at a precision that suits their size, and
sparklines. Shared by the command line and the reports (markdown, HTML)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["SPARK_LEVELS", "format_seconds", "sparkline"]


def format_seconds(value: float | None) -> str:
    """A duration at a precision that suits its size: 0.84, 12.3, 1,234 ("-" when unknown).
    Short runs are the common case, and the integer column showed them all as 0."""
    if value is None:
        return "-"
    if abs(value) < 10:
        return f"{value:.2f}"
    if abs(value) < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | int | None]) -> str:
    """One character per value, scaled between the smallest and largest value; None (and NaN)
    is a space. A flat series sits mid-height: no level says "high" or "low" when all are equal.
    """
    present = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not present:
        return " " * len(values)
    low, high = min(present), max(present)
    top = len(SPARK_LEVELS) - 1
    chars = []
    for value in values:
        if value is None or math.isnan(float(value)):
            chars.append(" ")
        elif high == low:
            chars.append(SPARK_LEVELS[3])
        else:
            level = round((float(value) - low) / (high - low) * top)
            chars.append(SPARK_LEVELS[level])
    return "".join(chars)
