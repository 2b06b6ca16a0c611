"""``POST /v1/tokenize`` and ``POST /v1/detokenize`` (vLLM's shape, ``contracts.tokenize``) on the inference
server, for every model it serves (base model, adapters, checkpoints).

They run in FastAPI's thread pool on a private copy of the base model's tokenizer (loaded on first use, one
request at a time), never on the engine, which belongs to the batcher thread: tokenizing does not wait for
a decoding batch.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from contracts.decoding import ModelTarget
from contracts.openai_format import RequestError, model_not_found
from contracts.tokenize import (
    DETOKENIZE_URL,
    TOKENIZE_URL,
    DetokenizeResponse,
    TokenizeResponse,
    parse_detokenize_body,
    parse_tokenize_body,
)
from worker.ml.decoding import prompt_tokens


class EngineTokenizer:
    """A tokenizer of the engine's base model for request threads, loaded once, used under a lock."""

    def __init__(self, engine: Callable[[], Any]) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._tokenizer = None
        self.max_model_len = 0

    def run(self, fn: Callable[[Any], Any]) -> Any:
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                engine = self._engine()
                self._tokenizer = AutoTokenizer.from_pretrained(engine.base_model_dir)
                self.max_model_len = int(engine.max_positions)
            return fn(self._tokenizer)


def install_tokenizer_routes(app: FastAPI, engine: Callable[[], Any],
                             resolve_model: Callable[[str], ModelTarget]) -> None:
    """Add the two routes; ``engine()`` returns the started engine (for its base model dir and context)."""
    tokenizer = EngineTokenizer(engine)

    async def target_of(name: str) -> ModelTarget:
        try:
            return await run_in_threadpool(resolve_model, name)
        except LookupError:
            raise model_not_found(name) from None

    @app.post(TOKENIZE_URL)
    async def tokenize(request: Request) -> dict:
        req = parse_tokenize_body(await _json(request))
        target = await target_of(req.model)

        def answer(tok: Any) -> dict:
            try:
                ids = prompt_tokens.tokenize(req, target, tok)
            except ValueError as exc:  # e.g. a template that cannot render these messages
                raise RequestError(str(exc), "messages") from None
            strs = tok.convert_ids_to_tokens(ids) if req.return_token_strs else None
            return TokenizeResponse(count=len(ids), max_model_len=tokenizer.max_model_len, tokens=ids,
                                    token_strs=strs).model_dump(exclude_none=True)

        return await run_in_threadpool(tokenizer.run, answer)

    @app.post(DETOKENIZE_URL)
    async def detokenize(request: Request) -> dict:
        req = parse_detokenize_body(await _json(request))
        await target_of(req.model)

        def answer(tok: Any) -> dict:
            known = prompt_tokens.vocab_size(tok)
            bad = next((i for i, t in enumerate(req.tokens) if t >= known), None)
            if bad is not None:
                raise RequestError(f"tokens.{bad}: {req.tokens[bad]} is not a token id of this model "
                                   f"(vocabulary of {known})", f"tokens.{bad}")
            return DetokenizeResponse(prompt=prompt_tokens.detokenize(req, tok)).model_dump()

        return await run_in_threadpool(tokenizer.run, answer)


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise RequestError("the request body is not valid JSON", None, "invalid_json") from None
