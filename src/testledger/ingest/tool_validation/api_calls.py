"""The suite's API call logs (``api_responses/``) as the history of its calls: each request /
response pair one :class:`LooseResult`, placed on the test result it was made for when that is
in the ledger, otherwise reconstructed in a run of its session (see
:mod:`testledger.ingest.placement`).

* ``api_responses/mcp/``: ``<tool>_<test>_<variation>_<ms>_request.json`` and ``..._response.json``,
  the file name's millisecond timestamp taken when the file was written, paired by the
  ``request_id`` inside (``<test>_<variation>_<ms>``). The duration is the time between the
  two; the response text's ``MCP CALL SUMMARY`` gives the model and (estimated) tokens. A
  response with an ``error`` (the suite reports ``MCP error: ...``) or an ``[tool:error]`` text
  is an ERROR; a request without a response too (the call raised before anything was saved).
* ``api_responses/<provider>/`` (``glm``, ``kimi``): ``<tool>_<variation>_request.json`` and
  ``_response.json``, overwritten by each run; the time is the response's ``created``, tokens
  and model its ``usage`` and ``model``. The suite saves a provider response only when the call
  succeeded, so a request without one is an ERROR.

Each call is kept in its result's ``details["api_calls"]`` with its ``id`` (the request id, or
``<provider>:<file>@<created>``): importing the logs again adds nothing.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from testledger.common.text import MESSAGE_LIMIT, bounded
from testledger.ingest._common import epoch_ms_to_utc, epoch_to_utc, opt_number, opt_str
from testledger.ingest.base import LooseResult, ParsedFile
from testledger.ingest.tool_validation.context import ExaiContext, json_list, json_object
from testledger.ingest.tool_validation.entries import provider_of, suite_context, try_load
from testledger.ingest.tool_validation.evidence import loose_file
from testledger.model import Status, TestResult

__all__ = ["CALL", "api_calls", "is_api_folder"]

CALL = "API call"
_PAIR = re.compile(r"^(?P<stem>.+?)_(?P<side>request|response)\.json$")
_STAMPED = re.compile(r"^(?P<prefix>.+)_(?P<ms>\d{13})$")
_ERROR_TEXT = re.compile(r"^\s*\[[\w.-]+:error\]", re.IGNORECASE)
_SUMMARY = {
    "duration": re.compile(r"\bDuration:\s*([\d.]+)\s*s\b"),
    "model": re.compile(r"\bModel:\s*([^\s|]+)"),
    "tokens": re.compile(r"\bTokens:\s*(~?)(\d+)"),
    "status": re.compile(r"\bStatus:\s*([A-Za-z_]+)"),
}


def is_api_folder(folder: Path) -> bool:
    """``api_responses/`` or one of its provider folders, holding saved requests/responses."""
    if folder.name != "api_responses" and folder.parent.name != "api_responses":
        return False
    subfolders = [folder] if folder.name != "api_responses" else sorted(folder.iterdir())
    return any(
        _PAIR.match(file.name) for sub in subfolders if sub.is_dir() for file in sub.iterdir()
    )


def api_calls(folder: Path) -> ParsedFile:
    """Every saved call under ``folder`` (``api_responses/`` or one provider's folder)."""
    warnings: list[str] = []
    ctx = suite_context(folder, warnings)
    subfolders = [folder] if folder.name != "api_responses" else sorted(folder.iterdir())
    items: list[LooseResult] = []
    for sub in subfolders:
        if sub.is_dir():
            reader = _mcp_calls if sub.name == "mcp" else _provider_calls
            items += reader(sub, ctx, warnings)
    return loose_file(folder, "api_responses", items, ctx, warnings)


def _pairs(folder: Path, warnings: list[str]) -> dict[str, dict[str, tuple[Path, dict[str, Any]]]]:
    """The folder's saved files by their stem, as {"request": ..., "response": ...}."""
    found: dict[str, dict[str, tuple[Path, dict[str, Any]]]] = {}
    for file in sorted(folder.iterdir()):
        match = _PAIR.match(file.name)
        if match is None or not file.is_file():
            continue
        doc = try_load(file, f"saved {match.group('side')}", warnings)
        if doc is not None:
            found.setdefault(match.group("stem"), {})[match.group("side")] = (file, doc)
    return found


def _stamp(stem: str) -> tuple[str, datetime | None]:
    match = _STAMPED.match(stem)
    if match is None:
        return stem, None
    return match.group("prefix"), epoch_ms_to_utc(int(match.group("ms")))


def _split_test(name: str, tool: str | None, ctx: ExaiContext) -> tuple[str, str]:
    """``<tool>_<variation>``: by the tool when known, else by the config's tools or
    variations, else at the first underscore."""
    for known in ([tool] if tool else []) + sorted(ctx.tools, key=len, reverse=True):
        if name.startswith(f"{known}_"):
            return known, name[len(known) + 1 :]
    for variation in sorted(ctx.variations, key=len, reverse=True):
        if name.endswith(f"_{variation}"):
            return name[: -len(variation) - 1], variation
    head, _, rest = name.partition("_")
    return (head, rest) if rest else (tool or name, name)


def _mcp_calls(folder: Path, ctx: ExaiContext, warnings: list[str]) -> list[LooseResult]:
    by_request: dict[str, dict[str, Any]] = {}
    for stem, sides in _pairs(folder, warnings).items():
        prefix, written = _stamp(stem)
        for side, (file, doc) in sides.items():
            request_id = opt_str(doc.get("request_id")) or prefix
            call = by_request.setdefault(request_id, {"id": request_id, "source": "mcp"})
            call[side] = doc
            call[f"{side}_file"] = file.name
            call[f"{side}_written"] = written
            call.setdefault("file_prefix", prefix)
    return [_mcp_item(call, ctx) for _, call in sorted(by_request.items())]


def _texts(response: dict[str, Any]) -> list[str]:
    texts = [opt_str(json_object(out).get("text")) for out in json_list(response.get("outputs"))]
    return [text for text in texts if text] or [opt_str(response.get("text")) or ""]


def _tool_status(texts: list[str]) -> dict[str, Any]:
    """The tool's own JSON answer (its status, model and provider), when the first text is one."""
    try:
        answer = json.loads(texts[0])
    except (ValueError, IndexError):
        return {}
    return answer if isinstance(answer, dict) else {}


def _mcp_outcome(
    request: dict[str, Any] | None, response: dict[str, Any] | None, texts: list[str]
) -> tuple[Status, str | None]:
    """ERROR when nothing came back, the response is an error (the suite's own message for it,
    ``MCP error: ...``) or a text says ``[tool:error]``; PASS otherwise."""
    if response is None:
        return Status.ERROR, "no response was saved for this request"
    if "error" in response:
        raw = response["error"]
        return Status.ERROR, f"MCP error: {raw if isinstance(raw, str) else str(raw)}"
    failed = [text for text in texts if _ERROR_TEXT.match(text)]
    if failed:
        return Status.ERROR, failed[0].strip().splitlines()[0]
    return Status.PASS, None


def _mcp_call(call: dict[str, Any], ctx: ExaiContext) -> tuple[str, str, datetime | None]:
    """Fills ``call`` with what the pair tells; returns the test's tool, variation and start."""
    request, response = call.pop("request", None), call.pop("response", None)
    prefix = call.pop("file_prefix")
    base, requested = _stamp(call["id"])
    requested = call.pop("request_written", None) or requested
    responded = call.pop("response_written", None)
    tool = opt_str(json_object(request).get("name"))
    if tool is None and prefix.endswith(f"_{base}"):
        tool = prefix[: -len(base) - 1]  # <tool>_<request id without its ms>_<ms>
    tool, variation = _split_test(base, tool, ctx)
    texts = _texts(response) if response is not None else []
    summary = {key: rx.search("\n".join(texts)) for key, rx in _SUMMARY.items()}
    answer = _tool_status(texts)
    status, error = _mcp_outcome(request, response, texts)
    duration = (responded - requested).total_seconds() if requested and responded else None
    if duration is None and summary["duration"]:
        duration = float(summary["duration"].group(1))
    arguments = json_object(json_object(request).get("arguments"))
    tokens = summary["tokens"]
    call.update(
        status=status.value,
        requested_at=_iso(requested),
        responded_at=_iso(responded),
        duration_secs=duration,
        model=(summary["model"].group(1) if summary["model"] else None)
        or opt_str(json_object(answer.get("metadata")).get("model_used"))
        or opt_str(arguments.get("model")),
        provider=opt_str(json_object(answer.get("metadata")).get("provider_used")),
        tokens=int(tokens.group(2)) if tokens else None,
        tokens_estimated=bool(tokens and tokens.group(1)),
        tool_status=opt_str(answer.get("status"))
        or (summary["status"].group(1) if summary["status"] else None),
        error=error,
    )
    if requested is None and responded is not None and duration is not None:
        requested = responded - timedelta(seconds=duration)
    return tool, variation, requested or responded


def _mcp_item(call: dict[str, Any], ctx: ExaiContext) -> LooseResult:
    tool, variation, started = _mcp_call(call, ctx)
    error = call["error"]
    result = TestResult(
        test_id=f"{tool}/{variation}",
        tool_name=tool,
        variation=variation,
        status=Status(call["status"]),
        provider=call["provider"] or provider_of(tool, variation, ctx),
        model=call["model"],
        execution_status=call["tool_status"],
        duration_secs=call["duration_secs"],
        tokens_total=call["tokens"],
        error_message=bounded(error, MESSAGE_LIMIT) if error else None,
        details={"reconstructed_from": CALL},
        started_at=started,
    )
    return LooseResult(result, started, CALL, call=call)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _provider_item(
    provider: str, stem: str, sides: dict[str, tuple[Path, dict[str, Any]]], ctx: ExaiContext
) -> LooseResult:
    request = sides["request"][1] if "request" in sides else {}
    response = sides["response"][1] if "response" in sides else None
    created = epoch_to_utc(response.get("created")) if response is not None else None
    tool, variation = _split_test(stem, None, ctx)
    usage = json_object(json_object(response).get("usage"))
    model = opt_str(json_object(response).get("model")) or opt_str(request.get("model"))
    status, error = Status.PASS, None
    if response is None:
        status, error = Status.ERROR, "no response was saved: the call failed"
    elif "error" in response:
        status, error = Status.ERROR, f"{provider} error: {response['error']}"
    choices = json_list(json_object(response).get("choices"))
    call = {
        "id": f"{provider}:{stem}@{_iso(created) or 'undated'}",
        "source": provider,
        "status": status.value,
        "request_file": sides["request"][0].name if "request" in sides else None,
        "response_file": sides["response"][0].name if "response" in sides else None,
        "responded_at": _iso(created),
        "model": model,
        "usage": usage or None,
        "finish_reason": opt_str(json_object(choices[0] if choices else None).get("finish_reason")),
        "error": error,
    }
    result = TestResult(
        test_id=f"{tool}/{variation}",
        tool_name=tool,
        variation=variation,
        status=status,
        provider=provider,
        model=model,
        tokens_input=_int(usage.get("prompt_tokens")),
        tokens_output=_int(usage.get("completion_tokens")),
        tokens_total=_int(usage.get("total_tokens")),
        error_message=error,
        details={"reconstructed_from": CALL},
        started_at=created,
    )
    return LooseResult(result, created, CALL, call=call)


def _provider_calls(folder: Path, ctx: ExaiContext, warnings: list[str]) -> list[LooseResult]:
    pairs = _pairs(folder, warnings)
    return [_provider_item(folder.name, stem, sides, ctx) for stem, sides in pairs.items()]


def _int(value: object) -> int | None:
    number = opt_number(value)
    return int(number) if number is not None else None
