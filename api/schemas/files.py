from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

FilePurpose = Literal["fine-tune", "batch", "evals", "user_data", "seed_tasks", "batch_output",
                      "fine-tune-results"]
UPLOAD_PURPOSES = ("fine-tune", "batch", "evals", "user_data", "seed_tasks")


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
