"""Shapes shared by every resource."""
from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class ListRead(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


def to_unix(dt: datetime | None) -> int | None:
    return int(dt.timestamp()) if dt is not None else None


class DeletedRead(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: str
    deleted: bool = True
