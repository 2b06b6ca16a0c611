"""Checks shared by the job-creation routes: the model exists, the files exist, are owned and fit;
a teacher config's secret is encrypted before it reaches the job's params."""
from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import APIError
from contracts.configs import TeacherConfig
from contracts.model_refs import ModelNotFound
from models.crud.files import get_owned_file
from models.crud.model_refs import is_base_model, resolve_model
from models.file import File
from models.secrets import encrypt_secret
from models.settings import Settings
from models.user import User


def require_base_model(session: Session, name: str, param: str = "model") -> str:
    if not is_base_model(session=session, name=name):
        raise APIError(404, "model_not_found", f"The base model '{name}' does not exist", param)
    return name


def require_file(session: Session, user: User, file_id: str | None, param: str,
                 purposes: tuple[str, ...]) -> File | None:
    if file_id is None:
        return None
    f = get_owned_file(session=session, file_id=file_id, owner_id=user.id)
    if f is None:
        raise APIError(404, "file_not_found", f"No file found with id '{file_id}'", param)
    if f.purpose not in purposes:
        raise APIError(400, "invalid_file_purpose", f"file {file_id} has purpose '{f.purpose}'; "
                       f"expected one of {list(purposes)}", param)
    return f


def resolve_model_ref(session: Session, user: User, name: str, param: str = "model") -> dict:
    """A model name as users write it -> ``contracts.model_refs.ModelRef`` fields as a dict (name, kind,
    base_model, adapter_path, prompt_template); the caller's own adapters only, else 404 naming ``param``."""
    try:
        return resolve_model(session=session, name=name, owner_id=user.id).model_dump()
    except ModelNotFound as exc:
        raise APIError(404, "model_not_found", exc.message, param) from None


def teacher_params(session: Session, user: User, settings: Settings, teacher: TeacherConfig, param: str) -> dict:
    """Job params for a teacher config (a generation job's ``teacher``, an eval job's ``judge``): its API key
    encrypted as ``{param}_api_key_encrypted`` (the dumped config never holds it). A local teacher must be
    a model the caller can use: 404 naming ``{param}.model`` otherwise."""
    if teacher.local:
        resolve_model_ref(session, user, teacher.model, f"{param}.model")
    if teacher.api_key is not None and teacher.api_key.get_secret_value():
        return {f"{param}_api_key_encrypted": encrypt_secret(settings, teacher.api_key.get_secret_value())}
    return {}
