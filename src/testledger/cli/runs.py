"""``testledger runs``, ``show`` and ``sync``."""

from __future__ import annotations

import typer

from testledger import api
from testledger.cli.app import EXIT_ERROR, command, console, emit_json, ledger_of
from testledger.cli.tables import Column, fitted_table
from testledger.common.formatting import format_seconds

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _number(value: float | int | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _when(run: api.RunSummary) -> str:
    return run.run_timestamp.strftime("%Y-%m-%d %H:%M:%S")


@command("runs")
def runs_command(
    ctx: typer.Context,
    branch: str | None = typer.Option(None, "--branch", "-b", help="Only runs of this branch."),
    suite: str | None = typer.Option(None, "--suite", "-s", help="Only runs of this suite."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs (newest first)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List recorded runs, newest first."""
    runs = api.list_runs(ledger_of(ctx), branch=branch, suite=suite, limit=limit)
    if as_json:
        emit_json(runs)
        return
    if not runs:
        filtered = branch is not None or suite is not None
        console.print("No runs match." if filtered else "No runs recorded yet.")
        return
    columns = [
        Column("id", justify="right"),
        Column("when (UTC)", keep=3),
        Column("suite", main=True),
        Column("branch", main=True),
        Column("commit", keep=4),
        Column("status"),
        Column("tests", justify="right", keep=2),
        Column("pass", justify="right", keep=5),
        Column("fail", justify="right"),
        Column("skip", justify="right", keep=5),
        Column("pass %", justify="right"),
        Column("quality", justify="right", keep=3),
        Column("cost $", justify="right", keep=2),
        Column("secs", justify="right", keep=1),
    ]
    rows = [
        [
            str(run.id),
            _when(run),
            run.suite,
            run.branch,
            (run.commit or "-")[:10],
            run.status,
            str(run.total_tests),
            str(run.tests_passed),
            str(run.tests_failed),
            str(run.tests_skipped),
            _number(run.pass_rate),
            _number(run.avg_watcher_quality),
            _number(run.total_cost_usd, "{:.4f}"),
            format_seconds(run.duration_secs),
        ]
        for run in runs
    ]
    console.print(fitted_table(columns, rows, width=console.width))


@command("show")
def show_command(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Run id or run key (default: the latest run)."),
    branch: str | None = typer.Option(None, "--branch", "-b", help="Latest run of this branch."),
    suite: str | None = typer.Option(None, "--suite", "-s", help="Latest run of this suite."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one run: its summary and its failing tests."""
    detail = api.show_run(ledger_of(ctx), run, branch=branch, suite=suite)
    if as_json:
        emit_json(detail)
        return
    r = detail.run
    console.print(f"Run {r.id}  {r.run_key}", style="bold")
    console.print(
        f"  {_when(r)} UTC  suite {r.suite}  branch {r.branch}  commit {(r.commit or '-')[:12]}"
        f"  status {r.status}  watcher {r.watcher_model}"
    )
    console.print(
        f"  {r.total_tests} tests: {r.tests_passed} passed, {r.tests_failed} failed"
        f" ({r.tests_errored} errors), {r.tests_skipped} skipped;"
        f" pass rate {_number(r.pass_rate)}%"
        f"  quality {_number(r.avg_watcher_quality)}"
        f"  cost ${_number(r.total_cost_usd, '{:.4f}')}"
        f"  duration {format_seconds(r.duration_secs)} s"
    )
    if detail.retried_tests:
        console.print(f"  {detail.retried_tests} test(s) retried")
    if r.notes:
        console.print(f"  notes: {r.notes}")
    if not detail.failing:
        console.print("No failing tests.")
        return
    columns = [
        Column("result", justify="right", keep=2),
        Column("test", main=True),
        Column("status"),
        Column("attempt", keep=3),
        Column("error", main=True),
        Column("quality", keep=1),
    ]
    rows = []
    for test in detail.failing:
        first_line = (test.error_message or "").splitlines()[0] if test.error_message else ""
        error = f"{test.error_type}: {first_line}" if test.error_type else first_line
        rows.append(
            [
                str(test.result_id),
                test.test_id,
                test.status,
                str(test.attempt),
                error[:300],
                _number(test.watcher_quality, "{}"),
            ]
        )
    console.print(fitted_table(columns, rows, width=console.width, title="Failing tests"))


@command("sync")
def sync_command(
    ctx: typer.Context,
    include_unfinished: bool = typer.Option(
        False,
        "--include-unfinished",
        help="Also load runs still marked running (their process died): aborted, unless the "
        "database already holds them finished, which they stay.",
    ),
    resync: bool = typer.Option(
        False, "--all", help="Replay every archived run, synced or not (idempotent)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Load runs recorded while the database was away (the JSON spool) into the database."""
    opened = ledger_of(ctx)
    with console.status("syncing...") as status:
        report = api.sync(
            opened,
            include_unfinished=include_unfinished,
            include_synced=resync,
            progress=lambda run: status.update(f"syncing {run.run_key}"),
        )
    if as_json:
        emit_json(report)
        if report.failed:
            raise typer.Exit(EXIT_ERROR)
        return
    if not (report.synced or report.skipped_unfinished or report.failed or report.already_loaded):
        console.print(f"Nothing to sync in {opened.results_dir}.")
        return
    target = opened.url
    for outcome in report.synced:
        console.print(
            f"synced {outcome.run_key} -> run {outcome.run_id} in {target}: "
            f"{outcome.results_written} result(s), {outcome.observations_written} observation(s) "
            "written"
        )
    for key in report.skipped_unfinished:
        console.print(
            f"skipped {key}: still marked running (use --include-unfinished if its process died)"
        )
    for key in report.already_loaded:
        console.print(f"already loaded {key}: another sync loaded it at the same time")
    for key, reason in report.failed:
        console.print(f"could not load {key} (it stays in the spool): {reason}", markup=False)
    if report.failed:
        raise typer.Exit(EXIT_ERROR)
