"""The ``testledger`` command line: thin commands over the library."""

from testledger.cli.app import app, main

__all__ = ["app", "main"]
