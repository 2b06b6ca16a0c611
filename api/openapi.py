"""``/openapi.json`` true to the API, finished in one place after FastAPI generates it.

FastAPI documents the success response and, where a route has parameters, a 422 in its own
``HTTPValidationError`` shape, which is not what this API sends. ``finish_openapi`` makes every
operation document what it really answers, whoever wrote the route:

- every ``/v1`` operation: the bearer security scheme and 401 (with its ``WWW-Authenticate`` header);
  404 where the path or the body names an object; 400 where there is any input to get wrong; 409 for a
  POST acting on a named object (``/jobs/{job_id}/pause``: the object's state may forbid it);
- every 4xx/5xx response (these, FastAPI's 422s, and those a route declares with
  ``responses=error_responses(...)``) carries :class:`~api.schemas.errors.ErrorResponse`;
- request bodies that routes read themselves (``json_body``) are declared with their model;
- a ``text/event-stream`` answer documented as a plain string is documented per event.
"""
from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.errors import error_responses
from api.schemas.errors import STATUS_MEANINGS, ErrorResponse

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer",
                                   "description": "an API key: `Authorization: Bearer <key>`"}}
_FASTAPI_DEFAULT_DESCRIPTIONS = {"", "Validation Error", "Successful Response", "Additional Response"}
_BODY_MODELS: dict[str, type[BaseModel]] = {}
SSE_MEDIA_TYPE = "text/event-stream"
# One server-sent event. In OpenAPI 3.1 the ``schema`` of ``text/event-stream`` describes each event (3.2
# names that ``itemSchema``), which is how schemathesis reads this 3.1 document.
SSE_EVENT = {"type": "object", "properties": {"data": {"type": "string"}, "event": {"type": "string"},
                                              "id": {"type": "string"}, "retry": {"type": "integer", "minimum": 0}}}


def event_stream(description: str) -> dict[str, Any]:
    """``responses=`` content of a ``text/event-stream`` answer."""
    return {SSE_MEDIA_TYPE: {"schema": {**SSE_EVENT, "description": description}}}


def json_body(model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON body of a route that reads and checks its body itself."""
    _BODY_MODELS[model.__name__] = model
    body: dict[str, Any] = {"required": True, "content": {"application/json": {
        "schema": {"$ref": REF.format(model=model.__name__)}}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def register_models(schemas: dict[str, Any], models: list[type[BaseModel]]) -> None:
    """Add the models (and the models they nest) to ``components.schemas``; FastAPI's own entries win."""
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    for name, schema in top.get("$defs", {}).items():
        schemas.setdefault(name, schema)


def finish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    register_models(schemas, [ErrorResponse, *_BODY_MODELS.values()])
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            document_errors(path, method, operation)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return schema


def implied_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses any route of this form answers (auth, lookups, bad input, state conflicts)."""
    params = operation.get("parameters", [])
    statuses: set[int] = set()
    if path.startswith("/v1/"):
        statuses |= {400, 401}  # a malformed Authorization header is a 400 before any route runs
    names_object = any(p.get("in") == "path" for p in params)
    if names_object or "requestBody" in operation:  # bodies name objects too (a model, a training file)
        statuses.add(404)
    if names_object and method == "post":
        statuses.add(409)
    if "requestBody" in operation or params:  # any input can be wrong (even an id with a NUL in it)
        statuses.add(400)
    return statuses


def _phrase(status: str) -> str:
    try:
        return HTTPStatus(int(status)).phrase
    except ValueError:
        return "Error"


def document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if path.startswith("/v1/"):
        operation["security"] = [{"bearerAuth": []}]
    for status, extra in error_responses(*implied_statuses(path, method, operation)).items():
        responses.setdefault(str(status), {k: v for k, v in extra.items() if k != "model"})
    for status, response in responses.items():
        describe_events(response)
        if status[:1] in "45":
            describe_error(status, response)


def describe_events(response: dict[str, Any]) -> None:
    """A ``text/event-stream`` documented as a plain string: document each event instead."""
    stream = response.get("content", {}).get(SSE_MEDIA_TYPE)
    if stream is not None and stream.get("schema", {}).get("type", "string") == "string":
        stream["schema"] = {**SSE_EVENT, **{k: v for k, v in stream.get("schema", {}).items() if k != "type"}}


def describe_error(status: str, response: dict[str, Any]) -> None:
    """The error body for any 4xx/5xx; this API's meaning of the status unless the route said better."""
    response["content"] = {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}}
    if status.isdigit() and response.get("description", "") in _FASTAPI_DEFAULT_DESCRIPTIONS | {_phrase(status)}:
        response["description"] = STATUS_MEANINGS.get(int(status), _phrase(status))
    if status == "401":
        response["headers"] = error_responses(401)[401]["headers"]
