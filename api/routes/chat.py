"""``/v1/chat/completions`` and ``/v1/completions``: authenticate, check the body, check the caller may
use the model, then proxy to the inference server (``lorafleet serve``), streaming included. The API
process never loads a model; requests of all users meet in the inference server's batcher.

Serving is metered: the completion tokens of every answered request go into the caller's usage ledger
(``models.crud.usage``, no job, kind ``chat`` or ``completions``), for a stream when it carried its usage
(``stream_options.include_usage``). Metering never fails a request: a failed write is logged.

The body is checked here with the inference server's own rules (``api.schemas.chat`` and
``contracts.openai_format.parse_openai_body``), so a bad request is a 400 naming its ``param``
whether or not the server is up; what is forwarded is the body exactly as the client sent it.
"""
from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import APIError, error_responses, validation_error
from api.job_inputs import resolve_model_ref
from api.openapi import event_stream, json_body
from api.schemas.chat import ChatCompletion, ChatCompletionRequest, CompletionRequest, TextCompletion
from contracts.decoding import ModelTarget
from contracts.openai_format import CHAT_URL, COMPLETIONS_URL, RequestError, parse_openai_body
from models.base import utcnow
from models.crud.usage import add_usage
from models.settings import Settings
from models.user import User

router = APIRouter(tags=["inference"])
log = logging.getLogger(__name__)
UsageSink = Callable[[Any], Awaitable[None]]  # called with an answer's ``usage`` (a dict, or None)
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
        errors = []
    except ValidationError as exc:
        errors = exc.errors()
    if errors and errors[0]["loc"][:1] != ("prompt",):  # a bad prompt: the server's own check names it exactly
        raise validation_error(errors, status=400)
    try:
        parse_openai_body(url, body, ModelTarget(str(body.get("model"))))
    except RequestError as exc:
        raise APIError(exc.status, exc.code, exc.message, exc.param) from None
    if errors:
        raise validation_error(errors, status=400)
    return body


def inference_client(settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=settings.inference_url, timeout=httpx.Timeout(600, connect=10))


def record_serving_usage(factory, owner_id: str, kind: str, usage: Any) -> None:
    """Add one answer's completion tokens to the owner's serving usage; log (never raise) on failure."""
    try:
        tokens = int(usage.get("completion_tokens") or 0) if isinstance(usage, dict) else 0
        if tokens > 0:
            with factory() as session:
                add_usage(session=session, owner_id=owner_id, job_id=None, kind=kind, now=utcnow(),
                          tokens_generated=tokens)
                session.commit()
    except Exception:  # metering must not fail the request it meters
        log.exception("could not record %s usage for user %s", kind, owner_id)


def usage_sink(request: Request, user: User, url: str) -> UsageSink:
    kind = "chat" if url == CHAT_URL else "completions"
    factory = request.app.state.session_factory

    async def sink(usage: Any) -> None:
        await run_in_threadpool(record_serving_usage, factory, user.id, kind, usage)

    return sink


async def watch_stream_usage(chunks: AsyncIterator[bytes], on_usage: UsageSink) -> AsyncIterator[bytes]:
    """Relay the SSE bytes untouched, noting the last ``usage`` a chunk carried; record it at the end."""
    usage, pending = None, b""
    async for raw in chunks:
        yield raw
        lines = (pending + raw).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.startswith(b"data: {") and b'"usage"' in line:
                try:
                    usage = json.loads(line[6:]).get("usage") or usage
                except ValueError:
                    pass
    await on_usage(usage)


async def proxy(path: str, body: dict, settings: Settings, on_usage: UsageSink | None = None):
    """Forward ``body`` to the inference server; stream its SSE back, or relay its JSON answer. A 200's
    usage goes to ``on_usage``."""
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
        chunks = upstream.aiter_raw()
        return StreamingResponse(watch_stream_usage(chunks, on_usage) if on_usage else chunks, status_code=200,
                                 media_type="text/event-stream", background=BackgroundTask(close))
    content = await upstream.aread()
    await close()
    try:
        answer = json.loads(content)
    except ValueError:
        raise APIError(502, "bad_gateway", "the inference server returned an invalid response") from None
    if on_usage is not None and upstream.status_code == 200 and isinstance(answer, dict):
        await on_usage(answer.get("usage"))
    return JSONResponse(answer, status_code=upstream.status_code)


async def complete(request: Request, url: str, schema: type[BaseModel], session: Session, user: User,
                   settings: Settings):
    body = await read_body(request, schema, url)
    resolve_model_ref(session, user, body["model"])  # 404 unless it's a base model or the caller's own
    session.close()  # no connection held while the model answers
    return await proxy(url, body, settings, usage_sink(request, user, url))


@router.post("/chat/completions", response_model=None, responses=inference_responses(ChatCompletion),
             openapi_extra=json_body(ChatCompletionRequest))
async def chat_completions(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    return await complete(request, CHAT_URL, ChatCompletionRequest, session, user, settings)


@router.post("/completions", response_model=None, responses=inference_responses(TextCompletion),
             openapi_extra=json_body(CompletionRequest))
async def completions(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    return await complete(request, COMPLETIONS_URL, CompletionRequest, session, user, settings)
