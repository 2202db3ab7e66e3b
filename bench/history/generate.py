"""A realistic, labelled month of test runs, written into a ledger through the runner API.

Seeded and deterministic. The full size is about 176 runs over 30 days of ~1,330 tests in 65
classes (with parametrised ids): ~120 runs on ``main`` (of which 16 re-run the commit before
them), 25 short-lived PR branches of 1-3 runs, forked from main as it was; the failure causes
of ``causes.py`` (fixed, regressed, ongoing, PR-only, merged from a PR, flaky, two outages);
a stale PR branch, forked while ``billing-5xx`` existed, whose runs come at the end (after the
fix: its failures must not reopen main's issue); tracebacks whose line numbers move as commits
change code, through checkouts in two places; ~17 planted duration changes (1.25x-4x,
improvements, reverted regressions) on tests with 5-30% noise, and one-off 3x spikes.

The labels are written beside the ledger (``<ledger>.labels.json``, see ``write_history``):
the cause of every failing result, the flaky tests and the lookalikes, the change points of
each test (position in main's runs, direction), what each cause's issue should end as.

Run: ``python bench/history/generate.py [--small] [--db sqlite:///PATH] [--seed N]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from causes import CAUSES, PAIRS, Cause, Frame

from testledger import api
from testledger.model import Status, TestResult

__all__ = ["FULL", "SMALL", "Size", "write_history"]

START = datetime(2026, 11, 2, 6, 0, tzinfo=timezone.utc)
SUITE = "larder"
AREAS = (
    "billing",
    "checkout",
    "orders",
    "inventory",
    "streaming",
    "chat",
    "notify",
    "llm",
    "catalog",
    "search",
    "uploads",
    "pricing",
    "reports",
    "auth",
    "ui",
)
#: Classes made for one cause, with their tests' function and parameter ids.
SPECIAL = {
    "llm-aliases": (
        "tests/llm/test_aliases.py",
        "TestAliases",
        "test_resolve_alias",
        ("sonnet", "haiku", "opus", "mini", "nano", "max"),
    ),
    "reports-export": (
        "tests/reports/test_export.py",
        "TestExport",
        "test_export_rows",
        ("csv", "json", "xlsx", "parquet"),
    ),
    "search-rank": ("tests/search/test_rank.py", "TestRank", "test_top_results", ()),
    "checkout-cart": ("tests/checkout/test_cart.py", "TestCart", "test_cart_currency", ()),
    "search-order": ("tests/search/test_order.py", "TestOrder", "test_stable_order", ()),
}
CHECKOUTS = ("/home/runner/work/larder/larder/", "/builds/acme/larder/")
PYTHON = "/opt/hostedtoolcache/Python/3.12.7/x64/"
#: (factor, noise, where (share of main's runs), reverted at or None)
PLANTED = (
    (1.25, 0.05, 0.30, None),
    (1.25, 0.15, 0.55, None),
    (1.5, 0.20, 0.40, None),
    (1.5, 0.30, 0.60, None),
    (2.0, 0.30, 0.25, None),
    (3.0, 0.10, 0.50, None),
    (4.0, 0.30, 0.80, None),
    (0.5, 0.10, 0.35, None),
    (0.7, 0.05, 0.65, None),
    (0.6, 0.20, 0.45, None),
    (0.4, 0.30, 0.75, None),
    (2.0, 0.10, 0.30, 0.50),
    (1.6, 0.05, 0.60, 0.78),
    (2.5, 0.20, 0.15, 0.35),
)
NOISES = (0.05, 0.1, 0.15, 0.2, 0.3)


@dataclass(frozen=True)
class Size:
    classes_per_area: int
    tests_per_class: int
    main_commits: int
    reruns: int
    pr_branches: int
    days: int
    spikes: int


FULL = Size(4, 15, 104, 16, 25, 30, 40)
SMALL = Size(1, 12, 48, 8, 10, 14, 8)


@dataclass
class Test:
    test_id: str
    path: str
    function: str
    area: str
    retried_class: bool
    base: float
    noise: float
    changes: list[tuple[int, float]] = field(default_factory=list)  # (position, factor)


@dataclass
class RunPlan:
    key: str
    branch: str
    commit: str
    commit_index: int  # the main commit its code is (a PR branch: the one it forked from)
    at: datetime
    position: int | None  # position among main's runs
    branch_index: int | None = None
    rerun: bool = False


def _tests(size: Size, rng: random.Random) -> list[Test]:
    tests: list[Test] = []
    for area in AREAS:
        for c in range(size.classes_per_area):
            path = f"tests/{area}/test_{area}_{c}.py"
            klass = f"Test{area.title()}{'ABCDEFGH'[c]}"
            retried = (len(tests) // size.tests_per_class) % 7 == 0
            for t in range(size.tests_per_class):
                function = f"test_{area}_case_{t}"
                params = ("",) if t % 4 else tuple(f"[p{p}]" for p in range(3))
                for param in params:
                    tests.append(
                        _test(
                            f"{path}::{klass}::{function}{param}",
                            path,
                            function,
                            area,
                            retried,
                            rng,
                        )
                    )
    for area, (path, klass, function, params) in SPECIAL.items():
        for param in params or ("",):
            suffix = f"[{param}]" if param else ""
            tests.append(
                _test(f"{path}::{klass}::{function}{suffix}", path, function, area, False, rng)
            )
    return tests


def _test(
    test_id: str, path: str, function: str, area: str, retried: bool, rng: random.Random
) -> Test:
    base = min(20.0, max(0.02, rng.lognormvariate(math.log(0.4), 1.0)))
    return Test(test_id, path, function, area, retried, round(base, 4), rng.choice(NOISES))


def _plan_runs(size: Size, rng: random.Random) -> list[RunPlan]:
    """Main's commits (some re-run), the PR branches, oldest first."""
    span = timedelta(days=size.days)
    step = span / size.main_commits
    rerun_after = set(rng.sample(range(3, size.main_commits - 2), size.reruns))
    plans: list[RunPlan] = []
    for i in range(size.main_commits):
        at = START + step * i + timedelta(minutes=rng.randint(0, 30))
        commit = hashlib.sha1(f"main-{i}".encode()).hexdigest()
        plans.append(RunPlan("", "main", commit, i, at, None))
        if i in rerun_after:
            plans.append(
                RunPlan("", "main", commit, i, at + timedelta(minutes=47), None, rerun=True)
            )
    n = size.pr_branches
    for b in range(n):
        fork = int((b + 0.5) / n * size.main_commits * 0.92)
        runs = 1 + rng.randrange(3)
        if b == n - 2:  # merged later: forked shortly before its cause reaches main
            fork, runs = int(0.88 * size.main_commits), 2
        first = START + step * fork + timedelta(hours=1)
        if b == n - 1:  # stale: forked while billing-5xx existed, the last runs of all
            fork, runs = int(0.3 * size.main_commits), 2
            first = START + step * size.main_commits + timedelta(hours=1)
        name = f"pr/{301 + b * 7}-{('fix', 'feat', 'chore')[b % 3]}-{b}"
        for r in range(runs):
            commit = hashlib.sha1(f"{name}-{r}".encode()).hexdigest()
            plans.append(RunPlan("", name, commit, fork, first + timedelta(hours=2 * r), None, b))
    plans.sort(key=lambda p: p.at)
    position = 0
    for index, plan in enumerate(plans):
        plan.key = f"history-{index:04d}"
        if plan.branch == "main":
            plan.position = position
            position += 1
    return plans


def _active(cause: Cause, commit_index: int, commits: int) -> bool:
    return any(start * commits <= commit_index < end * commits for start, end in cause.windows)


def _line(frame: Frame, commit_index: int) -> int:
    seed = zlib.crc32(f"{frame[0]}:{frame[1]}".encode())
    return 12 + seed % 300 + 3 * (commit_index // (5 + seed % 7))


def _traceback(
    test: Test,
    cause: Cause,
    path: tuple[Frame, ...],
    message: str,
    plan: RunPlan,
    rng: random.Random,
) -> str:
    checkout = CHECKOUTS[zlib.crc32(plan.key.encode()) % 2]
    frames = [(test.path, test.function), *path, cause.raised_in]
    lines = ["Traceback (most recent call last):"]
    for file, func in frames:
        lines.append(
            f'  File "{checkout}{file}", line {_line((file, func), plan.commit_index)}, in {func}'
        )
        lines.append(f"    result = {func.strip('_<>')}(request, timeout={rng.randint(1, 9)})")
    for file, func in cause.library:
        lines.append(f'  File "{PYTHON}{file}", line {_line((file, func), 0)}, in {func}')
        lines.append("    raise")
    lines.append(f"{cause.exception}: {message}")
    return "\n".join(lines)


def _pytest_traceback(test: Test, message: str, plan: RunPlan) -> str:
    line = _line((test.path, test.function), plan.commit_index)
    address = zlib.crc32(test.test_id.encode())
    return (
        f"self = <{test.path[:-3].replace('/', '.')}.X object at 0x7f{address:08x}>\n\n"
        f"    def {test.function}(self):\n>       {message.splitlines()[0]}\n"
        f"E       AssertionError: {message}\n\n{test.path}:{line}: AssertionError"
    )


@dataclass
class History:
    size: Size
    seed: int
    tests: list[Test]
    plans: list[RunPlan]
    cause_tests: dict[str, list[Test]]
    outage_position: dict[str, int]
    spikes: set[tuple[str, int]]


def _assign(size: Size, rng: random.Random) -> History:
    tests = _tests(size, rng)
    plans = _plan_runs(size, rng)
    by_area: dict[str, list[Test]] = {}
    for test in tests:
        by_area.setdefault(test.area, []).append(test)
    used: set[str] = set()
    scale = len(tests) / 1330
    cause_tests: dict[str, list[Test]] = {}
    for cause in CAUSES:
        if cause.kind == "outage":
            continue
        pool = [t for a in cause.areas for t in by_area.get(a, []) if t.test_id not in used]
        if cause.pytest_style:
            pool = [t for t in pool if t.function == cause.raised_in[1]]
        if cause.kind == "flaky":
            pool = [t for t in pool if not t.retried_class]
        count = len(cause.rates) if cause.rates else max(1, round(cause.tests * scale))
        if cause.kind in ("branch",) and cause.pytest_style:
            chosen = sorted(pool, key=lambda t: t.test_id)[-count:]
        else:
            chosen = rng.sample(pool, min(count, len(pool)))
        if cause.name != "model-alias":  # the PR's alias bug may hit the same tests
            used.update(t.test_id for t in chosen)
        cause_tests[cause.name] = chosen
    quiet = [t for t in tests if t.test_id not in used and t.base >= 0.3]
    main_runs = sum(1 for p in plans if p.branch == "main")
    for (factor, noise, where, revert), test in zip(
        PLANTED, rng.sample(quiet, len(PLANTED)), strict=True
    ):
        test.noise = noise
        test.changes.append((int(where * main_runs), factor))
        if revert is not None:
            test.changes.append((int(revert * main_runs), 1 / factor))
    commits = size.main_commits
    outage_position = {}
    for cause in CAUSES:
        if cause.kind == "outage":
            commit = int(cause.windows[0][0] * commits)
            first = next(p for p in plans if p.branch == "main" and p.commit_index == commit)
            outage_position[cause.name] = first.position or 0
    spiky = rng.sample([t for t in tests if not t.changes], size.spikes)
    spikes = {(t.test_id, rng.randrange(10, main_runs - 10)) for t in spiky}
    return History(size, rng.randrange(1 << 30), tests, plans, cause_tests, outage_position, spikes)


def _duration(test: Test, position: int, rng: random.Random, spiked: bool) -> float:
    level = test.base
    for at, factor in test.changes:
        if position >= at:
            level *= factor
    value = level * math.exp(rng.gauss(0.0, test.noise))
    return round(value * (3.0 if spiked else 1.0), 4)


def _fork_position(history: History, plan: RunPlan) -> int:
    """The main position whose code a PR branch runs (its durations)."""
    for p in history.plans:
        if p.branch == "main" and p.commit_index >= plan.commit_index:
            return p.position or 0
    return 0


def _run_results(
    history: History, plan: RunPlan, rng: random.Random
) -> tuple[list[TestResult], list[list[Any]]]:
    """The results of one run and the labels of its failures (test_id, attempt, cause)."""
    commits = history.size.main_commits
    branches = sorted({p.branch_index for p in history.plans if p.branch_index is not None})
    failing: dict[str, tuple[Cause, float, bool]] = {}  # test -> cause, rate, retried
    for cause in CAUSES:
        if cause.kind == "outage":
            if plan.position is not None and history.outage_position[cause.name] == plan.position:
                for test in rng.sample(history.tests, int(cause.share * len(history.tests))):
                    failing.setdefault(test.test_id, (cause, 1.0, False))
            continue
        tests = history.cause_tests[cause.name]
        if cause.kind == "flaky":
            for test, rate, retried in zip(tests, cause.rates, cause.retried, strict=False):
                failing.setdefault(test.test_id, (cause, rate, retried))
            continue
        on_branch = (
            cause.branch_slot is not None
            and plan.branch_index is not None
            and (branches[cause.branch_slot] == plan.branch_index)
        )
        if cause.kind == "branch":
            active = on_branch
        elif cause.kind == "merged":
            active = on_branch or (
                plan.branch == "main" and _active(cause, plan.commit_index, commits)
            )
        else:
            active = _active(cause, plan.commit_index, commits)
        if active:
            for test in tests:
                failing.setdefault(test.test_id, (cause, 1.0, test.retried_class))
    position = plan.position if plan.position is not None else _fork_position(history, plan)
    results: list[TestResult] = []
    labels: list[list[Any]] = []
    for test in history.tests:
        spiked = plan.position is not None and (test.test_id, plan.position) in history.spikes
        duration = _duration(test, position, rng, spiked)
        found = failing.get(test.test_id)
        attempts = 1
        if found is not None:
            cause, rate, retried = found
            attempts = 2 if retried else 1
            fails = [rng.random() < rate for _ in range(attempts)]
            if rate >= 1.0:
                fails = [True] * attempts
            for attempt, failed in enumerate(fails, 1):
                if not failed:
                    results.append(_passing(test, duration, attempt))
                    break
                results.append(_failing(test, cause, plan, duration, attempt, rng))
                labels.append([test.test_id, attempt, cause.name])
            continue
        results.append(_passing(test, duration, 1))
    return results, labels


def _tool(test: Test) -> tuple[str, str]:
    module, _, rest = test.test_id.partition("::")
    return module, rest


def _passing(test: Test, duration: float, attempt: int) -> TestResult:
    tool, variation = _tool(test)
    return TestResult(
        test.test_id, tool, variation, Status.PASS, duration_secs=duration, attempt=attempt
    )


def _failing(
    test: Test, cause: Cause, plan: RunPlan, duration: float, attempt: int, rng: random.Random
) -> TestResult:
    tool, variation = _tool(test)
    message = cause.message(rng)
    if cause.pytest_style:
        traceback = _pytest_traceback(test, message, plan)
    else:
        traceback = _traceback(test, cause, rng.choice(cause.paths), message, plan, rng)
    status = Status.ERROR if cause.status == "ERROR" else Status.FAIL
    return TestResult(
        test.test_id,
        tool,
        variation,
        status,
        duration_secs=round(duration * 0.3, 4),
        error_type=cause.exception,
        error_message=message,
        traceback=traceback,
        attempt=attempt,
    )


def _expected(history: History, branch_names: dict[int, str]) -> dict[str, dict[str, Any]]:
    branches = sorted(branch_names)
    out: dict[str, dict[str, Any]] = {}
    for cause in CAUSES:
        status = {
            "fixed": "RESOLVED",
            "outage": "RESOLVED",
            "regressed": "OPEN",
            "ongoing": "OPEN",
            "branch": "OPEN",
            "merged": "OPEN",
        }.get(cause.kind)
        branch = None
        if cause.kind == "branch" and cause.branch_slot is not None:
            branch = branch_names[branches[cause.branch_slot]]
        out[cause.name] = {
            "kind": cause.kind,
            "exception": cause.exception,
            "raised_in": f"{cause.raised_in[0]}:{cause.raised_in[1]}",
            "expected_status": status,
            "expected_branch": branch,
            "tests": [t.test_id for t in history.cause_tests.get(cause.name, [])],
        }
    return out


def write_history(
    url: str,
    size: Size = FULL,
    seed: int = 19,
    *,
    labels: Path | None = None,
    quiet: bool = False,
) -> Path:
    """Write the history into the (new, empty) ledger at ``url`` and its labels beside it
    (``<sqlite file>.labels.json``; ``labels`` is required for another database); returns the
    labels' path."""
    rng = random.Random(seed)
    history = _assign(size, rng)
    results_dir = Path(tempfile.mkdtemp(prefix="testledger-history-"))
    ledger = api.open_ledger(url, results_dir=results_dir)
    runs: list[dict[str, Any]] = []
    failures: list[list[Any]] = []
    branch_names = {p.branch_index: p.branch for p in history.plans if p.branch_index is not None}
    started = time.monotonic()
    try:
        for plan in history.plans:
            results, failed = _run_results(history, plan, rng)
            run = ledger.start_run(
                branch=plan.branch,
                commit=plan.commit,
                suite=SUITE,
                run_key=plan.key,
                started_at=plan.at,
                detect_environment=False,
                detect_issues=False,
                batch_size=5000,
            )
            for result in results:
                run.record(result)
            run.finish()
            run_id = run.run_id
            runs.append(
                {
                    "id": run_id,
                    "key": plan.key,
                    "branch": plan.branch,
                    "commit": plan.commit,
                    "position": plan.position,
                    "rerun": plan.rerun,
                    "at": plan.at.isoformat(),
                }
            )
            failures.extend([run_id, *label] for label in failed)
            if not quiet:
                print(
                    f"\r{len(runs)}/{len(history.plans)} runs", end="", file=sys.stderr, flush=True
                )
    finally:
        ledger.close()
        shutil.rmtree(results_dir, ignore_errors=True)  # the runs' JSON files: not needed
    if not quiet:
        print(f" in {time.monotonic() - started:.1f} s", file=sys.stderr)
    flaky = [t.test_id for c in CAUSES if c.kind == "flaky" for t in history.cause_tests[c.name]]
    rates = {
        t.test_id: r
        for c in CAUSES
        if c.kind == "flaky"
        for t, r in zip(history.cause_tests[c.name], c.rates, strict=False)
    }
    outage_hit = sorted({f[1] for f in failures if f[3] in history.outage_position})
    lookalikes = {
        "broken_on_one_branch": [t.test_id for t in history.cause_tests["cart-currency-pr"]],
        "failing_while_bug_existed": [t.test_id for t in history.cause_tests["rank-index"]],
    }
    labels_data = {
        "seed": seed,
        "size": size.__dict__,
        "default_branch": "main",
        "suite": SUITE,
        "tests": len(history.tests),
        "runs": runs,
        "causes": _expected(history, branch_names),
        "pairs": [list(p) for p in PAIRS],
        "stale_branch": branch_names[max(branch_names)],
        "failures": failures,
        "flaky_tests": flaky,
        "flaky_rates": rates,
        "outage_hit_tests": outage_hit,
        "lookalikes": lookalikes,
        "change_points": {
            t.test_id: [
                [at, "regression" if f > 1 else "improvement", round(f, 3)] for at, f in t.changes
            ]
            for t in history.tests
            if t.changes
        },
        "noise": {t.test_id: t.noise for t in history.tests if t.changes},
        "spikes": sorted([list(s) for s in history.spikes]),
    }
    path = labels or labels_path(url)
    path.write_text(json.dumps(labels_data, indent=1))
    return path


def labels_path(url: str) -> Path:
    """Where the labels of a SQLite ledger are: beside it."""
    if not url.startswith("sqlite:///"):
        raise SystemExit("the labels of a ledger that is not a SQLite file need --labels PATH")
    return Path(url[len("sqlite:///") :] + ".labels.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="ledger URL (default: a new SQLite file in a temp dir)")
    parser.add_argument("--small", action="store_true", help="~70 runs of ~200 tests")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--labels", type=Path, help="default: <sqlite file>.labels.json")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='history-')}/ledger.db"
    path = write_history(url, SMALL if args.small else FULL, args.seed, labels=args.labels)
    data = json.loads(path.read_text())
    print(
        f"ledger: {url}\nlabels: {path}\n{len(data['runs'])} runs, {data['tests']} tests, "
        f"{len(data['failures'])} failing results, {len(data['causes'])} causes"
    )


if __name__ == "__main__":
    main()
