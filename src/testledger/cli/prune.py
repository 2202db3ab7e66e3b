"""``testledger prune``: remove old runs, keeping their issues and daily sums."""

from __future__ import annotations

import sys
import time

import typer

from testledger import api
from testledger.cli.app import command, console, emit_json, ledger_of
from testledger.errors import ConfigError

#: Progress is said on stderr only for a prune that lasts, at most this often.
PROGRESS_EVERY_SECS = 2.0


class _Progress:
    """Lines on stderr while a long prune goes on: runs done, results removed."""

    def __init__(self, dry_run: bool) -> None:
        self.verb = "counted" if dry_run else "pruned"
        self.next_at = time.monotonic() + PROGRESS_EVERY_SECS

    def __call__(self, progress: api.PruneProgress) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + PROGRESS_EVERY_SECS
        print(
            f"{self.verb} {progress.runs_done:,} of {progress.runs_total:,} run(s), "
            f"{progress.results_done:,} result(s)",
            file=sys.stderr,
            flush=True,
        )


def _policy(
    keep_runs: int | None,
    older_than: str | None,
    suite: str | None,
    branch: str | None,
    keep_aggregates: bool,
) -> api.RetentionPolicy:
    if (keep_runs is None) == (older_than is None):
        raise ConfigError("give one of --keep-runs N or --older-than AGE (e.g. 90d)")
    return api.RetentionPolicy(
        keep_runs=keep_runs,
        older_than=None if older_than is None else api.parse_age(older_than),
        suite=suite,
        branch=branch,
        keep_aggregates=keep_aggregates,
    )


def _what(report: api.PruneReport) -> str:
    """The policy in words: which runs it removes."""
    if report.keep_runs is not None:
        scope = "its branch and suite" if report.branch is not None else "its suite"
        rule = f"beyond the {report.keep_runs:,} newest of {scope}"
    else:
        assert report.cutoff is not None
        rule = f"started before {report.cutoff:%Y-%m-%d %H:%M} UTC"
    filters = [f"suite {report.suite}"] if report.suite is not None else []
    filters += [f"branch {report.branch}"] if report.branch is not None else []
    return f"finished runs {rule}" + (f" ({', '.join(filters)})" if filters else "")


@command("prune")
def prune_command(
    ctx: typer.Context,
    keep_runs: int | None = typer.Option(
        None, "--keep-runs", metavar="N", help="Keep the N newest runs of each suite."
    ),
    older_than: str | None = typer.Option(
        None, "--older-than", metavar="AGE", help="Remove runs older than AGE: 36h, 90d, 2w."
    ),
    suite: str | None = typer.Option(None, "--suite", "-s", help="Only runs of this suite."),
    branch: str | None = typer.Option(None, "--branch", "-b", help="Only runs of this branch."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; remove nothing."),
    keep_aggregates: bool = typer.Option(
        True,
        "--keep-aggregates/--no-keep-aggregates",
        help="Keep the removed results' daily sums per test (test_daily_stats).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remove old finished runs with their results, observations and JSON files.

    Their issues stay (with when they were first and last seen); the results' daily sums per
    test are kept unless --no-keep-aggregates. Runs still running are never removed. Deletes
    in small transactions, so a run being recorded meanwhile is not held up."""
    policy = _policy(keep_runs, older_than, suite, branch, keep_aggregates)
    opened = ledger_of(ctx)
    report = api.prune(opened, policy, dry_run=dry_run, progress=_Progress(dry_run))
    if as_json:
        emit_json(report)
        return
    what = _what(report)
    if not report.runs and not report.skipped_runs:
        console.print(f"Nothing to prune in {opened.url}: no {what}.", soft_wrap=True)
        return
    verb = "Would remove" if dry_run else "Removed"
    console.print(f"{verb} {report.runs:,} run(s) from {opened.url}: {what}", soft_wrap=True)
    console.print(
        f"{report.results:,} result(s), {report.observations:,} observation(s), "
        f"{report.files:,} file(s)"
    )
    kept = "would be kept" if dry_run else "kept"
    if report.keep_aggregates:
        console.print(f"daily sums {kept} in {report.aggregate_rows:,} aggregate row(s)")
    if report.issue_links_cleared:
        console.print(
            f"{report.issue_links_cleared:,} issue link(s) to these runs "
            f"{'would be ' if dry_run else ''}cleared; the issues stay"
        )
    if report.skipped_runs:
        console.print(
            f"{len(report.skipped_runs):,} run(s) left for the next prune: "
            "rows they needed stayed locked"
        )
