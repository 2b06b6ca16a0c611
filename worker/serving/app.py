"""``create_serving_app``: OpenAI-compatible ``/v1/chat/completions`` and ``/v1/completions``
(with ``usage``, and SSE streaming when ``stream: true``) over one engine and a dynamic batcher.

``resolve_model(name) -> ModelTarget`` maps a request's ``model`` to the base model or an adapter
(raise LookupError for unknown names: 404 ``model_not_found``); ``list_models()`` feeds
``GET /v1/models`` when given. The engine is built by ``engine_factory`` in the batcher thread at
startup. A streaming client that disconnects stops its rows at the next token.
"""
from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from contracts.decoding import DecodeResult, ModelTarget
from contracts.openai_format import (
    CHAT_URL,
    COMPLETIONS_URL,
    RequestError,
    check_results,
    completion_body,
    model_not_found,
    new_id,
    parse_openai_body,
    stream_chunk,
    usage_chunk,
)
from contracts.tools import ToolCallStream, tool_calls_chunk
from worker.serving.batcher import BatchJob, DynamicBatcher
from worker.serving.tokenizer_routes import install_tokenizer_routes


def create_serving_app(engine_factory: Callable[[], object], resolve_model: Callable[[str], ModelTarget], *,
                       list_models: Callable[[], list[str]] | None = None, batch_window_ms: float = 5.0,
                       max_batch_rows: int = 32, default_max_tokens: int = 256,
                       default_temperature: float = 1.0) -> FastAPI:
    batcher = DynamicBatcher(engine_factory, window_ms=batch_window_ms, max_batch_rows=max_batch_rows)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(batcher.start)
        yield
        await run_in_threadpool(batcher.stop)

    app = FastAPI(title="lorafleet serving", lifespan=lifespan)
    app.state.batcher = batcher
    install_tokenizer_routes(app, lambda: batcher.engine, resolve_model)  # /v1/tokenize, /v1/detokenize

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(exc.as_body(), status_code=exc.status)

    async def complete(request: Request, url: str):
        body, name = await _request_body(request)
        try:
            target = await run_in_threadpool(resolve_model, name)
        except LookupError:
            raise model_not_found(name) from None
        rows = parse_openai_body(url, body, target, default_max_tokens, default_temperature)
        n = body.get("n") or 1
        if body.get("stream"):
            job = await batcher.submit(rows, stream=True)
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_sse(job, url, name, len(rows), n, include_usage),
                                     media_type="text/event-stream")
        job = await batcher.submit(rows)
        results = await job.future
        check_results(results, url)
        return completion_body(url, name, results, n)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await complete(request, CHAT_URL)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete(request, COMPLETIONS_URL)

    @app.get("/v1/models")
    async def models() -> dict:
        names = await run_in_threadpool(list_models) if list_models else []
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "lorafleet"}
                                           for n in names]}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "batches": len(batcher.batch_job_counts)}

    return app


async def _request_body(request: Request) -> tuple[dict, str]:
    """The JSON object of an OpenAI request and its ``model`` name (400 when either is missing)."""
    try:
        body = await request.json()
    except ValueError:
        raise RequestError("the request body is not valid JSON", None, "invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", None, "invalid_json")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise RequestError("'model' is required", "model", "missing_required_parameter")
    return body, name


def _event(obj: dict) -> str:
    return f"data: {json.dumps(obj)}\n\n"


async def _sse(job: BatchJob, url: str, model: str, choices: int, n: int, include_usage: bool) -> AsyncIterator[str]:
    """Role chunk, content deltas as they are decoded, one finish chunk per choice, usage, [DONE]."""
    try:
        async for event in _sse_events(job, url, model, choices, n, include_usage):
            yield event
    finally:  # normal end, or the client disconnected (the generator is closed / cancelled)
        job.cancelled = True


async def _sse_events(job: BatchJob, url: str, model: str, choices: int, n: int, include_usage: bool
                      ) -> AsyncIterator[str]:
    rid, created = new_id("chatcmpl" if url == CHAT_URL else "cmpl"), int(time.time())
    if url == CHAT_URL:
        for k in range(choices):
            yield _event(stream_chunk(url, rid, created, model, k, "", role=True))
    shown = [ToolCallStream(r.constraint) for r in job.requests]  # a tool call's text is not content
    while (item := await job.deltas.get()) is not None:
        text = shown[item[0]].visible(item[1])
        if text or item[2] is not None:  # item[2]: the logprobs of the tokens since the last chunk
            yield _event(stream_chunk(url, rid, created, model, item[0], text, logprobs=item[2]))
    try:
        results: list[DecodeResult] = job.future.result()
        check_results(results, url)
    except RequestError as err:
        yield _event(err.as_body())
        yield "data: [DONE]\n\n"
        return
    except Exception as exc:  # noqa: BLE001 - one failure must not sink the rest
        yield _event(RequestError(str(exc), None, "server_error", 500, "server_error").as_body())
        yield "data: [DONE]\n\n"
        return
    for k, res in enumerate(results):
        if (calls := tool_calls_chunk(rid, created, model, k, res)) is not None:
            yield _event(calls)
        yield _event(stream_chunk(url, rid, created, model, k, None if url == CHAT_URL else "", res.finish_reason))
    if include_usage:
        yield _event(usage_chunk(url, rid, created, model, results, n))
    yield "data: [DONE]\n\n"
