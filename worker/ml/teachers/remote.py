"""Teachers: the LLMs that write self-instruct data, behind one small interface.

``Teacher.complete(requests, on_response)`` answers a list of completion-style requests (a prompt
plus decoding parameters) and calls ``on_response`` for each answer as soon as it arrives, so a
caller can record it (the generation ledger) before anything else can go wrong.

``OpenAITeacher`` talks to any OpenAI-compatible endpoint through the official ``openai`` SDK:

- ``api="completions"``: the prompt is sent as is to ``/v1/completions`` (what the published
  pipelines did with davinci / text-davinci-003).
- ``api="chat"``: the completion prompt is adapted for chat models in one documented way: it is
  sent as a **single user message**, ``CHAT_CONTINUE_INSTRUCTION + "\\n\\n" + prompt``, asking the
  model to continue the text where it stops and to write only the continuation. If the reply
  starts by echoing the prompt's last line (e.g. ``"9."`` or ``"4. Instruction:"``, with any
  number: chat models like to restart lists at ``"1."``) that echo is removed, leading blank lines are dropped and one space is put in front, so the reply parses
  like a completion (and a leading blank line cannot trip the ``"\n\n"`` stop).
- Stop sequences are applied by the server (the first four; the chat API takes at most four) and
  again client-side (all of them), so a completion never runs past a stop string.
- With ``temperature == 0`` the ``top_p`` parameter is not sent (greedy either way; some servers
  refuse ``top_p=0``). Zero penalties are not sent either. Sampled requests carry ``seed`` derived
  from the request's ledger id (``request_seed``), so endpoints that honour seeds (lorafleet's own,
  OpenAI's best-effort) answer one request reproducibly.
- Retries with exponential back-off (honouring ``Retry-After``) on 429, 5xx, timeouts and
  dropped connections only. A 400 saying the prompt is too long ("Please reduce your prompt",
  "maximum context length") is retried at once with ``max_tokens * 0.8``, as both published
  pipelines did. A 400 refusing an optional knob (``presence_penalty``, ``frequency_penalty``,
  ``top_p``, ``seed``; lorafleet's own server refuses penalties) drops that knob for this endpoint, logs a
  warning once and retries at once. Any other 400/413/422 answers that one request with ``finish_reason="error"``
  (never retried, costs nothing); 401/403/404 raise ``TeacherConfigError`` (the whole job is
  misconfigured); retries exhausted raise ``TeacherUnavailableError`` (resume later).
- Tokens and cost are counted per response (``usage`` from the server, else ~4 characters per
  token) with a price table per model in USD per million tokens.
- The API key lives only inside the SDK client: it is not an attribute, not in ``repr``, and it is
  scrubbed from every error message this module produces.
"""
from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

logger = logging.getLogger(__name__)
OPTIONAL_PARAMS = ("presence_penalty", "frequency_penalty", "top_p", "seed")  # dropped if an endpoint refuses them
CHAT_CONTINUE_INSTRUCTION = (
    "Continue the text below exactly where it stops, keeping its format and numbering. "
    "Write only the continuation: do not repeat the text and add no commentary."
)
ResponseCallback = Callable[["TeacherResponse"], None]


@dataclass(frozen=True)
class DecodingParams:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class TeacherRequest:
    request_id: str
    prompt: str
    params: DecodingParams


@dataclass
class TeacherResponse:
    request_id: str
    text: str
    finish_reason: str  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str = ""
    error: str | None = None
    attempts: int = 1

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> TeacherResponse:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class Teacher(Protocol):
    model: str

    def complete(self, requests: Sequence[TeacherRequest],
                 on_response: ResponseCallback | None = None) -> list[TeacherResponse]:
        """Answer every request (same order); call ``on_response`` as each answer arrives."""
        ...

    def estimate_cost(self, request: TeacherRequest) -> float:
        """Worst-case USD cost of one request (prompt + max_tokens)."""
        ...


class TeacherError(RuntimeError):
    """Base class of teacher failures that stop a job."""


class TeacherConfigError(TeacherError):
    """Authentication, permission or unknown model: no request can succeed."""


class TeacherUnavailableError(TeacherError):
    """Transient errors outlasted the retries; the job can resume from its ledger later."""


@dataclass(frozen=True)
class ModelPrice:
    input_usd_per_1m: float
    output_usd_per_1m: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_usd_per_1m + completion_tokens * self.output_usd_per_1m) / 1e6


# Public list prices (USD per 1M tokens) of common teachers; a job may override them.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-3.5-turbo": ModelPrice(0.50, 1.50),
    "gpt-3.5-turbo-instruct": ModelPrice(1.50, 2.00),
    "davinci-002": ModelPrice(2.00, 2.00),
}


def _is_prompt_too_long(message: str) -> bool:
    text = (message or "").lower()
    return "reduce your prompt" in text or "maximum context length" in text


def approx_tokens(text: str) -> int:
    """Rough token count (~4 characters per token) when a server reports no usage."""
    return max(1, (len(text) + 3) // 4) if text else 0


def request_seed(request_id: str) -> int:
    """A sampling seed that depends on the request only (ledger ids are hex digests), so a teacher that
    honours seeds answers one request the same way every time."""
    try:
        return int(request_id[:15], 16)
    except ValueError:
        return sum(ord(c) * 31 ** i for i, c in enumerate(request_id[:32])) % (1 << 60)


def apply_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first occurrence of any stop string; say whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def chat_content(prompt: str, continuation: bool) -> str:
    """The one user message a chat model gets for ``prompt``: with ``continuation`` (completion-style
    prompts of the generation pipelines) prefixed by ``CHAT_CONTINUE_INSTRUCTION``; as is otherwise
    (prompts that are already a request, e.g. a judge's)."""
    return f"{CHAT_CONTINUE_INSTRUCTION}\n\n{prompt}" if continuation else prompt


def chat_reply(prompt: str, reply: str, continuation: bool) -> str:
    return strip_echoed_tail(prompt, reply) if continuation else reply


def strip_echoed_tail(prompt: str, reply: str) -> str:
    """Make a chat reply read like a completion: drop an echo of the prompt's last line
    (``"9."``, ``"4. Instruction:"``) and leading blank lines, and start with one space."""
    tail = prompt.rstrip().rsplit("\n", 1)[-1].strip()
    lead = reply.lstrip()
    if tail:  # the echo may restart the numbering ("1." for "9."): numbers match any number
        echo = re.match(r"\d+".join(re.escape(part) for part in re.split(r"\d+", tail)), lead)
        if echo:
            lead = lead[echo.end():].lstrip()
    return " " + lead if lead else ""


@dataclass
class TeacherUsage:
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, resp: TeacherResponse) -> None:
        with self._lock:
            self.requests += 1
            self.retries += resp.attempts - 1
            self.prompt_tokens += resp.prompt_tokens
            self.completion_tokens += resp.completion_tokens
            self.cost_usd += resp.cost_usd


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
        table = dict(DEFAULT_PRICES) | dict(prices or {})
        self.price = table.get(model, ModelPrice(0.0, 0.0))
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.usage = TeacherUsage()
        self.dropped_params: set[str] = set()  # optional knobs this endpoint refused
        self._drop_lock = threading.Lock()
        self._sleep = sleep
        self._secret = api_key or ""
        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s,
                                     max_retries=0)

    def __repr__(self) -> str:
        return f"OpenAITeacher(base_url={self.base_url!r}, model={self.model!r}, api={self.api!r})"

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
                if exc.status_code in (408, 409) or exc.status_code >= 500:
                    transient = exc
                elif self._drops_unsupported(exc):
                    continue
                elif _is_prompt_too_long(exc.message) and attempt <= self.max_retries and max_tokens > 1:
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
            self._sleep(self._backoff(attempt, transient))

    def _drops_unsupported(self, exc) -> bool:
        """A 400 refusing an optional knob (e.g. lorafleet's own server and ``presence_penalty``):
        stop sending that knob to this endpoint, say so once, and retry at once."""
        param = getattr(exc, "param", None)
        refused = getattr(exc, "code", None) == "unsupported_parameter" or "support" in (exc.message or "").lower()
        if exc.status_code != 400 or param not in OPTIONAL_PARAMS or not refused:
            return False
        with self._drop_lock:  # concurrent requests may all be refused before the first drop
            if param not in self.dropped_params:
                self.dropped_params.add(param)
                logger.warning("teacher %s at %s refuses %r; sending requests without it",
                               self.model, self.base_url, param)
        return True

    def _backoff(self, attempt: int, exc: Exception) -> float:
        delay = self.backoff_initial_s * 2 ** (attempt - 1)
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        try:
            delay = max(delay, float(retry_after)) if retry_after else delay
        except ValueError:
            pass
        return min(self.backoff_max_s, delay) * (1.0 + 0.1 * random.random())

    def _call(self, req: TeacherRequest, max_tokens: int) -> TeacherResponse:
        p = req.params
        kwargs: dict = {"model": self.model, "max_tokens": max_tokens, "temperature": p.temperature}
        if p.temperature > 0:
            kwargs["top_p"] = p.top_p
            kwargs["seed"] = request_seed(req.request_id)
        if p.presence_penalty:
            kwargs["presence_penalty"] = p.presence_penalty
        if p.frequency_penalty:
            kwargs["frequency_penalty"] = p.frequency_penalty
        for name in self.dropped_params:
            kwargs.pop(name, None)
        stops = list(dict.fromkeys(s for s in p.stop if s))
        if stops:
            kwargs["stop"] = stops[:4]
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


def configured_price(cfg) -> ModelPrice | None:
    """The job's own price for its teacher (``TeacherConfig.input/output_usd_per_1m``), if it gives one."""
    if cfg.input_usd_per_1m is None or cfg.output_usd_per_1m is None:
        return None
    return ModelPrice(cfg.input_usd_per_1m, cfg.output_usd_per_1m)


def build_teacher(cfg, api_key: str | None = None, continuation: bool = True) -> OpenAITeacher:
    """An ``OpenAITeacher`` from a ``configs.TeacherConfig``; ``api_key`` overrides ``cfg.api_key``
    (job params are dumped without the key, so the caller passes it from its secret store)."""
    key = api_key if api_key is not None else (cfg.api_key.get_secret_value() if cfg.api_key else None)
    price = configured_price(cfg)
    prices = {cfg.model: price} if price is not None else None
    return OpenAITeacher(base_url=cfg.base_url, model=cfg.model, api_key=key, api=cfg.api,
                         max_concurrency=cfg.max_concurrency, prices=prices, timeout_s=cfg.timeout_s,
                         max_retries=cfg.max_retries, continuation=continuation)
