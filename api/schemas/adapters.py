"""Trained LoRA adapters as ``/v1/adapters`` shows them."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AdapterRead(BaseModel):
    id: str
    object: str = "adapter"
    name: str
    base_model: str
    fine_tuning_job_id: str | None
    created_at: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    checkpoints: list[str] = []
