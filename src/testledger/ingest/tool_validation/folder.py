"""The tool-validation suite's folders, read whole: a results folder (``results/``,
``results/latest/``, an archive, the suite root), a ``watcher_observations/`` folder or an
``api_responses/`` folder.

A results folder gives, in this order:

1. its runs, oldest first: the ``history/results_YYYYMMDD_HHMMSS`` archives (folders, ``.json``
   or ``.json.gz``), the latest run (``latest/test_results.json`` with its ``summary.json``,
   ``prompt_counter.json`` and the observation files of its tests), the report
   ``results/test_results.json`` when it is of another session (else merged into the latest
   run), and the simple runner's ``simple_runner_results.json``;
2. a ``summary.json`` no run of the folder took, as a summary;
3. every observation file no run took, the CSV of watcher analyses and the API call logs, as
   loose evidence placed after the runs are in the ledger;
4. the files it holds that none of this reads, with the reason (``ParsedFile.skipped``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from testledger.ingest.base import ImportFormatError, ParsedFile, Skipped
from testledger.ingest.tool_validation.api_calls import api_calls, is_api_folder
from testledger.ingest.tool_validation.context import ExaiContext, parse_time
from testledger.ingest.tool_validation.context import json_object as _obj
from testledger.ingest.tool_validation.entries import (
    build_run,
    check_summary,
    counts,
    document_kind,
    load_object,
    suite_context,
    summary_totals,
)
from testledger.ingest.tool_validation.evidence import (
    analyses_csv,
    is_observation_folder,
    loose_file,
    observation_item,
    observations_folder,
)
from testledger.ingest.tool_validation.scripts import parse_simple_runner

__all__ = ["parse_folder", "results_file"]

_SIMPLE_RUNNER = "simple_runner_results.json"
_CSV = "watcher_analysis.csv"
#: Files of a results folder that repeat what the files read say, and why they are not read.
_SKIP_REASONS = {
    "coverage_matrix.json": "the coverage of test_results.json, read from it",
    "failures.json": "the failures of test_results.json, read from it",
}


def results_file(run_dir: Path) -> Path | None:
    for name in ("test_results.json", "test_results.json.gz"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def _archive_time(name: str) -> datetime | None:
    stem = name.removesuffix(".gz").removesuffix(".json")
    if not stem.startswith("results_"):
        return None
    try:
        stamp = datetime.strptime(stem.removeprefix("results_"), "%Y%m%d_%H%M%S")
    except ValueError:
        return None
    # The suite names archives by local time; UTC is assumed, used only to order runs lacking
    # a session_start.
    return stamp.replace(tzinfo=timezone.utc)


class _Folder:
    """What one results folder holds, gathered: runs, summaries, loose evidence, files read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs: list[tuple[datetime | None, int, ParsedFile]] = []
        self.summaries: list[ParsedFile] = []
        self.loose: list[ParsedFile] = []
        self.read: set[Path] = set()

    def run(self, results: Path, run_dir: Path | None, summary: Path | None) -> ParsedFile:
        """One run's file with its folder's side files; unattached observations kept apart."""
        warnings: list[str] = []
        ctx = suite_context(results.parent, warnings)
        doc = load_object(results, "a tool-validation-suite result file")
        kind = document_kind(doc)
        if kind not in ("tests", "report"):
            raise ImportFormatError(results, "not a tool-validation-suite test_results file")
        parsed = build_run(results, doc, kind, run_dir, warnings, ctx)
        self.read.add(results)
        if run_dir is not None:
            self.read.update(p for p in (run_dir / "prompt_counter.json",) if p.is_file())
            self._observations(run_dir, ctx)
        if summary is not None and summary.is_file():
            self._merge_summary(parsed, summary, warnings)
        return parsed

    def _merge_summary(self, parsed: ParsedFile, summary: Path, warnings: list[str]) -> None:
        summary_doc = load_object(summary, "a run summary")
        self.read.add(summary)
        parsed.run.metadata["summary"] = summary_doc
        totals = summary_totals(summary_doc)
        if totals is not None:
            # The run's totals when its file lists fewer tests (see ingest.summaries).
            parsed.run.metadata["summary_totals"] = totals.as_json()
        results = list(parsed.results)
        check_summary(summary_doc, counts(results), summary.name, warnings)
        start = parse_time(summary_doc.get("session_start"))
        if parsed.run.started_at and start and start != parsed.run.started_at:
            warnings.append(f"{summary.name} session_start differs from the results file's")
        parsed.results = iter(results)

    def _observations(self, run_dir: Path, ctx: ExaiContext) -> None:
        """The run folder's observation files that no result of its run took."""
        files = sorted(ctx.observation_files.items())
        self.read.update(path for path, _ in files)
        items = [
            item
            for path, obs in files
            if path not in ctx.used_observations
            and (item := observation_item(path, obs, ctx)) is not None
        ]
        if items:
            folder = run_dir / "watcher_observations"
            self.loose.append(loose_file(folder, "watcher_observations", items, ctx, []))

    def side_sources(self, run_dir: Path) -> None:
        """The simple runner's file, a summary no run took, the CSV and the API call logs."""
        runner = run_dir / _SIMPLE_RUNNER
        if runner.is_file():
            parsed = parse_simple_runner(runner, load_object(runner, "simple runner results"), [])
            self.runs.append((parsed.run.started_at, len(self.runs), parsed))
            self.read.add(runner)
        summary = run_dir / "summary.json"
        if summary.is_file() and summary not in self.read:
            doc = load_object(summary, "a run summary")
            self.summaries.append(build_run(summary, doc, "summary", None, []))
            self.read.add(summary)
        if (run_dir / _CSV).is_file():
            self.loose.append(analyses_csv(run_dir / _CSV))
            self.read.add(run_dir / _CSV)
        api = run_dir / "api_responses"
        if api.is_dir() and is_api_folder(api):
            self.loose.append(api_calls(api))
            self.read.update(p for p in api.rglob("*") if p.is_file())

    def skipped(self) -> list[Skipped]:
        out = []
        for file in sorted(p for p in self.root.rglob("*") if p.is_file()):
            if file in self.read:
                continue
            if file.suffix == ".md" and file.parent.name == "reports":
                reason = "a report the suite rendered from the same results"
            elif file.parent.name == "history" and _archive_time(file.name) is None:
                reason = "not a run archive (history/results_YYYYMMDD_HHMMSS)"
            elif file.parent.name == "watcher_observations":
                reason = "an observation file that cannot be read (see the warnings)"
            else:
                reason = _SKIP_REASONS.get(file.name, "not a file of the suite testledger reads")
            out.append(Skipped(file, reason))
        return out


def _history(folder: _Folder, history: Path) -> None:
    for item in sorted(history.iterdir()) if history.is_dir() else []:
        stamp = _archive_time(item.name)
        file = (results_file(item) if item.is_dir() else item) if stamp else None
        if file is None:
            continue
        run_dir = item if item.is_dir() else None
        parsed = folder.run(file, run_dir, item / "summary.json" if run_dir else None)
        folder.runs.append((parsed.run.started_at or stamp, len(folder.runs), parsed))


def _merge_report(parsed: ParsedFile, report: Path) -> bool:
    """The report's extras into the latest run when both are of one session (else False)."""
    doc = load_object(report, "the suite's report")
    summary = _obj(doc.get("summary"))
    if parse_time(summary.get("session_start")) != parsed.run.started_at:
        return False
    for key in ("failure_analysis", "performance"):
        if isinstance(doc.get(key), dict):
            parsed.run.metadata.setdefault(key, doc[key])
    parsed.run.metadata["report_summary"] = summary
    return True


def _results_folder(path: Path) -> Iterator[ParsedFile]:
    if (path / "results").is_dir() and not (path / "latest").is_dir():
        path = path / "results"
    root, latest = (path.parent, path) if path.name == "latest" else (path, path / "latest")
    folder = _Folder(root)
    _history(folder, root / "history")
    latest_file = results_file(latest) if latest.is_dir() else None
    report = results_file(root) if root != latest else None
    if latest_file is not None:
        parsed = folder.run(latest_file, latest, latest / "summary.json")
        folder.runs.append((parsed.run.started_at, len(folder.runs), parsed))
        if report is not None and _merge_report(parsed, report):
            folder.read.add(report)
            report = None
    if report is not None:  # no latest/, or the report is of another session: a run of its own
        # Without latest/, the folder is the run's own (an archive folder given directly).
        own = root if latest_file is None else None
        parsed = folder.run(report, own, own / "summary.json" if own else None)
        folder.runs.append((parsed.run.started_at, len(folder.runs), parsed))
    for run_dir in dict.fromkeys(d for d in (latest, root) if d.is_dir()):
        folder.side_sources(run_dir)
    if not (folder.runs or folder.summaries or folder.loose):
        raise ImportFormatError(path, "no test_results.json in the folder, latest/ or history/")
    ordered = [*_chosen(folder.runs), *folder.summaries, *folder.loose]
    ordered[-1].skipped = folder.skipped()
    yield from ordered


def _chosen(runs: list[tuple[datetime | None, int, ParsedFile]]) -> Iterator[ParsedFile]:
    """The runs oldest first. The suite copies latest/ into history/: one session seen twice is
    imported once, from the copy read last (latest/ when it is one of the two)."""
    chosen: dict[object, tuple[datetime | None, int, ParsedFile]] = {}
    for start, index, parsed in runs:
        key: object = parsed.run.started_at or index
        if key in chosen:
            parsed.warnings.append(f"{chosen[key][2].path} is the same session: not imported")
        chosen[key] = (start, index, parsed)
    far = datetime.max.replace(tzinfo=timezone.utc)
    for _, _, parsed in sorted(chosen.values(), key=lambda r: (r[0] or far, r[1])):
        yield parsed


def parse_folder(path: Path) -> Iterator[ParsedFile]:
    """A results folder's runs, summaries and loose evidence (see the module's docstring), an
    observation folder's observations, or an ``api_responses/`` folder's calls."""
    path = Path(path)
    if not path.is_dir():
        raise ImportFormatError(path, "not a folder")
    if is_api_folder(path):
        yield api_calls(path)
    elif is_observation_folder(path) and results_file(path) is None:
        yield observations_folder(path)
    else:
        yield from _results_folder(path)
