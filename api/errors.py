"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` for every failure.

``APIError`` is what routes raise; the handlers here render it, FastAPI's validation errors (422),
Starlette's own errors (404 for unknown paths, 405 with its ``Allow`` header) and anything unexpected
(500) in that one shape (:class:`api.schemas.errors.ErrorResponse`). ``error_responses`` is how a
route documents the statuses it answers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.schemas.errors import STATUS_MEANINGS, ErrorResponse, error_body

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_LOCATIONS = ("body", "query", "path", "header", "cookie")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_TYPE_TAGS = {"str", "int", "float", "bool", "bytes", "dict", "list", "none", "any"}


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.extra = status, code, message, param, extra


def not_found(what: str, ident: str, param: str | None = None) -> APIError:
    return APIError(404, "not_found", f"No {what} found with id '{ident}'", param)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` metadata documenting each status with the error body (401 with its challenge header)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": ErrorResponse, "description": STATUS_MEANINGS.get(status, "Error")}
        if status == 401:
            out[status]["headers"] = {"WWW-Authenticate": {"description": "always `Bearer`", "required": True,
                                                           "schema": {"type": "string"}}}
    return out


def _is_union_tag(part: str) -> bool:
    """Pydantic names the member of a union that failed in ``loc`` (``str``, ``list[str]``, ``ChatMessage``)."""
    return not part.isidentifier() or part in _TYPE_TAGS or part[:1].isupper()


def loc_to_param(loc: Sequence[Any]) -> str | None:
    """``("body", "messages", 0, "role")`` -> ``"messages.0.role"``: where the fault is, as a client names it."""
    parts = list(loc[1:] if loc and loc[0] in _LOCATIONS else loc)
    named = [str(p) for p in parts if isinstance(p, int) or not _is_union_tag(str(p))]
    return ".".join(named) or None


def validation_error(errors: Sequence[dict], status: int = 422) -> APIError:
    """An ``APIError`` naming the first invalid field in ``param`` and every one in ``details``."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    param = loc_to_param(first.get("loc", ()))
    details = [{"param": loc_to_param(e.get("loc", ())), "message": e.get("msg")} for e in errors]
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    code = "missing_required_parameter" if first.get("type") == "missing" and status == 400 else "invalid_value"
    return APIError(status, code, message, param, details=details)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path (Starlette's own ``Allow`` names only the first route's)."""
    return [method for method in _METHODS if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                                                  for route in request.app.router.routes)]


def render(exc: APIError) -> JSONResponse:
    type_ = "invalid_request_error" if exc.status < 500 else "server_error"
    if exc.status == 401:
        type_ = "authentication_error"
    return JSONResponse(error_body(exc.code, exc.message, exc.param, type_, **exc.extra), status_code=exc.status,
                        headers=BEARER_CHALLENGE if exc.status == 401 else None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        return render(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        return render(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
                401: "invalid_api_key"}.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(code, str(exc.detail), None, "invalid_request_error"),
                            status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError):
        """A value the database cannot hold (a NUL in a text id, an integer past 64 bits): the client's fault."""
        reason = str(exc.orig or exc).splitlines()[0]
        return render(APIError(400, "invalid_value", f"a parameter holds a value that cannot be stored or looked "
                               f"up: {reason}"))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):  # Starlette re-raises it after, so the server logs it
        return JSONResponse(error_body("internal_error", "The server failed on this request", None, "server_error"),
                            status_code=500)
