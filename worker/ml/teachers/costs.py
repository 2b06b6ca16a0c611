"""Tokens and cost of teacher answers: a price table per model (USD per million tokens), a rough
token count when a server reports no usage, and the running total of a teacher's usage."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from worker.ml.teachers.interface import TeacherResponse


@dataclass(frozen=True)
class ModelPrice:
    input_usd_per_1m: float
    output_usd_per_1m: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_usd_per_1m + completion_tokens * self.output_usd_per_1m) / 1e6


FREE = ModelPrice(0.0, 0.0)

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


def configured_price(cfg) -> ModelPrice | None:
    """The job's own price for its teacher (``TeacherConfig.input/output_usd_per_1m``), if it gives one."""
    if cfg.input_usd_per_1m is None or cfg.output_usd_per_1m is None:
        return None
    return ModelPrice(cfg.input_usd_per_1m, cfg.output_usd_per_1m)


def approx_tokens(text: str) -> int:
    """Rough token count (~4 characters per token) when a server reports no usage."""
    return max(1, (len(text) + 3) // 4) if text else 0


@dataclass
class TeacherUsage:
    """Requests, retries, tokens and cost of every answer a teacher gave (thread-safe)."""

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
