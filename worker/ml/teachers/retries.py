"""What a remote teacher does when an endpoint says no.

- Transient failures (429, 408/409, 5xx, timeouts, dropped connections) are retried with
  exponential back-off that honours ``Retry-After`` (``backoff_delay``).
- A 400 saying the prompt is too long ("Please reduce your prompt", "maximum context length") is
  retried at once with ``max_tokens * 0.8``, as both published pipelines did (``is_prompt_too_long``).
- A 400 refusing an optional knob (``presence_penalty``, ``frequency_penalty``, ``top_p``, ``seed``;
  lorafleet's own server refuses penalties) drops that knob for this endpoint, logs a warning once
  and retries at once (``RefusedParams``).
"""
from __future__ import annotations

import logging
import random
import threading

logger = logging.getLogger(__name__)
OPTIONAL_PARAMS = ("presence_penalty", "frequency_penalty", "top_p", "seed")  # dropped if an endpoint refuses them


def is_transient_status(status_code: int) -> bool:
    return status_code in (408, 409) or status_code >= 500


def is_prompt_too_long(message: str) -> bool:
    text = (message or "").lower()
    return "reduce your prompt" in text or "maximum context length" in text


def backoff_delay(attempt: int, exc: Exception, initial_s: float, max_s: float) -> float:
    """``initial_s * 2**(attempt-1)`` (at least the server's ``Retry-After``), capped, with 10% jitter."""
    delay = initial_s * 2 ** (attempt - 1)
    response = getattr(exc, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    try:
        delay = max(delay, float(retry_after)) if retry_after else delay
    except ValueError:
        pass
    return min(max_s, delay) * (1.0 + 0.1 * random.random())


class RefusedParams:
    """The optional knobs one endpoint refused; they are no longer sent to it."""

    def __init__(self, model: str, base_url: str | None) -> None:
        self.model = model
        self.base_url = base_url
        self.names: set[str] = set()
        self._lock = threading.Lock()

    def drop_if_refused(self, exc) -> bool:
        """True when ``exc`` (an ``openai.APIStatusError``) is a 400 refusing an optional knob: the
        knob is dropped (said once) and the request can be retried at once."""
        param = getattr(exc, "param", None)
        refused = getattr(exc, "code", None) == "unsupported_parameter" or "support" in (exc.message or "").lower()
        if exc.status_code != 400 or param not in OPTIONAL_PARAMS or not refused:
            return False
        with self._lock:  # concurrent requests may all be refused before the first drop
            if param not in self.names:
                self.names.add(param)
                logger.warning("teacher %s at %s refuses %r; sending requests without it",
                               self.model, self.base_url, param)
        return True

    def strip(self, kwargs: dict) -> dict:
        for name in self.names:
            kwargs.pop(name, None)
        return kwargs
