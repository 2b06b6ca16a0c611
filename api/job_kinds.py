"""Every job kind, declared once: its create body, its config, its public view, where it lives, and
(through ``contracts.job_stages``, shared with the worker) its stages.

``api.routes.job_lifecycle.kind_router`` turns a declaration into the kind's list / retrieve / cancel /
pause / resume / events routes; the kind's own module adds its create route and its extras
(checkpoints, a generation's resume with ``budget_usd``, an eval's report). ``api.job_views`` turns a
job row into the declared view. Adding a kind is one declaration here, one view, one create route.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from api.schemas.batches import BatchCreate, BatchRead
from api.schemas.evals import EvalJobCreate, EvalJobRead
from api.schemas.fine_tuning import FineTuningJobCreate, FineTuningJobRead
from api.schemas.generation import GenerationJobCreate, GenerationJobRead
from api.schemas.jobs import JobRead, PreflightJobCreate
from contracts.configs import FinetuneHyperparameters, GenerationJobConfig
from contracts.job_stages import STAGES, Stage
from models.job import JobKind

# The shared routes a kind may have; each kind lists the ones it answers.
Operation = Literal["list", "retrieve", "cancel", "pause", "resume", "events", "priority"]
EVERY_OPERATION: frozenset[Operation] = frozenset({"list", "retrieve", "cancel", "pause", "resume", "events"})


@dataclass(frozen=True)
class JobKindSpec:
    """One job kind. ``kind`` None is "any kind" (``/v1/jobs``)."""

    kind: JobKind | None
    object: str  # the "object" field of its view, e.g. "fine_tuning.job"
    noun: str  # how errors name one, e.g. "fine-tuning job"
    id_param: str  # the parameter a 404 or 409 names, e.g. "fine_tuning_job_id" (OpenAI's SDK name)
    read: type[BaseModel]  # the public view: what retrieve / list / cancel answer
    create: type[BaseModel] | None = None  # the create body (None: created by another route)
    config: type[BaseModel] | None = None  # the typed config its params hold
    prefix: str | None = None  # under /v1; None: reachable under /v1/jobs only
    tag: str | None = None  # its OpenAPI tag
    path_param: str = "job_id"  # the id's name in the URL template
    operations: frozenset[Operation] = frozenset()  # shared routes mounted under ``prefix``

    @property
    def kind_value(self) -> str | None:
        return self.kind.value if self.kind is not None else None

    @property
    def stages(self) -> tuple[Stage, ...]:
        """Its stages (``contracts.job_stages``): the status a new job waits in and the pool of each."""
        return STAGES[self.kind.value] if self.kind is not None else ()


ANY_JOB = JobKindSpec(kind=None, object="job", noun="job", id_param="job_id", read=JobRead, prefix="/jobs",
                      tag="jobs", operations=(EVERY_OPERATION - {"list"}) | {"priority"})
PREFLIGHT = JobKindSpec(kind=JobKind.preflight, object="preflight.job", noun="preflight job",
                        id_param="preflight_job_id", read=JobRead, create=PreflightJobCreate,
                        config=FinetuneHyperparameters, prefix="/preflight/jobs", tag="preflight",
                        operations=frozenset({"list", "retrieve", "cancel", "events"}))
FINE_TUNING = JobKindSpec(kind=JobKind.fine_tuning, object="fine_tuning.job", noun="fine-tuning job",
                          id_param="fine_tuning_job_id", read=FineTuningJobRead, create=FineTuningJobCreate,
                          config=FinetuneHyperparameters, prefix="/fine_tuning/jobs", tag="fine-tuning",
                          operations=EVERY_OPERATION)
GENERATION = JobKindSpec(kind=JobKind.generation, object="generation.job", noun="generation job",
                         id_param="generation_job_id", read=GenerationJobRead, create=GenerationJobCreate,
                         config=GenerationJobConfig, prefix="/generation/jobs", tag="generation",
                         operations=EVERY_OPERATION - {"resume"})  # its resume takes a budget: its own route
EVAL = JobKindSpec(kind=JobKind.eval, object="eval.job", noun="eval job", id_param="eval_job_id", read=EvalJobRead,
                   create=EvalJobCreate, config=EvalJobCreate, prefix="/evals/jobs", tag="evals",
                   operations=frozenset({"list", "cancel"}))  # its retrieve adds the report: its own route
BATCH = JobKindSpec(kind=JobKind.batch, object="batch", noun="batch", id_param="batch_id", read=BatchRead,
                    create=BatchCreate, config=BatchCreate, prefix="/batches", tag="batches", path_param="batch_id",
                    operations=frozenset({"list", "retrieve", "cancel"}))
EXPORT = JobKindSpec(kind=JobKind.export, object="export.job", noun="export job", id_param="export_job_id",
                     read=JobRead)  # created by POST /v1/adapters/{id}/export; followed under /v1/jobs

JOB_KINDS: dict[str, JobKindSpec] = {s.kind.value: s for s in (PREFLIGHT, FINE_TUNING, GENERATION, EVAL, BATCH,
                                                                   EXPORT)}


def object_name(kind: str) -> str:
    """The ``object`` field of a job of ``kind`` in the common view."""
    spec = JOB_KINDS.get(kind)
    return spec.object if spec is not None else "job"
