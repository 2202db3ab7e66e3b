"""Memory that stays flat however large the file: importing and parsing reports of 10x the size,
against peers measured in the same run.

    python bench/memory.py [--n 1000000] [--parse-n 200000]

(a) ``testledger import`` of a JUnit file of ``--n`` testcases into SQLite, in a fresh process:
    its peak RSS, and that of the process parsing the file for it (ingest.parse_ahead), against
    the same import of a file a tenth the size (the peer; at least 60,000 testcases, so that
    it parses ahead too). Goal: at most 25 MB more. Linux (it reads /proc).
(b) testledger's JUnit parser over ``--parse-n`` testcases, under tracemalloc: the peak, and
    the growth between the testcases at 25% and 95% of the file, against the standard library's
    iterparse clearing each element (the textbook streaming parse). Goal: peak under 20 MB,
    growth under 1 MB.
(c) testledger's pytest-reportlog parser over ``--parse-n`` tests (three gzipped JSON lines
    each), under tracemalloc: the peak, against ``json.loads`` of one line at a time. Goal: peak
    under 20 MB.

These were the test suite's 1,000,000- and 200,000-row checks; the suite keeps bounded versions
of them (tests/ingest). Benchmarks report, they do not gate: each goal line says MET or NOT MET
and the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package

from tests.bigfiles import write_import_junit, write_parse_junit, write_reportlog

from testledger.ingest.formats import junit, reportlog

IMPORT_GROWTH_GOAL_MB = 25
PARSE_PEAK_GOAL_MB = 20
PARSE_GROWTH_GOAL_MB = 1


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


# -- (a) import: peak RSS of the importing process and of its parse-ahead child -------------------


# The import in a process of its own, which reports its peak memory and its parse-ahead child's.
# VmHWM, not ru_maxrss: a spawned process's ru_maxrss counts the pages of the process that
# spawned it (this one, with its test files), which would hide what the import itself takes.
_MEASURED_IMPORT = """
import sys
from pathlib import Path

from testledger.cli import main
from testledger.ingest import parse_ahead

VMHWM = "next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:'))"
child_peak = Path(sys.argv[3])
parse_ahead._CHILD = (
    f"import atexit, pathlib; atexit.register(lambda: pathlib.Path({str(child_peak)!r})"
    f".write_text({VMHWM})); " + parse_ahead._CHILD
)
code = main(["--db", sys.argv[1], "import", sys.argv[2]])
print(eval(VMHWM), child_peak.read_text() if child_peak.exists() else 0)
sys.exit(code)
"""


def import_peak_rss_mb(folder: Path, count: int) -> tuple[float, float, float]:
    """(seconds, peak RSS of the importing process, of its parse-ahead child) in MB."""
    report = folder / f"import-{count}.xml"
    write_import_junit(report, count)
    command = [
        sys.executable,
        "-c",
        _MEASURED_IMPORT,
        f"sqlite:///{folder}/import-{count}.db",
        str(report),
        str(folder / f"child-peak-{count}"),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=folder)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"import of {count:,} testcases failed:\n{done.stderr}")
    own, child = (int(kib) / 1024 for kib in done.stdout.split()[-2:])
    report.unlink()
    return seconds, own, child


def bench_import(folder: Path, count: int) -> None:
    peer_count = max(count // 10, 60_000)
    peer_secs, peer_own, peer_children = import_peak_rss_mb(folder, peer_count)
    secs, own, children = import_peak_rss_mb(folder, count)
    for label, n, s, o, c in (
        ("peer", peer_count, peer_secs, peer_own, peer_children),
        ("ours", count, secs, own, children),
    ):
        print(
            f"(a) import {n:>9,} testcases  {s:6.1f} s   peak RSS {o:6.1f} MB importing, "
            f"{c:6.1f} MB parsing ahead   ({label})"
        )
    growth = max(own - peer_own, children - peer_children)
    print(
        f"(a) {count / peer_count:.0f}x the testcases: peak RSS ratio {own / peer_own:.2f} "
        f"importing, {children / peer_children:.2f} parsing ahead; grew {growth:+.1f} MB "
        f"(goal <= +{IMPORT_GROWTH_GOAL_MB} MB: {verdict(growth <= IMPORT_GROWTH_GOAL_MB)})"
    )


# -- (b), (c) parsers under tracemalloc ----------------------------------------------------------


def traced(results: Iterable[object], marks: tuple[int, ...]) -> tuple[int, float, dict[int, int]]:
    """(items, peak MB, traced bytes at each mark) while consuming ``results``."""
    gc.collect()
    tracemalloc.start()
    try:
        samples: dict[int, int] = {}
        count = 0
        for count, _ in enumerate(results, start=1):
            if count in marks:
                samples[count] = tracemalloc.get_traced_memory()[0]
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    return count, peak, samples


def iterparse_testcases(path: Path) -> Iterable[str]:
    for _event, element in ET.iterparse(path, events=("end",)):
        if element.tag == "testcase":
            yield element.get("name") or ""
            element.clear()


def bench_junit(folder: Path, count: int) -> None:
    path = folder / "parse.xml"
    write_parse_junit(path, count)
    marks = (count // 4, count * 95 // 100)
    timed: dict[str, tuple[float, float, float]] = {}
    sides: dict[str, Callable[[], Iterable[object]]] = {
        "peer": lambda: iterparse_testcases(path),
        "ours": lambda: junit.parse(path).results,
    }
    for name, results in sides.items():
        start = time.perf_counter()
        seen, peak, samples = traced(results(), marks)
        assert seen == count, (name, seen)
        growth = (samples[marks[1]] - samples[marks[0]]) / 1e6
        timed[name] = (time.perf_counter() - start, peak, growth)
    size = path.stat().st_size / 1e6
    for name, (secs, peak, growth) in timed.items():
        label = "iterparse + clear" if name == "peer" else "testledger junit "
        print(
            f"(b) {label} {count:,} testcases ({size:.0f} MB)  {secs:5.1f} s   peak {peak:5.2f} MB"
            f"   grew {growth:+.3f} MB over {marks[1] - marks[0]:,}   ({name})"
        )
    _, peak, growth = timed["ours"]
    met = peak < PARSE_PEAK_GOAL_MB and growth < PARSE_GROWTH_GOAL_MB
    print(
        f"(b) peak ratio {peak / timed['peer'][1]:.2f} of iterparse's "
        f"(goal: peak < {PARSE_PEAK_GOAL_MB} MB, growth < {PARSE_GROWTH_GOAL_MB} MB: "
        f"{verdict(met)})"
    )


def json_lines(path: Path) -> Iterable[object]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def bench_reportlog(folder: Path, tests: int) -> None:
    path = folder / "parse.jsonl.gz"
    write_reportlog(path, tests)
    peaks: dict[str, float] = {}
    for name, results in (
        ("peer", lambda: json_lines(path)),
        ("ours", lambda: reportlog.parse(path).results),
    ):
        start = time.perf_counter()
        _, peak, _ = traced(results(), ())
        peaks[name] = peak
        label = "json.loads per line   " if name == "peer" else "testledger reportlog  "
        print(
            f"(c) {label} {tests:,} tests  {time.perf_counter() - start:5.1f} s   "
            f"peak {peak:5.2f} MB   ({name})"
        )
    met = peaks["ours"] < PARSE_PEAK_GOAL_MB
    print(
        f"(c) peak ratio {peaks['ours'] / peaks['peer']:.2f} of one line at a time "
        f"(goal: peak < {PARSE_PEAK_GOAL_MB} MB: {verdict(met)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="testcases to import")
    parser.add_argument("--parse-n", type=int, default=200_000, help="testcases to parse")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        bench_import(folder, args.n)
        bench_junit(folder, args.parse_n)
        bench_reportlog(folder, args.parse_n)


if __name__ == "__main__":
    main()
