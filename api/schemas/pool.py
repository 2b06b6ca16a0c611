"""``GET /v1/pool`` (admins): the registered workers and what each runs, what waits, and every user's
standing in fair share (weight, share, usage, caps)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PoolWorker(BaseModel):
    id: str
    host: str
    device_kind: str
    gpu_indexes: list[int]
    state: str = Field(description="alive, draining, stopped or lost")
    started_at: int
    heartbeat_at: int
    heartbeat_age_s: float = Field(description="seconds since its last heartbeat")
    slots: int
    memory_total_bytes: int = Field(description="per device")
    memory_free_bytes: int = Field(description="per device")
    base_models: list[str] = Field(description="base models already materialised on it")
    queues: list[str]
    version: str
    jobs: list[str] = Field(description="ids of the jobs it runs, or was sent and has not claimed yet")


class PoolPending(BaseModel):
    total: int
    by_queue: dict[str, int]
    by_user: dict[str, int]


class PoolUsage(BaseModel):
    decayed_gpu_seconds: float = Field(description="past GPU-seconds, halved every half_life_s: what fair share "
                                                   "ranks users by")
    gpu_hours_today: float
    teacher_usd_today: float


class PoolQuotas(BaseModel):
    max_running_jobs: int | None = Field(description="null: the server's default")
    gpu_hours_per_day: float | None
    teacher_usd_per_day: float | None


class PoolUser(BaseModel):
    id: str
    name: str
    is_active: bool
    weight: float
    share: float = Field(description="weight over the sum of the weights of users with work waiting or running "
                                     "(0 without work)")
    pending_jobs: int
    running_jobs: int
    usage: PoolUsage
    quotas: PoolQuotas


class PoolRead(BaseModel):
    object: Literal["pool"] = "pool"
    half_life_s: float
    workers: list[PoolWorker]
    pending: PoolPending
    users: list[PoolUser]
