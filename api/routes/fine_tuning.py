"""``/v1/fine_tuning/jobs`` in OpenAI's shape (the official SDK drives it): create and checkpoints here;
list / retrieve / cancel / pause / resume / events from ``job_lifecycle``."""
from __future__ import annotations

from fastapi import Query, Request
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep
from api.errors import APIError
from api.job_inputs import continue_hyperparameters, require_file, require_method_file, require_training_start
from api.job_kinds import FINE_TUNING
from api.job_views import fine_tuning_view
from api.lora_targets import require_lora_targets
from api.queue import notify_submitted
from api.routes.job_lifecycle import kind_router, list_page, owned_job_param
from api.schemas.common import ListRead, to_unix
from api.schemas.fine_tuning import CheckpointRead, FineTuningJobCreate, FineTuningJobRead
from contracts.configs import SUPPORTED_METHODS
from models.crud import jobs as job_crud
from models.file import Dataset
from models.job import JobKind
from models.registry import Checkpoint

router = kind_router(FINE_TUNING)
OwnedFineTuningJob = owned_job_param(FINE_TUNING)


def resolve_training_source(session, user, ref: str, param: str) -> str:
    """A file id, or a dataset id whose training file is used."""
    if ref.startswith("ds-"):
        ds = session.get(Dataset, ref)
        if ds is None or ds.owner_id != user.id or ds.file_id is None:
            raise APIError(404, "file_not_found", f"No dataset found with id '{ref}'", param)
        return ds.file_id
    require_file(session, user, ref, param, ("fine-tune",))
    return ref


def hyperparameters_param(body: FineTuningJobCreate) -> str:
    """Where the request wrote its hyperparameters, as a 422's ``param`` names it."""
    if body.method is not None:
        return f"method.{body.method.type}.hyperparameters"
    return "hyperparameters"


@router.post("", response_model=FineTuningJobRead)
def create_fine_tuning_job(body: FineTuningJobCreate, session: SessionDep, user: CurrentUser, request: Request,
                           store: StoreDep, settings: SettingsDep):
    """``model`` is a base model, or one of the caller's adapters / checkpoints to continue training from
    (the job then runs on that adapter's base model, starting from its weights)."""
    if body.method_type not in SUPPORTED_METHODS:
        raise APIError(400, "unsupported_method", f"method.type '{body.method_type}' is not supported; lorafleet "
                       f"trains {' and '.join(repr(m) for m in SUPPORTED_METHODS)}", "method.type")
    start = require_training_start(session, user, body.model)
    base_model = start.ref.base_model
    training_file = resolve_training_source(session, user, body.training_file, "training_file")
    require_method_file(session, user, store, settings, training_file, body.method_type, "training_file")
    validation_file = (resolve_training_source(session, user, body.validation_file, "validation_file")
                       if body.validation_file else None)
    if validation_file:
        require_method_file(session, user, store, settings, validation_file, body.method_type, "validation_file")
    hp = continue_hyperparameters(body.resolved_hyperparameters(), start, hyperparameters_param(body))
    require_lora_targets(session, base_model, hp.lora_target_modules, hyperparameters_param(body))
    params = {"training_file": training_file, "validation_file": validation_file, "suffix": body.suffix,
              "hyperparameters": hp.model_dump(mode="json"), "method": body.method_type}
    if start.ref.kind != "base":
        params["start_from"] = start.ref.name
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.fine_tuning, model=base_model,
                              params=params, user_metadata=body.metadata, priority=body.priority)
    session.commit()
    notify_submitted(request)
    return fine_tuning_view(job, session)


@router.get("/{job_id}/checkpoints", response_model=ListRead[CheckpointRead])
def list_checkpoints(session: SessionDep, job: OwnedFineTuningJob,
                     after: str | None = Query(None, description="a checkpoint id from a previous page"),
                     limit: int = Query(10, ge=1, le=100)):
    """The job's checkpoints, latest step first; each is a model name usable anywhere a model is."""
    q = select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(Checkpoint.step_number.desc())
    rows = list(session.execute(q).scalars())
    if after:
        ids = [c.id for c in rows]
        rows = rows[ids.index(after) + 1:] if after in ids else rows
    data = [CheckpointRead(id=c.id, created_at=to_unix(c.created_at), fine_tuned_model_checkpoint=c.model_name,
                           fine_tuning_job_id=job.id, step_number=c.step_number, metrics=c.metrics)
            for c in rows[:limit]]
    return list_page(data, len(rows) > limit)
