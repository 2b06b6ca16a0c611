"""Model names -> ``contracts.model_refs.ModelRef``, from the database: the one resolver of API and worker.

``owner_id`` restricts adapters and checkpoints to one user's (the API, and jobs running for a
user); ``owner_id=None`` skips the check (the internal inference server: the API checked ownership
before proxying).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.base_models import BUILTIN_MODELS
from contracts.model_refs import ModelNotFound, ModelRef, parse_model_name
from models.job import Job
from models.registry import Adapter, BaseModelEntry, Checkpoint
from models.storage import ArtifactStore


@dataclass(frozen=True)
class BaseModelListing:
    """A base model as listed by ``GET /v1/models`` (built-in ones have no creation time)."""

    name: str
    description: str
    created_at: datetime | None = None


def list_base_models(*, session: Session) -> list[BaseModelListing]:
    """The built-in base models, then the registered ones (a registered name overrides a built-in one)."""
    out = {name: BaseModelListing(name, spec.description) for name, spec in BUILTIN_MODELS.items()}
    for row in session.execute(select(BaseModelEntry)).scalars():
        out[row.name] = BaseModelListing(row.name, row.description or row.source, row.created_at)
    return list(out.values())


def is_base_model(*, session: Session, name: str) -> bool:
    return name in BUILTIN_MODELS or session.execute(
        select(BaseModelEntry.id).where(BaseModelEntry.name == name)).first() is not None


def resolve_model(*, session: Session, name: str, owner_id: str | None,
                  artifacts_dir: Path | None = None) -> ModelRef:
    """The base model, adapter or checkpoint ``name`` names; raises ``ModelNotFound`` (a LookupError).

    Rows store adapter folders relative to the artifact root; with ``artifacts_dir`` (this host's mount
    of the store: whoever loads the adapter) ``adapter_path`` comes back as a path on this host."""
    ref = _resolve(session, name, owner_id)
    if ref.adapter_path is None or artifacts_dir is None:
        return ref
    return ref.model_copy(update={"adapter_path": str(ArtifactStore(artifacts_dir).resolve(ref.adapter_path))})


def _resolve(session: Session, name: str, owner_id: str | None) -> ModelRef:
    if is_base_model(session=session, name=name):
        return ModelRef(name=name, kind="base", base_model=name)
    if parse_model_name(name).is_checkpoint:
        return _checkpoint(session, name, owner_id)
    adapter = _owned(session, select(Adapter).where(Adapter.name == name), owner_id)
    if adapter is None:
        raise ModelNotFound(name)
    return ModelRef(name=name, kind="adapter", base_model=adapter.base_model, adapter_path=adapter.path,
                    prompt_template=(adapter.config or {}).get("prompt_template"))


def _checkpoint(session: Session, name: str, owner_id: str | None) -> ModelRef:
    """A checkpoint runs on its fine-tuning job's base model, prompted the way that job trained it (it
    needs no final adapter: a cancelled job's checkpoints stay usable)."""
    ckpt = _owned(session, select(Checkpoint).where(Checkpoint.model_name == name), owner_id)
    job = session.get(Job, ckpt.job_id) if ckpt is not None else None
    if job is None or not job.model:
        raise ModelNotFound(name, "checkpoint")
    template = ((job.params or {}).get("hyperparameters") or {}).get("prompt_template")
    return ModelRef(name=name, kind="checkpoint", base_model=job.model, adapter_path=ckpt.path,
                    prompt_template=template)


def _owned(session: Session, query, owner_id: str | None):
    row = session.execute(query).scalar_one_or_none()
    return None if row is None or (owner_id is not None and row.owner_id != owner_id) else row


@dataclass(frozen=True)
class TrainingStart:
    """Where a continued fine-tuning run starts: the adapter or checkpoint (``ref``) and the hyperparameters
    of the run that trained it (its LoRA shape and prompt template carry over)."""

    ref: ModelRef
    hyperparameters: dict


def resolve_training_start(*, session: Session, name: str, owner_id: str | None,
                           artifacts_dir: Path | None = None) -> TrainingStart:
    """A fine-tuning job's ``model`` when it is one of the owner's adapters (by name or ``adapter-...`` id)
    or ``<adapter>:ckpt-step-N``; raises ``ModelNotFound`` (unknown or someone else's). A base model
    resolves too (kind "base", no hyperparameters): the caller starts fresh from it."""
    if name.startswith("adapter-"):
        by_id = _owned(session, select(Adapter).where(Adapter.id == name), owner_id)
        name = by_id.name if by_id is not None else name
    ref = resolve_model(session=session, name=name, owner_id=owner_id, artifacts_dir=artifacts_dir)
    if ref.kind == "adapter":
        adapter = session.execute(select(Adapter).where(Adapter.name == name)).scalar_one()
        return TrainingStart(ref, dict(adapter.config or {}))
    if ref.kind == "checkpoint":
        ckpt = session.execute(select(Checkpoint).where(Checkpoint.model_name == name)).scalar_one()
        job = session.get(Job, ckpt.job_id)
        return TrainingStart(ref, dict((job.params or {}).get("hyperparameters") or {}))
    return TrainingStart(ref, {})
