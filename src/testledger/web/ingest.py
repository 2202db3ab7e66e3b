"""The HTTP ingest API: CI jobs create a run, post its results in batches, attach watcher
observations, finish it, or upload a report file. Every call needs a write token and an app
started with ``--allow-writes`` (see :mod:`testledger.web.auth`).

Results come as objects (``/runs/{id}/results``) or in the compact form the runner's HTTP sink
sends (``/runs/{id}/result-rows``: the column names once, each result a list of values), which
the library checks a column at a time (``api.ingest_result_rows``) instead of a model per
result: the same checks, a fraction of the server's work.

Idempotent under retries: a run is named by its ``run_key`` (creating it again joins it), a
batch by its ``batch_key`` (sending it again stores nothing more), an uploaded file by its
content. Bodies are read as they stream in and refused (413) as soon as they pass their limit;
a body that does not validate is refused (422) before anything is written.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message

from testledger import api
from testledger.common.jsondata import is_finite_json
from testledger.common.nodeids import split_nodeid
from testledger.errors import ConfigError, DatabaseUnavailable, NotFound, TestledgerError
from testledger.model import RunInfo, RunStatus, Status, WatcherObservation
from testledger.web.auth import require_api_write
from testledger.web.settings import ledger_of, settings_of

__all__ = [
    "MAX_JSON_BODY_BYTES",
    "FinishBody",
    "ObservationBatchBody",
    "ObservationBody",
    "ResultBatchBody",
    "ResultBody",
    "ResultRowsBody",
    "RunBody",
    "router",
]

#: A JSON body (a batch) is at most this large, or the app's ``max_body_bytes`` if smaller;
#: uploads may reach ``max_body_bytes``.
MAX_JSON_BODY_BYTES = 32 * 1024 * 1024
#: The upload endpoint's path (under the router's prefix): its body may be larger.
_UPLOAD_PATH = "/reports"
_TEXT = 4096  # a run's names (branch, suite, commit, ...) are at most this long
_INT32 = 2**31 - 1


class _BoundedRoute(APIRoute):
    """A route whose body is counted as it streams in: over its limit, 413 at once (the rest is
    never read), so that a huge body costs the server neither memory nor a write. The write
    check comes first, so that a request without a write token is refused before its body is
    read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        uploads = self.path.endswith(_UPLOAD_PATH)

        async def bounded(request: Request) -> Response:
            await run_in_threadpool(require_api_write, request)
            settings = settings_of(request)
            limit = (
                settings.max_body_bytes
                if uploads
                else min(settings.max_body_bytes, MAX_JSON_BODY_BYTES)
            )
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            source = request.receive
            seen = 0

            async def counted() -> Message:
                nonlocal seen
                message = await source()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise _too_large(limit)
                return message

            try:
                return await handler(Request(request.scope, counted))
            except RequestValidationError as exc:
                return JSONResponse({"detail": _problems(exc)}, status_code=422)

        return bounded


def _shown(value: Any) -> Any:
    """A part of a validation error as it can be sent back: short, and UTF-8 whatever the
    body held (a lone surrogate is shown as its escape)."""
    if not isinstance(value, str):
        return value
    text = value if len(value) <= 200 else value[:200] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    """What was wrong with a body, without the values sent (the client has them; a megabyte
    name is not echoed back): where, and why."""
    return [
        {
            "loc": [_shown(part) for part in error.get("loc", ())],
            "msg": _shown(str(error.get("msg", ""))),
            "type": error.get("type"),
        }
        for error in exc.errors()[:100]
    ]


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"the body is larger than this server takes ({limit} bytes): send smaller batches",
    )


router = APIRouter(
    prefix="/api/v1/ingest",
    tags=["ingest"],
    dependencies=[Depends(require_api_write)],
    route_class=_BoundedRoute,
)


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """The library's refusals as HTTP errors with its message."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except DatabaseUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    except (ConfigError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except TestledgerError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


# -- bodies ------------------------------------------------------------------------------------


class _Body(BaseModel):
    # NaN and Infinity are no JSON (PostgreSQL's jsonb refuses them): refused here.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _finite(value: Any) -> Any:
    """``value`` (free-form JSON) refused when it holds NaN or Infinity."""
    if not is_finite_json(value):
        raise ValueError("NaN and Infinity are not JSON numbers")
    return value


#: A JSON object of any shape, finite numbers only.
JsonObject = Annotated[dict[str, Any], AfterValidator(_finite)]


class RunBody(_Body):
    """A run to create, or to join when a run of this ``run_key`` exists."""

    run_key: str | None = Field(
        None,
        max_length=200,
        description="idempotency key: creating a run again with the same key joins it",
    )
    suite: str | None = Field(None, max_length=_TEXT, description="default: the server's suite")
    branch: str = Field("unknown", max_length=_TEXT)
    commit: str | None = Field(None, max_length=_TEXT)
    watcher_model: str | None = Field(None, max_length=_TEXT)
    notes: str | None = Field(None, max_length=65536)
    started_at: datetime | None = Field(None, description="default: now")
    ci_provider: str | None = Field(None, max_length=_TEXT)
    ci_job_url: str | None = Field(None, max_length=_TEXT)
    host: str | None = Field(None, max_length=_TEXT)
    source: str = Field("http", max_length=100)
    metadata: JsonObject | None = None
    expected_tests: int | None = Field(
        None, ge=0, le=_INT32, description="how many tests the run will hold, if known"
    )


class ObservationBody(_Body):
    """A watcher's verdict on a result: a 1-10 ``quality_score``, or an ``error`` when the
    watcher itself failed."""

    quality_score: int | None = Field(None, ge=1, le=10)
    strengths: list[str] = Field(default_factory=list, max_length=1000)
    weaknesses: list[str] = Field(default_factory=list, max_length=1000)
    anomalies: list[str] = Field(default_factory=list, max_length=1000)
    recommendations: list[str] = Field(default_factory=list, max_length=1000)
    confidence_level: Literal["high", "medium", "low"] | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    raw: JsonObject | None = None
    watcher: str | None = Field(None, max_length=_TEXT)
    error: str | None = None
    created_at: datetime | None = None
    watcher_model: str | None = Field(None, max_length=_TEXT)
    watcher_input_tokens: int | None = Field(None, ge=0, le=2**62)
    watcher_output_tokens: int | None = Field(None, ge=0, le=2**62)
    watcher_cost_usd: float | None = Field(None, ge=0, lt=10**6)
    truncated: bool = False

    @model_validator(mode="after")
    def _score_or_error(self) -> ObservationBody:
        if self.quality_score is None and not self.error:
            raise ValueError("an observation without a quality_score must carry an error")
        return self

    def observation(self) -> WatcherObservation:
        return WatcherObservation(**{name: getattr(self, name) for name in _OBSERVATION_FIELDS})


_OBSERVATION_FIELDS = tuple(ObservationBody.model_fields)


class ResultBody(_Body):
    """One test's result (one attempt of it). ``tool_name`` and ``variation`` default to the
    two halves of ``test_id`` (a pytest node id's file and function); ``attempt`` left out: the
    test's next attempt in the run."""

    test_id: str = Field(min_length=1)
    status: str = Field(
        max_length=100, description="PASS, FAIL, SKIP or ERROR (or a synonym: passed, failed...)"
    )
    tool_name: str | None = None
    variation: str | None = None
    provider: str | None = Field(None, max_length=_TEXT)
    model: str | None = Field(None, max_length=_TEXT)
    execution_status: str | None = Field(None, max_length=_TEXT)
    duration_secs: float | None = Field(None, ge=0, lt=10**7)
    memory_mb: float | None = Field(None, ge=0, le=_INT32)
    cpu_percent: float | None = Field(None, ge=0, lt=1000)
    tokens_total: int | None = Field(None, ge=0, le=_INT32)
    tokens_input: int | None = Field(None, ge=0, le=_INT32)
    tokens_output: int | None = Field(None, ge=0, le=_INT32)
    cost_usd: float | None = Field(None, ge=0, lt=10**4)
    error_type: str | None = Field(None, max_length=_TEXT)
    error_message: str | None = None
    traceback: str | None = None
    output_excerpt: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    details: JsonObject = Field(default_factory=dict)
    attempt: int | None = Field(None, ge=1, le=_INT32)
    started_at: datetime | None = None
    watcher: ObservationBody | None = None

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        return Status.parse(value).value

    def fields(self) -> dict[str, Any]:
        """The result's fields by name, as the library takes them (see api.ingest_results)."""
        fields = dict(self.__dict__)
        if self.tool_name is None or self.variation is None:
            tool_name, variation = _split_test_id(self.test_id)
            fields["tool_name"] = self.tool_name if self.tool_name is not None else tool_name
            fields["variation"] = self.variation if self.variation is not None else variation
        if self.watcher is not None:
            fields["watcher"] = self.watcher.observation()
        return fields


def _split_test_id(test_id: str) -> tuple[str, str]:
    """``path::name`` (pytest) splits at its last ``::``; ``tool/variation`` (the runner API's
    default) at its last ``/``; anything else is its own tool."""
    if "::" in test_id:
        return split_nodeid(test_id)
    tool, _, variation = test_id.rpartition("/")
    return (tool, variation) if tool and variation else (test_id, test_id)


class ResultBatchBody(_Body):
    """A batch of results. Send a batch again (a retry) with the same ``batch_key``: it is
    stored once."""

    batch_key: str = Field(min_length=1, max_length=200)
    results: list[ResultBody] = Field(max_length=10_000)
    expected_tests: int | None = Field(None, ge=0, le=_INT32)


class ResultRowsBody(_Body):
    """A batch of results in the compact form: the column names once, then one list of values
    per result, in the columns' order (a thousand results cost a fraction of the object form to
    send and to check). Send it again (a retry) with the same ``batch_key``: it is stored once.
    Values are checked as the object form's fields are; the first bad one refuses the batch
    (422, naming its row and column) and nothing is written."""

    batch_key: str = Field(min_length=1, max_length=200)
    columns: list[str] = Field(
        min_length=2,
        max_length=len(api.ROW_BATCH_COLUMNS),
        description="names from: "
        + ", ".join(api.ROW_BATCH_COLUMNS)
        + ". test_id and status are required; tool_name and variation default to the halves "
        "of test_id; attempt left out or null: the test's next attempt in the run. metrics "
        "and details are JSON objects or their JSON text; watcher an observation object (or "
        "its JSON text), as the object form's watcher.",
    )
    rows: list[list[Any]] = Field(max_length=10_000, description="one list of values per result")
    expected_tests: int | None = Field(None, ge=0, le=_INT32)


def _observations_in(body: ResultRowsBody) -> list[list[Any]]:
    """The rows with their ``watcher`` values validated as observations (as the object form's
    are); other values are checked by the library, a column at a time."""
    if "watcher" not in body.columns:
        return body.rows
    column = body.columns.index("watcher")
    rows = body.rows
    for index, row in enumerate(rows):
        value = row[column] if len(row) > column else None
        if value is None:
            continue
        try:
            if isinstance(value, str):
                checked = ObservationBody.model_validate_json(value)
            else:
                checked = ObservationBody.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise ValueError(f"row {index}, column 'watcher': {_shown(problems)}") from None
        row[column] = checked.observation()
    return rows


class ObservationItem(ObservationBody):
    """An observation for the result ``test_id`` (``attempt`` left out: its latest)."""

    test_id: str = Field(min_length=1)
    attempt: int | None = Field(None, ge=1, le=_INT32)


class ObservationBatchBody(_Body):
    batch_key: str | None = Field(None, min_length=1, max_length=200)
    observations: list[ObservationItem] = Field(max_length=10_000)


class FinishBody(_Body):
    status: Literal["finished", "aborted"] = "finished"
    notes: str | None = Field(None, max_length=65536)
    wall_clock_secs: float | None = Field(
        None, ge=0, lt=10**9, description="the run's duration; default: its tests' summed"
    )
    finished_at: datetime | None = Field(
        None,
        description="when the run finished (ISO 8601, UTC if no offset); default: now. A run "
        "recorded earlier and loaded later (testledger sync) keeps its own time.",
    )
    detect_issues: bool = True


class ExpectedBody(_Body):
    expected_tests: int | None = Field(ge=0, le=_INT32)


# -- endpoints ---------------------------------------------------------------------------------


@router.post("/runs", status_code=201, summary="Create a run (or join it by run_key)")
def create_run(body: RunBody, request: Request) -> dict[str, Any]:
    info = RunInfo(
        branch=body.branch,
        commit=body.commit,
        suite=body.suite or ledger_of(request).settings.suite,
        watcher_model=body.watcher_model or "none",
        notes=body.notes,
        run_key=body.run_key,
        started_at=body.started_at,
        ci_provider=body.ci_provider,
        ci_job_url=body.ci_job_url,
        host=body.host,
        source=body.source,
        metadata=dict(body.metadata or {}),
    )
    with _refusals():
        created = api.ingest_start_run(ledger_of(request), info, expected_tests=body.expected_tests)
    return dict(created.as_json())


@router.post("/runs/{run_id}/results", summary="Add a batch of results (idempotent by batch_key)")
def post_results(run_id: int, body: ResultBatchBody, request: Request) -> dict[str, Any]:
    with _refusals():
        results = [item.fields() for item in body.results]
        batch = api.ingest_results(
            ledger_of(request),
            run_id,
            body.batch_key,
            results,
            expected_tests=body.expected_tests,
        )
    return dict(batch.as_json())


@router.post(
    "/runs/{run_id}/result-rows",
    summary="Add a batch of results in the compact form (idempotent by batch_key)",
    description=ResultRowsBody.__doc__,
    # The body is read by pydantic's own JSON parser (a fourth of the time of Python's reader
    # followed by validation): documented here, as FastAPI would document a body parameter.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ResultRowsBody.model_json_schema()}},
        }
    },
)
async def post_result_rows(run_id: int, request: Request) -> dict[str, Any]:
    try:
        body = ResultRowsBody.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return await run_in_threadpool(_store_rows, request, run_id, body)


def _store_rows(request: Request, run_id: int, body: ResultRowsBody) -> dict[str, Any]:
    with _refusals():
        batch = api.ingest_result_rows(
            ledger_of(request),
            run_id,
            body.batch_key,
            body.columns,
            _observations_in(body),
            expected_tests=body.expected_tests,
        )
    return dict(batch.as_json())


@router.post("/runs/{run_id}/observations", summary="Attach watcher observations to results")
def post_observations(run_id: int, body: ObservationBatchBody, request: Request) -> dict[str, Any]:
    with _refusals():
        items = [
            api.IngestObservation(item.test_id, item.observation(), item.attempt)
            for item in body.observations
        ]
        batch = api.ingest_observations(ledger_of(request), run_id, items, batch_key=body.batch_key)
    return dict(batch.as_json())


@router.put("/runs/{run_id}/expected-tests", summary="Say how many tests the run will hold")
def put_expected_tests(run_id: int, body: ExpectedBody, request: Request) -> dict[str, Any]:
    with _refusals():
        api.set_expected_tests(ledger_of(request), run_id, body.expected_tests)
    return {"run_id": run_id, "expected_tests": body.expected_tests}


@router.post("/runs/{run_id}/finish", summary="Finish a run: statistics and issue detection")
def finish_run(run_id: int, body: FinishBody, request: Request) -> dict[str, Any]:
    with _refusals():
        finished = api.ingest_finish_run(
            ledger_of(request),
            run_id,
            RunStatus(body.status),
            notes=body.notes,
            wall_clock_secs=body.wall_clock_secs,
            finished_at=body.finished_at,
            detect_issues=body.detect_issues,
        )
    return dict(finished.as_json())


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _upload_name(filename: str | None) -> str:
    """The uploaded file's own name, reduced to a safe one (format detection reads it)."""
    name = _SAFE_NAME.sub("_", Path(filename or "").name).strip("._")[:100]
    return name or "report"


@router.post(_UPLOAD_PATH, summary="Upload a report file (any format `testledger import` reads)")
def upload_report(
    request: Request,
    file: Annotated[UploadFile, File(description="the report: JUnit XML, CTRF, Allure...")],
    format: Annotated[str | None, Form(max_length=100)] = None,
    suite: Annotated[str | None, Form(max_length=_TEXT)] = None,
    branch: Annotated[str | None, Form(max_length=_TEXT)] = None,
    commit: Annotated[str | None, Form(max_length=_TEXT)] = None,
    run_key: Annotated[str | None, Form(max_length=200)] = None,
) -> dict[str, Any]:
    options = api.ImportOptions(
        branch=branch, commit=commit, suite=suite, run_key=run_key, detect_environment=False
    )
    name = _upload_name(file.filename)
    with tempfile.TemporaryDirectory(prefix="testledger-upload-") as folder:
        path = Path(folder) / name
        with path.open("wb") as target:
            shutil.copyfileobj(file.file, target, 1 << 20)
        with _refusals():
            report = api.import_paths(ledger_of(request), [path], options, format_name=format)
    outcomes = [*report.imported, *report.already_imported]
    if report.errors and not outcomes:
        raise HTTPException(
            status_code=422,
            detail=f"{name}: " + "; ".join(error.reason for error in report.errors),
        )
    return {
        "file": name,
        "runs": [
            {
                "run_id": outcome.run_id,
                "run_key": outcome.run_key,
                "format": outcome.format,
                "results": outcome.results,
                "observations": outcome.observations,
                "already_imported": outcome.already_imported,
                "warnings": list(outcome.warnings),
            }
            for outcome in outcomes
        ],
        "skipped": [skipped.reason for skipped in report.skipped],
        "errors": [error.reason for error in report.errors],
    }
