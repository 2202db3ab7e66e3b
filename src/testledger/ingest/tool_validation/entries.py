"""The tool-validation suite's result documents read into results: the suite config and a run
folder's side files as context, each test entry as a :class:`TestResult`, a whole
``test_results.json`` (either layout) or ``summary.json`` as a :class:`ParsedFile`.

Mapping decisions are those listed in :mod:`.results` (test ids, providers, models, times,
watcher observations, tokens and cost).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from testledger.common.text import MESSAGE_LIMIT, bounded
from testledger.ingest._common import epoch_to_utc, load_json_document, opt_number, opt_str
from testledger.ingest.base import ImportFormatError, ParsedFile, RunTotals
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
from testledger.model import NO_WATCHER, RunInfo, Status, TestResult

__all__ = [
    "STATUSES",
    "WATCHER_DELAY",
    "build_run",
    "check_summary",
    "counts",
    "document_kind",
    "load_object",
    "load_side_files",
    "provider_of",
    "suite_context",
    "summary_totals",
    "test_result",
    "try_load",
]

STATUSES = {"passed": Status.PASS, "failed": Status.FAIL, "skipped": Status.SKIP}
STATUSES.update({"error": Status.ERROR, "errored": Status.ERROR, "timeout": Status.ERROR})
_PROVIDERS = ("glm", "kimi")
#: How long after its test the watcher's observation of it may be stamped: the watcher runs once
#: the test is done and may wait for its model (the real files: 20 to 65 seconds).
WATCHER_DELAY = timedelta(minutes=10)


def load_object(path: Path, what: str) -> dict[str, Any]:
    doc = load_json_document(path, what)
    if not isinstance(doc, dict):
        raise ImportFormatError(path, f"expected {what} (a JSON object)")
    return doc


def try_load(path: Path, what: str, warnings: list[str] | None) -> dict[str, Any] | None:
    """A side file, or None with a warning (None: silently) when it cannot be read."""
    try:
        return load_object(path, what)
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


def suite_context(start: Path, warnings: list[str]) -> ExaiContext:
    """The suite config found above ``start`` (providers, models, tools, the watcher)."""
    ctx = ExaiContext()
    config = _find_config(start)
    if config is None:
        return ctx
    test_config = try_load(config / "test_config.json", "suite config", warnings) or {}
    tools = _obj(test_config.get("tools"))
    for provider, names in _obj(tools.get("provider")).items():
        ctx.tool_provider.update({tool: provider for tool in _strings(names)})
    ctx.tools = set(ctx.tool_provider)
    for group in tools.values():
        ctx.tools.update(_strings(group))
    ctx.variations = set(_strings(test_config.get("variations")))
    ctx.models = {k: _strings(v) for k, v in _obj(test_config.get("models")).items()}
    watcher = _obj(test_config.get("watcher"))
    ctx.watcher_model = opt_str(watcher.get("model")) if watcher.get("enabled", True) else None
    return ctx


def load_side_files(run_dir: Path, ctx: ExaiContext, warnings: list[str]) -> dict[str, Any]:
    """Watcher observation files, saved MCP requests and the prompt counter of one run folder."""
    obs_dir = run_dir / "watcher_observations"
    for obs_path in sorted(obs_dir.glob("*.json*")) if obs_dir.is_dir() else []:
        obs = try_load(obs_path, "watcher observation", warnings)
        if obs is None:
            continue
        # The fields inside the file say which test it observed; the file name is a fallback.
        tool, variation = opt_str(obs.get("tool")), opt_str(obs.get("variation"))
        if tool is None or variation is None:
            warnings.append(f"{obs_path.name}: watcher observation without tool/variation skipped")
            continue
        ctx.observations[(tool, variation)] = obs
        ctx.observation_paths[(tool, variation)] = obs_path
        ctx.observation_files[obs_path] = obs
    mcp_dir = run_dir / "api_responses" / "mcp"
    for req_path in sorted(mcp_dir.glob("*_request.json")) if mcp_dir.is_dir() else []:
        # A debugging aid of the suite: an unreadable one costs only the model name, silently.
        req = try_load(req_path, "saved MCP request", None) or {}
        tool, req_id = opt_str(req.get("name")), opt_str(req.get("request_id"))
        model = opt_str(_obj(req.get("arguments")).get("model"))
        if tool and req_id and model and req_id.startswith(f"{tool}_"):
            variation = req_id[len(tool) + 1 :].rsplit("_", 1)[0]
            ctx.request_models[(tool, variation)] = model
    counter_path = run_dir / "prompt_counter.json"
    counter = try_load(counter_path, "prompt counter", warnings) if counter_path.is_file() else {}
    if not counter:
        return {}
    ctx.prompts = [p for p in _list(counter.get("prompt_history")) if isinstance(p, dict)]
    return counter


# --------------------------------------------------------------------------- test entries


def provider_of(tool: str, variation: str, ctx: ExaiContext) -> str | None:
    """The LLM provider a test called: named by its variation (``basic_glm``), else by the
    config's provider tool lists, else by its tool (``conversation_id_kimi``)."""
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


def _observation(
    entry: dict[str, Any],
    key: tuple[str, str],
    details: dict[str, Any],
    ctx: ExaiContext,
    run_start: datetime | None,
) -> dict[str, Any] | None:
    """The entry's own watcher observation, else the run folder's file of the same test when it
    is of this test's run: a file stamped before the test started is left over from an earlier
    run, one stamped long after it is of a later run (either is imported on its own)."""
    obs = entry.get("watcher_observation")
    if isinstance(obs, dict):
        return obs
    obs = ctx.observations.get(key)
    if obs is None:
        return None
    stamp = parse_time(obs.get("timestamp"))
    perf = _obj(entry.get("performance_metrics"))
    start = epoch_to_utc(perf.get("start_time")) or parse_time(entry.get("timestamp")) or run_start
    if start and stamp and stamp < start - SESSION_SLACK:
        details["stale_watcher_observation"] = obs.get("timestamp")
        return None
    took = timedelta(seconds=opt_number(entry.get("duration_secs")) or 0.0)
    if start and stamp and stamp > start + took + WATCHER_DELAY:
        return None
    details["watcher_source"] = "watcher_observations"
    ctx.used_observations.add(ctx.observation_paths[key])
    return obs


def test_result(
    path: Path,
    where: str,
    entry: dict[str, Any],
    ctx: ExaiContext,
    run_start: datetime | None = None,
) -> TestResult:
    """One test entry (of ``tests``, ``failures`` or a coverage stub) as a result; its run's
    start stands for its own time (a coverage stub has none) when an observation file is
    matched to it."""
    tool, variation = opt_str(entry.get("tool")), opt_str(entry.get("variation"))
    if tool is None or variation is None:
        raise ImportFormatError(path, f"{where}: missing 'tool' or 'variation'")
    key, raw_status = (tool, variation), entry.get("status")
    status = STATUSES.get(raw_status.strip().lower() if isinstance(raw_status, str) else "")
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
    provider = provider_of(tool, variation, ctx)
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
    obs = _observation(entry, key, details, ctx, run_start)
    if obs is not None:
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


def document_kind(doc: object) -> str | None:
    """``tests`` (latest layout), ``report``, ``simple_runner``, ``summary``, ``observation``
    or None (not a document of the suite)."""
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
    if "tool" in doc and "variation" in doc and isinstance(doc.get("watcher_analysis"), dict):
        return "observation"
    return None


def _entries(path: Path, doc: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """The run's test entries with where they were read; the report's passing ones via coverage."""
    if kind == "tests":
        return [(f"tests[{i}]", e) for i, e in enumerate(doc["tests"]) if _is_obj(path, i, e)]
    failures = _list(doc.get("failures"))
    out = [(f"failures[{i}]", e) for i, e in enumerate(failures) if _is_obj(path, i, e)]
    # Through opt_str: a malformed entry's tool or variation may be any JSON (a dict is
    # unhashable), and such an entry is reported by test_result, not here.
    seen = {(opt_str(e.get("tool")), opt_str(e.get("variation"))) for _, e in out}
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


def counts(results: list[TestResult]) -> dict[str, int]:
    statuses = [r.status for r in results]
    return {
        "total": len(statuses),
        "passed": statuses.count(Status.PASS),
        "failed": sum(st.is_failure for st in statuses),
        "skipped": statuses.count(Status.SKIP),
    }


def check_summary(
    summary: dict[str, Any], found: dict[str, int], source: str, warnings: list[str]
) -> None:
    pairs = [("total", "total_tests"), ("total", "total")]
    pairs += [(key, key) for key in ("passed", "failed", "skipped")]
    for ours, theirs in pairs:
        value = summary.get(theirs)
        if isinstance(value, int) and value != found[ours]:
            warnings.append(f"{source} says {theirs}={value} but the run has {found[ours]} {ours}")


def summary_totals(summary: dict[str, Any]) -> RunTotals | None:
    """The counts of a ``summary.json``; None when it has no whole-number total."""

    def number(key: str) -> int:
        value = summary.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    total = summary.get("total_tests", summary.get("total"))
    if isinstance(total, bool) or not isinstance(total, int):
        return None
    return RunTotals(
        total=total, passed=number("passed"), failed=number("failed"), skipped=number("skipped")
    )


def _run_info(doc: dict[str, Any], kind: str, ctx: ExaiContext) -> RunInfo:
    summary = _obj(doc.get("summary"))
    start = parse_time(doc.get("session_start") or summary.get("session_start"))
    keys = ("summary", "coverage", "failure_analysis", "performance")
    metadata = {"format": FORMAT, "layout": kind} | {k: doc[k] for k in keys if _obj(doc.get(k))}
    if kind == "summary":
        metadata["summary"] = doc
    watcher = ctx.watcher_model or NO_WATCHER
    return RunInfo(suite=SUITE, started_at=start, metadata=metadata, watcher_model=watcher)


def build_run(
    path: Path,
    doc: dict[str, Any],
    kind: str,
    run_dir: Path | None,
    warnings: list[str],
    ctx: ExaiContext | None = None,
) -> ParsedFile:
    """A ``test_results.json`` (either layout) or ``summary.json`` as its run, reading the run
    folder's side files when ``run_dir`` is given. A summary gives the totals it states and no
    results (see ParsedFile.totals)."""
    ctx = ctx or suite_context(path.parent, warnings)
    counter = load_side_files(run_dir, ctx, warnings) if run_dir is not None else {}
    if not counter and isinstance(doc.get("prompt_counter"), dict):
        counter = doc["prompt_counter"]
        ctx.prompts = [p for p in _list(counter.get("prompt_history")) if isinstance(p, dict)]
    run = _run_info(doc, kind, ctx)
    if kind == "summary":
        totals = summary_totals(doc)
        return ParsedFile(path, FORMAT, run, iter(()), warnings, totals=totals)
    entries = _entries(path, doc, kind)
    # Built eagerly: the warnings must be complete when ParsedFile is returned, and a suite run
    # is at most a few hundred tests.
    results = [test_result(path, where, e, ctx, run.started_at) for where, e in entries]
    attribute_prompts(results, ctx, run.started_at)
    if isinstance(doc.get("summary"), dict):
        check_summary(doc["summary"], counts(results), "the file's summary", warnings)
    if counter:
        attach_counter(counter, ctx, run, warnings)
    return ParsedFile(path=path, format=FORMAT, run=run, results=iter(results), warnings=warnings)
