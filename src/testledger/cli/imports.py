"""``testledger import``: report files into the ledger."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from testledger.analyze.pipeline import detect_after_recording
from testledger.cli.app import EXIT_ERROR, app, console, emit_json, state
from testledger.errors import ConfigError
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.importer import ImportOptions, ImportOutcome, content_key, import_parsed
from testledger.ingest.registry import FORMATS, expand_paths, is_report, parse_source
from testledger.store.engine import mask_url
from testledger.store.types import parse_utc


def _parse_at(value: str | None) -> object:
    if value is None:
        return None
    try:
        return parse_utc(value)
    except ValueError:
        raise ConfigError(f"--at: not an ISO-8601 time: {value!r}") from None


@app.command("import")
def import_command(
    ctx: typer.Context,
    paths: list[str] = typer.Argument(
        ..., metavar="PATH...", help="Report files, folders (searched for reports) or globs."
    ),
    format_name: str | None = typer.Option(
        None, "--format", "-f", help=f"Read every file as this format: {', '.join(FORMATS)}."
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
    suite's result files and folders. The format is detected per file unless --format says.

    Importing the same file twice adds nothing. A bad file gets one error line and none of its
    rows are written; the other files still import, and the exit code is 1."""
    cli = state(ctx)
    options = ImportOptions(
        branch=branch,
        commit=commit,
        suite=suite,
        run_key=run_key,
        at=_parse_at(at),  # type: ignore[arg-type]
        watcher_model=watcher_model,
    )
    engine = cli.engine()
    outcomes: list[ImportOutcome] = []
    errors: list[ImportFormatError] = []
    skipped: list[Path] = []
    sources = list(expand_paths(paths))
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
        files_task = progress.add_task("importing", total=len(sources), results=0)
        count = 0
        for found in sources:
            if isinstance(found, ImportFormatError):
                errors.append(found)
                progress.advance(files_task)
                continue
            source = found.path
            progress.update(files_task, description=f"importing {source.name}")
            if not found.explicit and format_name is None and not is_report(source):
                skipped.append(source)
                progress.advance(files_task)
                continue
            try:
                for parsed in parse_source(source, format_name):
                    key = content_key(source, parsed.format)
                    if parsed.path != source:  # one run of a results folder's history
                        key = content_key(parsed.path, parsed.format)

                    def advance(n: int) -> None:
                        nonlocal count
                        count += n
                        progress.update(files_task, results=count)

                    outcomes.append(
                        import_parsed(
                            engine,
                            parsed,
                            options,
                            content_run_key=key,
                            progress=advance,
                            reparse=_reparser(parsed, format_name),
                        )
                    )
            except ImportFormatError as exc:
                errors.append(exc)
            progress.advance(files_task)
    # Detection follows time, so runs imported in one command are detected oldest first.
    fresh = [o.run_id for o in outcomes if not o.already_imported and o.run_id is not None]
    detect_after_recording(engine, cli.settings, fresh)
    _report(outcomes, errors, skipped, as_json, mask_url(cli.settings.database_url))
    if errors:
        raise typer.Exit(EXIT_ERROR)


def _reparser(parsed: ParsedFile, format_name: str | None) -> Callable[[], ParsedFile]:
    """Parses the same file again (see import_parsed)."""
    return lambda: FORMATS[format_name or parsed.format].parse(parsed.path)


def _report(
    outcomes: list[ImportOutcome],
    errors: list[ImportFormatError],
    skipped: list[Path],
    as_json: bool,
    target: str,
) -> None:
    if as_json:
        emit_json(
            {
                "imported": [o for o in outcomes if not o.already_imported],
                "already_imported": [o for o in outcomes if o.already_imported],
                "skipped_not_reports": skipped,
                "errors": [
                    {"path": str(e.path), "line": e.line, "reason": e.reason} for e in errors
                ],
            }
        )
        return
    for outcome in outcomes:
        if outcome.already_imported:
            console.print(f"{outcome.path}: already imported (run {outcome.run_id}), nothing added")
            continue
        extra = f", {outcome.observations} watcher observation(s)" if outcome.observations else ""
        console.print(
            f"{outcome.path} ({outcome.format}): {outcome.results} result(s){extra} "
            f"-> run {outcome.run_id} in {target}"
        )
        for warning in outcome.warnings:
            console.print(f"  warning: {warning}")
    if skipped:
        console.print(f"skipped {len(skipped)} file(s) found in folders that are not test reports")
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if errors:
        done = sum(1 for o in outcomes if not o.already_imported)
        typer.echo(f"{done} run(s) imported, {len(errors)} file(s) failed", err=True)
