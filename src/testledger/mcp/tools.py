"""The MCP tools: each one call (or two) into ``testledger.api``, its answer bounded and shaped
by :mod:`testledger.mcp.shapes`.

A tool's input schema comes from its signature, its description from its docstring, and its
output schema from the answer type in its return annotation. A bad argument (an unknown run,
test or issue, a bad status) is a tool error carrying the library's message; the two write
tools refuse, with a tool error saying how to allow them, unless the server was started with
``--allow-writes``.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from testledger import api
from testledger.errors import TestledgerError
from testledger.mcp import answers, shapes
from testledger.mcp.bounds import MAX_LIMIT

__all__ = ["READ_ONLY_REFUSAL", "LedgerTools", "answer", "ledger_errors"]

P = ParamSpec("P")
R = TypeVar("R")

READ_ONLY_REFUSAL = (
    "this testledger MCP server is read-only: start it with `testledger mcp --allow-writes`"
    " to change issues or record observations"
)

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="The most items a list holds.")]
RunRef = Annotated[
    str | int | None, Field(description="A run id or run key; default: the latest run.")
]
Suite = Annotated[str | None, Field(description="Only runs of this suite.")]
Branch = Annotated[str | None, Field(description="Only runs of this branch.")]


def ledger_errors(func: Callable[P, R]) -> Callable[P, R]:
    """``func`` with the library's errors (and the database's) turned into tool errors that
    carry their message: a bad argument is answered, never a crash."""

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except TestledgerError as exc:
            raise ToolError(api.mask_urls_in(str(exc))) from None
        except SQLAlchemyError as exc:
            detail = api.mask_urls_in(" ".join(str(getattr(exc, "orig", None) or exc).split()))
            raise ToolError(f"database error: {detail}") from None

    return call


def answer(data: Any) -> CallToolResult:
    """A tool's result: its summary, then the whole answer as JSON text (for clients that read
    only text), and the answer as structured content."""
    return CallToolResult(
        content=[
            TextContent(type="text", text=data["summary"]),
            TextContent(type="text", text=json.dumps(data, ensure_ascii=False)),
        ],
        structured_content=data,
    )


class LedgerTools:
    """The tools over one ledger. Tool calls run in worker threads; the ledger's engine is
    opened once, by the first call (never creating a ledger that does not exist)."""

    def __init__(self, ledger: api.Ledger, *, allow_writes: bool = False) -> None:
        self.ledger = ledger
        self.allow_writes = allow_writes
        self._lock = threading.Lock()

    def opened(self) -> api.Ledger:
        with self._lock:
            self.ledger.engine(create=False)
        return self.ledger

    @ledger_errors
    def run_summary(
        self, run: RunRef = None, suite: Suite = None, branch: Branch = None, limit: Limit = 20
    ) -> Annotated[CallToolResult, answers.RunAnswer]:
        """One run (default: the latest, of a suite and branch when given): its totals, pass
        rate, cost, tokens and watcher quality (`run`), and its failing tests (`failing`:
        test_id, status, attempt, provider, model, error_type, first line of error_message,
        watcher_quality, result_id)."""
        detail = api.show_run(self.opened(), run, branch=branch, suite=suite)
        return answer(shapes.run_answer(detail, limit))

    @ledger_errors
    def list_runs(
        self,
        suite: Suite = None,
        branch: Branch = None,
        status: Annotated[
            str | None, Field(description="Only runs in this state: running, finished, aborted.")
        ] = None,
        since: Annotated[
            datetime | None,
            Field(description="Only runs started at or after this ISO-8601 time (UTC if naive)."),
        ] = None,
        limit: Limit = 20,
    ) -> Annotated[CallToolResult, answers.RunsAnswer]:
        """Recorded runs, newest first: id, run_key, suite, branch, commit, status, times,
        totals, pass_rate, cost, tokens, watcher quality. `more` says whether older runs
        match too."""
        found = api.list_runs(
            self.opened(), suite=suite, branch=branch, status=status, since=since, limit=limit + 1
        )
        return answer(shapes.runs_answer(found, limit))

    @ledger_errors
    def compare_runs(
        self,
        current: RunRef = None,
        baseline: Annotated[
            str | int | None,
            Field(description="The run to compare with; default: the previous run of its branch."),
        ] = None,
        baseline_branch: Annotated[
            str | None, Field(description="Compare with the latest run of this branch instead.")
        ] = None,
        limit: Limit = 20,
    ) -> Annotated[CallToolResult, answers.CompareAnswer]:
        """What changed between two runs (default: the latest against the previous run of its
        branch and suite): `new_failures` (with the issue each was grouped into), `fixed`,
        `still_failing`, `flaky_failures`, `slower`, `costlier`, `quality_down`, `added`,
        `removed` (each: test_id, provider, model, status_before/after, before/after values,
        issue_code, flaky, error), run `totals` before and after, and `providers`/`models`
        figures; `counts` holds every list's full length."""
        comparison = api.compare(self.opened(), current, baseline, baseline_branch=baseline_branch)
        return answer(shapes.compare_answer(comparison, limit))

    @ledger_errors
    def run_failures(
        self,
        run: RunRef = None,
        limit: Annotated[
            int, Field(ge=1, le=50, description="The most groups listed, largest first.")
        ] = 10,
        tests_per_group: Annotated[
            int, Field(ge=1, le=MAX_LIMIT, description="The most tests listed per group.")
        ] = 10,
    ) -> Annotated[CallToolResult, answers.FailuresAnswer]:
        """A run's failures (default: the latest run's) grouped by the issue each was grouped
        into, largest group first: issue_code (null: not grouped), title, status, priority,
        category, failures, flaky, tests, and one `representative` failure with its result_id,
        error_type, error_message and traceback (cut to their head and tail)."""
        found = api.run_failures(self.opened(), run, limit=limit, tests_per_group=tests_per_group)
        return answer(shapes.failures_answer(found))

    @ledger_errors
    def test_history(
        self,
        test: Annotated[
            str, Field(description="A test id, tool/variation, or a unique part of a test id.")
        ],
        suite: Suite = None,
        branch: Branch = None,
        limit: Limit = 20,
    ) -> Annotated[CallToolResult, answers.TestHistoryAnswer]:
        """One test as the LLM watcher sees it, in the latest run of its suite and branch:
        its recent `outcomes` (newest first: run_id, status, duration, memory, tokens, cost,
        error_type, watcher_quality, result_id, attempt), its `open_issues` and the change
        points recorded for its metrics (`changes`: metric, before/after mean, first_run_id,
        commit_range, issue_code)."""
        context = api.test_context(self.opened(), test, runs=limit, branch=branch, suite=suite)
        return answer(shapes.history_answer(context, limit))

    @ledger_errors
    def issue(
        self,
        code: Annotated[str, Field(description="The issue's code, e.g. PROD-MEDIUM-001.")],
        limit: Limit = 10,
    ) -> Annotated[CallToolResult, answers.IssueAnswer]:
        """One issue: its status, priority, category, lifecycle, root cause and resolution, its
        latest `occurrences` (run, test, result, error), `affected_tests`, its `events`
        (latest last), its fingerprints, and how the fingerprint of its latest failure is made
        (`fingerprint_explanation`: each part, normalised, the rules that fired)."""
        ledger = self.opened()
        detail = api.issue_detail(ledger, code, occurrences=limit)
        failed = [
            o.result_id
            for o in detail.occurrences
            if o.result_id is not None and o.status in ("FAIL", "ERROR")
        ]
        explained = api.explain_result(ledger, failed[0]) if failed else None
        return answer(shapes.issue_answer(detail, explained, limit))

    @ledger_errors
    def list_issues(
        self,
        status: Annotated[
            list[str],
            Field(description="Any of OPEN, IN_PROGRESS, RESOLVED, WONT_FIX; empty: all."),
        ] = [],  # noqa: B006 - a schema default, never mutated
        priority: Annotated[
            list[str], Field(description="Any of CRITICAL, HIGH, MEDIUM, LOW; empty: all.")
        ] = [],  # noqa: B006
        category: Annotated[
            list[str], Field(description="Any of these categories (e.g. performance); empty: all.")
        ] = [],  # noqa: B006
        tool: Annotated[str | None, Field(description="Only issues affecting this tool.")] = None,
        sort: Annotated[
            str, Field(description="priority, last-seen, occurrences, code or created.")
        ] = "priority",
        limit: Limit = 20,
    ) -> Annotated[CallToolResult, answers.IssuesAnswer]:
        """The issues board: code, title, status, priority, category, lifecycle, origin,
        affected_tools, occurrences, flaky_occurrences, first/last seen runs."""
        where = api.IssueFilter(
            statuses=status,
            priorities=priority,
            categories=category,
            tool=tool,
            sort=sort,
            limit=limit + 1,
        )
        return answer(shapes.issues_answer(api.list_issues(self.opened(), where), limit))

    @ledger_errors
    def flaky_tests(
        self, suite: Suite = None, branch: Branch = None, limit: Limit = 20
    ) -> Annotated[CallToolResult, answers.FlakyAnswer]:
        """Flaky tests, most flaky first, with their evidence: score, reasons, evidence_run_ids,
        runs_considered, flips, the last failure's run, result and issue."""
        found = api.find_flaky(self.opened(), suite=suite, branch=branch)
        return answer(shapes.flaky_answer(found, limit))

    @ledger_errors
    def regressions(
        self,
        suite: Suite = None,
        branch: Branch = None,
        metric: Annotated[
            str | None,
            Field(description="duration, memory, cpu, tokens, cost or quality; default: all."),
        ] = None,
        test: Annotated[str | None, Field(description="Only this test id.")] = None,
        include_improvements: Annotated[
            bool,
            Field(
                description="Report changes for the better too (kind 'improvement'), as the "
                "CLI and the library do; false: regressions only."
            ),
        ] = True,
        limit: Limit = 20,
    ) -> Annotated[CallToolResult, answers.RegressionsAnswer]:
        """Lasting changes in tests' metrics found by change-point detection (regressions and,
        unless left out, improvements), those that still hold first: test_id, metric, kind
        ('regression' or 'improvement'), before/after mean, magnitude_pct, first_run,
        last_good_run, commit_range, p_value, issue_code; and recent single-run `outliers`."""
        report = api.find_regressions(
            self.opened(),
            suite=suite,
            branch=branch,
            metric=metric,
            test=test,
            include_improvements=include_improvements,
        )
        return answer(shapes.regressions_answer(report, limit))

    @ledger_errors
    def cost(
        self,
        runs: Annotated[int, Field(ge=1, le=1000, description="Over the last N runs.")] = 10,
        suite: Suite = None,
        branch: Branch = None,
        limit: Limit = 20,
    ) -> Annotated[CallToolResult, answers.CostAnswer]:
        """What the last runs cost, in dollars and tokens: `total`, per run (`runs`), and
        `by_provider`, `by_model` and `by_tool` (results, passed, cost_usd, tokens_total,
        cost_per_passing_test, share), with the watcher's own spend apart."""
        report = api.cost(self.opened(), runs=runs, suite=suite, branch=branch)
        return answer(shapes.cost_answer(report, limit))

    @ledger_errors
    def search(
        self,
        text: Annotated[
            str, Field(description="Part of a test name, an error type or message, an issue.")
        ],
        limit: Limit = 20,
    ) -> Annotated[CallToolResult, answers.SearchAnswer]:
        """Tests whose name or error holds the text, case-insensitive (one hit per test: its
        latest matching result, with how many results matched), and issues whose code, title,
        description, root cause or resolution holds it."""
        return answer(shapes.search_answer(api.search(self.opened(), text, limit=limit)))

    @ledger_errors
    def gate(
        self,
        run: RunRef = None,
        baseline_branch: Annotated[
            str | None, Field(description="Compare with the latest run of this branch.")
        ] = None,
        max_new_failures: Annotated[int | None, Field(ge=0)] = None,
        min_pass_rate: Annotated[float | None, Field(description="Percent, e.g. 95.")] = None,
        max_cost_increase: Annotated[float | None, Field(description="Percent.")] = None,
        max_duration_increase: Annotated[float | None, Field(description="Percent.")] = None,
        min_quality: Annotated[float | None, Field(description="Watcher quality 1-10.")] = None,
        max_run_cost_usd: float | None = None,
        no_new_issues: bool | None = None,
        include_flaky: bool | None = None,
    ) -> Annotated[CallToolResult, answers.GateAnswer]:
        """Would this run (default: the latest) pass these rules? Rules not given come from the
        project's [tool.testledger.gate]; one check per rule (rule, passed, applicable, actual,
        limit, message)."""
        ledger = self.opened()
        rules = api.gate_rules(
            ledger,
            max_new_failures=max_new_failures,
            min_pass_rate=min_pass_rate,
            max_cost_increase=max_cost_increase,
            max_duration_increase=max_duration_increase,
            min_quality=min_quality,
            max_run_cost_usd=max_run_cost_usd,
            no_new_issues=no_new_issues,
            include_flaky=include_flaky,
        )
        result = api.gate(ledger, run, rules=rules, baseline_branch=baseline_branch)
        return answer(shapes.gate_answer(result))

    # -- writes ----------------------------------------------------------------------------

    def _writable(self) -> api.Ledger:
        if not self.allow_writes:
            raise ToolError(READ_ONLY_REFUSAL)
        return self.opened()

    @ledger_errors
    def update_issue(
        self,
        code: Annotated[str, Field(description="The issue's code.")],
        status: Annotated[
            str | None, Field(description="OPEN, IN_PROGRESS, RESOLVED or WONT_FIX.")
        ] = None,
        root_cause: str | None = None,
        resolution: str | None = None,
        note: Annotated[str | None, Field(description="A note for the issue's history.")] = None,
        limit: Limit = 10,
    ) -> Annotated[CallToolResult, answers.IssueAnswer]:
        """Change an issue (needs --allow-writes): its status, root cause and resolution, with
        an optional note; every change is kept in its history (actor `mcp`). Answers the issue
        as it now is."""
        ledger = self._writable()
        change = api.IssueChange(
            status=status, root_cause=root_cause, resolution=resolution, note=note, actor="mcp"
        )
        api.update_issue(ledger, code, change)
        detail = api.issue_detail(ledger, code, occurrences=limit)
        return answer(shapes.issue_answer(detail, None, limit))

    @ledger_errors
    def record_observation(
        self,
        result_id: Annotated[int, Field(description="The result observed (see result_id).")],
        quality_score: Annotated[int | None, Field(ge=1, le=10)] = None,
        strengths: list[str] = [],  # noqa: B006 - a schema default, never mutated
        weaknesses: list[str] = [],  # noqa: B006
        anomalies: list[str] = [],  # noqa: B006
        recommendations: list[str] = [],  # noqa: B006
        confidence: Annotated[float | None, Field(ge=0, le=1)] = None,
        watcher: str = "mcp",
        error: Annotated[
            str | None, Field(description="Why there is no score (required without one).")
        ] = None,
    ) -> Annotated[CallToolResult, answers.ObservationAnswer]:
        """Record a watcher observation for a result (needs --allow-writes): a quality score
        1-10 (or an error saying why there is none), strengths, weaknesses, anomalies and
        recommendations. The result's watcher quality and its run's average follow it."""
        ledger = self._writable()
        try:
            observation = api.WatcherObservation(
                quality_score=quality_score,
                strengths=list(strengths),
                weaknesses=list(weaknesses),
                anomalies=list(anomalies),
                recommendations=list(recommendations),
                confidence=confidence,
                watcher=watcher,
                error=error,
            )
        except ValueError as exc:
            raise ToolError(str(exc)) from None
        recorded = api.record_observation(ledger, result_id, observation)
        return answer(shapes.observation_answer(recorded))

    def read_tools(self) -> list[Callable[..., Any]]:
        return [
            self.run_summary,
            self.list_runs,
            self.compare_runs,
            self.run_failures,
            self.test_history,
            self.issue,
            self.list_issues,
            self.flaky_tests,
            self.regressions,
            self.cost,
            self.search,
            self.gate,
        ]

    def write_tools(self) -> list[Callable[..., Any]]:
        return [self.update_issue, self.record_observation]
