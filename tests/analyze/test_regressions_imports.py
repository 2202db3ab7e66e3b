"""numpy (about 0.1 s to import) is loaded only where change points are computed: not by the
pytest plugin's import in every pytest session, nor by the CLI's, nor by issue detection's."""

from __future__ import annotations

import subprocess
import sys

import pytest

IMPORTS = [
    # (statement run in a fresh interpreter, whether numpy ends up imported)
    ("import testledger.analyze", False),
    ("import testledger.record.pytest_plugin", False),
    ("import testledger.analyze.options, testledger.analyze.detect", False),
    ("import testledger.analyze.regressions.finder", False),
    ("import testledger.cli.app", False),  # registers every command, `regressions` included
    (
        "from testledger.analyze.regressions.finder import RegressionConfig; RegressionConfig()",
        False,
    ),
    # The modules that compute do load it: the check itself can tell.
    ("import testledger.analyze.regressions.changepoint", True),
    ("import testledger.analyze.regressions.metric_series", True),
    (
        "from testledger.analyze.regressions.finder import RegressionConfig as C;"
        " C().params('cpu')",
        True,
    ),
]


@pytest.mark.parametrize(("statement", "loads_numpy"), IMPORTS, ids=[s for s, _ in IMPORTS])
def test_numpy_is_imported_only_to_compute(statement: str, loads_numpy: bool) -> None:
    code = f"import sys\n{statement}\nprint('numpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == str(loads_numpy)
