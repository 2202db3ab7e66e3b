"""A large, realistic ledger for ``bench/reports.py``, written with bulk writes.

Deterministic (seeded): 20,000 runs of 50 tests each by default, over two suites and three
branches, one run every ~20 minutes. Tests belong to four tools and call one of three
providers/models (a fifth of them call none), with tokens, cost, memory and CPU. About 3% of
results fail: a few dozen distinct errors (each fingerprinted once with testledger's own
fingerprint, and grouped into one issue with its occurrences and events), a few flaky tests that
fail now and then and pass on a retry, and a few regressions that fail many tests for a while.
Half of the tests are watched (``watcher_quality`` and the observation); every fifth run also
writes ``watcher_insights`` rows for them.

Writes go straight to the drivers, every table in one transaction: ``executemany`` on SQLite,
``COPY`` on PostgreSQL, with explicit ids so results, occurrences and insights can point at each
other without reading anything back. On PostgreSQL foreign keys are not checked during the load
(``session_replication_role = replica``): results are streamed before their runs, whose totals
are only known once their results are made. Every row is consistent by construction.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from testledger.analyze.issues.fingerprint import CURRENT_VERSION, fingerprint
from testledger.model import TestResult
from testledger.store.types import format_utc

__all__ = ["Ledger", "LedgerShape", "load_ledger"]

SUITES = ("tool-validation", "integration")
BRANCHES = (("main", 0.6), ("develop", 0.25), ("feature/streaming", 0.15))
TOOLS = ("chat", "codereview", "consensus", "planner")
MODELS = (
    ("glm", "glm-4.5-air", 0.6e-6),
    ("kimi", "kimi-k2", 1.1e-6),
    ("openai", "gpt-4o-mini", 0.4e-6),
)
FLAKY_PER_SUITE = 3
START = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)

RUN_COLUMNS = (
    "id", "run_timestamp", "branch_name", "commit_hash", "watcher_model", "total_tests",
    "tests_passed", "tests_failed", "tests_skipped", "pass_rate", "avg_watcher_quality",
    "total_duration_secs", "total_cost_usd", "created_at", "run_key", "suite", "status",
    "started_at", "finished_at", "tests_errored", "total_tokens", "ci_provider", "host", "source",
    "detected_at", "duration_secs",
)  # fmt: skip
RESULT_COLUMNS = (
    "id", "run_id", "test_id", "attempt", "tool_name", "variation", "provider", "model", "status",
    "execution_status", "duration_secs", "memory_mb", "cpu_percent", "tokens_total",
    "tokens_input", "tokens_output", "cost_usd", "watcher_quality", "watcher_observations",
    "error_type", "error_message", "traceback", "started_at", "created_at", "fingerprint",
    "fingerprint_version",
)  # fmt: skip
ISSUE_COLUMNS = (
    "id", "issue_code", "title", "description", "category", "priority", "status",
    "affected_tools", "first_detected_run_id", "resolved_run_id", "created_at", "updated_at",
    "resolved_at", "origin", "lifecycle", "last_seen_run_id", "last_seen_at",
)  # fmt: skip
FINGERPRINT_COLUMNS = ("issue_id", "fingerprint", "fingerprint_version", "created_at")
OCCURRENCE_COLUMNS = (
    "issue_id", "run_id", "test_result_id", "severity", "created_at", "test_id", "fingerprint",
    "flaky",
)  # fmt: skip
EVENT_COLUMNS = ("issue_id", "run_id", "kind", "status_from", "status_to", "note", "actor",
                 "created_at")  # fmt: skip
INSIGHT_COLUMNS = (
    "test_result_id", "quality_score", "strengths", "weaknesses", "anomalies", "recommendations",
    "confidence_level", "confidence", "watcher", "raw_observation", "created_at",
)  # fmt: skip


@dataclass(frozen=True)
class LedgerShape:
    runs: int = 20_000
    tests_per_run: int = 50
    seed: int = 7


@dataclass(frozen=True)
class _Error:
    kind: str  # "plain" (one tool's bug), "flaky" (timeouts), "regression" (a bad window)
    tool: str
    error_type: str
    message: str
    traceback: str
    fingerprint: str
    title: str


@dataclass(frozen=True)
class _Test:
    suite: str
    index: int
    test_id: str
    tool: str
    variation: str
    provider: str | None
    model: str | None
    price: float
    watched: bool
    flaky: bool


@dataclass
class _IssueState:
    first_run: int | None = None
    last_run: int | None = None
    last_at: str | None = None
    tools: set[str] = field(default_factory=set)


def _traceback(module: str, funcs: list[str], error_type: str, message: str) -> str:
    frames = "".join(
        f'  File "/builds/team/app/{module}.py", line {40 + 17 * depth}, in {func}\n'
        f"    value = {func}(client, payload, timeout=timeout)\n"
        for depth, func in enumerate(funcs)
    )
    return f"Traceback (most recent call last):\n{frames}{error_type}: {message.splitlines()[0]}\n"


_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec")  # fmt: skip


def _word(number: int) -> str:
    """A word of letters only for ``number`` (alpha, bravo, ..., bravoalpha, ...)."""
    high, low = divmod(number, len(_WORDS))
    return (_WORDS[high - 1] if high else "") + _WORDS[low]


def _errors(rng: random.Random) -> list[_Error]:
    kinds = [("plain", i) for i in range(30)] + [("flaky", i) for i in range(6)]
    kinds += [("regression", i) for i in range(4)]
    # Each error is told apart by a word ({w}), not only by its numbers, which fingerprints
    # normalise away.
    templates = (
        ("AssertionError", "assert response.status == 200, got {n} from /v1/{tool}/{w}"),
        ("KeyError", "'{tool}_{w}_field' missing from the model's JSON answer"),
        ("ValueError", "could not parse the {tool} {w} plan: expected {n} steps"),
        ("RuntimeError", "consensus of {n} models failed for {tool} {w}"),
    )
    errors = []
    for number, (kind, k) in enumerate(kinds):
        tool = TOOLS[k % len(TOOLS)]
        if kind == "flaky":
            error_type = "TimeoutError"
            message = f"{tool} provider call timed out (budget {k + 1} of the retry policy)"
        else:
            error_type, template = templates[number % len(templates)]
            message = template.format(tool=tool, n=number * 7 + 3, w=_word(number))
        funcs = [f"handle_{tool}", f"step_{_word(number)}", f"call_{k % 5}"]
        trace = _traceback(f"{tool}_service", funcs, error_type, message)
        print_ = fingerprint(
            TestResult(
                test_id="x", tool_name=tool, variation="x", status="FAIL",
                error_type=error_type, error_message=message, traceback=trace,
            )
        ).hash  # fmt: skip
        title = f"{error_type}: {message}"[:120]
        errors.append(_Error(kind, tool, error_type, message, trace, print_, title))
    rng.shuffle(errors)
    return errors


def _tests(shape: LedgerShape) -> dict[str, list[_Test]]:
    found: dict[str, list[_Test]] = {}
    for suite in SUITES:
        tests = []
        for index in range(shape.tests_per_run):
            tool = TOOLS[index % len(TOOLS)]
            plain = index % 5 == 4  # a fifth of the tests call no LLM
            provider, model, price = (None, None, 0.0) if plain else MODELS[index % len(MODELS)]
            variation = f"case_{index:02d}" + ("" if provider is None else f"_{provider}")
            tests.append(
                _Test(
                    suite=suite,
                    index=index,
                    test_id=f"tests/{suite}/test_{tool}.py::test_{variation}",
                    tool=tool,
                    variation=variation,
                    provider=provider,
                    model=model,
                    price=price,
                    watched=not plain and index % 2 == 0,
                    flaky=index in (7, 19, 33)[:FLAKY_PER_SUITE],
                )
            )
        found[suite] = tests
    return found


@dataclass
class Ledger:
    """The generated rows, table by table; results are streamed (``results()``) and the other
    tables fill up as a side effect, so each is complete once ``results()`` is exhausted."""

    shape: LedgerShape
    runs: list[tuple[Any, ...]] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)
    fingerprints: list[tuple[Any, ...]] = field(default_factory=list)
    occurrences: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    insights: list[tuple[Any, ...]] = field(default_factory=list)
    result_count: int = 0

    def results(self) -> Iterator[tuple[Any, ...]]:
        shape = self.shape
        rng = random.Random(shape.seed)
        errors = _errors(rng)
        tests = _tests(shape)
        by_tool = {
            tool: [e for e in errors if e.kind == "plain" and e.tool == tool] for tool in TOOLS
        }
        flaky_errors = [e for e in errors if e.kind == "flaky"]
        regressions = [e for e in errors if e.kind == "regression"]
        # Each regression breaks a few tests of one suite for a window of ~300 runs.
        windows = [
            (rng.randrange(shape.runs // 10, shape.runs - 400), SUITES[i % 2], error)
            for i, error in enumerate(regressions)
        ]
        weights = [1.0 / (rank + 1) for rank in range(8)]  # a few errors are most of them
        issue_of = {error.fingerprint: number + 1 for number, error in enumerate(errors)}
        states = {error.fingerprint: _IssueState() for error in errors}
        result_id = 0
        commit_counter = {name: 0 for name, _ in BRANCHES}
        commit_left = {name: 0 for name, _ in BRANCHES}
        branch_names = [name for name, _ in BRANCHES]
        branch_weights = [weight for _, weight in BRANCHES]
        for run_id in range(1, shape.runs + 1):
            at = START + timedelta(minutes=20 * run_id, seconds=rng.randrange(300))
            stamp = format_utc(at)
            branch = rng.choices(branch_names, branch_weights)[0]
            if commit_left[branch] == 0:  # a commit is run 1-4 times (reruns show flakiness)
                commit_counter[branch] += 1
                commit_left[branch] = rng.randint(1, 4)
            commit_left[branch] -= 1
            commit = hashlib.sha1(f"{branch}{commit_counter[branch]}".encode()).hexdigest()
            suite = SUITES[run_id % 2]
            active = [e for start, s, e in windows if s == suite and start <= run_id < start + 300]
            totals = {"PASS": 0, "FAIL": 0, "SKIP": 0, "ERROR": 0}
            quality_sum = quality_n = tokens_sum = 0
            cost_sum = duration_sum = 0.0
            insights_run = run_id % 5 == 0
            for test in tests[suite]:
                attempts: list[tuple[str, _Error | None]] = []
                roll = rng.random()
                if active and test.index % 9 == 0:
                    attempts.append(("FAIL", active[0]))
                elif test.flaky and roll < 0.2:
                    error = flaky_errors[(test.index + len(suite)) % len(flaky_errors)]
                    attempts.append(("FAIL", error))
                    if rng.random() < 0.6:
                        attempts.append(("PASS", None))  # passed on a retry
                elif roll < 0.017:
                    plain = by_tool[test.tool]
                    attempts.append(("FAIL", rng.choices(plain, weights[: len(plain)])[0]))
                elif roll < 0.02:
                    attempts.append(("ERROR", rng.choice(by_tool[test.tool])))
                elif roll < 0.03:
                    attempts.append(("SKIP", None))
                else:
                    attempts.append(("PASS", None))
                totals[attempts[-1][0]] += 1
                for attempt, (status, error) in enumerate(attempts, start=1):
                    result_id += 1
                    duration = round(rng.uniform(0.2, 8.0), 3)
                    tokens = cost = quality = observation = None
                    if test.provider is not None and status != "SKIP":
                        tokens = rng.randint(300, 6000)
                        cost = round(tokens * test.price, 6)
                        tokens_sum += tokens
                        cost_sum += cost
                    if test.watched and status != "SKIP":
                        quality = max(1, min(10, round(rng.gauss(3 if error else 7.5, 1.3))))
                        quality_sum += quality
                        quality_n += 1
                        observation = json.dumps(
                            {"quality_score": quality, "confidence": 0.8, "watcher": "glm-4.5-air"}
                        )
                        if insights_run:
                            self.insights.append(
                                (
                                    result_id, quality, ["clear answer"],
                                    ["slow"] if duration > 6 else [], [],
                                    ["cache the prompt"], "high", 0.8, "glm-4.5-air",
                                    observation, stamp,
                                )
                            )  # fmt: skip
                    duration_sum += duration
                    fp = error.fingerprint if error is not None else None
                    if error is not None:
                        flaky = test.flaky and attempts[-1][0] == "PASS"
                        self.occurrences.append(
                            (
                                issue_of[fp],
                                run_id,
                                result_id,
                                "high",
                                stamp,
                                test.test_id,
                                fp,
                                flaky,
                            )
                        )
                        state = states[error.fingerprint]
                        state.first_run = state.first_run or run_id
                        state.last_run, state.last_at = run_id, stamp
                        state.tools.add(test.tool)
                    yield (
                        result_id, run_id, test.test_id, attempt, test.tool, test.variation,
                        test.provider, test.model, status,
                        "success" if status == "PASS" else "failed",
                        duration, rng.randint(60, 900), round(rng.uniform(1, 95), 2),
                        tokens, None if tokens is None else tokens * 3 // 4,
                        None if tokens is None else tokens // 4, cost, quality, observation,
                        None if error is None else error.error_type,
                        None if error is None else error.message,
                        None if error is None else error.traceback,
                        stamp, stamp, fp, None if fp is None else CURRENT_VERSION,
                    )  # fmt: skip
            executed = len(tests[suite]) - totals["SKIP"]
            finished = format_utc(at + timedelta(seconds=duration_sum))
            self.runs.append(
                (
                    run_id, stamp, branch, commit, "glm-4.5-air", len(tests[suite]),
                    totals["PASS"], totals["FAIL"], totals["SKIP"],
                    round(100.0 * totals["PASS"] / executed, 2) if executed else None,
                    round(quality_sum / quality_n, 2) if quality_n else None,
                    round(duration_sum), round(cost_sum, 4), stamp, f"bench-{run_id}", suite,
                    "aborted" if run_id % 397 == 0 else "finished", stamp, finished,
                    totals["ERROR"], tokens_sum, "github", "ci-1", "runner", finished,
                    round(duration_sum, 3),
                )
            )  # fmt: skip
        self.result_count = result_id
        self._issues(errors, states, issue_of)

    def _issues(
        self, errors: list[_Error], states: dict[str, _IssueState], issue_of: dict[str, int]
    ) -> None:
        last_run = self.shape.runs
        priorities = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
        for error in errors:
            number = issue_of[error.fingerprint]
            state = states[error.fingerprint]
            if state.first_run is None:
                continue
            first_at = self.runs[state.first_run - 1][1]
            resolved = error.kind == "regression" and state.last_run is not None
            resolved = resolved and state.last_run < last_run - 100
            status = "RESOLVED" if resolved else "OPEN"
            self.issues.append(
                {
                    "id": number,
                    "issue_code": f"TL-{number:04d}",
                    "title": error.title,
                    "description": f"{error.error_type} in {error.tool} ({error.kind})",
                    "category": "test_infrastructure" if error.kind == "flaky" else "production",
                    "priority": priorities[number % 4],
                    "status": status,
                    "affected_tools": sorted(state.tools),
                    "first_detected_run_id": state.first_run,
                    "resolved_run_id": state.last_run + 1 if resolved else None,
                    "created_at": first_at,
                    "updated_at": state.last_at,
                    "resolved_at": state.last_at if resolved else None,
                    "origin": "detected",
                    "lifecycle": "recurring",
                    "last_seen_run_id": state.last_run,
                    "last_seen_at": state.last_at,
                }
            )
            self.fingerprints.append((number, error.fingerprint, CURRENT_VERSION, first_at))
            self.events.append(
                (number, state.first_run, "created", None, "OPEN", None, "testledger", first_at)
            )
            if resolved:
                self.events.append(
                    (number, state.last_run, "resolved", "OPEN", "RESOLVED", "fix deployed",
                     "ci-bot", state.last_at)
                )  # fmt: skip


def _sqlite_array(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list) else value


def load_ledger(driver: Any, dialect: str, shape: LedgerShape) -> Ledger:
    """Write the whole ledger through a raw DB-API connection (sqlite3 or psycopg), in one
    transaction, into a freshly migrated, empty database."""
    ledger = Ledger(shape)
    tables = (
        ("test_runs", RUN_COLUMNS, lambda: ledger.runs),
        (
            "issues",
            ISSUE_COLUMNS,
            lambda: [tuple(i[c] for c in ISSUE_COLUMNS) for i in ledger.issues],
        ),
        ("issue_fingerprints", FINGERPRINT_COLUMNS, lambda: ledger.fingerprints),
        ("issue_occurrences", OCCURRENCE_COLUMNS, lambda: ledger.occurrences),
        ("issue_events", EVENT_COLUMNS, lambda: ledger.events),
        ("watcher_insights", INSIGHT_COLUMNS, lambda: ledger.insights),
    )
    if dialect == "sqlite":
        driver.execute("PRAGMA foreign_keys=OFF")
        driver.execute("PRAGMA synchronous=OFF")
        driver.execute("BEGIN")
        marks = ", ".join("?" * len(RESULT_COLUMNS))
        driver.executemany(
            f"INSERT INTO test_results ({', '.join(RESULT_COLUMNS)}) VALUES ({marks})",
            ledger.results(),
        )
        for table, columns, rows in tables:
            marks = ", ".join("?" * len(columns))
            driver.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                ([_sqlite_array(v) for v in row] for row in rows()),
            )
        driver.execute("COMMIT")
        return ledger
    with driver.cursor() as cursor:
        # Results are streamed before their runs exist: skip FK triggers during the load.
        cursor.execute("SET session_replication_role = replica")
        with cursor.copy(f"COPY test_results ({', '.join(RESULT_COLUMNS)}) FROM STDIN") as copy:
            for row in ledger.results():
                copy.write_row(row)
        for table, columns, rows in tables:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows():
                    copy.write_row(row)
        cursor.execute("SET session_replication_role = DEFAULT")
        for table in ("test_runs", "test_results", "issues", "issue_fingerprints",
                      "issue_occurrences", "issue_events", "watcher_insights"):  # fmt: skip
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )
    driver.commit()
    return ledger
