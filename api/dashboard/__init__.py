"""The web dashboard: one HTML page and its static CSS/JS (no build step), served by the API at ``/``.

The page drives lorafleet only through the public ``/v1`` endpoints, signed in with a session cookie
(``api.routes.web_session``). ``install_dashboard`` adds the page route and mounts the static folder.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
# The page loads nothing but its own files, and no other site may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard_page() -> FileResponse:
    """The single page; its views (jobs, datasets, adapters, evals, playground, pool) are client-side routes."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


class SecuredStatic:
    """The static files with the page's security headers."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *[(k.lower().encode(), v.encode())
                                                             for k, v in SECURITY_HEADERS.items()]]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/dashboard/static", SecuredStatic(StaticFiles(directory=STATIC_DIR)), name="dashboard-static")
