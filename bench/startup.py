"""Start-up time of the command line (issue 19, point 5).

    python bench/startup.py [--repeat 15]

Times, as new processes the way a user starts them (the installed ``testledger`` script):

* ``testledger --help`` (goal: 150 ms);
* ``testledger runs`` and ``testledger show`` on a small SQLite ledger of 5 imported runs
  (goal: 300 ms each);
* the peer, measured in the same run: ``python -c pass`` (the interpreter's own start-up), and
  the ratio of each command to it.

Bytecode is written and warmed first (``PYTHONDONTWRITEBYTECODE`` is unset for every variant
alike), as an installed package has it. Prints the median and the 90th percentile of each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS_MS = {"--help": 150.0, "runs": 300.0, "show": 300.0}


def _junit(index: int) -> str:
    cases = "".join(
        f'<testcase classname="tests.test_mod{c % 5}" name="test_{c}" time="0.01">'
        + (f'<failure message="boom {index}">trace</failure>' if c % 7 == index else "")
        + "</testcase>"
        for c in range(40)
    )
    stamp = f"2026-12-0{index + 1}T10:00:00"
    return (
        f'<testsuites><testsuite name="bench" tests="40" timestamp="{stamp}">{cases}'
        "</testsuite></testsuites>"
    )


def _small_ledger(folder: Path, env: dict[str, str], script: str) -> str:
    url = f"sqlite:///{folder / 'ledger.db'}"
    files = []
    for index in range(5):
        path = folder / f"run{index}.xml"
        path.write_text(_junit(index), encoding="utf-8")
        files.append(str(path))
    subprocess.run(
        [script, "import", *files, "--db", url, "--results-dir", str(folder / "results")],
        check=True,
        env=env,
        capture_output=True,
    )
    return url


def _time(argv: list[str], env: dict[str, str], repeat: int) -> list[float]:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm: bytecode, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    script = shutil.which("testledger") or str(Path(sys.executable).with_name("testledger"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["COLUMNS"] = "120"
    with tempfile.TemporaryDirectory(prefix="testledger-startup-") as tmp:
        folder = Path(tmp)
        url = _small_ledger(folder, env, script)
        ledger = ["--db", url, "--results-dir", str(folder / "results")]
        variants = {
            "python -c pass (peer)": [sys.executable, "-c", "pass"],
            "--help": [script, "--help"],
            "runs": [script, "runs", *ledger],
            "show": [script, "show", *ledger],
        }
        measured = {name: _time(argv, env, args.repeat) for name, argv in variants.items()}
    peer = statistics.median(measured["python -c pass (peer)"])
    print(f"start-up, {args.repeat} runs each (ms): median / p90, x the interpreter's start-up")
    failed = False
    for name, times in measured.items():
        median = statistics.median(times)
        line = f"  testledger {name:<22}" if name in GOALS_MS else f"  {name:<33}"
        line += f"{median:7.1f} / {_p90(times):7.1f}   x{median / peer:5.1f}"
        if name in GOALS_MS:
            met = median <= GOALS_MS[name]
            failed |= not met
            line += f"   goal <= {GOALS_MS[name]:.0f} ms: {'MET' if met else 'NOT MET'}"
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
