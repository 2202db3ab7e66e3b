"""Library results as JSON-ready data: what ``--json``, the web API and the MCP tools print.

Every result the library returns is a dataclass (or a list or dict of them) deriving from
:class:`JsonData`, so ``result.as_json()`` gives plain dicts, lists, strings and numbers:
datetimes become ISO-8601 UTC (``...Z``), paths strings, enums their values.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import datetime
from pathlib import PurePath
from typing import Any

__all__ = ["JsonData", "as_json", "is_finite_json"]


def is_finite_json(value: Any) -> bool:
    """Whether free-form JSON (as Python's reader or pydantic's gives it) holds no NaN and no
    Infinity: both readers take them, and no database's JSON does."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(is_finite_json(item) for item in value.values())
    if isinstance(value, list):
        return all(is_finite_json(item) for item in value)
    return True


def as_json(value: Any) -> Any:
    """Dataclasses, lists and dicts of them, datetimes, paths and enums as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): as_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [as_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


class JsonData:
    """Mixin of the library's result dataclasses: :meth:`as_json` gives JSON-ready data."""

    __slots__ = ()

    def as_json(self) -> Any:
        """This result as plain dicts, lists, strings and numbers (see :func:`as_json`)."""
        return as_json(self)
