"""What the JSON endpoints accept and how they refuse the rest, as the OpenAPI document says."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "IssueSort",
    "IssueStatusName",
    "Name",
    "Names",
    "PriorityName",
    "Ref",
    "RowId",
    "RunStatusName",
]


class ErrorBody(BaseModel):
    """A refusal: ``detail`` says what was wrong, in a sentence fit for a person."""

    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A bad filter, reference or value"},
    401: {"model": ErrorBody, "description": "A token is needed (reads behind tokens)"},
    404: {"model": ErrorBody, "description": "No such run, issue, test or result"},
    409: {"model": ErrorBody, "description": "A test reference matching several tests"},
}


# What the endpoints accept, declared in the OpenAPI document so that a client (and
# schemathesis) knows a request is refused before it is sent: no NUL in names (PostgreSQL text
# cannot hold one, so no stored name has one), ids within BIGINT, and the fixed choices as enums.
NO_NUL = r"^[^\x00]*$"
MAX_NAME = 1000
MAX_ID = 2**63 - 1

Name = Annotated[str | None, Query(pattern=NO_NUL, max_length=MAX_NAME)]
Names = Annotated[list[Annotated[str, Field(pattern=NO_NUL, max_length=MAX_NAME)]], Query()]
Ref = Annotated[str, Path(pattern=NO_NUL, max_length=MAX_NAME)]
RowId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
RunStatusName = Literal["running", "finished", "aborted"]
IssueStatusName = Literal["OPEN", "IN_PROGRESS", "RESOLVED", "WONT_FIX"]
PriorityName = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
IssueSort = Literal["priority", "last-seen", "occurrences", "code", "created"]
