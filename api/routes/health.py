"""``GET /health``: is the API up, and can it reach its database (and broker)? No key needed."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

router = APIRouter(tags=["health"])


class HealthRead(BaseModel):
    status: Literal["ok"] = "ok"
    database: Literal["ok"] = "ok"
    mode: Literal["embedded", "server"]
    broker: Literal["ok"] | None = None  # present when the broker is Redis


@router.get("/health", response_model=HealthRead, response_model_exclude_none=True)
def health(request: Request) -> HealthRead:
    """Database reachability (and the broker's, when it is Redis)."""
    settings = request.app.state.settings
    with request.app.state.session_factory() as s:
        s.execute(text("SELECT 1"))
    out = HealthRead(mode="embedded" if settings.embedded else "server")
    if settings.redis_url:
        import redis

        redis.Redis.from_url(settings.redis_url).ping()
        out.broker = "ok"
    return out
