"""Generation (self-instruct) job shapes: the create body is the engine's config plus the seed file."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.jobs import JobRead, priority_field
from contracts.configs import GenerationJobConfig


class GenerationJobCreate(GenerationJobConfig):
    """``GenerationJobConfig``'s fields (``teacher.api_key`` included, never stored in plain text) plus
    where the seed tasks come from and the user's metadata."""

    seed_file: str | None = Field(None, min_length=1,
                                  description="a file with purpose 'seed_tasks' (Self-Instruct JSONL); "
                                              "None: lorafleet's built-in seed tasks")
    metadata: dict[str, str] | None = None
    priority: int = priority_field()

    def to_config(self) -> GenerationJobConfig:
        """The engine's config (the teacher keeps its api_key in memory; dumps leave it out)."""
        return GenerationJobConfig(**{name: getattr(self, name) for name in GenerationJobConfig.model_fields})


class GenerationJobResume(BaseModel):
    """Resume a paused job, optionally raising (or lifting, with null) its budget cap."""

    model_config = ConfigDict(extra="forbid")
    budget_usd: float | None = Field(None, ge=0, description="the new cap in USD; omit to keep the current one")


class GenerationJobRead(JobRead):
    """The common job object plus the generation config (its teacher without the API key) and the outcome."""

    object: str = "generation.job"
    method: str | None = None
    num_instructions: int | None = None
    teacher: dict[str, Any] | None = Field(None, description="the teacher config, api_key left out")
    has_teacher_api_key: bool = False
    seed_file: str | None = None
    config: dict[str, Any] = Field(default_factory=dict, description="the GenerationJobConfig the job runs with")
    dataset_id: str | None = None
    training_file: str | None = None
    n_kept: int | None = None
    cost_usd: float | None = None
