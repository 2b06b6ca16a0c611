"""ORM rows -> response schemas (one function per resource)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from api.schemas.common import to_unix
from api.schemas.files import FileRead
from api.schemas.jobs import EventRead, JobRead
from api.schemas.users import ApiKeyRead, UserRead
from models.event_bus import event_payload
from models.file import File
from models.job import Job, JobEvent, JobStatus
from models.user import ApiKey, User

JOB_OBJECT = {"preflight": "preflight.job", "fine_tuning": "fine_tuning.job", "generation": "generation.job",
              "batch": "batch", "eval": "eval.job",
              "export": "export.job"}


def user_view(u: User) -> UserRead:
    return UserRead(id=u.id, name=u.name, is_admin=u.is_admin, created_at=to_unix(u.created_at),
                    share_weight=u.share_weight, max_running_jobs=u.max_running_jobs)


def key_view(k: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(id=k.id, name=k.name, prefix=k.key_prefix, created_at=to_unix(k.created_at),
                      revoked=k.revoked_at is not None)


def file_view(f: File) -> FileRead:
    return FileRead(id=f.id, bytes=f.bytes, created_at=to_unix(f.created_at), filename=f.filename,
                    purpose=f.purpose, info=f.info or {})


def _eta(job: Job) -> int | None:
    iso = (job.progress or {}).get("estimated_finish")
    if job.status != JobStatus.running.value or not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp())


def job_view(job: Job, session: Session | None = None, positions=None) -> JobRead:
    """``positions``: a ``QueuePositionCache`` for hot paths; otherwise one COUNT gives the position."""
    position = None
    if session is not None and job.status in (JobStatus.queued.value, JobStatus.validating_files.value):
        from models.crud.queue import queue_position

        position = positions.position(session, job) if positions is not None else queue_position(session, job)
    return JobRead(
        id=job.id, object=JOB_OBJECT.get(job.kind, "job"), kind=job.kind, status=job.status, model=job.model,
        created_at=to_unix(job.created_at), started_at=to_unix(job.started_at),
        finished_at=to_unix(job.finished_at), error=job.error, progress=job.progress or {},
        estimated_finish=_eta(job), queue_position=position, attempt=job.attempt,
        metadata=job.user_metadata or {}, result=job.result or None,
    )


def event_view(ev: JobEvent) -> EventRead:
    return EventRead(**{k: v for k, v in event_payload(ev).items() if k != "job_id"})
