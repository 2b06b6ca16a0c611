"""Generation (self-instruct) job shapes: the create body is the engine's config plus the seed file."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contracts.configs import GenerationJobConfig


class GenerationJobCreate(GenerationJobConfig):
    """``GenerationJobConfig``'s fields (``teacher.api_key`` included, never stored in plain text) plus
    where the seed tasks come from and the user's metadata."""

    seed_file: str | None = Field(None, min_length=1,
                                  description="a file with purpose 'seed_tasks' (Self-Instruct JSONL); "
                                              "None: lorafleet's built-in seed tasks")
    metadata: dict[str, str] | None = None

    def to_config(self) -> GenerationJobConfig:
        """The engine's config (the teacher keeps its api_key in memory; dumps leave it out)."""
        return GenerationJobConfig(**{name: getattr(self, name) for name in GenerationJobConfig.model_fields})


class GenerationJobResume(BaseModel):
    """Resume a paused job, optionally raising (or lifting, with null) its budget cap."""

    model_config = ConfigDict(extra="forbid")
    budget_usd: float | None = Field(None, ge=0, description="the new cap in USD; omit to keep the current one")
