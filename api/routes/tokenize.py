"""``/v1/tokenize`` and ``/v1/detokenize`` (vLLM's shape, ``contracts.tokenize``): authenticate, check the body
(400 naming the field, whether or not the inference server is up), check the caller may use the model
(a base model or their own adapter / checkpoint: 404 otherwise), then proxy to the inference server, which
owns the tokenizer and the prompt templates. The API process never loads a tokenizer or a model.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import APIError, error_responses
from api.job_inputs import resolve_model_ref
from api.openapi import json_body
from api.routes.chat import proxy
from contracts.openai_format import RequestError
from contracts.tokenize import (
    DETOKENIZE_URL,
    TOKENIZE_URL,
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
    parse_detokenize_body,
    parse_tokenize_body,
)

router = APIRouter(tags=["inference"])


async def checked_body(request: Request, parse: Callable[[Any], Any]) -> dict:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise APIError(400, "invalid_json", "the request body is not valid JSON") from None
    try:
        parse(body)
    except RequestError as exc:
        raise APIError(exc.status, exc.code, exc.message, exc.param) from None
    return body


async def forward(request: Request, url: str, parse: Callable[[Any], Any], session, user, settings):
    body = await checked_body(request, parse)
    resolve_model_ref(session, user, body["model"])  # 404 unless it's a base model or the caller's own
    session.close()
    return await proxy(url, body, settings)


@router.post("/tokenize", response_model=None, openapi_extra=json_body(TokenizeRequest),
             responses={200: {"model": TokenizeResponse}, **error_responses(404, 502, 503)})
async def tokenize(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    """Token ids of a prompt, or of chat messages rendered with the model's prompt template."""
    return await forward(request, TOKENIZE_URL, parse_tokenize_body, session, user, settings)


@router.post("/detokenize", response_model=None, openapi_extra=json_body(DetokenizeRequest),
             responses={200: {"model": DetokenizeResponse}, **error_responses(404, 502, 503)})
async def detokenize(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep):
    """The text of token ids."""
    return await forward(request, DETOKENIZE_URL, parse_detokenize_body, session, user, settings)
