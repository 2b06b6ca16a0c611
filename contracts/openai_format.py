"""OpenAI request bodies -> engine requests, engine results -> OpenAI response objects (torch-free).

Used by batch runs (``batch_run.py``) and the serving process (``worker/serving``) alike.
Accepted: ``/v1/chat/completions`` (``messages``) and ``/v1/completions`` (``prompt``: a string, token ids, or a
list of either), with ``max_tokens``/``max_completion_tokens``, ``temperature``, ``top_p``, ``n``,
``stop``, ``seed``, ``stream``, ``stream_options``, log-probabilities and ``echo``
(``contracts.openai_logprobs``) and two extensions, ``top_k`` and ``num_beams``.
Defaults follow OpenAI (temperature 1, i.e. sampling) unless the caller passes others.
``response_format`` and ``tools`` / ``tool_choice`` become the row's grammar (``contracts.structured``,
``contracts.tools``). Unsupported knobs with a non-neutral value (penalties, logit_bias...) are
refused with an OpenAI error object rather than silently ignored.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import ValidationError

from contracts.decoding import DecodeRequest, DecodeResult, ModelTarget, TokenLogprobs
from contracts.openai_logprobs import (
    LogprobsError,
    chat_logprobs,
    completion_logprobs,
    logprob_knobs,
    prompt_inputs,
)
from contracts.structured import ConstraintError
from contracts.tools import assistant_message, output_knobs

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
MAX_N = 16
_NEUTRAL = {"presence_penalty": (None, 0, 0.0),
            "frequency_penalty": (None, 0, 0.0), "logit_bias": (None, {}),
            "best_of": (None, 1), "suffix": (None, ""), "functions": (None, [])}


class RequestError(Exception):
    """A request the engine refuses; renders as OpenAI's ``{"error": {...}}``."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value", status: int = 400,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.type = message, param, code, status, type

    def as_body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def model_not_found(name: Any) -> RequestError:
    return RequestError(f"The model '{name}' does not exist or you do not have access to it.", "model",
                        "model_not_found", 404)


def parse_openai_body(url: str, body: dict, target: ModelTarget, default_max_tokens: int = 256,
                      default_temperature: float = 1.0) -> list[DecodeRequest]:
    """One DecodeRequest per choice (``n`` copies per prompt; sampled copies get seed+i)."""
    if url not in (CHAT_URL, COMPLETIONS_URL):
        raise RequestError(f"unsupported url {url!r}", "url", "invalid_url")
    for key, neutral in _NEUTRAL.items():
        if body.get(key) not in neutral:
            raise RequestError(f"'{key}' is not supported by this server", key, "unsupported_parameter")
    n = body.get("n", 1) if body.get("n") is not None else 1
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
        raise RequestError(f"'n' must be an integer from 1 to {MAX_N}", "n")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("'stop' must be a string or a list of strings", "stop")
    knobs = {
        "max_new_tokens": next((body[k] for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None),
                               default_max_tokens),
        "temperature": default_temperature if body.get("temperature") is None else body["temperature"],
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "top_k": body.get("top_k") or None,
        "num_beams": body.get("num_beams") or 1,
        "seed": body.get("seed"),
        "stop": stop,
    }
    try:  # response_format / tools: the answer's grammar (contracts.structured, contracts.tools)
        knobs.update(output_knobs(url == CHAT_URL, body, knobs["num_beams"]))
    except ConstraintError as exc:
        raise RequestError(str(exc), exc.param) from None
    try:  # logprobs / top_logprobs / echo (contracts.openai_logprobs)
        knobs.update(logprob_knobs(url == CHAT_URL, body, knobs["num_beams"]))
    except LogprobsError as exc:
        raise RequestError(str(exc), exc.param, exc.code) from None
    if knobs["max_new_tokens"] == 0 and not knobs["echo"]:
        name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        raise RequestError(f"'{name}' must be at least 1 (0 only with 'echo')", name)
    inputs: list[dict[str, Any]]
    if url == CHAT_URL:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise RequestError("'messages' must be a non-empty list of message objects", "messages",
                               "missing_required_parameter")
        inputs = [{"messages": messages}]
    else:
        try:
            inputs = prompt_inputs(body.get("prompt"))
        except LogprobsError as exc:
            raise RequestError(str(exc), exc.param, exc.code) from None
    requests = []
    for item in inputs:
        for i in range(n):
            seed = knobs["seed"] + i if knobs["seed"] is not None and i else knobs["seed"]
            try:
                requests.append(DecodeRequest(**item, **{**knobs, "seed": seed}, adapter_dir=target.adapter_dir,
                                                  prompt_template=target.prompt_template))
            except ValidationError as exc:
                err = exc.errors()[0]
                param = ".".join(str(p) for p in err["loc"]) or None
                param = {"max_new_tokens": "max_tokens"}.get(param, param)
                raise RequestError(f"invalid '{param}': {err['msg']}", param) from None
    return requests


def check_results(results: list[DecodeResult], url: str = CHAT_URL) -> None:
    """Raise the first row error as an OpenAI error (context too long: 400 naming the input of ``url``'s
    body, ``messages`` or ``prompt``; otherwise 500)."""
    for r in results:
        if r.error is not None:
            if r.error.startswith("context_length_exceeded"):
                raise RequestError(r.error, "messages" if url == CHAT_URL else "prompt", "context_length_exceeded", 400)
            if r.error.startswith("invalid_prompt"):
                raise RequestError(r.error, "messages" if url == CHAT_URL else "prompt", "invalid_value", 400)
            raise RequestError(r.error, "model", "model_error", 500, "server_error")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(results: list[DecodeResult], n: int = 1) -> dict:
    prompt = sum(r.prompt_tokens for r in results[::n])
    completion = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_body(url: str, model: str, results: list[DecodeResult], n: int = 1,
                    response_id: str | None = None, created: int | None = None) -> dict:
    """A ``chat.completion`` or ``text_completion`` object with ``usage``."""
    created = created or int(time.time())
    if url == CHAT_URL:
        choices = [{"index": i, "message": assistant_message(r),
                    "logprobs": chat_logprobs(r.logprobs), "finish_reason": r.finish_reason}
                   for i, r in enumerate(results)]
        return {"id": response_id or new_id("chatcmpl"), "object": "chat.completion", "created": created,
                "model": model, "choices": choices, "usage": usage(results, n), "system_fingerprint": None}
    choices = [{"index": i, "text": r.text, "logprobs": completion_logprobs(r.logprobs),
                "finish_reason": r.finish_reason} for i, r in enumerate(results)]
    return {"id": response_id or new_id("cmpl"), "object": "text_completion", "created": created, "model": model,
            "choices": choices, "usage": usage(results, n), "system_fingerprint": None}


def stream_chunk(url: str, response_id: str, created: int, model: str, index: int, text: str | None,
                 finish_reason: str | None = None, role: bool = False, logprobs: TokenLogprobs | None = None) -> dict:
    """One SSE chunk: ``chat.completion.chunk`` (delta) or ``text_completion`` (text), with the
    log-probabilities of the tokens it carries when the request asked for them."""
    if url == CHAT_URL:
        delta: dict[str, Any] = {"role": "assistant"} if role else {}
        if text is not None:
            delta["content"] = text
        choice = {"index": index, "delta": delta, "logprobs": chat_logprobs(logprobs), "finish_reason": finish_reason}
        return {"id": response_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [choice]}
    choice = {"index": index, "text": text or "", "logprobs": completion_logprobs(logprobs),
              "finish_reason": finish_reason}
    return {"id": response_id, "object": "text_completion", "created": created, "model": model, "choices": [choice]}


def usage_chunk(url: str, response_id: str, created: int, model: str, results: list[DecodeResult],
                n: int = 1) -> dict:
    """The final chunk sent when ``stream_options.include_usage`` is true (no choices)."""
    obj = "chat.completion.chunk" if url == CHAT_URL else "text_completion"
    return {"id": response_id, "object": obj, "created": created, "model": model, "choices": [],
            "usage": usage(results, n)}
