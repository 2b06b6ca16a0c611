"""OpenAI fine-tuning job shapes (create body, job, checkpoint)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.jobs import JobRead, priority_field
from contracts.configs import FinetuneHyperparameters, FineTuningMethod


class FineTuningJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1, description="a fine-tune file id, or a dataset id (ds-...)")
    validation_file: str | None = None
    hyperparameters: FinetuneHyperparameters | None = None
    method: FineTuningMethod | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    integrations: list[dict] | None = None
    priority: int = priority_field()  # a lorafleet extension (SDK: extra_body)

    @model_validator(mode="after")
    def _one_place_for_hyperparameters(self):
        if self.hyperparameters is not None and self.method is not None:
            raise ValueError(f"give hyperparameters either at the top level or in method.{self.method.type}, "
                             "not both")
        return self

    @property
    def method_type(self) -> str:
        return self.method.type if self.method is not None else "supervised"

    def resolved_hyperparameters(self) -> FinetuneHyperparameters:
        """The method's hyperparameters (``DpoHyperparameters`` for DPO), with ``seed`` applied."""
        hp = self.hyperparameters or (self.method.hyperparameters() if self.method else None)
        hp = hp or FinetuneHyperparameters()
        if self.seed is not None:
            hp = hp.model_copy(update={"seed": self.seed})
        return hp


class CheckpointRead(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, Any] = {}


class OpenAIHyperparametersRead(BaseModel):
    """OpenAI's three hyperparameters, then every lorafleet hyperparameter the job runs with."""

    model_config = ConfigDict(extra="allow")
    n_epochs: int | float
    batch_size: int | None = None
    learning_rate_multiplier: float


class SupervisedMethodRead(BaseModel):
    hyperparameters: OpenAIHyperparametersRead


class FineTuningMethodRead(BaseModel):
    """The method block: ``supervised`` or ``dpo`` (its hyperparameters include ``beta``)."""

    type: Literal["supervised", "dpo"] = "supervised"
    supervised: SupervisedMethodRead | None = None
    dpo: SupervisedMethodRead | None = None


class FineTuningJobRead(JobRead):
    """OpenAI's FineTuningJob, field for field, on top of lorafleet's common job object."""

    object: str = "fine_tuning.job"
    fine_tuned_model: str | None = None
    organization_id: str
    hyperparameters: OpenAIHyperparametersRead
    training_file: str | None = None
    validation_file: str | None = None
    result_files: list[str] = Field(default_factory=list)
    seed: int | None = None
    trained_tokens: int | None = None
    integrations: list[dict[str, Any]] = Field(default_factory=list)
    method: FineTuningMethodRead
    suffix: str | None = None
