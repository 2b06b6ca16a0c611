"""Model names as users write them -> what the engine needs (worker side; ownership enforced).

``smollm2-135m-instruct`` (a base model), ``ft:<base>:<suffix>:<job>`` (an adapter) or
``ft:...:ckpt-step-N`` (a checkpoint of a fine-tuning job). ``owner_id=None`` skips the ownership
check (the internal inference server: the API has checked ownership before proxying).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.base_models import BUILTIN_MODELS
from contracts.decoding import ModelTarget
from models.registry import Adapter, BaseModelEntry, Checkpoint


def is_base_model(session: Session, name: str) -> bool:
    return name in BUILTIN_MODELS or session.execute(
        select(BaseModelEntry.id).where(BaseModelEntry.name == name)).first() is not None


def resolve_target(session: Session, name: str, owner_id: str | None) -> tuple[str, ModelTarget]:
    """(base model name, ModelTarget); raises LookupError for unknown or foreign models."""
    if is_base_model(session, name):
        return name, ModelTarget(name, None)
    adapter_name, sep, _ = name.partition(":ckpt-step-")
    adapter = session.execute(select(Adapter).where(Adapter.name == adapter_name)).scalar_one_or_none()
    if sep:
        ckpt = session.execute(select(Checkpoint).where(Checkpoint.model_name == name)).scalar_one_or_none()
        if ckpt is None or (owner_id is not None and ckpt.owner_id != owner_id):
            raise LookupError(name)
        base, template = _job_base_model_and_template(session, ckpt.job_id)
        return base, ModelTarget(name, Path(ckpt.path), template)
    if adapter is None or (owner_id is not None and adapter.owner_id != owner_id):
        raise LookupError(name)
    return adapter.base_model, ModelTarget(name, Path(adapter.path), (adapter.config or {}).get("prompt_template"))


def _job_base_model_and_template(session: Session, job_id: str) -> tuple[str, str | None]:
    """A checkpoint is prompted the way its fine-tuning job trained it."""
    from models.job import Job

    job = session.get(Job, job_id)
    if job is None or not job.model:
        raise LookupError(job_id)
    return job.model, (job.params.get("hyperparameters") or {}).get("prompt_template")
