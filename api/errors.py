"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` for every failure."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.param, self.extra = status, code, message, param, extra


def not_found(what: str, ident: str, param: str | None = None) -> APIError:
    return APIError(404, "not_found", f"No {what} found with id '{ident}'", param)


def _body(code: str, message: str, param: str | None, type_: str, **extra) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}


def _loc_to_param(loc) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        type_ = "invalid_request_error" if exc.status < 500 else "server_error"
        if exc.status == 401:
            type_ = "authentication_error"
        return JSONResponse(_body(exc.code, exc.message, exc.param, type_, **exc.extra), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        param = _loc_to_param(first.get("loc", ()))
        details = [{"param": _loc_to_param(e.get("loc", ())), "message": e.get("msg")} for e in errors]
        msg = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        return JSONResponse(_body("invalid_value", msg, param, "invalid_request_error", details=details),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 401: "invalid_api_key"}.get(exc.status_code, "error")
        return JSONResponse(_body(code, str(exc.detail), None, "invalid_request_error"), status_code=exc.status_code)
