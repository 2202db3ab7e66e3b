"""The ``testledger`` command line: thin commands over :mod:`testledger.api`."""

# Imported for their side effect of adding commands to the app; the modules import only
# testledger.cli.app, never this package, so there is no import cycle.
from testledger.cli import (  # noqa: F401
    compare,
    db,
    demo,
    export,
    html,
    imports,
    issues,
    mcp,
    regressions,
    runs,
    trend,
    watch,
)
from testledger.cli.app import app, run_app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``testledger`` script; returns the exit code."""
    return run_app(argv)
