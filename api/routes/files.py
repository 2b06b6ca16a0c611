"""Files in OpenAI's shape. Training, batch and eval files are validated line by line on upload;
a bad file is refused with every bad line named, and nothing of it is stored."""
from __future__ import annotations

import hashlib

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import and_, or_, select

from api.deps import CurrentUser, OwnedFile, SessionDep, SettingsDep, StoreDep
from api.errors import APIError, error_responses
from api.schemas.common import DeletedRead, ListRead
from api.schemas.files import UPLOAD_BODY, UPLOAD_PURPOSES, FileRead
from api.views import file_view
from contracts.batch_records import parse_batch_file
from contracts.preference_records import parse_fine_tune_file
from contracts.records import parse_eval_file
from models.base import new_id
from models.crud.files import get_owned_file
from models.file import File

router = APIRouter(prefix="/files", tags=["files"])
VALIDATORS = {"fine-tune": parse_fine_tune_file, "batch": parse_batch_file, "evals": parse_eval_file}
MULTIPART_OVERHEAD = 64 * 1024
CONTENT = {200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                 "description": "the file's bytes, as uploaded"}}


def validate_upload(purpose: str, data: bytes, max_line_bytes: int) -> dict:
    """Raise a 400 naming each bad line, or return the file's info (format, n_records)."""
    validator = VALIDATORS.get(purpose)
    if validator is None:
        return {}
    parsed = validator(data, max_line_bytes)
    if parsed.errors:
        lines = [e.as_dict() for e in parsed.errors]
        summary = "; ".join(f"line {e.line}: {e.message}" if e.line else e.message for e in parsed.errors[:5])
        more = f" (and {len(parsed.errors) - 5} more)" if len(parsed.errors) > 5 else ""
        raise APIError(400, parsed.errors[0].code if len(parsed.errors) == 1 else "invalid_file",
                       f"Invalid {purpose} file: {summary}{more}", "file", lines=lines)
    return {"format": parsed.format, "n_records": len(parsed.records)}


def clean_filename(name: str | None) -> str:
    """The client's file name as stored: no control characters (Postgres refuses NUL), at most 512 chars."""
    return "".join(c for c in (name or "") if c >= " " and c != "\x7f")[:512] or "upload"


@router.post("", response_model=FileRead, responses=error_responses(413), openapi_extra=UPLOAD_BODY)
async def upload_file(request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep,
                      store: StoreDep) -> FileRead:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > settings.max_upload_bytes + MULTIPART_OVERHEAD:
        raise APIError(413, "file_too_large", f"upload is {length} bytes, over the limit of "
                       f"{settings.max_upload_bytes} bytes", "file")
    form = await request.form(max_files=1, max_fields=8)
    upload, purpose = form.get("file"), form.get("purpose")
    if upload is None or isinstance(upload, str):
        raise APIError(400, "missing_required_parameter", "a multipart 'file' part is required", "file")
    if purpose not in UPLOAD_PURPOSES:
        raise APIError(400, "invalid_value", f"'purpose' must be one of {list(UPLOAD_PURPOSES)}", "purpose")
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise APIError(413, "file_too_large", f"file is over the limit of {settings.max_upload_bytes} bytes",
                       "file")
    if not data.strip():
        raise APIError(400, "empty_file", "the file is empty", "file")
    info = validate_upload(purpose, data, settings.max_line_bytes)
    file_id = new_id("file-")
    rel = f"files/{user.id}/{file_id}"
    store.write_bytes(rel, data)
    row = File(id=file_id, owner_id=user.id, filename=clean_filename(upload.filename), purpose=purpose,
               bytes=len(data), storage_path=rel, sha256=hashlib.sha256(data).hexdigest(), info=info)
    session.add(row)
    session.commit()
    return file_view(row)


@router.get("", response_model=ListRead[FileRead])
def list_files(session: SessionDep, user: CurrentUser, purpose: str | None = None,
               after: str | None = Query(None, description="a file id: list the files older than it (the "
                                         "`last_id` of the previous page)"),
               limit: int = Query(10000, ge=1, le=10000)) -> ListRead[FileRead]:
    """The caller's files, newest first."""
    q = select(File).where(File.owner_id == user.id)
    if purpose:
        q = q.where(File.purpose == purpose)
    anchor = get_owned_file(session=session, file_id=after, owner_id=user.id) if after else None
    if anchor is not None:
        q = q.where(or_(File.created_at < anchor.created_at,
                        and_(File.created_at == anchor.created_at, File.id < anchor.id)))
    rows = session.execute(q.order_by(File.created_at.desc(), File.id.desc()).limit(limit + 1)).scalars().all()
    page = rows[:limit]
    return ListRead(data=[file_view(f) for f in page], has_more=len(rows) > limit,
                    first_id=page[0].id if page else None, last_id=page[-1].id if page else None)


@router.get("/{file_id}", response_model=FileRead)
def retrieve_file(f: OwnedFile) -> FileRead:
    return file_view(f)


@router.get("/{file_id}/content", response_class=Response, responses=CONTENT)
def file_content(f: OwnedFile, store: StoreDep):
    return FileResponse(store.path(f.storage_path), media_type="application/octet-stream", filename=f.filename)


@router.delete("/{file_id}", response_model=DeletedRead)
def delete_file(f: OwnedFile, session: SessionDep, store: StoreDep) -> DeletedRead:
    session.delete(f)
    session.commit()
    store.delete(f.storage_path)
    return DeletedRead(id=f.id, object="file")
