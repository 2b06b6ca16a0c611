"""``/v1/generation/jobs``: self-instruct data generation jobs (same lifecycle and events as every job).

The teacher's API key is encrypted with the server key into the job's params at submit; the params
otherwise hold the engine config dumped without it. Seed files are validated here, so a bad line is
refused at the edge with its line number instead of failing a worker later. Create and resume (which
may raise the budget) here; list / retrieve / cancel / pause / events from ``job_lifecycle``.
"""
from __future__ import annotations

from fastapi import Request

from api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from api.errors import APIError
from api.job_inputs import require_file, teacher_params
from api.job_kinds import GENERATION
from api.job_views import generation_view
from api.queue import notify_submitted
from api.routes.job_lifecycle import kind_router, owned_job_param, require_paused, resume_job
from api.schemas.generation import GenerationJobCreate, GenerationJobRead, GenerationJobResume
from contracts.configs import TeacherConfig
from contracts.seed_tasks import SeedFileError, parse_seed_file
from models.crud import jobs as job_crud
from models.job import JobKind

router = kind_router(GENERATION)
OwnedGenerationJob = owned_job_param(GENERATION)


def teacher_queue(teacher: TeacherConfig) -> str:
    """A remote teacher (any OpenAI-compatible URL, lorafleet's own endpoint included) only keeps the job
    waiting on HTTP: it runs on the ``io`` pool and holds no GPU. A local teacher runs in the worker: ``gpu``."""
    return "gpu" if teacher.local else "io"


def check_seed_file(session, user, store, settings, file_id: str) -> int:
    """The file is the user's, has purpose ``seed_tasks`` and parses; returns its number of tasks."""
    f = require_file(session, user, file_id, "seed_file", ("seed_tasks",))
    try:
        return len(parse_seed_file(store.path(f.storage_path).read_bytes(), settings.max_line_bytes))
    except SeedFileError as exc:
        lines = [e.as_dict() for e in exc.errors]
        code = exc.errors[0].code if len(exc.errors) == 1 else "invalid_file"
        raise APIError(400, code, f"Invalid seed_tasks file {file_id}: {exc}", "seed_file", lines=lines) from None


@router.post("", response_model=GenerationJobRead)
def create_generation_job(body: GenerationJobCreate, session: SessionDep, user: CurrentUser,
                          settings: SettingsDep, store: StoreDep, request: Request):
    cfg = body.to_config()
    params: dict = {"config": cfg.model_dump(mode="json"), "seed_file": body.seed_file}
    if body.seed_file is not None:
        params["n_seed_tasks"] = check_seed_file(session, user, store, settings, body.seed_file)
    params.update(teacher_params(session, user, settings, cfg.teacher, "teacher"))
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.generation, model=cfg.teacher.model,
                              params=params, queue=teacher_queue(cfg.teacher),
                              user_metadata=body.metadata, priority=body.priority)
    session.commit()
    notify_submitted(request)
    return generation_view(job, session)


@router.post("/{job_id}/resume", response_model=GenerationJobRead)
def resume_generation_job(session: SessionDep, request: Request,
                          job: OwnedGenerationJob,
                          body: GenerationJobResume | None = None):
    """Resume a paused job (after a budget pause, give a higher ``budget_usd``); it continues from its ledger."""
    require_paused(job, GENERATION.id_param)
    if body is not None and "budget_usd" in body.model_fields_set:
        job.params = {**job.params, "config": {**job.params["config"], "budget_usd": body.budget_usd}}
        job_crud.add_event(session=session, job_id=job.id, message=f"Budget cap set to {body.budget_usd!r} USD")
    return generation_view(resume_job(session, job, request, GENERATION.id_param), session)
