"""Dataset shapes: stats of a generation job's output, and its rows with their provenance."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class DatasetRead(BaseModel):
    id: str
    object: Literal["dataset"] = "dataset"
    name: str
    created_at: int
    job_id: str | None
    file_id: str | None
    training_file: str | None  # the same file id: what POST /v1/fine_tuning/jobs takes
    n_rows: int
    n_rejected: int
    rejected_by_filter: dict[str, int] = {}
    tokens: dict[str, int] = {}
    cost_usd: float = 0.0
    stats: dict = {}


class DatasetRowRead(BaseModel):
    """A kept row (instruction/input/output + provenance) or a rejected candidate (its ``filter``; ROUGE
    rejects also name the ``nearest`` kept instruction and its ``score``). Other recorded fields pass through."""

    model_config = ConfigDict(extra="allow")
    index: int
    verdict: Literal["kept", "rejected"]
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    provenance: dict | None = None
    filter: str | None = None
    nearest: str | None = None
    score: float | None = None


class DatasetRowsRead(BaseModel):
    object: Literal["list"] = "list"
    data: list[DatasetRowRead]
    has_more: bool = False
    next_after: int | None = None  # pass as ``after`` to get the next page
