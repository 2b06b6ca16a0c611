"""What a job needs from a worker: memory per device, device count, and the base model it loads.

The dispatcher calls ``job_resources`` once per job and caches the answer in ``Job.resources``; it
places the job on a worker with that much free memory, preferring one that already has the base
model. The estimate is ``contracts.memory_estimate.estimate_job_memory``, the preflight's too.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.base_models import BUILTIN_MODELS
from contracts.memory_estimate import ModelShape, estimate_job_memory
from contracts.model_refs import ModelNotFound
from models.crud.model_refs import is_base_model, resolve_model
from models.job import Job
from models.registry import BaseModelEntry


def job_resources(session: Session, job: Job) -> dict:
    """``{"memory_bytes", "devices", "base_model"}`` for ``job`` (``base_model`` None when it loads no
    model of ours, or its model no longer resolves: then the estimate is the kind's fallback)."""
    params = job.params or {}
    base = job_base_model(session, job)
    shape = base_model_shape(session, base) if base is not None else None
    try:
        estimate = estimate_job_memory(job.kind, params, shape)
    except (ValueError, TypeError):  # params an older release stored and this one no longer reads: never stop the loop
        estimate = estimate_job_memory(job.kind, params, None)
    return {"memory_bytes": estimate.bytes, "devices": estimate.devices, "base_model": base}


def job_base_model(session: Session, job: Job) -> str | None:
    """The base model a job loads on its worker.

    fine_tuning / preflight / export: ``job.model`` is the base model. batch / eval: ``params["base_model"]``
    (the one base all their models share; ``job.model`` may be an adapter, and ``params["models"]``
    lists them all). generation: the teacher (``job.model``) if it runs locally, else none.
    """
    params = job.params or {}
    if job.kind == "generation" and not ((params.get("config") or {}).get("teacher") or {}).get("local"):
        return None
    if params.get("base_model"):
        return str(params["base_model"])
    for name in candidate_models(job):
        base = base_of(session, name, job.owner_id)
        if base is not None:
            return base
    return None


def candidate_models(job: Job) -> list[str]:
    """Model names a job names: ``job.model`` (comma-separated allowed), then ``params["models"]``."""
    names = [n.strip() for n in (job.model or "").split(",") if n.strip()]
    listed = (job.params or {}).get("models") or []
    return names + [n for n in listed if isinstance(n, str) and n not in names]


def base_of(session: Session, name: str, owner_id: str | None) -> str | None:
    """A base model's own name; an adapter's or checkpoint's base model; None when it does not resolve."""
    if is_base_model(session=session, name=name):
        return name
    try:
        return resolve_model(session=session, name=name, owner_id=owner_id).base_model
    except ModelNotFound:
        return None


def base_model_shape(session: Session, name: str) -> ModelShape | None:
    """The registered model's stored shape (a registered name overrides a built-in one), else the
    built-in's; None when neither is known (registered before shapes were stored, or unreadable)."""
    row = session.execute(select(BaseModelEntry).where(BaseModelEntry.name == name)).scalar_one_or_none()
    if row is not None and (row.shape or not row.source.startswith("builtin:")):
        return shape_from_json(row.shape)
    builtin = BUILTIN_MODELS.get(row.source.removeprefix("builtin:") if row is not None else name)
    return builtin.shape if builtin is not None else None


def shape_from_json(data: dict | None) -> ModelShape | None:
    if not data:
        return None
    try:
        return ModelShape.model_validate(data)
    except ValueError:
        return None
