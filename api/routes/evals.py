"""``/v1/evals/jobs``: score base models, adapters and checkpoints on one eval set (lorafleet's own path).

``fine_tuning_job`` expands to that job's base model, every checkpoint (by step) and its final
adapter: one job answers "did fine-tuning help, and from which step?". All models of an eval job
share one base model. ``GET /v1/evals/jobs/{id}`` returns the job with its report: a score table per
model and the outputs side by side per example. With the ``judge`` metric a judge model (any
OpenAI-compatible endpoint, or a local lorafleet model) rates every answer 1-10 against its reference.
"""
from __future__ import annotations

import json

from fastapi import Query, Request
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from api.errors import APIError, not_found
from api.job_inputs import require_file, resolve_model_ref, teacher_params
from api.job_kinds import EVAL
from api.job_views import eval_report_view, eval_view
from api.queue import notify_submitted
from api.routes.job_lifecycle import kind_router, owned_job_param
from api.schemas.evals import EvalJobCreate, EvalJobRead, EvalJobReportRead
from models.crud import jobs as job_crud
from models.job import Job, JobKind
from models.registry import Adapter, Checkpoint
from models.storage import ArtifactStore

router = kind_router(EVAL)
OwnedEvalJob = owned_job_param(EVAL)


def fine_tuning_models(session, user, job_id: str) -> list[tuple[str, str]]:
    """(name, base model) of a fine-tuning job's base model, checkpoints (by step) and final adapter."""
    ft = job_crud.get_owned_job(session=session, job_id=job_id, owner_id=user.id, kind=JobKind.fine_tuning.value)
    if ft is None:
        raise not_found("fine-tuning job", job_id, "fine_tuning_job")
    out = [(ft.model, ft.model)]
    ckpts = session.execute(select(Checkpoint).where(Checkpoint.job_id == ft.id)
                            .order_by(Checkpoint.step_number)).scalars()
    out += [(c.model_name, ft.model) for c in ckpts]
    final = (ft.result or {}).get("fine_tuned_model")
    if final and session.execute(select(Adapter.id).where(Adapter.name == final,
                                                          Adapter.owner_id == user.id)).first():
        out.append((final, ft.model))
    return out


def plan_models(session, user, body: EvalJobCreate) -> tuple[str, list[str]]:
    """(base model, model names in order without repeats); 404 for a model the caller does not have."""
    pairs = [(name, resolve_model_ref(session, user, name, f"models[{i}]")["base_model"])
             for i, name in enumerate(body.models)]
    if body.fine_tuning_job:
        pairs += fine_tuning_models(session, user, body.fine_tuning_job)
    names: dict[str, str] = {}
    for name, base in pairs:
        names.setdefault(name, base)
    bases = sorted(set(names.values()))
    if len(bases) != 1:
        raise APIError(400, "model_base_mismatch", f"the models of an eval job must share one base model; "
                       f"these are on {bases}", "models")
    return bases[0], list(names)



def read_report(store: ArtifactStore, job: Job) -> dict | None:
    """The job's report file (None until it is written, or once deleted)."""
    file_id = (job.result or {}).get("report_file_id")
    path = store.path(f"files/{job.owner_id}/{file_id}") if file_id else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


@router.post("", response_model=EvalJobRead)
def create_eval_job(body: EvalJobCreate, session: SessionDep, user: CurrentUser, settings: SettingsDep,
                    request: Request):
    f = require_file(session, user, body.eval_file, "eval_file", ("evals",))
    base, models = plan_models(session, user, body)
    params = {**body.model_dump(mode="json", exclude={"metadata", "models", "priority"}), "eval_file": f.id,
              "models": models, "base_model": base}
    if body.judge is not None:
        params.update(teacher_params(session, user, settings, body.judge, "judge"))
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.eval, params=params, model=base,
                              user_metadata=body.metadata, priority=body.priority)
    session.commit()
    notify_submitted(request)
    return eval_view(job, session)


@router.get("/{job_id}", response_model=EvalJobReportRead, response_model_exclude_unset=True)
def retrieve_eval_job(session: SessionDep, store: StoreDep, job: OwnedEvalJob,
                      include_report: bool = Query(True, description="add the full report once it is written")):
    """Every field is set but ``report``, which is sent only when there is one to send."""
    return eval_report_view(job, session, read_report(store, job) if include_report else None)
