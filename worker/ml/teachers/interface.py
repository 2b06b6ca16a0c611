"""Teachers: the LLMs that write self-instruct data (and judge evals), behind one small interface.

``Teacher.complete(requests, on_response)`` answers a list of completion-style requests (a prompt
plus decoding parameters) and calls ``on_response`` for each answer as soon as it arrives, so a
caller can record it (the self-instruct ledger) before anything else can go wrong. Implementations:
``remote.OpenAITeacher`` (any OpenAI-compatible endpoint) and ``local.LocalTeacher`` (a lorafleet
model on the worker's own engine).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

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
