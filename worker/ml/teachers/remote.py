"""``OpenAITeacher``: any OpenAI-compatible endpoint as a ``Teacher``, through the official ``openai`` SDK.

- ``api="completions"``: the prompt is sent as is to ``/v1/completions`` (what the published
  pipelines did with davinci / text-davinci-003).
- ``api="chat"``: the completion prompt is adapted for chat models as ``continuation.py`` says (one
  user message asking to continue the text; an echo of the prompt's last line is removed).
- Stop sequences are applied by the server (the first four; the chat API takes at most four) and
  again client-side (all of them), so a completion never runs past a stop string.
- With ``temperature == 0`` the ``top_p`` parameter is not sent (greedy either way; some servers
  refuse ``top_p=0``). Zero penalties are not sent either. Sampled requests carry ``seed`` derived
  from the request's ledger id (``request_seed``), so endpoints that honour seeds (lorafleet's own,
  OpenAI's best-effort) answer one request reproducibly.
- Retries and back-off follow ``retries.py``. Any other 400/413/422 answers that one request with
  ``finish_reason="error"`` (never retried, costs nothing); 401/403/404 raise ``TeacherConfigError``
  (the whole job is misconfigured); retries exhausted raise ``TeacherUnavailableError`` (resume later).
- Tokens and cost are counted per response (``usage`` from the server, else ~4 characters per
  token) with a price table per model in USD per million tokens (``costs.py``).
- The API key lives only inside the SDK client: it is not an attribute, not in ``repr``, and it is
  scrubbed from every error message this module produces.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Literal

from worker.ml.teachers.continuation import apply_stops, chat_content, chat_reply, request_seed, unique_stops
from worker.ml.teachers.costs import (
    DEFAULT_PRICES,
    FREE,
    ModelPrice,
    TeacherUsage,
    approx_tokens,
    configured_price,
)
from worker.ml.teachers.interface import (
    ResponseCallback,
    TeacherConfigError,
    TeacherError,
    TeacherRequest,
    TeacherResponse,
    TeacherUnavailableError,
)
from worker.ml.teachers.retries import RefusedParams, backoff_delay, is_prompt_too_long, is_transient_status


class OpenAITeacher:
    """Any OpenAI-compatible endpoint, chat or completions API, via the ``openai`` SDK."""

    def __init__(self, *, base_url: str | None, model: str, api_key: str | None = None,
                 api: Literal["chat", "completions"] = "chat", max_concurrency: int = 4,
                 prices: Mapping[str, ModelPrice] | None = None, timeout_s: float = 120.0,
                 max_retries: int = 6, backoff_initial_s: float = 1.0, backoff_max_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, continuation: bool = True):
        import openai  # imported lazily: nothing heavy at import time

        if api not in ("chat", "completions"):
            raise ValueError("api must be 'chat' or 'completions'")
        self.base_url = base_url
        self.model = model
        self.api = api
        self.continuation = continuation  # chat API: the prompt is text to continue (see chat_content)
        self.max_concurrency = max(1, max_concurrency)
        self.price = (dict(DEFAULT_PRICES) | dict(prices or {})).get(model, FREE)
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.usage = TeacherUsage()
        self.refused = RefusedParams(model, base_url)  # optional knobs this endpoint refused
        self._sleep = sleep
        self._secret = api_key or ""
        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s,
                                     max_retries=0)

    def __repr__(self) -> str:
        return f"OpenAITeacher(base_url={self.base_url!r}, model={self.model!r}, api={self.api!r})"

    @property
    def dropped_params(self) -> set[str]:
        return self.refused.names

    # --- Teacher protocol
    def complete(self, requests: Sequence[TeacherRequest],
                 on_response: ResponseCallback | None = None) -> list[TeacherResponse]:
        if not requests:
            return []
        results: dict[str, TeacherResponse] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            futures = {pool.submit(self._complete_one, r): r for r in requests}
            for fut in as_completed(futures):  # callbacks run here, in the caller's thread
                try:
                    resp = fut.result()
                except TeacherError as exc:
                    failure = failure or exc
                    continue
                results[resp.request_id] = resp
                self.usage.add(resp)
                if on_response is not None:
                    on_response(resp)
        if failure is not None:
            raise failure
        return [results[r.request_id] for r in requests]

    def estimate_cost(self, request: TeacherRequest) -> float:
        return self.price.cost(approx_tokens(request.prompt), request.params.max_tokens)

    # --- one request with retries
    def _complete_one(self, req: TeacherRequest) -> TeacherResponse:
        oa = self._openai
        attempt = 0
        max_tokens = req.params.max_tokens
        while True:
            attempt += 1
            try:
                resp = self._call(req, max_tokens)
                resp.attempts = attempt
                return resp
            except (oa.RateLimitError, oa.InternalServerError, oa.APIConnectionError) as exc:
                transient = exc
            except oa.APIStatusError as exc:
                if is_transient_status(exc.status_code):
                    transient = exc
                elif self.refused.drop_if_refused(exc):
                    continue
                elif is_prompt_too_long(exc.message) and attempt <= self.max_retries and max_tokens > 1:
                    max_tokens = int(max_tokens * 0.8)  # as both published pipelines did, at once
                    continue
                elif exc.status_code in (401, 403, 404):
                    raise TeacherConfigError(self._scrub(f"teacher refused the request "
                                                         f"({exc.status_code}): {exc.message}")) from None
                else:
                    return TeacherResponse(req.request_id, "", "error", model=self.model, attempts=attempt,
                                           error=self._scrub(f"{exc.status_code}: {exc.message}"))
            if attempt > self.max_retries:
                raise TeacherUnavailableError(self._scrub(
                    f"teacher still failing after {attempt} attempts: {type(transient).__name__}: {transient}"))
            self._sleep(backoff_delay(attempt, transient, self.backoff_initial_s, self.backoff_max_s))

    def _request_kwargs(self, req: TeacherRequest, max_tokens: int, stops: list[str]) -> dict:
        """The SDK arguments of one request: knobs that change nothing, or that the endpoint refused, are left out."""
        p = req.params
        kwargs: dict = {"model": self.model, "max_tokens": max_tokens, "temperature": p.temperature}
        if p.temperature > 0:
            kwargs["top_p"] = p.top_p
            kwargs["seed"] = request_seed(req.request_id)
        if p.presence_penalty:
            kwargs["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            kwargs["frequency_penalty"] = p.frequency_penalty
        self.refused.strip(kwargs)
        if stops:
            kwargs["stop"] = stops[:4]
        return kwargs

    def _call(self, req: TeacherRequest, max_tokens: int) -> TeacherResponse:
        stops = unique_stops(req.params.stop)
        kwargs = self._request_kwargs(req, max_tokens, stops)
        if self.api == "chat":
            out = self._client.chat.completions.create(
                messages=[{"role": "user", "content": chat_content(req.prompt, self.continuation)}], **kwargs)
            choice = out.choices[0]
            text = chat_reply(req.prompt, choice.message.content or "", self.continuation)
        else:
            out = self._client.completions.create(prompt=req.prompt, **kwargs)
            choice = out.choices[0]
            text = choice.text or ""
        text, stopped = apply_stops(text, stops)
        finish = "stop" if stopped else (choice.finish_reason or "stop")
        usage = getattr(out, "usage", None)
        pt = usage.prompt_tokens if usage and usage.prompt_tokens is not None else approx_tokens(req.prompt)
        ct = usage.completion_tokens if usage and usage.completion_tokens is not None else approx_tokens(text)
        return TeacherResponse(req.request_id, text, finish, pt, ct, self.price.cost(pt, ct), self.model)

    def _scrub(self, message: str) -> str:
        return message.replace(self._secret, "***") if self._secret else message


def build_teacher(cfg, api_key: str | None = None, continuation: bool = True) -> OpenAITeacher:
    """An ``OpenAITeacher`` from a ``configs.TeacherConfig``; ``api_key`` overrides ``cfg.api_key``
    (job params are dumped without the key, so the caller passes it from its secret store)."""
    key = api_key if api_key is not None else (cfg.api_key.get_secret_value() if cfg.api_key else None)
    price = configured_price(cfg)
    prices = {cfg.model: price} if price is not None else None
    return OpenAITeacher(base_url=cfg.base_url, model=cfg.model, api_key=key, api=cfg.api,
                         max_concurrency=cfg.max_concurrency, prices=prices, timeout_s=cfg.timeout_s,
                         max_retries=cfg.max_retries, continuation=continuation)
