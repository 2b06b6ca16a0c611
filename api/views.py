"""ORM rows -> response schemas for users, keys and files (jobs: ``api.job_views``)."""
from __future__ import annotations

from api.schemas.common import to_unix
from api.schemas.files import FileRead
from api.schemas.users import ApiKeyRead, UserRead
from models.file import File
from models.user import ApiKey, User


def user_view(u: User) -> UserRead:
    return UserRead(id=u.id, name=u.name, is_admin=u.is_admin, is_active=u.is_active,
                    created_at=to_unix(u.created_at), share_weight=u.share_weight,
                    max_running_jobs=u.max_running_jobs, gpu_hours_per_day=u.gpu_hours_per_day,
                    teacher_usd_per_day=u.teacher_usd_per_day)


def key_view(k: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(id=k.id, name=k.name, prefix=k.key_prefix, created_at=to_unix(k.created_at),
                      revoked=k.revoked_at is not None)


def file_view(f: File) -> FileRead:
    return FileRead(id=f.id, bytes=f.bytes, created_at=to_unix(f.created_at), filename=f.filename,
                    purpose=f.purpose, info=f.info or {})
