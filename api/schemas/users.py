"""Users (with their fair-share weight and caps) and API keys."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

WEIGHT = "fair-share weight: a user's share of the pool is their weight over the sum of the weights of users with work"
MAX_RUNNING = "jobs this user may run at once (null: the server's default)"
GPU_HOURS = "GPU-hours this user's jobs may use per UTC day (null: no cap); a job over it waits"
TEACHER_USD = "US dollars this user's jobs may pay teachers per UTC day (null: no cap); a job over it waits"


def weight_field(default: Any) -> Any:
    return Field(default, gt=0, le=1000, description=WEIGHT)


def max_running_field() -> Any:
    return Field(None, ge=1, le=1000, description=MAX_RUNNING)


def gpu_hours_field() -> Any:
    return Field(None, ge=0, le=1_000_000, description=GPU_HOURS)


def teacher_usd_field() -> Any:
    return Field(None, ge=0, le=1_000_000, description=TEACHER_USD)


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
    is_admin: bool = False
    share_weight: float = weight_field(1.0)
    max_running_jobs: int | None = max_running_field()
    gpu_hours_per_day: float | None = gpu_hours_field()
    teacher_usd_per_day: float | None = teacher_usd_field()


class UserUpdate(BaseModel):
    """``PATCH /v1/users/{user_id}`` (admin): only the fields given change; null clears a cap."""

    model_config = ConfigDict(extra="forbid")
    share_weight: float = weight_field(None)
    max_running_jobs: int | None = max_running_field()
    gpu_hours_per_day: float | None = gpu_hours_field()
    teacher_usd_per_day: float | None = teacher_usd_field()
    is_active: bool = Field(None, description="false: the user's keys stop working (their jobs are kept)")


class UserRead(BaseModel):
    id: str
    object: str = "user"
    name: str
    is_admin: bool
    created_at: int
    is_active: bool = True
    share_weight: float
    max_running_jobs: int | None = None
    gpu_hours_per_day: float | None = None
    teacher_usd_per_day: float | None = None


class UserCreated(UserRead):
    api_key: str


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=128)


class ApiKeyRead(BaseModel):
    id: str
    object: str = "api_key"
    name: str | None
    prefix: str
    created_at: int
    revoked: bool


class ApiKeyCreated(ApiKeyRead):
    api_key: str
