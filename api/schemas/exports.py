"""``POST /v1/adapters/{id}/export``: what to export an adapter as."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ExportFormat = Literal["hf", "gguf"]
GGUFDtype = Literal["f16", "f32", "q8_0"]


class ExportCreate(BaseModel):
    """The body (optional: no body is today's merged Hugging Face checkpoint)."""

    model_config = ConfigDict(extra="forbid")
    format: ExportFormat = Field("hf", description="'hf': the adapter merged into its base as a Hugging Face "
                                 "checkpoint folder in the artifact store; 'gguf': one .gguf file (llama.cpp / "
                                 "Ollama) with the tokenizer and the adapter's training prompt template as its chat "
                                 "template, returned as a file id in the job's result")
    dtype: GGUFDtype = Field("f16", description="weights of a 'gguf' export: f16, f32, or q8_0 (8-bit blocks); "
                             "norms stay f32")
