"""The common job object, job events, a job's priority, and the preflight job's create body."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.configs import FinetuneHyperparameters

PRIORITY_DESCRIPTION = ("orders this job among the caller's own waiting jobs (higher first; -100..100, default 0). "
                        "It never moves a job ahead of another user's: fair share between users is unaffected")


def priority_field() -> Any:
    """The ``priority`` field every job kind's create body has (the SDK sends it in ``extra_body``)."""
    return Field(0, ge=-100, le=100, description=PRIORITY_DESCRIPTION)


class JobPriorityUpdate(BaseModel):
    """``POST /v1/jobs/{job_id}/priority``: the waiting job's new priority, used from the next admission pass."""

    model_config = ConfigDict(extra="forbid")
    priority: int = Field(ge=-100, le=100, description=PRIORITY_DESCRIPTION)


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
    queue_position: int | None = Field(None, description="1-based place in its queue while it waits for "
                                       "admission, in the order the scheduler will admit jobs")
    estimated_start: int | None = Field(None, description="while it waits: when it is expected to start "
                                        "(unix seconds), from the running jobs' estimated finish")
    waiting_reason: str | None = Field(None, description="while it waits: why it has not started yet")
    priority: int = Field(0, description=PRIORITY_DESCRIPTION)
    attempt: int = Field(0, description="runs lost to a crash or a lost worker (pauses, preemptions and stage "
                         "hand-offs are not attempts)")
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
    priority: int = priority_field()


def params_of(body: BaseModel, **extra: Any) -> dict:
    """JSON-safe job params from a request body (metadata and priority live in their own columns)."""
    return {**body.model_dump(mode="json", exclude={"metadata", "priority"}), **extra}
