"""FastAPI application factory. Nothing runs at import.

The API only writes rows: admission is the dispatcher's (``lorafleet dispatcher``, its own process),
which a submission wakes through Redis (``api.queue``). ``uvicorn --factory api.main:create_app``.
"""
from __future__ import annotations

import gc
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from api.auth_cache import AuthCache
from api.dashboard import install_dashboard
from api.errors import install_error_handlers
from api.openapi import finish_openapi
from api.routes import (
    adapters,
    batches,
    chat,
    datasets,
    evals,
    files,
    fine_tuning,
    generation,
    health,
    jobs,
    models,
    pool,
    preflight,
    tokenize,
    usage,
    users,
    web_session,
)
from models.db import make_engine, make_sessionmaker
from models.settings import Settings, get_settings


def build_router() -> APIRouter:
    v1 = APIRouter(prefix="/v1")
    for module in (users, files, models, jobs, preflight, fine_tuning, adapters, generation, datasets, chat,
                   tokenize, batches, evals, usage, pool, web_session):
        v1.include_router(module.router)
    return v1


def install_openapi(app: FastAPI) -> None:
    """Serve FastAPI's generated schema finished by ``api.openapi.finish_openapi`` (built once, then cached)."""
    generate = app.openapi  # FastAPI's: generates once (again when routes change) into app.openapi_schema

    def openapi() -> dict[str, Any]:
        schema = generate()
        if getattr(app.state, "openapi_finished", None) is not schema:
            app.state.openapi_finished = finish_openapi(schema)  # in place
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Few threads for sync routes: requests wait in the event loop's FIFO instead of fighting over
        # the GIL in 40 threads (that convoy is what made tail latency 4x the median under load).
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        engine = make_engine(settings.sqlalchemy_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = make_sessionmaker(engine)
        app.state.auth_cache = AuthCache()
        # Everything imported and built so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise walk it all and stall requests (tail latency).
        gc.freeze()
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(title="lorafleet", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health.router)
    app.include_router(build_router())
    install_dashboard(app)
    return app
