"""The ``testledger`` command line: thin commands over :mod:`testledger.api`.

Each command lives in a module of this package, imported only when the command runs
(:mod:`testledger.cli.registry` names the module of every command; add a row there for a new
one).
"""

from testledger.cli.app import app, run_app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``testledger`` script; returns the exit code."""
    return run_app(argv)
