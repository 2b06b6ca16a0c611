from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/health")
def health(request: Request) -> dict:
    """Database reachability (and the broker's, when it is Redis)."""
    with request.app.state.session_factory() as s:
        s.execute(text("SELECT 1"))
    out = {"status": "ok", "database": "ok", "mode": "embedded" if request.app.state.settings.embedded else "server"}
    if request.app.state.settings.redis_url:
        import redis

        redis.Redis.from_url(request.app.state.settings.redis_url).ping()
        out["broker"] = "ok"
    return out
