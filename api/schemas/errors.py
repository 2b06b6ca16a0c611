"""The one error body every failure answers with: ``{"error": {"message", "type", "param", "code", ...}}``.

OpenAI's shape, so the official SDKs raise their usual exceptions; lorafleet adds ``details`` (every
invalid field of a 422) and ``lines`` (every bad line of a refused upload or seed file).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# What each status means on this API; the OpenAPI description of that response.
STATUS_MEANINGS = {
    400: "The request is invalid (a bad value, an unsupported parameter, or a file with bad lines)",
    401: "No API key, or an unknown or revoked one (`Authorization: Bearer <key>`)",
    403: "The API key is valid but not allowed here (an admin key is needed)",
    404: "No such object, or it belongs to another user",
    409: "The object is in a state that does not allow this (e.g. resuming a job that is not paused)",
    410: "The object exists but its stored files are gone",
    413: "The upload is over the server's size limit",
    422: "A parameter or body field failed validation; `param` names the first, `details` every one",
    500: "The server failed on this request",
    502: "The inference server answered with something that is not a valid response",
    503: "The inference server is not configured or did not answer",
}


class FieldError(BaseModel):
    param: str | None = Field(description="the invalid field, dotted (e.g. `hyperparameters.n_epochs`)")
    message: str


class LineErrorRead(BaseModel):
    line: int = Field(description="1-based line (item number for a JSON array); 0 for the whole file")
    code: str
    message: str
    param: str | None = None


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str = Field(description="what went wrong, for a person")
    type: str = Field(description="`invalid_request_error`, `authentication_error` or `server_error`")
    param: str | None = Field(description="the request parameter at fault, if one is")
    code: str | None = Field(description="a stable machine-readable reason, e.g. `not_found`, `invalid_value`")
    details: list[FieldError] | None = Field(None, description="422 only: every invalid field")
    lines: list[LineErrorRead] | None = Field(None, description="refused files only: every bad line")


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_body(code: str | None, message: str, param: str | None, type_: str, **extra: Any) -> dict:
    """The JSON of an :class:`ErrorResponse` (built as a dict: error paths stay as cheap as success paths)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}
