"""``testledger detect``, ``issues``, ``issue``, ``explain`` and ``backfill``."""

from __future__ import annotations

from pathlib import Path

import typer

from testledger import api
from testledger.cli.app import command, console, emit_json, ledger_of
from testledger.cli.tables import Column, fitted_table

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of text.")


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


@command("detect")
def detect_command(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Run id or key (default: the latest run)."),
    all_runs: bool = typer.Option(False, "--all", help="Every run, oldest first."),
    rules: Path | None = typer.Option(
        None,
        "--rules",
        help="Rules file (default [tool.testledger.detect] rules, else "
        ".testledger/rules.toml when it exists).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Group the failures of a run into issues and move their lifecycle (new, recurring,
    regressed, auto-resolved). Runs by itself after every recorded or imported run; running it
    again changes nothing."""
    reports = api.detect(ledger_of(ctx), run, all_runs=all_runs, rules_path=rules)
    if as_json:
        emit_json(reports)
        return
    for report in reports:
        parts = [f"run {report.run_id}: {report.fingerprinted} failure(s)"]
        parts.append(f"{report.occurrences_added} new occurrence(s)")
        if report.flaky_occurrences:
            parts.append(f"{report.flaky_occurrences} flaky")
        for label, codes in (
            ("new", report.new),
            ("recurring", report.recurring),
            ("regressed", report.regressed),
            ("auto-resolved", report.auto_resolved),
        ):
            if codes:
                parts.append(f"{label}: {', '.join(codes)}")
        console.print("; ".join(parts))


@command("issues")
def issues_command(
    ctx: typer.Context,
    status: list[str] = typer.Option(
        [], "--status", help="OPEN, IN_PROGRESS, RESOLVED, WONT_FIX (repeatable)."
    ),
    priority: list[str] = typer.Option([], "--priority", help="CRITICAL, HIGH, MEDIUM, LOW."),
    category: list[str] = typer.Option([], "--category", help="e.g. production (repeatable)."),
    tool: str | None = typer.Option(None, "--tool", help="Issues affecting this tool."),
    branch: str | None = typer.Option(
        None, "--branch", "-b", help="Issues seen on this branch (in one of its runs)."
    ),
    sort: str = typer.Option("priority", "--sort", help=f"One of {', '.join(api.ISSUE_SORTS)}."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """List issues, detected and backfilled alike. An issue seen only on a branch other than
    the default one is that branch's (its name in the branch column; empty: the default
    branch's)."""
    where = api.IssueFilter(
        statuses=status,
        priorities=priority,
        categories=category,
        tool=tool,
        sort=sort,
        limit=limit,
        branch=branch,
    )
    found = api.list_issues(ledger_of(ctx), where)
    if as_json:
        emit_json(found)
        return
    if not found:
        console.print("No issues.")
        return
    columns = [
        Column("code"),
        Column("priority", keep=3),
        Column("status"),
        Column("life", keep=2),
        Column("category", keep=4),
        Column("seen", justify="right", keep=1),
        Column("flaky", justify="right", keep=3),
        Column("last seen", keep=5),
        Column("branch", keep=6),
        Column("title", main=True),
    ]
    rows = [
        [
            issue.code,
            issue.priority,
            issue.status,
            issue.lifecycle or issue.origin,
            issue.category,
            str(issue.occurrences),
            str(issue.flaky_occurrences or ""),
            _when(issue.last_seen_at),
            issue.branch_name or "",
            issue.title[:200],
        ]
        for issue in found
    ]
    console.print(fitted_table(columns, rows, width=console.width))


@command("issue")
def issue_command(
    ctx: typer.Context,
    code: str = typer.Argument(..., help="The issue's code, e.g. PHASE2-HIGH-001."),
    status: str | None = typer.Option(
        None, "--status", help="Move it: OPEN, IN_PROGRESS, RESOLVED, WONT_FIX."
    ),
    note: str | None = typer.Option(None, "--note", help="A note for its history."),
    root_cause: str | None = typer.Option(
        None, "--root-cause", metavar="TEXT", help="Record what caused it."
    ),
    resolution: str | None = typer.Option(
        None, "--resolution", metavar="TEXT", help="Record how it was (or will be) fixed."
    ),
    title: str | None = typer.Option(None, "--title", metavar="TEXT", help="Rename it."),
    priority: str | None = typer.Option(
        None, "--priority", help="Move it to CRITICAL, HIGH, MEDIUM or LOW."
    ),
    link_fp: str | None = typer.Option(
        None,
        "--link-fingerprint",
        metavar="HASH",
        help="Attach later failures with this fingerprint (see `testledger explain`).",
    ),
    link_rule_name: str | None = typer.Option(
        None, "--link-rule", metavar="NAME", help="Attach later failures matching this rule."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an issue's history and evidence; with options, change it (every change is kept in
    its history)."""
    change = api.IssueChange(
        status=status,
        note=note,
        root_cause=root_cause,
        resolution=resolution,
        title=title,
        priority=priority,
        link_fingerprint=link_fp,
        link_rule=link_rule_name,
    )
    opened = ledger_of(ctx)
    if change == api.IssueChange():
        detail = api.issue_detail(opened, code)
    else:
        detail = api.update_issue(opened, code, change)
    if as_json:
        emit_json(detail)
        return
    _print_detail(detail)


def _print_detail(detail: api.IssueDetail) -> None:
    i = detail.issue
    console.print(f"{i.code}  {i.title}", style="bold")
    console.print(
        f"  {i.priority} · {i.status} · {i.lifecycle or i.origin} · {i.category} · "
        f"{i.occurrences} occurrence(s), {i.flaky_occurrences} flaky"
    )
    console.print(
        f"  first seen {_when(detail.first_seen)} (run {i.first_detected_run_id or '-'}), "
        f"last seen {_when(detail.last_seen)} (run {i.last_seen_run_id or '-'})"
        + (f", regressed in run {i.regressed_run_id}" if i.regressed_run_id else "")
        + (f", resolved in run {i.resolved_run_id}" if i.resolved_run_id else "")
    )
    if i.branch_name:
        console.print(f"  branch: {i.branch_name} (seen only there, not on the default branch)")
    if detail.branches:
        seen_on = ", ".join(f"{name} ({n})" for name, n in detail.branches.items())
        console.print(f"  seen on: {seen_on}")
    if i.affected_tools:
        console.print(f"  tools: {', '.join(i.affected_tools)}")
    if i.rule_name:
        console.print(f"  rule: {i.rule_name}")
    for fp in detail.fingerprints:
        console.print(f"  fingerprint: {fp}")
    if detail.backfill_source:
        console.print(f"  backfilled from {detail.backfill_source}")
    if detail.description:
        console.print(f"\n{detail.description}")
    if detail.root_cause:
        console.print(f"\nRoot cause: {detail.root_cause}", style="bold")
    if detail.resolution:
        console.print(f"Resolution: {detail.resolution}", style="bold")
    if detail.affected_tests:
        console.print("\nAffected tests", style="bold")
        for test_id, count in list(detail.affected_tests.items())[:20]:
            console.print(f"  {count:>4}  {test_id}")
    if detail.occurrences:
        columns = [
            Column("run", justify="right"),
            Column("result", justify="right", keep=2),
            Column("when", keep=3),
            Column("branch", keep=4),
            Column("commit", keep=5),
            Column("test", main=True),
            Column("status"),
            Column("flaky", keep=1),
        ]
        rows = [
            [
                str(o.run_id),
                str(o.result_id or "-"),
                _when(o.run_timestamp),
                o.branch,
                (o.commit or "-")[:10],
                o.test_id or "-",
                o.status or "-",
                "yes" if o.flaky else "",
            ]
            for o in detail.occurrences
        ]
        title = "Occurrences (newest first)"
        console.print(fitted_table(columns, rows, width=console.width, title=title))
    if detail.events:
        console.print("\nHistory", style="bold")
        for e in detail.events:
            move = f" {e.status_from or ''}->{e.status_to}" if e.status_to else ""
            run = f" run {e.run_id}" if e.run_id else ""
            console.print(f"  {_when(e.at)}  {e.kind}{move}{run} by {e.actor}: {e.note or ''}")


@command("explain")
def explain_command(
    ctx: typer.Context,
    result: str = typer.Argument(
        ...,
        metavar="RESULT",
        help="A result's id (the 'result' column of `testledger show` and `testledger issue`), "
        "or a test (its id or a unique part of it) whose last attempt in --run is meant.",
    ),
    run: str | None = typer.Option(
        None, "--run", metavar="RUN", help="With a test: the run (default the latest)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show how a failure's fingerprint is made: each part, what it was normalised to, and
    which normalisation rules fired."""
    made = api.explain_result(ledger_of(ctx), result, run=run)
    if as_json:
        emit_json(made)
        return
    console.print(f"result {made.result_id}  {made.test_id}  {made.status}")
    console.print(f"fingerprint {made.fingerprint} (algorithm v{made.version})")
    if made.stored_differs:
        console.print(
            f"  stored: {made.stored_fingerprint} (v{made.stored_version}) - kept for grouping"
        )
    for part in made.components:
        flag = "+" if part.contributes else " "
        console.print(f" {flag} {part.name}: {part.raw!r}")
        if part.normalized != part.raw:
            rules = f"  [{', '.join(part.rules)}]" if part.rules else ""
            console.print(f"     -> {part.normalized!r}{rules}")


@command("backfill")
def backfill_command(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="ISSUES_CHECKLIST*.md and PHASE_*_COMPLETE.md"),
    force: bool = typer.Option(False, "--force", help="Overwrite issues edited in testledger."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create or update issues from hand-kept markdown checklists. Running it again updates
    rather than duplicates; issues edited since in testledger keep those edits unless --force.
    Every file is read before anything is written: a malformed file writes nothing."""
    report = api.backfill(ledger_of(ctx), paths, force=force)
    if as_json:
        emit_json(report)
        return
    console.print(
        f"{len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.kept_local_edits)} kept local edits"
        + (f", {len(report.conflicts)} conflicting code(s)" if report.conflicts else "")
    )
    for code in report.kept_local_edits:
        console.print(f"  kept local edits of {code} (use --force to overwrite)")
    for warning in report.warnings:
        console.print(f"  warning: {warning}")


@command("flaky")
def flaky_command(
    ctx: typer.Context,
    suite: str | None = typer.Option(None, "--suite", "-s", help="Only this suite."),
    branch: str | None = typer.Option(None, "--branch", "-b", help="Only runs of this branch."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List flaky tests: passed and failed on the same commit (or on a retry), or flipped
    between pass and fail often in their recent runs, or failed again and again on their own
    over a longer, decaying history (the score rule: separate failures against the test's own
    failure rate, failures shared with many other tests of the run left out). Outage runs
    (most tests failing at once) are not evidence. Each test shows the rules that fired and the
    score rule's confidence. Thresholds: [tool.testledger.flaky]."""
    found = api.find_flaky(ledger_of(ctx), suite=suite, branch=branch)
    if as_json:
        emit_json(found)
        return
    if not found:
        console.print("No flaky tests.")
        return
    columns = [
        Column("test", main=True),
        Column("suite", keep=4),
        Column("score", justify="right"),
        Column("rules", keep=5),
        Column("confidence", justify="right", keep=5),
        Column("fail rate", justify="right", keep=4),
        Column("evidence runs", keep=3),
        Column("last failure", keep=2),
        Column("issue", keep=1),
        Column("why", main=True),
    ]
    rows = [
        [
            flaky.test_id,
            flaky.suite,
            f"{flaky.score:.2f}",
            ", ".join(flaky.rules),
            f"{flaky.confidence:.2f}",
            f"{flaky.failure_rate:.1%}",
            ", ".join(str(r) for r in flaky.evidence_run_ids[:8]),
            str(flaky.last_failure_run_id or "-"),
            flaky.last_failure_issue or "-",
            # Every rule's sentence stays in view (the score rule's comes last): each is cut
            # on its own rather than the whole cell.
            "; ".join(r if len(r) <= 160 else r[:157] + "..." for r in flaky.reasons)[:600],
        ]
        for flaky in found
    ]
    console.print(fitted_table(columns, rows, width=console.width))
