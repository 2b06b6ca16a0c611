"""Per-process resources of a worker: the session factory and the Redis client, created on first use."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from models.db import make_engine, make_sessionmaker
from models.registry import BaseModelEntry
from models.settings import Settings, get_settings
from models.storage import ArtifactStore


@lru_cache
def session_factory() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(get_settings().sqlalchemy_url))


@lru_cache
def redis_client():
    settings = get_settings()
    if not settings.redis_url:
        return None
    import redis

    return redis.Redis.from_url(settings.redis_url)


def artifact_store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_dir)


def resolve_base_model_dir(session: Session, settings: Settings, name: str) -> Path:
    """A base model name -> an HF checkpoint dir (materialising built-ins/GGUF once)."""
    from contracts.base_models import BUILTIN_MODELS
    from worker.ml.base_models import resolve_model_path

    entry = session.query(BaseModelEntry).filter_by(name=name).one_or_none()
    if entry is not None and not entry.source.startswith("builtin:"):
        return resolve_model_path(entry.source, settings.models_dir)
    if name in BUILTIN_MODELS:
        return resolve_model_path(name, settings.models_dir)
    raise FileNotFoundError(f"unknown base model {name!r}")


def apply_torch_threads(settings: Settings) -> None:
    """``LORAFLEET_TORCH_THREADS`` for this process (0: leave torch's default); imports torch only if set."""
    if settings.torch_threads > 0:
        import torch

        torch.set_num_threads(settings.torch_threads)
