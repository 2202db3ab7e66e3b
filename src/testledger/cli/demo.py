"""``testledger demo``: record a realistic history by running a bundled suite, then show it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule

from testledger import api
from testledger.cli.app import command, console, emit_json, run_app, state
from testledger.cli.registry import COMMANDS
from testledger.demo.runner import (
    DEFAULT_DIRECTORY,
    DEFAULT_RUNS,
    MAX_RUNS,
    DemoResult,
    available_steps,
    inside,
    report_steps,
)

#: What to try next, shown at the end.
_EXPLORE = (
    ("runs", "list the runs"),
    ("show", "the latest run and its failures"),
    ("issue {issue}", "an issue's history and evidence"),
    ("explain RESULT_ID", "how a failure's fingerprint is made"),
    ("trend --json", "the numbers, for scripts"),
)


def _command_names() -> set[str]:
    """The commands this installation has."""
    return set(COMMANDS)


@command("demo")
def demo_command(
    ctx: typer.Context,
    directory: Path = typer.Option(
        DEFAULT_DIRECTORY,
        "--dir",
        metavar="PATH",
        help="Folder for the demo project, its ledger.db and its results (created; must be "
        "empty or an earlier demo).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo in --dir."),
    runs: int = typer.Option(
        DEFAULT_RUNS,
        "--runs",
        min=1,
        max=MAX_RUNS,
        metavar="N",
        help="How many commits and runs to record (the whole story takes 12).",
    ),
    reports: bool = typer.Option(
        True, "--reports/--no-reports", help="Show the reports once the runs are recorded."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print what was recorded as JSON (no progress, no reports)."
    ),
) -> None:
    """Record a realistic test history and show testledger's reports on it.

    Copies a small example suite (model-backed tests with tokens and cost, a flaky test, a
    slowdown, a bug fixed and reintroduced) into a throwaway git repository and, commit after
    commit, really runs it with `pytest --ledger` into a fresh SQLite ledger in --dir (or into
    the empty database given with the global --db). Then prints the trend, the comparison of
    the last two runs, the issues, the flaky tests and the regressions, and writes the HTML
    report."""
    database_url = state(ctx).db
    # Checked before the progress display starts, so that a refusal is one plain line.
    api.check_demo_target(directory, force=force, database_url=database_url)
    if as_json:
        result = api.run_demo(directory, runs=runs, force=force, database_url=database_url)
        emit_json({**result.as_json(), "database_url": _shown_url(result)})
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("preparing the demo project", total=runs)

        def show(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        result = api.run_demo(
            directory, runs=runs, force=force, database_url=database_url, progress=show
        )
    _print_summary(result)
    failed = 0
    if reports:
        failed = _print_reports(result)
    _print_next_steps(result)
    if failed:
        raise typer.Exit(1)


def _print_summary(result: DemoResult) -> None:
    first, last = result.runs[0], result.runs[-1]
    how = "git commits" if result.used_git else "commits (git not found: ids made up)"
    console.print(
        f"Recorded {len(result.runs)} runs of the demo suite ({how} {first.commit[:7]}.."
        f"{last.commit[:7]} on branch main) in {result.seconds:.1f} s into "
        f"{_shown_url(result)}"
    )
    console.print(f"Demo project: {result.directory}")
    if not result.retries:
        console.print("(pytest-rerunfailures is not installed: the flaky test is not retried)")


def _print_reports(result: DemoResult) -> int:
    present, missing = available_steps(
        report_steps(result.html_path, result.regressed_issue), _command_names()
    )
    failed = 0
    with inside(result.directory):
        for title, argv in present:
            console.print()
            console.print(Rule(title, align="left"))
            console.print(f"$ testledger {' '.join(argv)}", style="dim")
            if run_app(["--db", result.database_url, *argv]) != 0:
                failed += 1
    if result.html_path.is_file():
        console.print(f"\nHTML report: {result.html_path.as_uri()}")
    for title, argv in missing:
        console.print(f"(skipped {title.lower()}: `testledger {argv[0]}` is not available)")
    return failed


def _print_next_steps(result: DemoResult) -> None:
    # The demo project's pyproject.toml names its own SQLite ledger, so commands run inside
    # the folder need no --db; a server URL is not written there (it may hold a password).
    own = result.database_url == f"sqlite:///{result.directory / 'ledger.db'}"
    prefix = "testledger" if own else f"testledger --db {_shown_url(result)}"
    console.print("\nExplore further:")
    console.print(f"  cd {result.directory}")
    for example, what in _EXPLORE:
        shown = f"{prefix} {example.format(issue=result.regressed_issue or 'CODE')}"
        console.print(f"  {shown:<34} # {what}")
    if own:
        console.print(f"  {'python -m pytest --ledger':<34} # record a run of your own")


def _shown_url(result: DemoResult) -> str:
    return api.mask_url(result.database_url)
