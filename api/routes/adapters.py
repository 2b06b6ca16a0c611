"""Trained LoRA adapters: list, retrieve, download (tar of the PEFT folder), delete, export (merged HF / GGUF)."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, StoreDep
from api.errors import APIError, not_found, validation_error
from api.job_views import job_view
from api.queue import notify_submitted
from api.schemas.adapters import AdapterRead
from api.schemas.common import DeletedRead, ListRead, to_unix
from api.schemas.exports import ExportCreate
from api.schemas.jobs import JobRead
from models.crud import jobs as job_crud
from models.job import JobKind
from models.registry import Adapter, Checkpoint

router = APIRouter(prefix="/adapters", tags=["adapters"])


def _view(session, a: Adapter) -> AdapterRead:
    ckpts = session.execute(select(Checkpoint.model_name).where(Checkpoint.job_id == a.job_id)
                            .order_by(Checkpoint.step_number)).scalars().all() if a.job_id else []
    return AdapterRead(id=a.id, name=a.name, base_model=a.base_model, fine_tuning_job_id=a.job_id,
                       created_at=to_unix(a.created_at), config=a.config, metrics=a.metrics, checkpoints=list(ckpts))


def _owned(session, user, adapter_id: str) -> Adapter:
    a = session.get(Adapter, adapter_id)
    if a is None:  # also accept the model name (ft:...)
        a = session.execute(select(Adapter).where(Adapter.name == adapter_id)).scalar_one_or_none()
    if a is None or a.owner_id != user.id:
        raise not_found("adapter", adapter_id, "adapter_id")
    return a


@router.get("", response_model=ListRead[AdapterRead])
def list_adapters(session: SessionDep, user: CurrentUser):
    rows = session.execute(select(Adapter).where(Adapter.owner_id == user.id).order_by(Adapter.created_at.desc()))
    return ListRead(data=[_view(session, a) for a in rows.scalars()])


@router.get("/{adapter_id}", response_model=AdapterRead)
def retrieve_adapter(adapter_id: str, session: SessionDep, user: CurrentUser):
    return _view(session, _owned(session, user, adapter_id))


@router.get("/{adapter_id}/download", response_class=StreamingResponse,
            responses={200: {"content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "a .tar.gz of the adapter's PEFT folder"}, 410: {}})
def download_adapter(adapter_id: str, session: SessionDep, user: CurrentUser, store: StoreDep):
    """A .tar.gz of the standard PEFT folder (adapter_config.json + adapter_model.safetensors)."""
    a = _owned(session, user, adapter_id)
    folder = store.resolve(a.path)
    if not (folder / "adapter_config.json").exists():
        raise APIError(410, "adapter_missing", "the adapter's files are no longer in the artifact store", "adapter_id")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=a.id)
    buf.seek(0)
    return StreamingResponse(buf, media_type="application/gzip",
                             headers={"Content-Disposition": f'attachment; filename="{a.id}.tar.gz"'})


@router.delete("/{adapter_id}", response_model=DeletedRead)
def delete_adapter(adapter_id: str, session: SessionDep, user: CurrentUser, store: StoreDep):
    a = _owned(session, user, adapter_id)
    folder = store.resolve(a.path)
    session.delete(a)
    session.commit()
    shutil.rmtree(folder, ignore_errors=True)
    return DeletedRead(id=a.id, object="adapter")


async def export_body(request: Request) -> ExportCreate:
    """The optional JSON body, refused with a 400 naming the field (``format``, ``dtype``) when invalid."""
    raw = await request.body()
    if not raw.strip():
        return ExportCreate()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise APIError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise APIError(400, "invalid_json", "the request body must be a JSON object")
    try:
        body = ExportCreate.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors(), status=400) from None
    if body.format == "hf" and "dtype" in body.model_fields_set:
        raise APIError(400, "invalid_value", "dtype: applies to format 'gguf' only (an 'hf' export is the float32 "
                       "merged checkpoint)", "dtype")
    return body


@router.post("/{adapter_id}/export", response_model=JobRead,
             openapi_extra={"requestBody": {"required": False, "content": {
                 "application/json": {"schema": ExportCreate.model_json_schema()}}}})
def export_adapter(adapter_id: str, body: Annotated[ExportCreate, Depends(export_body)], session: SessionDep,
                   user: CurrentUser, request: Request):
    """Merge the adapter into its base weights (a job on the gpu pool): a full HF checkpoint (``format: hf``,
    the default), or one ``.gguf`` whose file id the job's result names (``format: gguf``)."""
    a = _owned(session, user, adapter_id)
    params = {"adapter_id": a.id, "format": body.format}
    if body.format == "gguf":
        params["dtype"] = body.dtype
    job = job_crud.create_job(session=session, owner_id=user.id, kind=JobKind.export, model=a.base_model,
                              params=params)
    session.commit()
    notify_submitted(request)
    return job_view(job, session)
