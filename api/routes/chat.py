"""``/v1/chat/completions`` and ``/v1/completions``: authenticate, check the caller owns the model,
then proxy to the inference server (``lorafleet serve``), streaming included. The API process never
loads a model; requests of all users meet in the inference server's batcher."""
from __future__ import annotations

import json

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import APIError
from api.job_inputs import resolve_model_ref

router = APIRouter(tags=["inference"])


async def _proxy(request: Request, path: str, session, user, settings):
    if not settings.inference_url:
        raise APIError(503, "no_inference_server", "no inference server is configured (LORAFLEET_INFERENCE_URL)")
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise APIError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise APIError(400, "missing_required_parameter", "'model' is required", "model")
    resolve_model_ref(session, user, body["model"])  # 404 unless it's a base model or the caller's own
    session.close()
    client = httpx.AsyncClient(base_url=settings.inference_url, timeout=httpx.Timeout(600, connect=10))
    upstream_req = client.build_request("POST", path, json=body)
    try:
        upstream = await client.send(upstream_req, stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise APIError(503, "inference_unavailable", f"the inference server did not answer: {exc}") from None

    async def close():
        await upstream.aclose()
        await client.aclose()

    if body.get("stream") and upstream.status_code == 200:
        return StreamingResponse(upstream.aiter_raw(), status_code=200, media_type="text/event-stream",
                                 background=BackgroundTask(close))
    content = await upstream.aread()
    await close()
    try:
        return JSONResponse(json.loads(content), status_code=upstream.status_code)
    except ValueError:
        raise APIError(502, "bad_gateway", "the inference server returned an invalid response") from None


@router.post("/chat/completions")
async def chat_completions(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    return await _proxy(request, "/v1/chat/completions", session, user, settings)


@router.post("/completions")
async def completions(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    return await _proxy(request, "/v1/completions", session, user, settings)
