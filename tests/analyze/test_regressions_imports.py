"""numpy (about 0.1 s to import) is loaded only where change points are computed: not by the
pytest plugin's import in every pytest session, nor by the CLI's, nor by issue detection's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testledger import Ledger
from tests.histories import scripted_run

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


# -- importing ahead: the pytest plugin's writer, while the tests run --------------------------

#: min_runs' default is 5: a change needs 5 runs on each side, so the series of a suite and
#: branch are analysed from its 10th run on.
SERIES_FROM_RUN = 10


def _history(ledger: Ledger, finished: int, *, last_detected: bool = True) -> int:
    """``finished`` runs of one suite, then one more left as the writer holds it while the
    tests run (or finished without detection): its id."""
    for index in range(finished + 1):
        last = index == finished
        run = scripted_run(ledger, index, detect_issues=not last or last_detected)
        run.record(tool_name="calc", variation="basic", status="PASS", duration_secs=1.0)
        run.record(tool_name="calc", variation="other", status="PASS", duration_secs=2.0)
        if not last:
            run.finish()
        elif not last_detected:
            run.finish()
            return run.run_id or 0
    assert run.run_id is not None
    return run.run_id


def _in_fresh_interpreter(url: str, results: Path, code: str) -> str:
    prologue = (
        "import sys\n"
        "from testledger import Ledger\n"
        f"ledger = Ledger({url!r}, results_dir={str(results)!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", prologue + code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("earlier", "imported"), [(SERIES_FROM_RUN - 2, False), (SERIES_FROM_RUN - 1, True)]
)
def test_import_ahead_imports_numpy_only_when_the_runs_detection_will_need_it(
    ledger: Ledger, tmp_path: Path, earlier: int, imported: bool
) -> None:
    run_id = _history(ledger, earlier)
    code = (
        "from testledger.analyze.pipeline import import_ahead\n"
        f"import_ahead(ledger.engine(), ledger.settings, {run_id})\n"
        "print('numpy' in sys.modules)"
    )
    assert _in_fresh_interpreter(ledger.url, tmp_path / "results", code) == str(imported)


def test_detection_over_baselines_leaves_numpy_ma_alone(ledger: Ledger, tmp_path: Path) -> None:
    """np.unique imports numpy.ma (16 ms) on its first call: the screening against the
    baselines, which every detection with history runs, does without it."""
    run_id = _history(ledger, SERIES_FROM_RUN + 1, last_detected=False)
    code = (
        "from testledger.analyze.pipeline import detect_after_recording\n"
        f"detect_after_recording(ledger.engine(), ledger.settings, [{run_id}])\n"
        "from testledger.analyze.regressions import baselines\n"
        "print('numpy' in sys.modules, 'numpy.ma' in sys.modules)"
    )
    assert _in_fresh_interpreter(ledger.url, tmp_path / "results", code) == "True False"
