"""Watcher observations imported on their own: observation files (one, or a folder of them) and
the suite's CSV of watcher analyses, as :class:`LooseResult` items the import places on the
results they judged, or reconstructs (see :mod:`testledger.ingest.placement`).

An observation file names its test (``tool``, ``variation``), when the watcher wrote it
(``timestamp``), when the test started (``performance_metrics.start_time``, the time it is placed
by), the test's status as the suite recorded it (``test_status``) and, from the suite's second
version on, ``run_number`` and ``previous_run`` (the watcher's previous observation of the test:
the result judged is later than that).

``watcher_analysis.csv`` (``File, Tool, Variation, QualityScore, Correctness, Anomalies,
Suggestions, Observations``; lists joined by `` | ``) carries neither times nor test statuses:

* a row saying what the observation file it names (in ``watcher_observations/`` beside it) says
  is that file's observation, not a second one;
* a row whose file has since been rewritten by a later run is the observation the file held
  before: it is dated by the file's ``previous_run``;
* any other row is undated, and kept in an undated run of the CSV.

A result reconstructed from an observation that recorded no test status (every CSV row, old
observation files) is SKIP with ``execution_status`` ``status_not_recorded``: it counts neither as
passed nor as failed.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

from testledger.ingest._common import open_maybe_gzip, opt_str
from testledger.ingest.base import ImportFormatError, LooseResult, ParsedFile, verdict
from testledger.ingest.tool_validation.context import FORMAT, SUITE, ExaiContext, parse_time
from testledger.ingest.tool_validation.entries import (
    STATUSES,
    provider_of,
    suite_context,
    test_result,
    try_load,
)
from testledger.ingest.tool_validation.observations import watcher_from_observation
from testledger.model import NO_WATCHER, RunInfo, Status, TestResult

__all__ = [
    "CSV_HEADER",
    "analyses_csv",
    "is_observation_folder",
    "loose_file",
    "observation_item",
    "observations_file",
    "observations_folder",
]

OBSERVATION = "watcher observation"
#: The CSV's first columns, as the suite writes them.
CSV_HEADER = ("File", "Tool", "Variation", "QualityScore")
_NOT_RECORDED = "status_not_recorded"


def template(layout: str, ctx: ExaiContext, source: Path) -> RunInfo:
    """What a run reconstructed from these files is: the suite's, its watcher's, from where."""
    metadata = {"format": FORMAT, "layout": layout, "reconstructed_from": str(source)}
    return RunInfo(suite=SUITE, watcher_model=ctx.watcher_model or NO_WATCHER, metadata=metadata)


def loose_file(
    path: Path, layout: str, items: list[LooseResult], ctx: ExaiContext, warnings: list[str]
) -> ParsedFile:
    return ParsedFile(
        path, FORMAT, template(layout, ctx, path), iter(()), warnings, loose=list(items)
    )


def observation_item(path: Path, obs: dict[str, Any], ctx: ExaiContext) -> LooseResult | None:
    """One observation (a file's content) as the result it judged; None without tool/variation."""
    tool, variation = opt_str(obs.get("tool")), opt_str(obs.get("variation"))
    if tool is None or variation is None:
        return None
    recorded = obs.get("test_status")
    known = isinstance(recorded, str) and recorded.strip().lower() in STATUSES
    entry = {
        "tool": tool,
        "variation": variation,
        "status": recorded if known else "skipped",
        "performance_metrics": obs.get("performance_metrics"),
        "timestamp": obs.get("timestamp"),
        "watcher_observation": obs,
    }
    result = test_result(path, path.name, entry, ctx)
    details: dict[str, Any] = {"reconstructed_from": OBSERVATION, "observation_file": path.name}
    details.update({k: obs[k] for k in ("run_number", "previous_run") if obs.get(k) is not None})
    if not known:
        result.execution_status = _NOT_RECORDED
        details["recorded_status"] = recorded
    result.details = details | {k: v for k, v in result.details.items() if k != "recorded_at"}
    not_before = parse_time(obs.get("previous_run"))
    return LooseResult(result, result.started_at, OBSERVATION, not_before=not_before)


def is_observation_folder(folder: Path) -> bool:
    """A folder of watcher observation files (``watcher_observations/``)."""
    if folder.name == "watcher_observations":
        return True
    first = next(iter(sorted(folder.glob("*.json"))), None)
    if first is None or not first.is_file():
        return False
    with first.open("rb") as handle:
        head = handle.read(2048).decode("utf-8", errors="ignore")
    return '"watcher_analysis"' in head and '"tool"' in head and '"variation"' in head


def observations_folder(folder: Path) -> ParsedFile:
    """Every observation file of a folder, each placed on its own."""
    warnings: list[str] = []
    ctx = suite_context(folder, warnings)
    items = []
    for path in sorted(folder.glob("*.json*")):
        obs = try_load(path, OBSERVATION, warnings)
        item = observation_item(path, obs, ctx) if obs is not None else None
        if obs is not None and item is None:
            warnings.append(f"{path.name}: watcher observation without tool/variation skipped")
        items += [item] if item is not None else []
    return loose_file(folder, "watcher_observations", items, ctx, warnings)


def observations_file(path: Path, obs: dict[str, Any]) -> ParsedFile:
    warnings: list[str] = []
    ctx = suite_context(path.parent, warnings)
    item = observation_item(path, obs, ctx)
    if item is None:
        raise ImportFormatError(path, "a watcher observation without 'tool' and 'variation'")
    return loose_file(path, "watcher_observation", [item], ctx, warnings)


# --------------------------------------------------------------------------- the CSV


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(" | ") if part.strip()]


def _score(value: str | None) -> object:
    try:
        return int((value or "").strip())
    except ValueError:
        return value  # kept as written: the observation records a watcher error for it


def _row_observation(row: dict[str, str], number: int, name: str) -> dict[str, Any]:
    """A CSV row in the shape of an observation file (``raw`` keeps where it came from)."""
    return {
        "tool": (row.get("Tool") or "").strip(),
        "variation": (row.get("Variation") or "").strip(),
        "watcher_analysis": {
            "quality_score": _score(row.get("QualityScore")),
            "correctness": row.get("Correctness"),
            "anomalies": _split(row.get("Anomalies")),
            "suggestions": _split(row.get("Suggestions")),
            "observations": row.get("Observations") or "",
        },
        "source": {"file": name, "row": number, "observation_file": row.get("File")},
    }


def _read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open_maybe_gzip(path) as stream:
            text = stream.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ImportFormatError(path, f"cannot read the CSV of watcher analyses: {exc}") from None
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ImportFormatError(path, f"not a readable CSV of watcher analyses: {exc}") from None
    missing = [c for c in ("Tool", "Variation", "QualityScore") if rows and c not in rows[0]]
    if missing:
        raise ImportFormatError(path, f"not a CSV of watcher analyses: no {', '.join(missing)}")
    return rows


def _dating(
    path: Path, row: dict[str, str], said: tuple[object, ...]
) -> tuple[str, datetime | None, dict[str, Any]]:
    """(``duplicate`` / ``dated`` / ``undated``, the time, what the row's file says about it)."""
    named = opt_str(row.get("File"))
    file = path.parent / "watcher_observations" / named if named else None
    obs = try_load(file, OBSERVATION, None) if file is not None and file.is_file() else None
    if obs is None or (obs.get("tool"), obs.get("variation")) != (row["Tool"], row["Variation"]):
        return "undated", None, {}
    if verdict(watcher_from_observation(obs)) == said:
        return "duplicate", None, {}
    previous = parse_time(obs.get("previous_run"))
    if previous is None:
        return "undated", None, {}
    run_number = obs.get("run_number")
    dated: dict[str, Any] = {"dated_by": f"previous_run of {named}"}
    if isinstance(run_number, int) and not isinstance(run_number, bool) and run_number > 1:
        dated["run_number"] = run_number - 1
    return "dated", previous, dated


def analyses_csv(path: Path) -> ParsedFile:
    """The rows of ``watcher_analysis.csv`` (see the module's note on dating them)."""
    warnings: list[str] = []
    ctx = suite_context(path.parent, warnings)
    items: list[LooseResult] = []
    repeated = undated = 0
    for number, row in enumerate(_read_rows(path), start=2):
        obs = _row_observation(row, number, path.name)
        tool, variation = obs["tool"], obs["variation"]
        if not tool or not variation:
            warnings.append(f"{path.name} line {number}: no Tool or Variation, skipped")
            continue
        watcher = watcher_from_observation(obs, ctx.watcher_model)
        named = {**row, "Tool": tool, "Variation": variation}
        kind, at, dated = _dating(path, named, verdict(watcher))
        if kind == "duplicate":
            repeated += 1
            continue
        undated += kind == "undated"
        watcher.created_at = at
        result = TestResult(
            test_id=f"{tool}/{variation}",
            tool_name=tool,
            variation=variation,
            status=Status.SKIP,
            provider=provider_of(tool, variation, ctx),
            execution_status=_NOT_RECORDED,
            details={"reconstructed_from": path.name, "csv_line": number} | dated,
            started_at=at,
            watcher=watcher,
        )
        items.append(LooseResult(result, at, OBSERVATION))
    if repeated:
        warnings.append(
            f"{repeated} row(s) say what the observation file they name says: not imported twice"
        )
    if undated:
        warnings.append(
            f"{undated} row(s) carry no time and no newer file dates them: kept in an undated "
            "run of the CSV"
        )
    return loose_file(path, "watcher_analysis_csv", items, ctx, warnings)
