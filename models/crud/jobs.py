"""Jobs and their events: creation, status transitions, leases, event paging."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from contracts.job_stages import first_stage
from models.base import new_id, utcnow
from models.job import ID_PREFIX, TERMINAL_STATUSES, Job, JobEvent, JobKind, JobStatus


def create_job(*, session: Session, owner_id: str, kind: JobKind, params: dict, model: str | None = None,
               queue: str | None = None, user_metadata: dict | None = None) -> Job:
    """A new job waiting in its kind's first stage (``contracts.job_stages``); ``queue`` overrides the
    stage's pool (a generation job with a local teacher runs on ``gpu``)."""
    stage = first_stage(kind.value)
    job = Job(id=new_id(ID_PREFIX[kind]), owner_id=owner_id, kind=kind.value, params=params, model=model,
              queue=queue or stage.queue, status=stage.waiting_status, user_metadata=user_metadata or {})
    session.add(job)
    session.flush()
    add_event(session=session, job_id=job.id, message=f"Created {kind.value} job {job.id}")
    return job


def get_owned_job(*, session: Session, job_id: str, owner_id: str, kind: str | None = None) -> Job | None:
    q = select(Job).where(Job.id == job_id, Job.owner_id == owner_id)
    if kind is not None:
        q = q.where(Job.kind == kind)
    return session.execute(q).scalar_one_or_none()


def list_jobs(*, session: Session, owner_id: str, kind: str | None, after: str | None, limit: int) -> list[Job]:
    q = select(Job).where(Job.owner_id == owner_id)
    if kind is not None:
        q = q.where(Job.kind == kind)
    if after:
        anchor = session.get(Job, after)
        if anchor is not None and anchor.owner_id == owner_id:
            q = q.where(or_(Job.created_at < anchor.created_at,
                            and_(Job.created_at == anchor.created_at, Job.id < anchor.id)))
    return list(session.execute(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)).scalars())


def add_event(*, session: Session, job_id: str, message: str, level: str = "info", type: str = "message",
              data: dict | None = None) -> JobEvent:
    ev = JobEvent(job_id=job_id, message=message, level=level, type=type, data=data)
    session.add(ev)
    session.flush()
    return ev


def list_events(*, session: Session, job_id: str, after: int | None, limit: int, ascending: bool) -> list[JobEvent]:
    q = select(JobEvent).where(JobEvent.job_id == job_id)
    if after is not None:
        q = q.where(JobEvent.id > after) if ascending else q.where(JobEvent.id < after)
    order = JobEvent.id.asc() if ascending else JobEvent.id.desc()
    return list(session.execute(q.order_by(order).limit(limit)).scalars())


def request_cancel(*, session: Session, job: Job) -> None:
    """Cooperative cancel: queued jobs end at once; running ones stop at their next step."""
    if job.status in TERMINAL_STATUSES:
        return
    job.cancel_requested = True
    if job.lease_owner is None and job.status in (JobStatus.queued.value, JobStatus.validating_files.value,
                                                  JobStatus.paused.value):
        job.status = JobStatus.cancelled.value
        job.finished_at = utcnow()
        add_event(session=session, job_id=job.id, message="Job cancelled before it ran")
    else:
        add_event(session=session, job_id=job.id, message="Cancellation requested; stopping at the next step")


ACTIVE_STATUSES = (JobStatus.running.value, JobStatus.validating_files.value)


def claim_job(*, session: Session, job_id: str, worker_id: str, lease_seconds: int, pid: int) -> Job | None:
    """Atomically take the lease of a pending job, or of an active job whose lease expired.

    A job in ``validating_files`` keeps that status while its validation stage runs; others become
    ``running``."""
    now = utcnow()
    free = or_(Job.lease_owner.is_(None), Job.lease_expires_at < now)
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.cancel_requested.is_(False),
               or_(and_(Job.status == JobStatus.queued.value),
                   and_(Job.status.in_(ACTIVE_STATUSES), free)))
        .values(status=case((Job.status == JobStatus.validating_files.value, JobStatus.validating_files.value),
                            else_=JobStatus.running.value),
                lease_owner=worker_id, worker_pid=pid,
                lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now,
                attempt=Job.attempt + 1, started_at=func.coalesce(Job.started_at, now), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        return None
    session.flush()
    job = session.get(Job, job_id)
    session.refresh(job)
    return job


def renew_lease(*, session: Session, job_id: str, worker_id: str, lease_seconds: int,
                add_compute_seconds: float) -> tuple[bool, bool, bool]:
    """Extend the lease; returns (still_owner, cancel_requested, pause_requested)."""
    now = utcnow()
    res = session.execute(
        update(Job).where(Job.id == job_id, Job.lease_owner == worker_id, Job.status.in_(ACTIVE_STATUSES))
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now,
                compute_seconds=Job.compute_seconds + add_compute_seconds)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(select(Job.cancel_requested, Job.pause_requested).where(Job.id == job_id)).one()
    return res.rowcount == 1, bool(row[0]), bool(row[1])


def finish_job(*, session: Session, job_id: str, worker_id: str, status: JobStatus, result: dict | None = None,
               error: dict | None = None) -> bool:
    """Record the outcome if this worker still holds the lease."""
    now = utcnow()
    values: dict = {"status": status.value, "lease_owner": None, "lease_expires_at": None, "worker_pid": None,
                        "updated_at": now}
    if status.value in TERMINAL_STATUSES:
        values["finished_at"] = now
    if status == JobStatus.paused:
        values["pause_requested"] = False
        values["admitted_at"] = None
    if result is not None:
        values["result"] = result
    if error is not None:
        values["error"] = error
    res = session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == worker_id).values(**values)
                          .execution_options(synchronize_session=False))
    return res.rowcount == 1


def expired_running_jobs(*, session: Session, now: datetime | None = None) -> list[Job]:
    now = now or utcnow()
    return list(session.execute(
        select(Job).where(Job.status.in_(ACTIVE_STATUSES), Job.lease_owner.is_not(None),
                          Job.lease_expires_at < now).with_for_update(skip_locked=True)
    ).scalars())


def hand_off_job(*, session: Session, job_id: str, worker_id: str, queue: str, result: dict | None) -> bool:
    """End a stage: release the lease and put the job back in line for ``queue``."""
    values: dict = {"status": JobStatus.queued.value, "queue": queue, "admitted_at": None, "lease_owner": None,
                        "lease_expires_at": None, "worker_pid": None, "updated_at": utcnow()}
    if result is not None:
        values["result"] = result
    res = session.execute(update(Job).where(Job.id == job_id, Job.lease_owner == worker_id).values(**values)
                          .execution_options(synchronize_session=False))
    return res.rowcount == 1
