"""The common job object, job events, and the preflight job's create body."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.configs import FinetuneHyperparameters


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobRead(BaseModel):
    """The common job object (``GET /v1/jobs/{id}``, preflight and export jobs); each kind with more to say
    extends it (``FineTuningJobRead``, ``GenerationJobRead``, ``EvalJobRead``)."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: str = Field(description="the kind's object name, e.g. 'fine_tuning.job', 'preflight.job'")
    kind: str
    status: str
    model: str | None
    created_at: int
    started_at: int | None = None
    finished_at: int | None = None
    error: JobError | None = None
    progress: dict[str, Any] = {}
    estimated_finish: int | None = None
    queue_position: int | None = None
    attempt: int = 0
    metadata: dict[str, Any] = {}
    result: dict[str, Any] | None = None


class EventRead(BaseModel):
    id: str = Field(description="'ev-<n>'; pass it as 'after' to page on")
    object: str = "fine_tuning.job.event"
    created_at: int
    level: str
    type: str
    message: str
    data: dict[str, Any] = {}


class PreflightJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    hyperparameters: FinetuneHyperparameters = Field(default_factory=FinetuneHyperparameters)
    metadata: dict[str, str] | None = None


def params_of(body: BaseModel, **extra: Any) -> dict:
    """JSON-safe job params from a request body."""
    return {**body.model_dump(mode="json", exclude={"metadata"}), **extra}
