"""The public shapes a running job reports: its events (a log line with structured data) and its progress.

The worker builds them (``worker.runner.JobContext``), the event bus publishes them, the API serves
them (``GET .../events`` and the SSE stream); one definition keeps the three in step.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

EVENT_ID_PREFIX = "ev-"


class JobEvent(BaseModel):
    """OpenAI's ``fine_tuning.job.event`` plus lorafleet's ``job_id`` (for every job kind)."""

    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    id: str
    created_at: int
    level: str
    type: str
    message: str
    data: dict[str, Any] = {}
    job_id: str

    @classmethod
    def from_row(cls, ev: Any) -> JobEvent:
        """From any object with the event row's attributes (``models.job.JobEvent``)."""
        return cls(id=f"{EVENT_ID_PREFIX}{ev.id}", created_at=int(ev.created_at.timestamp()), level=ev.level,
                   type=ev.type, message=ev.message, data=ev.data or {}, job_id=ev.job_id)


class Progress(BaseModel):
    """A job's progress as stored on the job row and shown on its public view.

    Kinds add their own counters (``phase``, ``n_kept``, ``generations_per_s``...) as extra fields."""

    model_config = ConfigDict(extra="allow")

    step: int
    total_steps: int
    percent: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    estimated_finish: str | None = None

    @classmethod
    def measure(cls, *, step: int, total: int, elapsed_s: float, tokens: int | None = None,
                tokens_per_s: float | None = None, now: datetime | None = None, **extra: Any) -> Progress:
        """Progress after ``elapsed_s`` seconds: percent done and an ETA extrapolated at the rate so far."""
        percent = round(100.0 * step / total, 2) if total else None
        eta = None
        if total and step:
            remaining = elapsed_s / step * (total - step)
            eta = ((now or datetime.now(UTC)) + timedelta(seconds=remaining)).isoformat()
        return cls(step=step, total_steps=total, percent=percent, tokens=tokens, tokens_per_s=tokens_per_s,
                   estimated_finish=eta, **extra)
