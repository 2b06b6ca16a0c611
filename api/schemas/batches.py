"""OpenAI Batch API shapes: the create body and the batch object."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.jobs import priority_field

BatchEndpoint = Literal["/v1/chat/completions", "/v1/completions"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class BatchCreate(BaseModel):
    """``POST /v1/batches``. ``precision`` and ``batch_size`` are lorafleet extensions (SDK: ``extra_body``)."""

    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(min_length=1)
    endpoint: BatchEndpoint
    completion_window: Literal["24h"] = "24h"  # advisory: lorafleet never expires a batch
    metadata: dict[str, str] | None = Field(None, max_length=16)
    output_expires_after: dict[str, Any] | None = None  # accepted for SDK compatibility; files do not expire
    precision: Precision = Field("auto", description="auto: bf16 where the hardware runs it natively; fp32 is exact")
    batch_size: int = Field(16, ge=1, le=1024, description="rows generated together; finished lines are saved "
                            "after each group, so a restarted worker resumes from there")
    priority: int = priority_field()  # a lorafleet extension (SDK: extra_body)


class BatchRequestCounts(BaseModel):
    total: int = 0
    completed: int = 0
    failed: int = 0


class BatchErrorItem(BaseModel):
    code: str
    line: int | None = None
    message: str
    param: str | None = None


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchErrorItem] = []


class BatchUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict = {"cached_tokens": 0}
    output_tokens: int
    output_tokens_details: dict = {"reasoning_tokens": 0}
    total_tokens: int


BatchStatus = Literal["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling",
                      "cancelled"]


class BatchRead(BaseModel):
    """OpenAI's Batch object, field for field."""

    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None = None
    input_file_id: str
    completion_window: str
    status: BatchStatus
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None = None
    model: str | None = None
    usage: BatchUsage | None = None
