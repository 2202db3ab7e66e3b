"""What the tool-validation suite's importer modules share: its names, the context a run is read
against, and helpers for the suite's loosely typed JSON (fields that may be missing or of any
type; a wrong type reads as empty rather than failing the import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from testledger.ingest._common import opt_str

__all__ = [
    "FORMAT",
    "SUITE",
    "ExaiContext",
    "json_list",
    "json_object",
    "json_strings",
    "parse_time",
]

FORMAT = "exai"
SUITE = "exai-tool-validation"


@dataclass
class ExaiContext:
    """What a run's results are read against: the suite config and the run's side files."""

    tool_provider: dict[str, str] = field(default_factory=dict)
    models: dict[str, list[str]] = field(default_factory=dict)
    #: The tools and variations the config names (to split ``<tool>_<variation>`` file names).
    tools: set[str] = field(default_factory=set)
    variations: set[str] = field(default_factory=set)
    watcher_model: str | None = None
    request_models: dict[tuple[str, str], str] = field(default_factory=dict)
    observations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: Every observation file read (by path), the file each of ``observations`` came from, and
    #: the files a result of the run took: the others are imported on their own (placed by
    #: time), never dropped.
    observation_files: dict[Path, dict[str, Any]] = field(default_factory=dict)
    observation_paths: dict[tuple[str, str], Path] = field(default_factory=dict)
    used_observations: set[Path] = field(default_factory=set)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    attributed: set[int] = field(default_factory=set)


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 stamp as an aware datetime; None when missing or unreadable."""
    text = opt_str(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # The suite writes UTC with a trailing Z; a naive stamp is taken as UTC too.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def json_strings(value: object) -> list[str]:
    """The non-empty strings of a JSON list (anything else: none)."""
    return [v for v in json_list(value) if isinstance(v, str) and v]


def json_object(value: object) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def json_list(value: object) -> list[Any]:
    """A JSON list, or an empty one for anything else."""
    return value if isinstance(value, list) else []
