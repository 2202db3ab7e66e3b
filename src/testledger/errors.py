"""testledger's typed exceptions. The CLI and web layers turn these into one-line messages."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatabaseUnavailable",
    "NotFound",
    "SchemaError",
    "TestledgerError",
]


class TestledgerError(Exception):
    """Base class: every error testledger raises on purpose, with a message fit for a user."""

    __test__ = False  # keep pytest from collecting it


class ConfigError(TestledgerError):
    """Bad configuration: an unparseable URL, a malformed pyproject section, a bad option."""


class DatabaseUnavailable(TestledgerError):
    """The database could not be reached (the message names it with its password masked)."""


class SchemaError(TestledgerError):
    """The database's schema is not one testledger can use as it is (needs ``db upgrade``)."""


class NotFound(TestledgerError):
    """A run, result or issue that was asked for does not exist."""
