"""The worker registry: every ``lorafleet worker`` registers what it has and heartbeats."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, UTCDateTime, utcnow


class WorkerState:
    alive = "alive"        # heart-beating and taking jobs
    draining = "draining"  # shutting down: its jobs pause at their next checkpoint; takes nothing new
    stopped = "stopped"    # exited cleanly
    lost = "lost"          # stopped heart-beating; its jobs were re-queued


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    # "cpu" or "cuda:<device name>"; usage is metered per device kind.
    device_kind: Mapped[str] = mapped_column(String(64), nullable=False)
    gpu_indexes: Mapped[list] = mapped_column(JSONType, default=list, nullable=False)
    # Jobs it runs at once (one per device on a GPU host; its concurrency on an io host).
    slots: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    memory_total_bytes: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)  # per device
    memory_free_bytes: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    base_models: Mapped[list] = mapped_column(JSONType, default=list, nullable=False)  # materialised on it
    queues: Mapped[list] = mapped_column(JSONType, default=list, nullable=False)  # pools it serves: gpu, io
    version: Mapped[str] = mapped_column(String(32), default="", nullable=False)
    state: Mapped[str] = mapped_column(String(16), default=WorkerState.alive, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True, nullable=False)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
