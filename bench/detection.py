"""Detection on a realistic labelled history: generate it, detect, score against the goals.

Generates the labelled month of ``bench/history/generate.py`` into a new ledger (or reuses one
with ``--db``, whose labels are beside it), runs issue detection over every run oldest first
through ``testledger.api.detect(all_runs=True)``, and prints the scores of
``bench/history/score.py`` (grouping, flaky, change points, lifecycle, branches) with each goal
and MET / NOT MET. Timings are printed too (noisy on a shared machine).

``--migrate``: the ledger moves to the current fingerprint algorithm half-way: the first half
of the runs is detected with version 1 alone (a ledger from before), the rest with the shipped
selection (the current version, version 1 its secondary). Printed besides the scores: issues
opened after the move for a cause that already had one (goal 0: no issue split or duplicated),
and how many issues the first run under the new selection re-fingerprinted, in how long.

``--breakdown``: detection's phases timed (``PHASES``), per run.

Run: ``python bench/detection.py [--small] [--db URL --labels PATH] [--seed N] [--keep]
[--migrate] [--breakdown]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "history"))

from generate import FULL, SMALL, labels_path, write_history
from score import score

from testledger import api
from testledger.analyze.issues.fingerprint import (
    CURRENT_VERSION,
    SECONDARY_VERSION,
    select_algorithms,
)
from testledger.analyze.options import detection_settings
from testledger.analyze.pipeline import detect_runs


def detect_migrating(url: str, labels: Path) -> None:
    """Detect the first half of the runs with version 1 alone, the rest with the shipped
    selection, and print the issues the move opened for causes that already had one."""
    data = json.loads(labels.read_text())
    runs = [run["id"] for run in sorted(data["runs"], key=lambda run: run["at"])]
    half = len(runs) // 2
    with api.open_ledger(url) as ledger:
        # The pipeline itself: api.detect would catch up on every undetected run at once.
        rules, config = detection_settings(ledger.settings)
        select_algorithms(1)
        try:
            detect_runs(ledger.engine(), runs[:half], rules, config)
        finally:
            select_algorithms(CURRENT_VERSION, SECONDARY_VERSION)
        before = {issue.code for issue in api.list_issues(ledger)}
        # The first run under the new selection re-fingerprints the issues version 1 opened
        # (analyze.issues.refingerprint): timed apart from the runs after it.
        started = time.monotonic()
        [first] = detect_runs(ledger.engine(), runs[half : half + 1], rules, config)
        first_secs = time.monotonic() - started
        started = time.monotonic()
        detect_runs(ledger.engine(), runs[half + 1 :], rules, config)
        rest_secs = (time.monotonic() - started) / max(1, len(runs) - half - 1)
        print(
            f"first run under v{CURRENT_VERSION}: {len(first.refingerprinted)} issues "
            f"re-fingerprinted, detected in {first_secs:.2f} s (the runs after it: "
            f"{rest_secs:.2f} s each)"
        )
        opened = {
            issue.code: issue for issue in api.list_issues(ledger) if issue.code not in before
        }
        causes_before: set[str] = set()
        run_before = set(runs[:half])
        for run_id, _, _, cause in data["failures"]:
            if run_id in run_before:
                causes_before.add(cause)
        duplicates = []
        for code in opened:
            detail = api.issue_detail(ledger, code, occurrences=1_000_000)
            keys = {(o.run_id, o.test_id, o.attempt) for o in detail.occurrences}
            causes = {c for r, t, a, c in data["failures"] if (r, t, a) in keys}
            if causes & causes_before:
                duplicates.append(f"{code} ({', '.join(sorted(causes))})")
    verdict = "MET" if not duplicates else "NOT MET"
    print(
        f"moved to v{CURRENT_VERSION} after run {runs[half - 1]}: {len(before)} issues before, "
        f"{len(opened)} opened after; issues opened after the move for a cause seen before: "
        f"{len(duplicates)} (goal 0) {verdict}" + (f": {duplicates}" if duplicates else "")
    )


#: Detection's phases, timed by ``--breakdown``: (module, function) wrapped where detect.py
#: calls them (the names it imported), and what each is.
PHASES = (
    ("detect", "detect_run", "the whole run"),
    ("detect", "_failures", "rows to results, fingerprints, rule matches, hash updates"),
    ("fingerprint", "fingerprint", "  of which fingerprinting (the current algorithm)"),
    ("detect", "_mark_flaky", "flaky marks (retries and analyze.flaky's history)"),
    ("detect", "known_issues", "issue look-up by rule and fingerprint, per chunk"),
    ("detect", "_issue_for", "issues by secondary fingerprint, or new"),
    ("detect", "_record_occurrences", "occurrence inserts"),
    ("detect", "_update_seen_issues", "lifecycle of the issues seen"),
    ("detect", "auto_resolve", "auto-resolution"),
    ("detect", "refingerprint_issues", "re-fingerprinting (pending check)"),
    ("detect", "open_regression_issue_ids", "open regression issues"),
    ("detect", "detect_regressions", "metric regressions (analyze.regressions)"),
)


def time_phases() -> dict[str, list[float]]:
    """Wrap detection's phases (``PHASES``) with timers for the rest of the process; returns
    phase -> the seconds of each call."""
    import testledger.analyze.detect as detect
    import testledger.analyze.pipeline as pipeline
    from testledger.analyze.issues.fingerprint import current_algorithm

    spent: dict[str, list[float]] = {}

    def timed(name: str, function: Any) -> Any:
        calls = spent.setdefault(name, [])

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                calls.append(time.perf_counter() - started)

        return wrapper

    for module, name, _ in PHASES:
        if module == "fingerprint":
            algorithm = current_algorithm()
            algorithm.fingerprint = timed(name, algorithm.fingerprint)  # type: ignore[method-assign]
        elif hasattr(detect, name):  # a phase an older detect.py does not have is left out
            setattr(detect, name, timed(name, getattr(detect, name)))
    # The pipeline calls detect_run by the name it imported.
    pipeline.detect_run = detect.detect_run
    return spent


def print_phases(spent: dict[str, list[float]]) -> None:
    runs = max(1, len(spent.get("detect_run", [])))
    print(f"detection per run, mean over {runs} runs (ms; noisy: a shared machine):")
    for _, name, what in PHASES:
        if name in spent:
            total = sum(spent[name])
            print(f"  {1000 * total / runs:9.1f}  {name:28s} {what} ({len(spent[name])} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="the small history (~75 runs)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--db", help="a ledger already holding a generated history")
    parser.add_argument("--labels", type=Path, help="its labels (default: beside a SQLite file)")
    parser.add_argument("--no-detect", action="store_true", help="score only (already detected)")
    parser.add_argument("--keep", action="store_true", help="keep the generated ledger")
    parser.add_argument("--migrate", action="store_true", help="move from v1 half-way")
    parser.add_argument("--breakdown", action="store_true", help="time detection's phases")
    args = parser.parse_args()
    spent = time_phases() if args.breakdown else None
    folder = None
    if args.db:
        url = args.db
        labels = args.labels or labels_path(url)
    else:
        folder = Path(tempfile.mkdtemp(prefix="testledger-detection-"))
        url = f"sqlite:///{folder}/ledger.db"
        started = time.monotonic()
        labels = write_history(url, SMALL if args.small else FULL, args.seed)
        print(f"generated {url} in {time.monotonic() - started:.1f} s (labels: {labels})")
    try:
        if args.migrate:
            started = time.monotonic()
            detect_migrating(url, labels)
            print(f"detected in {time.monotonic() - started:.1f} s")
        elif not args.no_detect:
            started = time.monotonic()
            with api.open_ledger(url) as ledger:
                reports = api.detect(ledger, all_runs=True)
            print(f"detected {len(reports)} runs in {time.monotonic() - started:.1f} s")
        if spent is not None:
            print_phases(spent)
        started = time.monotonic()
        scores = score(url, labels)
        print(f"scored in {time.monotonic() - started:.1f} s\n{scores.render()}")
    finally:
        if folder is not None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder is not None:
            print(f"kept {folder}")


if __name__ == "__main__":
    main()
