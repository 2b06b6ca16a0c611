"""``/v1/generation/jobs``: self-instruct data generation jobs (same lifecycle and events as every job).

The teacher's API key is encrypted with the server key into the job's params at submit; the params
otherwise hold the engine config dumped without it. Seed files are validated here, so a bad line is
refused at the edge with its line number instead of failing a worker later.
"""
from __future__ import annotations

from fastapi import APIRouter, Query, Request

from api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from api.errors import APIError
from api.job_inputs import require_file, teacher_params
from api.queue import notify_submitted
from api.routes.jobs import cancel_job, owned_job_of_kind, page_events, page_jobs, pause, resume
from api.schemas.generation import GenerationJobCreate, GenerationJobResume
from api.views import job_view
from contracts.configs import TeacherConfig
from contracts.seed_tasks import SeedFileError, parse_seed_file
from models.crud import jobs as job_crud
from models.job import Job, JobKind, JobStatus

router = APIRouter(prefix="/generation/jobs", tags=["generation"])


def teacher_queue(teacher: TeacherConfig) -> str:
    """A remote teacher (any OpenAI-compatible URL, lorafleet's own endpoint included) only keeps the job
    waiting on HTTP: it runs on the ``io`` pool and holds no GPU. A local teacher runs in the worker: ``gpu``."""
    return "gpu" if teacher.local else "io"


def generation_view(job: Job, session) -> dict:
    base = job_view(job, session).model_dump()
    cfg, r = job.params.get("config", {}), job.result or {}
    base.update({
        "object": "generation.job",
        "method": cfg.get("method"),
        "num_instructions": cfg.get("num_instructions"),
        "teacher": cfg.get("teacher"),
        "has_teacher_api_key": bool(job.params.get("teacher_api_key_encrypted")),
        "seed_file": job.params.get("seed_file"),
        "config": cfg,
        "dataset_id": r.get("dataset_id"),
        "training_file": r.get("training_file"),
        "n_kept": r.get("n_kept", (job.progress or {}).get("n_kept")),
        "cost_usd": r.get("cost_usd", (job.progress or {}).get("cost_usd")),
    })
    return base


def _get(session, user, job_id: str) -> Job:
    return owned_job_of_kind(session, user, job_id, JobKind.generation.value, "generation job", "generation_job_id")


def check_seed_file(session, user, store, settings, file_id: str) -> int:
    """The file is the user's, has purpose ``seed_tasks`` and parses; returns its number of tasks."""
    f = require_file(session, user, file_id, "seed_file", ("seed_tasks",))
    try:
        return len(parse_seed_file(store.path(f.storage_path).read_bytes(), settings.max_line_bytes))
    except SeedFileError as exc:
        lines = [e.as_dict() for e in exc.errors]
        code = exc.errors[0].code if len(exc.errors) == 1 else "invalid_file"
        raise APIError(400, code, f"Invalid seed_tasks file {file_id}: {exc}", "seed_file", lines=lines) from None


@router.post("")
def create_generation_job(body: GenerationJobCreate, session: SessionDep, user: CurrentUser,
                          settings: SettingsDep, store: StoreDep, request: Request):
    cfg = body.to_config()
    params: dict = {"config": cfg.model_dump(mode="json"), "seed_file": body.seed_file}
    if body.seed_file is not None:
        params["n_seed_tasks"] = check_seed_file(session, user, store, settings, body.seed_file)
    params.update(teacher_params(session, user, settings, cfg.teacher, "teacher"))
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.generation, model=cfg.teacher.model,
                              params=params, status=JobStatus.queued, queue=teacher_queue(cfg.teacher),
                              user_metadata=body.metadata)
    session.commit()
    notify_submitted(request)
    return generation_view(job, session)


@router.get("")
def list_generation_jobs(session: SessionDep, user: CurrentUser, after: str | None = None,
                         limit: int = Query(20, ge=1, le=100)):
    data, has_more = page_jobs(session, user, JobKind.generation.value, after, limit,
                               lambda j: generation_view(j, None))
    return {"object": "list", "data": data, "has_more": has_more}


@router.get("/{job_id}")
def retrieve_generation_job(job_id: str, session: SessionDep, user: CurrentUser):
    return generation_view(_get(session, user, job_id), session)


@router.post("/{job_id}/cancel")
def cancel_generation_job(job_id: str, session: SessionDep, user: CurrentUser):
    return generation_view(cancel_job(session, _get(session, user, job_id)), session)


@router.post("/{job_id}/pause")
def pause_generation_job(job_id: str, session: SessionDep, user: CurrentUser):
    job = _get(session, user, job_id)
    pause(job, session)
    return generation_view(job, session)


@router.post("/{job_id}/resume")
def resume_generation_job(job_id: str, session: SessionDep, user: CurrentUser, request: Request,
                          body: GenerationJobResume | None = None):
    """Resume a paused job (after a budget pause, give a higher ``budget_usd``); it continues from its ledger."""
    job = _get(session, user, job_id)
    if job.status != JobStatus.paused.value:
        raise APIError(409, "invalid_state", f"only paused jobs resume; this one is {job.status}", "job_id")
    if body is not None and "budget_usd" in body.model_fields_set:
        job.params = {**job.params, "config": {**job.params["config"], "budget_usd": body.budget_usd}}
        job_crud.add_event(session=session, job_id=job.id, message=f"Budget cap set to {body.budget_usd!r} USD")
    resume(job, session, request)
    return generation_view(job, session)


@router.get("/{job_id}/events")
def list_generation_events(job_id: str, session: SessionDep, user: CurrentUser, after: str | None = None,
                           limit: int = Query(20, ge=1, le=1000),
                           order: str = Query("desc", pattern="^(asc|desc)$")):
    return page_events(session, _get(session, user, job_id), after, limit, order)
