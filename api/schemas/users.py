from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
    is_admin: bool = False
    share_weight: float = Field(1.0, gt=0, le=1000)
    max_running_jobs: int | None = Field(None, ge=1, le=1000)


class UserRead(BaseModel):
    id: str
    object: str = "user"
    name: str
    is_admin: bool
    created_at: int
    share_weight: float
    max_running_jobs: int | None = None


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
