"""``testledger import``: report files into the ledger."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from testledger import api
from testledger.cli.app import EXIT_ERROR, command, console, emit_json, ledger_of
from testledger.errors import ConfigError


def _parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--at: not an ISO-8601 time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@command("import")
def import_command(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ..., metavar="PATH", help="Report files, folders (searched for reports) or globs."
    ),
    format_name: str | None = typer.Option(
        None,
        "--format",
        "-f",
        # Only the built-ins are named: listing the plugins would load them for every command.
        help="Read every file as this format: "
        f"{', '.join(api.BUILT_IN_IMPORT_FORMATS)}, or an importer plugin's "
        "(entry point group testledger.importers).",
    ),
    branch: str | None = typer.Option(None, "--branch", "-b", help="Branch of the run(s)."),
    commit: str | None = typer.Option(None, "--commit", "-c", help="Commit of the run(s)."),
    suite: str | None = typer.Option(None, "--suite", "-s", help="Suite name of the run(s)."),
    run_key: str | None = typer.Option(
        None,
        "--run-key",
        help="Import every file into this one run (e.g. the shards of one CI job); "
        "default: one run per file, keyed by its content.",
    ),
    at: str | None = typer.Option(
        None, "--at", metavar="TIME", help="When the run happened (ISO-8601), if the file lacks it."
    ),
    watcher_model: str | None = typer.Option(None, "--watcher-model", help="Watcher of the run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Import test reports: JUnit XML (every common dialect), pytest-json-report,
    pytest-reportlog (.jsonl, .gz), CTRF, Allure result folders, and the tool-validation
    suite's result files and folders, and the formats of installed importer plugins. The format
    is detected per file unless --format says.

    Importing the same file twice adds nothing. A bad file gets one error line and none of its
    rows are written; the other files still import, and the exit code is 1."""
    opened = ledger_of(ctx)
    options = api.ImportOptions(
        branch=branch,
        commit=commit,
        suite=suite,
        run_key=run_key,
        at=_parse_at(at),
        watcher_model=watcher_model,
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("results {task.fields[results]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    )
    with progress:
        report = api.import_paths(
            opened,
            paths,
            options,
            format_name=format_name,
            progress=_ProgressBar(progress, progress.add_task("importing", total=None, results=0)),
        )
    _report(report, as_json, opened.url)
    if report.errors:
        raise typer.Exit(EXIT_ERROR)


class _ProgressBar:
    """The import's progress shown on a Rich progress bar: files done, results written."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def file_started(self, path: Path, index: int, total: int) -> None:
        self.progress.update(
            self.task, description=f"importing {path.name}", completed=index, total=total
        )

    def results_written(self, total: int) -> None:
        self.progress.update(self.task, results=total)


def _report(report: api.ImportReport, as_json: bool, target: str) -> None:
    if as_json:
        emit_json(report)
        return
    for outcome in report.already_imported:
        console.print(f"{outcome.path}: already imported (run {outcome.run_id}), nothing added")
    for outcome in report.imported:
        extra = f", {outcome.observations} watcher observation(s)" if outcome.observations else ""
        console.print(
            f"{outcome.path} ({outcome.format}): {outcome.results} result(s){extra} "
            f"-> run {outcome.run_id} in {target}"
        )
        for warning in outcome.warnings:
            console.print(f"  warning: {warning}")
    for line in report.closing_lines():  # summaries, evidence placed, totals, files skipped
        console.print(line, markup=False, highlight=False)
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)
    if report.errors:
        done = len(report.imported)
        typer.echo(f"{done} run(s) imported, {len(report.errors)} file(s) failed", err=True)
