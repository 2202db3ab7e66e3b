"""Importer for the files an LLM tool-validation suite ("EX-AI" tool_validation_suite) writes.

Shapes read (all JSON, gzip transparently):

* ``results/latest/test_results.json``: ``{"session_start", "tests": [...], "summary", ...}``;
* ``results/test_results.json`` (the report): ``{"summary": {"session_start", ...}, "coverage",
  "failures": [...], "prompt_counter", "performance"}``. It lists only the *failures* in full, so
  every other test comes from ``coverage`` (tool -> variation -> status) with no more detail;
* ``summary.json``: run counters only (a run with no results; in a folder, a consistency check);
* ``simple_runner_results.json``: one entry per test *script*, judged by its exit code only
  (0 PASS, else FAIL, as written). Output that reports failures anyway ("FAILED", "❌",
  "Error:", tracebacks, "N failed") is flagged beside it: ``details["output_reports_failures"]``,
  the matching lines (bounded) and ``execution_status`` ``exit_0_output_reports_failure``.

Mapping decisions (each one because the data is ambiguous otherwise):

* ``test_id`` is ``"<tool>/<variation>"``; ``provider`` comes from the variation (``basic_glm``
  -> ``glm``), else the config's provider tool lists, else the tool name (``conversation_id_kimi``).
  ``model`` comes from the data (the test entry, the prompt history, the ``api_responses/mcp``
  request the suite saved) and from the config only when it names a single model for the provider:
  the config lists several and says nothing of which one ran, and guessing would be a lie.
* ``started_at`` is ``performance_metrics.start_time`` when present: the entry's ``timestamp`` is
  written *after* the watcher ran (often half a minute later); it is kept as ``recorded_at``.
* Watcher: ``suggestions`` -> recommendations; ``quality_score`` 0 is the watcher's own failure and
  becomes ``quality_score=None`` with an error. The suite's fallback when it could not parse the
  watcher's answer (``"Unable to parse watcher response"``, score 5, confidence 0.5, correctness
  UNKNOWN) is a failure too: that 5 is a placeholder, not a verdict. ``raw`` is always the whole
  observation file.
* Tokens and cost (``prompt_counter.json``): prompt-history entries naming a tool and variation of
  the run are summed onto that result (watcher prompts excluded: they are not the test's usage);
  the counter's totals always go to ``RunInfo.metadata["prompt_counter"]``, and what could not be
  attributed is said in ``ParsedFile.warnings``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from testledger.common.text import MESSAGE_LIMIT, bounded
from testledger.ingest._common import (
    epoch_to_utc,
    head_text,
    load_json_document,
    open_maybe_gzip,
    opt_number,
    opt_str,
)
from testledger.ingest.base import ImportFormatError, ParsedFile
from testledger.ingest.tool_validation.context import FORMAT, SUITE, ExaiContext, parse_time
from testledger.ingest.tool_validation.context import json_list as _list
from testledger.ingest.tool_validation.context import json_object as _obj
from testledger.ingest.tool_validation.context import json_strings as _strings
from testledger.ingest.tool_validation.observations import watcher_from_observation
from testledger.ingest.tool_validation.prompts import (
    SESSION_SLACK,
    attach_counter,
    attribute_prompts,
)
from testledger.ingest.tool_validation.scripts import parse_simple_runner
from testledger.model import NO_WATCHER, RunInfo, Status, TestResult

__all__ = [
    "FORMAT",
    "PARSE_AHEAD",
    "READS_FOLDERS",
    "SUFFIXES",
    "SUITE",
    "parse",
    "parse_folder",
    "sniff",
    "watcher_from_observation",
]

# The suite's JSON documents are loaded whole (nothing to parse ahead); its results folders, with
# their side files and archived history, are its usual source (see parse_folder).
PARSE_AHEAD = False
READS_FOLDERS = True
SUFFIXES = (".json",)

_STATUSES = {"passed": Status.PASS, "failed": Status.FAIL, "skipped": Status.SKIP}
_STATUSES.update({"error": Status.ERROR, "errored": Status.ERROR, "timeout": Status.ERROR})
_PROVIDERS = ("glm", "kimi")
_HISTORY_NAME = re.compile(r"^results_(\d{8}_\d{6})(?:\.json(?:\.gz)?)?$")

_SNIFF = (
    re.compile(r'^\{\s*"tests"\s*:\s*\[\s*\{\s*"tool"\s*:'),
    re.compile(r'^\{\s*"session_start"\s*:\s*"[^"]*"\s*,\s*"(?:tests|total_tests)"\s*:'),
    re.compile(r'^\{\s*"summary"\s*:\s*\{\s*"session_start"\s*:'),
    re.compile(r'^\{\s*"timestamp"\s*:\s*"[^"]*"\s*,\s*"total_scripts"\s*:'),
)


def sniff(path: Path, head: bytes) -> bool:
    """A test_results document (either layout), a summary.json or a simple runner's results;
    or a results folder (``results/``, ``latest/``, an archive, the suite root) holding one."""
    if path.is_dir():
        return _sniff_folder(path)
    text = head_text(head)
    return any(pattern.search(text) for pattern in _SNIFF)


def _sniff_folder(path: Path) -> bool:
    for root in (path, path / "latest", path / "results", path / "results" / "latest"):
        file = _results_file(root) if root.is_dir() else None
        if file is not None:
            try:
                with open_maybe_gzip(file) as stream:
                    return sniff(file, stream.read(4096))
            except (ImportFormatError, OSError, EOFError):
                return False
    return False


# --------------------------------------------------------------------------- context


def _load_object(path: Path, what: str) -> dict[str, Any]:
    doc = load_json_document(path, what)
    if not isinstance(doc, dict):
        raise ImportFormatError(path, f"expected {what} (a JSON object)")
    return doc


def _try_load(path: Path, what: str, warnings: list[str] | None) -> dict[str, Any] | None:
    """A side file, or None with a warning (None: silently) when it cannot be read."""
    try:
        return _load_object(path, what)
    except ImportFormatError as exc:
        if warnings is not None:
            warnings.append(f"{what} ignored: {exc}")
        return None


def _find_config(start: Path) -> Path | None:
    """The suite's ``config/`` folder, looked for above a results file (results/latest/x.json)."""
    for parent in [start, *start.parents][:5]:
        if (parent / "config" / "test_config.json").is_file():
            return parent / "config"
    return None


def _context(start: Path, warnings: list[str]) -> ExaiContext:
    ctx = ExaiContext()
    config = _find_config(start)
    if config is None:
        return ctx
    test_config = _try_load(config / "test_config.json", "suite config", warnings) or {}
    for provider, tools in _obj(_obj(test_config.get("tools")).get("provider")).items():
        ctx.tool_provider.update({tool: provider for tool in _strings(tools)})
    ctx.models = {k: _strings(v) for k, v in _obj(test_config.get("models")).items()}
    watcher = _obj(test_config.get("watcher"))
    ctx.watcher_model = opt_str(watcher.get("model")) if watcher.get("enabled", True) else None
    return ctx


def _load_side_files(run_dir: Path, ctx: ExaiContext, warnings: list[str]) -> dict[str, Any]:
    """Watcher observation files, saved MCP requests and the prompt counter of one run folder."""
    obs_dir = run_dir / "watcher_observations"
    for obs_path in sorted(obs_dir.glob("*.json*")) if obs_dir.is_dir() else []:
        obs = _try_load(obs_path, "watcher observation", warnings)
        if obs is None:
            continue
        # The fields inside the file say which test it observed; the file name is a fallback.
        tool, variation = opt_str(obs.get("tool")), opt_str(obs.get("variation"))
        if tool is None or variation is None:
            warnings.append(f"{obs_path.name}: watcher observation without tool/variation skipped")
            continue
        ctx.observations[(tool, variation)] = obs
    mcp_dir = run_dir / "api_responses" / "mcp"
    for req_path in sorted(mcp_dir.glob("*_request.json")) if mcp_dir.is_dir() else []:
        # A debugging aid of the suite: an unreadable one costs only the model name, silently.
        req = _try_load(req_path, "saved MCP request", None) or {}
        tool, req_id = opt_str(req.get("name")), opt_str(req.get("request_id"))
        model = opt_str(_obj(req.get("arguments")).get("model"))
        if tool and req_id and model and req_id.startswith(f"{tool}_"):
            variation = req_id[len(tool) + 1 :].rsplit("_", 1)[0]
            ctx.request_models[(tool, variation)] = model
    counter_path = run_dir / "prompt_counter.json"
    counter = _try_load(counter_path, "prompt counter", warnings) if counter_path.is_file() else {}
    if not counter:
        return {}
    ctx.prompts = [p for p in _list(counter.get("prompt_history")) if isinstance(p, dict)]
    return counter


# --------------------------------------------------------------------------- test entries


def _provider(tool: str, variation: str, ctx: ExaiContext) -> str | None:
    in_variation = [p for p in _PROVIDERS if p in variation.lower().split("_")]
    in_tool = [p for p in _PROVIDERS if p in tool.lower().split("_")]
    for found in (in_variation, [ctx.tool_provider.get(tool)], in_tool):
        if len(found) == 1 and found[0] is not None:
            return found[0]
    return None


def _model(
    entry: dict[str, Any], key: tuple[str, str], provider: str | None, ctx: ExaiContext
) -> str | None:
    model = opt_str(entry.get("model")) or ctx.request_models.get(key)
    if model:
        return model
    for prompt in ctx.prompts:
        # MCP-level prompts name the server ("mcp" / "server"), not the LLM that answered.
        if (prompt.get("tool"), prompt.get("variation")) == key and prompt.get("provider") in (
            _PROVIDERS
        ):
            return opt_str(prompt.get("model"))
    candidates = ctx.models.get(provider or "", [])
    return candidates[0] if len(candidates) == 1 else None


def _result(
    path: Path, where: str, entry: dict[str, Any], ctx: ExaiContext, run_start: datetime | None
) -> TestResult:
    tool, variation = opt_str(entry.get("tool")), opt_str(entry.get("variation"))
    if tool is None or variation is None:
        raise ImportFormatError(path, f"{where}: missing 'tool' or 'variation'")
    key, raw_status = (tool, variation), entry.get("status")
    status = _STATUSES.get(raw_status.strip().lower() if isinstance(raw_status, str) else "")
    if status is None:
        raise ImportFormatError(
            path, f"{where} ({tool}/{variation}): unknown status {raw_status!r}"
        )
    perf = _obj(entry.get("performance_metrics"))
    validation = entry.get("validation")
    details: dict[str, Any] = {}
    if isinstance(validation, dict):
        details["validation"] = validation
    recorded = opt_str(entry.get("timestamp"))
    if recorded:
        details["recorded_at"] = recorded
    if perf.get("alerts"):
        details["performance_alerts"] = perf["alerts"]
    errors = _strings(_obj(validation).get("errors"))
    entry_error = opt_str(entry.get("error"))
    if entry_error and entry_error not in errors:
        errors.insert(0, entry_error)
    provider = _provider(tool, variation, ctx)
    memory = opt_number(perf.get("end_memory_mb", perf.get("start_memory_mb")))
    cpu = opt_number(perf.get("end_cpu_percent", perf.get("start_cpu_percent")))
    metrics = {
        k: float(v) for k in ("memory_delta_mb",) if (v := opt_number(perf.get(k))) is not None
    }
    duration = opt_number(entry.get("duration_secs"))
    result = TestResult(
        test_id=f"{tool}/{variation}",
        tool_name=tool,
        variation=variation,
        status=status,
        provider=provider,
        model=_model(entry, key, provider, ctx),
        execution_status=_execution_status(entry),
        duration_secs=duration if duration is not None else opt_number(perf.get("duration_secs")),
        memory_mb=round(memory) if memory is not None else None,
        cpu_percent=cpu,
        error_message=bounded("\n".join(errors), MESSAGE_LIMIT),
        metrics=metrics,
        details=details,
        started_at=epoch_to_utc(perf.get("start_time")) or parse_time(recorded),
    )
    obs = entry.get("watcher_observation")
    if not isinstance(obs, dict):
        obs = ctx.observations.get(key)
        stamp = parse_time(obs.get("timestamp")) if obs else None
        if obs is not None and run_start and stamp and stamp < run_start - SESSION_SLACK:
            details["stale_watcher_observation"] = obs.get("timestamp")
            obs = None  # the file is left over from an earlier run of this test
        elif obs is not None:
            details["watcher_source"] = "watcher_observations"
    if isinstance(obs, dict):
        result.watcher = watcher_from_observation(obs, ctx.watcher_model)
    return result


def _execution_status(entry: dict[str, Any]) -> str | None:
    """The tool's own status where the data gives it (``consensus_failed``...): never invented."""
    status = opt_str(entry.get("execution_status"))
    for key in ("result", "response"):
        inner = entry.get(key)
        if status is None and isinstance(inner, dict):
            status = opt_str(inner.get("status"))
    return status


# --------------------------------------------------------------------------- documents


def _kind(doc: object) -> str | None:
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("tests"), list):
        return "tests"
    if isinstance(doc.get("summary"), dict) and ("coverage" in doc or "failures" in doc):
        return "report"
    if "total_scripts" in doc and isinstance(doc.get("results"), list):
        return "simple_runner"
    if "total_tests" in doc and "passed" in doc:
        return "summary"
    return None


def _entries(path: Path, doc: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """The run's test entries with where they were read; the report's passing ones via coverage."""
    if kind == "tests":
        return [(f"tests[{i}]", e) for i, e in enumerate(doc["tests"]) if _is_obj(path, i, e)]
    failures = _list(doc.get("failures"))
    out = [(f"failures[{i}]", e) for i, e in enumerate(failures) if _is_obj(path, i, e)]
    seen = {(e.get("tool"), e.get("variation")) for _, e in out}
    coverage = _obj(doc.get("coverage"))
    for tool, block in coverage.items():
        for variation, status in _obj(_obj(block).get("variations")).items():
            if (tool, variation) not in seen:
                stub = {"tool": tool, "variation": variation, "status": status}
                out.append((f"coverage.{tool}.{variation}", stub))
    return out


def _is_obj(path: Path, index: int, entry: object) -> bool:
    if isinstance(entry, dict):
        return True
    raise ImportFormatError(path, f"test entry {index}: expected an object")


def _counts(results: list[TestResult]) -> dict[str, int]:
    statuses = [r.status for r in results]
    return {
        "total": len(statuses),
        "passed": statuses.count(Status.PASS),
        "failed": sum(st.is_failure for st in statuses),
        "skipped": statuses.count(Status.SKIP),
    }


def _check_summary(
    summary: dict[str, Any], counts: dict[str, int], source: str, warnings: list[str]
) -> None:
    pairs = [("total", "total_tests"), ("total", "total")]
    pairs += [(key, key) for key in ("passed", "failed", "skipped")]
    for ours, theirs in pairs:
        value = summary.get(theirs)
        if isinstance(value, int) and value != counts[ours]:
            warnings.append(f"{source} says {theirs}={value} but the run has {counts[ours]} {ours}")


def _run_info(doc: dict[str, Any], kind: str, ctx: ExaiContext) -> RunInfo:
    summary = _obj(doc.get("summary"))
    start = parse_time(doc.get("session_start") or summary.get("session_start"))
    keys = ("summary", "coverage", "failure_analysis", "performance")
    metadata = {"format": FORMAT, "layout": kind} | {k: doc[k] for k in keys if _obj(doc.get(k))}
    if kind == "summary":
        metadata["summary"] = doc
    watcher = ctx.watcher_model or NO_WATCHER
    return RunInfo(suite=SUITE, started_at=start, metadata=metadata, watcher_model=watcher)


def _build(
    path: Path, doc: dict[str, Any], run_dir: Path | None, warnings: list[str]
) -> ParsedFile:
    kind = _kind(doc)
    if kind is None:
        raise ImportFormatError(
            path,
            "not a tool-validation-suite file: expected test_results, summary or "
            "simple_runner_results JSON",
        )
    if kind == "simple_runner":
        return parse_simple_runner(path, doc, warnings)
    ctx = _context(path.parent, warnings)
    counter = _load_side_files(run_dir, ctx, warnings) if run_dir is not None else {}
    if not counter and isinstance(doc.get("prompt_counter"), dict):
        counter = doc["prompt_counter"]
        ctx.prompts = [p for p in _list(counter.get("prompt_history")) if isinstance(p, dict)]
    run = _run_info(doc, kind, ctx)
    entries = [] if kind == "summary" else _entries(path, doc, kind)
    # Built eagerly: the warnings must be complete when ParsedFile is returned, and a suite run
    # is at most a few hundred tests.
    results = [_result(path, where, e, ctx, run.started_at) for where, e in entries]
    attribute_prompts(results, ctx, run.started_at)
    if kind != "summary" and isinstance(doc.get("summary"), dict):
        _check_summary(doc["summary"], _counts(results), "the file's summary", warnings)
    unmatched = set(ctx.observations) - {(r.tool_name, r.variation) for r in results}
    if unmatched:
        warnings.append(f"{len(unmatched)} watcher observation files match no test of this run")
    if counter:
        attach_counter(counter, ctx, run, warnings)
    return ParsedFile(path=path, format=FORMAT, run=run, results=iter(results), warnings=warnings)


def parse(path: Path) -> ParsedFile:
    """One suite file on its own (its folder's side files are read by :func:`parse_folder`)."""
    path = Path(path)
    if path.is_dir():
        raise ImportFormatError(path, "a results folder: use parse_folder() for its runs")
    return _build(path, _load_object(path, "a tool-validation-suite result file"), None, [])


# --------------------------------------------------------------------------- folders


def _results_file(run_dir: Path) -> Path | None:
    for name in ("test_results.json", "test_results.json.gz"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def _archive_time(name: str) -> datetime | None:
    match = _HISTORY_NAME.match(name)
    if match is None:
        return None
    # The suite names archives by local time; UTC is assumed, used only to order runs lacking
    # a session_start.
    return datetime.strptime(match.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=timezone.utc)


def _folder_run(results_file: Path, run_dir: Path | None, summary: Path | None) -> ParsedFile:
    warnings: list[str] = []
    doc = _load_object(results_file, "a tool-validation-suite result file")
    parsed = _build(results_file, doc, run_dir, warnings)
    if summary is not None and summary.is_file():
        summary_doc = _load_object(summary, "a run summary")
        parsed.run.metadata["summary"] = summary_doc
        results = list(parsed.results)
        _check_summary(summary_doc, _counts(results), summary.name, warnings)
        start = parse_time(summary_doc.get("session_start"))
        if parsed.run.started_at and start and start != parsed.run.started_at:
            warnings.append(f"{summary.name} session_start differs from the results file's")
        parsed.results = iter(results)
    return parsed


def parse_folder(path: Path) -> Iterator[ParsedFile]:
    """The runs of a results folder (``results/``, ``results/latest/`` or the suite root), oldest
    first: the ``history/results_YYYYMMDD_HHMMSS`` archives (folders, ``.json`` or ``.json.gz``)
    and the latest run. The report ``results/test_results.json`` of the session the latest folder
    already holds is not a run of its own: its summary goes into that run's metadata."""
    path = Path(path)
    if not path.is_dir():
        raise ImportFormatError(path, "not a folder")
    if (path / "results").is_dir() and not (path / "latest").is_dir():
        path = path / "results"
    root, latest = (path.parent, path) if path.name == "latest" else (path, path / "latest")
    runs: list[tuple[datetime | None, int, ParsedFile]] = []
    history = root / "history"
    for item in sorted(history.iterdir()) if history.is_dir() else []:
        stamp = _archive_time(item.name)
        if stamp is None:
            continue
        file = _results_file(item) if item.is_dir() else item
        if file is None:
            continue
        run_dir = item if item.is_dir() else None
        summary = item / "summary.json" if item.is_dir() else None
        parsed = _folder_run(file, run_dir, summary)
        runs.append((parsed.run.started_at or stamp, len(runs), parsed))
    latest_file = _results_file(latest) if latest.is_dir() else None
    report = _results_file(root) if root != latest else None
    if latest_file is not None:
        parsed = _folder_run(latest_file, latest, latest / "summary.json")
        runs.append((parsed.run.started_at, len(runs), parsed))
        if report is not None and _merge_report(parsed, report):
            report = None
    if report is not None:  # no latest/, or the report is of another session: a run of its own
        # Without latest/, the folder is the run's own (an archive folder given directly).
        own = root if latest_file is None else None
        parsed = _folder_run(report, own, own / "summary.json" if own else None)
        runs.append((parsed.run.started_at, len(runs), parsed))
    if not runs:
        raise ImportFormatError(path, "no test_results.json in the folder, latest/ or history/")
    # The suite copies latest/ into history/: one session seen twice is imported once, from the
    # copy read last (latest/ when it is one of the two).
    chosen: dict[object, tuple[datetime | None, int, ParsedFile]] = {}
    for start, index, parsed in runs:
        key: object = parsed.run.started_at or index
        if key in chosen:
            parsed.warnings.append(f"{chosen[key][2].path} is the same session: not imported")
        chosen[key] = (start, index, parsed)
    far = datetime.max.replace(tzinfo=timezone.utc)
    for _, _, parsed in sorted(chosen.values(), key=lambda r: (r[0] or far, r[1])):
        yield parsed


def _merge_report(parsed: ParsedFile, report: Path) -> bool:
    """The report's extras into the latest run when both are of one session (else False)."""
    doc = _load_object(report, "the suite's report")
    summary = _obj(doc.get("summary"))
    if parse_time(summary.get("session_start")) != parsed.run.started_at:
        return False
    for key in ("failure_analysis", "performance"):
        if isinstance(doc.get(key), dict):
            parsed.run.metadata.setdefault(key, doc[key])
    parsed.run.metadata["report_summary"] = summary
    return True
