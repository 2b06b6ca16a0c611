"""File shapes: the OpenAI file object, and the multipart body that uploads one."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

FilePurpose = Literal["fine-tune", "batch", "evals", "user_data", "seed_tasks", "batch_output",
                      "fine-tune-results"]
UPLOAD_PURPOSES = ("fine-tune", "batch", "evals", "user_data", "seed_tasks")

# POST /v1/files reads its multipart form itself (to refuse an oversized upload before parsing it), so its
# body is declared here rather than through FastAPI's File()/Form() parameters.
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "purpose"],
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "JSONL (or a JSON array); fine-tune, batch and evals files are checked line by "
                                "line and refused with every bad line named"},
        "purpose": {"type": "string", "enum": list(UPLOAD_PURPOSES)},
    }}}}}}


class FileRead(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"
    status_details: str | None = None
    expires_at: int | None = None
    # lorafleet: what validation found (format, n_records)
    info: dict = {}
