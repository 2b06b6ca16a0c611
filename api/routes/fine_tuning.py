"""``/v1/fine_tuning/jobs`` in OpenAI's shape (the official SDK drives it)."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep
from api.errors import APIError
from api.job_inputs import require_base_model, require_file
from api.queue import notify_submitted
from api.routes.jobs import cancel_job, owned_job_of_kind, page_events, page_jobs
from api.schemas.common import ListRead, to_unix
from api.schemas.fine_tuning import CheckpointRead, FineTuningJobCreate
from api.views import job_view
from models.crud import jobs as job_crud
from models.file import Dataset
from models.job import Job, JobKind, JobStatus
from models.registry import Checkpoint

router = APIRouter(prefix="/fine_tuning/jobs", tags=["fine-tuning"])


def _openai_hparams(hp: dict) -> dict:
    epochs = hp.get("num_epochs", 3)
    return {"n_epochs": int(epochs) if float(epochs).is_integer() else epochs, "batch_size": hp.get("batch_size"),
            "learning_rate_multiplier": round(hp.get("learning_rate", 3e-4) / 3e-4, 6), **hp}


def fine_tuning_view(job: Job, session) -> dict:
    base = job_view(job, session).model_dump()
    p, r = job.params, job.result or {}
    base.update({
        "object": "fine_tuning.job",
        "fine_tuned_model": r.get("fine_tuned_model"),
        "organization_id": job.owner_id,
        "hyperparameters": _openai_hparams(p.get("hyperparameters", {})),
        "training_file": p.get("training_file"),
        "validation_file": p.get("validation_file"),
        "result_files": r.get("result_files", []),
        "seed": p.get("hyperparameters", {}).get("seed"),
        "trained_tokens": (job.progress or {}).get("tokens") if job.status != JobStatus.succeeded.value
        else r.get("trained_tokens"),
        "integrations": [],
        "method": {"type": "supervised", "supervised": {"hyperparameters": _openai_hparams(
            p.get("hyperparameters", {}))}},
        "suffix": p.get("suffix"),
    })
    return base


def _get(session, user, job_id: str) -> Job:
    return owned_job_of_kind(session, user, job_id, JobKind.fine_tuning.value, "fine-tuning job", "fine_tuning_job_id")


def resolve_training_source(session, user, ref: str, param: str) -> str:
    """A file id, or a dataset id whose training file is used."""
    if ref.startswith("ds-"):
        ds = session.get(Dataset, ref)
        if ds is None or ds.owner_id != user.id or ds.file_id is None:
            raise APIError(404, "file_not_found", f"No dataset found with id '{ref}'", param)
        return ds.file_id
    require_file(session, user, ref, param, ("fine-tune",))
    return ref


@router.post("")
def create_fine_tuning_job(body: FineTuningJobCreate, session: SessionDep, user: CurrentUser, request: Request):
    require_base_model(session, body.model)
    training_file = resolve_training_source(session, user, body.training_file, "training_file")
    validation_file = (resolve_training_source(session, user, body.validation_file, "validation_file")
                       if body.validation_file else None)
    hp = body.resolved_hyperparameters()
    params = {"training_file": training_file, "validation_file": validation_file, "suffix": body.suffix,
              "hyperparameters": hp.model_dump(mode="json")}
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.fine_tuning, model=body.model,
                              params=params, status=JobStatus.validating_files, queue="io",
                              user_metadata=body.metadata)
    session.commit()
    notify_submitted(request)
    return fine_tuning_view(job, session)


@router.get("")
def list_fine_tuning_jobs(session: SessionDep, user: CurrentUser, after: str | None = None,
                          limit: int = Query(20, ge=1, le=100)):
    data, has_more = page_jobs(session, user, JobKind.fine_tuning.value, after, limit,
                               lambda j: fine_tuning_view(j, None))
    return {"object": "list", "data": data, "has_more": has_more}


@router.get("/{job_id}")
def retrieve_fine_tuning_job(job_id: str, session: SessionDep, user: CurrentUser):
    return fine_tuning_view(_get(session, user, job_id), session)


@router.post("/{job_id}/cancel")
def cancel_fine_tuning_job(job_id: str, session: SessionDep, user: CurrentUser):
    return fine_tuning_view(cancel_job(session, _get(session, user, job_id)), session)


@router.post("/{job_id}/pause")
def pause_fine_tuning_job(job_id: str, session: SessionDep, user: CurrentUser, request: Request):
    from api.routes.jobs import pause

    return pause(_get(session, user, job_id), session)


@router.post("/{job_id}/resume")
def resume_fine_tuning_job(job_id: str, session: SessionDep, user: CurrentUser, request: Request):
    from api.routes.jobs import resume

    return resume(_get(session, user, job_id), session, request)


@router.get("/{job_id}/events")
def list_fine_tuning_events(job_id: str, session: SessionDep, user: CurrentUser, after: str | None = None,
                            limit: int = Query(20, ge=1, le=1000)):
    return page_events(session, _get(session, user, job_id), after, limit, "desc")


@router.get("/{job_id}/checkpoints", response_model=ListRead[CheckpointRead])
def list_checkpoints(job_id: str, session: SessionDep, user: CurrentUser, after: str | None = None,
                     limit: int = Query(10, ge=1, le=100)):
    job = _get(session, user, job_id)
    q = select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(Checkpoint.step_number.desc())
    rows = list(session.execute(q).scalars())
    if after:
        ids = [c.id for c in rows]
        rows = rows[ids.index(after) + 1:] if after in ids else rows
    data = [CheckpointRead(id=c.id, created_at=to_unix(c.created_at), fine_tuned_model_checkpoint=c.model_name,
                           fine_tuning_job_id=job.id, step_number=c.step_number, metrics=c.metrics)
            for c in rows[:limit]]
    return ListRead(data=data, has_more=len(rows) > limit, first_id=data[0].id if data else None,
                    last_id=data[-1].id if data else None)
