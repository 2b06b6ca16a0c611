"""Jobs of every kind share one table, one lifecycle, one events stream."""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, TimestampMixin, UTCDateTime, id_column, utcnow


class JobKind(str, enum.Enum):
    preflight = "preflight"
    fine_tuning = "fine_tuning"
    generation = "generation"
    batch = "batch"
    eval = "eval"
    export = "export"


class JobStatus(str, enum.Enum):
    validating_files = "validating_files"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    paused = "paused"


TERMINAL_STATUSES = {JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value}
ID_PREFIX = {
    JobKind.preflight: "pfjob-",
    JobKind.fine_tuning: "ftjob-",
    JobKind.generation: "genjob-",
    JobKind.batch: "batch_",
    JobKind.eval: "evaljob-",
    JobKind.export: "exportjob-",
}


class Job(TimestampMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_queue", "status", "queue"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.validating_files.value, nullable=False)
    queue: Mapped[str] = mapped_column(String(16), default="gpu", nullable=False)
    # Model the job uses (base model name, or adapter names for batch/eval).
    model: Mapped[str | None] = mapped_column(String(300))
    # Validated, typed parameters of the kind (its pydantic config dumped to JSON; no secrets).
    params: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
    user_metadata: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
    result: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
    # step, total_steps, percent, tokens, tokens_per_s, estimated_finish (ISO), ...
    progress: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
    # {code, message, param}
    error: Mapped[dict | None] = mapped_column(JSONType)
    # Admission and execution bookkeeping.
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Attempts lost to a crash or a dead worker (pauses, preemptions and stage hand-offs are not attempts).
    attempt: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The last crash or lost worker's reason ({code, message}); a job failed for attempts carries it.
    last_failure: Mapped[dict | None] = mapped_column(JSONType)
    # The registered worker the dispatcher placed the job on (its own queue), then the one running it.
    worker_id: Mapped[str | None] = mapped_column(String(128), index=True)
    # The id of the worker holding the lease (the registry id).
    lease_owner: Mapped[str | None] = mapped_column(String(256))
    # Fencing token of the current claim: every write of a running job must carry it.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    pause_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Why a pause was asked: "user" (stays paused), "preempt" or "drain" (re-queued by itself).
    pause_reason: Mapped[str | None] = mapped_column(String(16))
    # When the job last started waiting for admission (FIFO and aging); the dispatcher's view of it.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    waiting_reason: Mapped[str | None] = mapped_column(Text)
    queue_position: Mapped[int | None] = mapped_column(Integer)
    estimated_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the job needs from a worker: {"memory_bytes", "devices", "base_model"} (the dispatcher's estimate).
    resources: Mapped[dict] = mapped_column(JSONType, default=dict, nullable=False)
    # GPU/worker seconds consumed so far (for fair share and quotas).
    compute_seconds: Mapped[float] = mapped_column(default=0.0, nullable=False)
    priority: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False)


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    level: Mapped[str] = mapped_column(String(8), default="info", nullable=False)
    type: Mapped[str] = mapped_column(String(16), default="message", nullable=False)
    message: Mapped[str] = mapped_column(Text, default="", nullable=False)
    data: Mapped[dict | None] = mapped_column(JSONType)


class UsageRecord(TimestampMixin, Base):
    """The usage ledger: what one job (or, with no job, the serving of chat/completions) consumed in one
    hour, per device kind: compute seconds, tokens trained and generated, teacher tokens and cost."""

    __tablename__ = "usage_records"
    # NULLS NOT DISTINCT: serving rows (no job) of one hour are one row too.
    __table_args__ = (UniqueConstraint("owner_id", "job_id", "kind", "bucket_start", "device_kind",
                                       name="uq_usage_records_bucket", postgresql_nulls_not_distinct=True),)

    id: Mapped[str] = id_column("usage-")
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    # Start of the UTC hour the row counts.
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, nullable=False)
    # "cpu", "cuda:<device name>", or "" for work that used no device of ours (a remote teacher).
    device_kind: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    compute_seconds: Mapped[float] = mapped_column(default=0.0, nullable=False)
    tokens_trained: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    tokens_generated: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    teacher_tokens: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    teacher_cost_usd: Mapped[float] = mapped_column(default=0.0, nullable=False)
