"""lorafleet's eval jobs: score several models on one eval set, outputs side by side."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.batches import Precision
from api.schemas.jobs import JobRead, priority_field
from contracts.configs import EvalMetric, SamplingParams, TeacherConfig


class EvalJobCreate(BaseModel):
    """``POST /v1/evals/jobs``: score models on an eval set (``models`` and/or a ``fine_tuning_job``)."""

    model_config = ConfigDict(extra="forbid")
    eval_file: str = Field(min_length=1, description="a file with purpose 'evals'")
    models: list[str] = Field(default_factory=list, max_length=64,
                              description="base models, adapters, 'adapter:ckpt-step-N'")
    fine_tuning_job: str | None = Field(None, description="adds its base model, every checkpoint and its adapter")
    metrics: list[EvalMetric] = Field(default_factory=lambda: ["rouge_l", "exact_match"], min_length=1)
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    limit: int | None = Field(None, ge=1, description="score only the first N rows")
    batch_size: int = Field(16, ge=1, le=1024, description="rows generated together")
    precision: Precision = "auto"
    judge: TeacherConfig | None = Field(None, description="metric 'judge': the model that rates each answer 1-10 "
                                                          "against its reference (an OpenAI-compatible endpoint, "
                                                          "or {local: true, model}); its api_key is stored encrypted")
    metadata: dict[str, str] | None = Field(None, max_length=16)
    priority: int = priority_field()

    @model_validator(mode="after")
    def _some_model(self):
        if not self.models and not self.fine_tuning_job:
            raise ValueError("give 'models', 'fine_tuning_job', or both")
        if ("judge" in self.metrics) != (self.judge is not None):
            raise ValueError("the 'judge' metric and a 'judge' model go together: give both or neither")
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metrics repeat")
        return self


class EvalJobRead(JobRead):
    """The common job object plus what the eval scores and, once done, each model's scores."""

    object: str = "eval.job"
    eval_file: str | None = None
    models: list[str] | None = None
    fine_tuning_job: str | None = None
    metrics: list[str] | None = None
    sampling: dict[str, Any] | None = None
    limit: int | None = None
    judge: dict[str, Any] | None = None
    report_file_id: str | None = None
    scores: list[dict[str, Any]] | None = Field(None, description="per model: name, scores, errors, examples")


class EvalJobReportRead(EvalJobRead):
    """``GET /v1/evals/jobs/{id}``: the eval job, with ``report`` (per-model tables and the outputs side by
    side) once it is written, unless ``include_report=false``; the key is absent otherwise."""

    report: dict[str, Any] | None = None
