"""The inference server as lorafleet runs it: one base model, adapters resolved from the database.

``lorafleet serve --base-model NAME --port P`` builds this app. It listens on an internal address;
the API authenticates users, checks they own the model they name, and proxies to it. Requests from
all users arrive here and share the dynamic batcher (one engine, rows of different adapters in
one batch).
"""
from __future__ import annotations

from fastapi import FastAPI

from contracts.decoding import ModelTarget
from models.crud import model_refs
from models.db import make_engine, make_sessionmaker, session_scope
from models.settings import Settings
from worker.resources import resolve_base_model_dir


def create_service_app(settings: Settings, base_model: str) -> FastAPI:
    from worker.ml.decoding.engine import InferenceEngine
    from worker.serving.app import create_serving_app

    factory = make_sessionmaker(make_engine(settings.sqlalchemy_url))
    with session_scope(factory) as s:
        model_dir = resolve_base_model_dir(s, settings, base_model)

    def resolve_model(name: str) -> ModelTarget:
        with session_scope(factory) as s:
            ref = model_refs.resolve_model(session=s, name=name, owner_id=None,
                                           artifacts_dir=settings.artifacts_dir)
        if ref.base_model != base_model:
            raise LookupError(f"{name} runs on {ref.base_model}; this server serves {base_model}")
        return ref.target

    def engine():
        return InferenceEngine(model_dir, device=settings.device, dtype=settings.inference_dtype,
                               batch_invariant=settings.batch_invariant)

    return create_serving_app(engine, resolve_model)
