"""The ``testledger`` command line: thin commands over :mod:`testledger.api`.

Each command lives in a module of this package, imported only when the command runs
(:mod:`testledger.cli.registry` names the module of every command; add a row there for a new
one).
"""

import gc

from testledger.cli.app import app, run_app
from testledger.common.own_process import tune_own_process

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``testledger`` script; returns the exit code."""
    if argv is None:
        # The script's own process (see tune_own_process).
        tune_own_process()
    code = run_app(argv)
    if argv is None:
        # The script (or ``python -m testledger``): the process ends next. The collector's last
        # pass at exit would walk every object the imports made, most of a small command's
        # tear-down (bench/startup.py); frozen, they are left to the process's end. Exit
        # handlers still run, and the ledger is closed already (run_app).
        gc.freeze()
    return code
