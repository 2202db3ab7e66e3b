"""The tool-validation suite's watcher observations as testledger's :class:`WatcherObservation`.

``suggestions`` become recommendations and ``anomalies`` stay anomalies; a ``quality_score`` of 0
is the watcher's own failure, recorded as a failed observation (no score), and so is the suite's
placeholder when it could not parse the watcher's answer; ``raw`` is always the whole file.
"""

from __future__ import annotations

from typing import Any

from testledger.ingest._common import opt_number, opt_str
from testledger.ingest.tool_validation.context import json_strings, parse_time
from testledger.model import WatcherObservation

__all__ = ["watcher_from_observation"]

_UNPARSED_WATCHER = "Unable to parse watcher response"


def watcher_from_observation(obs: dict[str, Any], watcher: str | None = None) -> WatcherObservation:
    """One watcher observation file (or embedded ``watcher_observation``) as the model's type."""
    analysis = obs.get("watcher_analysis")
    analysis = analysis if isinstance(analysis, dict) else obs
    score = analysis.get("quality_score")
    confidence = opt_number(analysis.get("confidence"))
    suggestions = json_strings(analysis.get("suggestions"))
    common: dict[str, Any] = {
        "raw": obs,
        "watcher": opt_str(obs.get("watcher_model")) or watcher,
        "created_at": parse_time(obs.get("timestamp")),
        "strengths": json_strings(analysis.get("strengths")),
        "weaknesses": json_strings(analysis.get("weaknesses")),
    }
    error: str | None = None
    if score == 0:
        error = "watcher failed (quality_score 0)"
    elif suggestions == [_UNPARSED_WATCHER] and not analysis.get("observations"):
        error = f"watcher response unparseable (placeholder quality_score {score!r})"
    elif isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 10:
        error = f"watcher quality_score not an integer 1-10: {score!r}"
    if error is not None:
        # A failed watcher's anomalies are its own error text, and its confidence a placeholder.
        return WatcherObservation(quality_score=None, error=error, **common)
    if confidence is not None and not 0.0 <= confidence <= 1.0:
        confidence = None  # kept in raw; a percentage or garbage is not ours to rescale
    return WatcherObservation(
        quality_score=score,
        anomalies=json_strings(analysis.get("anomalies")),
        recommendations=suggestions,
        confidence=confidence,
        **common,
    )
