"""``GET /v1/models``: base models (built in + registered) and the caller's adapters, OpenAI-shaped."""
from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep
from api.errors import not_found
from api.schemas.common import ListRead, to_unix
from models.crud.model_refs import list_base_models
from models.registry import Adapter

router = APIRouter(prefix="/models", tags=["models"])


class ModelRead(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    kind: str = "base"
    root: str | None = None
    description: str | None = None


def known_base_models(session) -> dict[str, ModelRead]:
    return {m.name: ModelRead(id=m.name, created=to_unix(m.created_at) if m.created_at else 0,
                              owned_by="lorafleet", description=m.description)
            for m in list_base_models(session=session)}


def list_models_for(session, user) -> list[ModelRead]:
    models = list(known_base_models(session).values())
    for a in session.execute(select(Adapter).where(Adapter.owner_id == user.id).order_by(Adapter.created_at)).scalars():
        models.append(ModelRead(id=a.name, created=to_unix(a.created_at), owned_by=user.name, kind="adapter",
                                root=a.base_model))
    return models


@router.get("", response_model=ListRead[ModelRead])
def list_models(session: SessionDep, user: CurrentUser) -> ListRead[ModelRead]:
    return ListRead(data=list_models_for(session, user))


@router.get("/{model_id:path}", response_model=ModelRead)
def retrieve_model(model_id: str, session: SessionDep, user: CurrentUser) -> ModelRead:
    for m in list_models_for(session, user):
        if m.id == model_id:
            return m
    raise not_found("model", model_id, "model")
