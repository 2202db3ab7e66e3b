"""``testledger watch``: run a watcher over a recorded run."""

from __future__ import annotations

import sys

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from testledger import api
from testledger.cli.app import EXIT_ERROR, command, console, emit_json, ledger_of


@command("watch")
def watch_command(
    ctx: typer.Context,
    run: str | None = typer.Argument(None, help="Run id or run key (default: the latest run)."),
    watcher_name: str | None = typer.Option(
        None,
        "--watcher",
        "-w",
        help="Watcher to use: heuristic (offline), llm, or any installed through the "
        "'testledger.watchers' entry points (default: [tool.testledger.watcher] name, "
        "else heuristic).",
    ),
    only_missing: bool = typer.Option(
        False, "--only-missing", help="Only results this watcher has not observed yet."
    ),
    history_runs: int = typer.Option(
        api.WATCH_HISTORY_RUNS, "--history", min=1, help="Earlier runs of history per test."
    ),
    base_url: str | None = typer.Option(None, "--base-url", help="llm: endpoint base URL."),
    model: str | None = typer.Option(None, "--model", help="llm: model name."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="llm: environment variable holding the API key."
    ),
    timeout: float | None = typer.Option(None, "--timeout", help="llm: seconds per call."),
    retries: int | None = typer.Option(None, "--retries", help="llm: retries per call."),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="llm: calls in flight at once."
    ),
    budget_usd: float | None = typer.Option(
        None, "--budget", help="llm: stop calling once the watcher has spent this many USD."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a summary."),
) -> None:
    """Watch a recorded run: store one observation per result (quality 1-10, strengths,
    anomalies, recommendations) and update the run's average watcher quality."""
    overrides = {
        "base_url": base_url,
        "model": model,
        "api_key_env": api_key_env,
        "timeout": timeout,
        "retries": retries,
        "concurrency": concurrency,
        "budget_usd": budget_usd,
    }
    show_progress = not as_json and sys.stdout.isatty()
    with Progress(
        TextColumn("watching"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
        transient=True,
    ) as bar:
        task = bar.add_task("watch", total=None)
        summary = api.watch(
            ledger_of(ctx),
            run,
            watcher=watcher_name,
            options=overrides,
            only_missing=only_missing,
            history_runs=history_runs,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        emit_json(summary)
        return
    _print_summary(summary)


def _print_summary(summary: api.WatchSummary) -> None:
    quality = "-" if summary.avg_watcher_quality is None else f"{summary.avg_watcher_quality:.2f}"
    if summary.watched and summary.failed == summary.watched:
        # Every call failed (a wrong endpoint or key): the run's figures were left as they were.
        console.print(
            f"Run {summary.run_id}: every one of {summary.watched} {summary.watcher} "
            "observation(s) was a watcher error; the run's quality is unchanged"
        )
        raise typer.Exit(EXIT_ERROR)
    if summary.considered == 0:
        console.print(f"Run {summary.run_id}: nothing to watch with {summary.watcher}.")
        return
    console.print(
        f"Run {summary.run_id}: {summary.watcher} observed {summary.watched} of "
        f"{summary.considered} result(s), {summary.failed} watcher error(s)"
    )
    if summary.not_watched:
        console.print(
            f"{summary.not_watched} result(s) left without observation: skipped tests, or "
            "nothing for the watcher to say"
        )
    console.print(f"Avg quality: {quality}   Anomalies found: {summary.anomalies}")
    console.print(
        f"Watcher spend: ${summary.watcher_cost_usd:.4f} ({summary.watcher_tokens} tokens)"
    )
