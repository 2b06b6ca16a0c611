"""Preflight jobs: what training on a file would see, computed on a worker before any GPU time is spent.
Create here; list / retrieve / cancel / events from ``job_lifecycle``."""
from __future__ import annotations

from fastapi import Request, Response

from api.deps import authenticate
from api.job_inputs import refuse_host_paths, require_base_model, require_file
from api.job_kinds import PREFLIGHT
from api.job_views import job_view
from api.lora_targets import require_lora_targets
from api.queue import notify_submitted
from api.routes.job_lifecycle import kind_router
from api.schemas.jobs import JobRead, PreflightJobCreate, params_of
from models.crud import jobs as job_crud
from models.job import JobKind

router = kind_router(PREFLIGHT)


@router.post("", response_model=JobRead, status_code=200)
async def create_preflight_job(body: PreflightJobCreate, request: Request) -> Response:
    """Submitted at polling rates by tools that preflight every file: run on the event loop like the
    status read (see ``job_lifecycle._add_retrieve``), nothing awaited while the session is open."""
    with request.app.state.session_factory() as session:
        view = _create(body, session, authenticate(request, session), request)
    return Response(view.model_dump_json(), media_type="application/json")


def _create(body: PreflightJobCreate, session, user, request: Request) -> JobRead:
    require_base_model(session, body.model)
    require_file(session, user, body.training_file, "training_file", ("fine-tune",))
    require_lora_targets(session, body.model, body.hyperparameters.lora_target_modules, "hyperparameters")
    refuse_host_paths(body.hyperparameters, "hyperparameters")
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.preflight, model=body.model,
                              params=params_of(body), user_metadata=body.metadata, priority=body.priority)
    session.commit()
    notify_submitted(request)
    return job_view(job, session)
