"""``/v1/chat/completions`` and ``/v1/completions``: authenticate, check the body, check the caller may
use the model, then proxy to the inference server (``lorafleet serve``), streaming included. The API
process never loads a model; requests of all users meet in the inference server's batcher.

The body is checked here with the inference server's own rules (``api.schemas.chat`` and
``contracts.openai_format.parse_openai_body``), so a bad request is a 400 naming its ``param``
whether or not the server is up; what is forwarded is the body exactly as the client sent it.
"""
from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import APIError, error_responses, validation_error
from api.job_inputs import resolve_model_ref
from api.openapi import event_stream, json_body
from api.schemas.chat import ChatCompletion, ChatCompletionRequest, CompletionRequest, TextCompletion
from contracts.decoding import ModelTarget
from contracts.openai_format import CHAT_URL, COMPLETIONS_URL, RequestError, parse_openai_body
from models.settings import Settings
from models.user import User

router = APIRouter(tags=["inference"])
SSE = event_stream("`data: {chunk}` events (JSON), then `data: [DONE]`")


def inference_responses(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "content": SSE, "description": "the completion (JSON), or its chunks as "
                  "server-sent events when `stream` is true"}, **error_responses(404, 500, 502, 503)}


async def read_body(request: Request, schema: type[BaseModel], url: str) -> dict:
    """The JSON body, refused with a 400 naming ``param`` unless the inference server would take it."""
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise APIError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise APIError(400, "invalid_json", "the request body must be a JSON object")
    try:
        schema.model_validate(body)
        parse_openai_body(url, body, ModelTarget(body["model"]))
    except ValidationError as exc:
        raise validation_error(exc.errors(), status=400) from None
    except RequestError as exc:
        raise APIError(exc.status, exc.code, exc.message, exc.param) from None
    return body


def inference_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=settings.inference_url, timeout=httpx.Timeout(600, connect=10))


async def proxy(path: str, body: dict, settings: Settings):
    """Forward ``body`` to the inference server; stream its SSE back, or relay its JSON answer."""
    if not settings.inference_url:
        raise APIError(503, "no_inference_server", "no inference server is configured (LORAFLEET_INFERENCE_URL)")
    client = inference_client(settings)
    try:
        upstream = await client.send(client.build_request("POST", path, json=body), stream=True)
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


async def complete(request: Request, url: str, schema: type[BaseModel], session: Session, user: User,
                   settings: Settings):
    body = await read_body(request, schema, url)
    resolve_model_ref(session, user, body["model"])  # 404 unless it's a base model or the caller's own
    session.close()  # no connection held while the model answers
    return await proxy(url, body, settings)


@router.post("/chat/completions", response_model=None, responses=inference_responses(ChatCompletion),
             openapi_extra=json_body(ChatCompletionRequest))
async def chat_completions(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    return await complete(request, CHAT_URL, ChatCompletionRequest, session, user, settings)


@router.post("/completions", response_model=None, responses=inference_responses(TextCompletion),
             openapi_extra=json_body(CompletionRequest))
async def completions(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    return await complete(request, COMPLETIONS_URL, CompletionRequest, session, user, settings)
