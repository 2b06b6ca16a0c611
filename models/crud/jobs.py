"""Jobs and their events: creation, status transitions, claims with fencing tokens, event paging.

A claim gives the worker a fresh ``claim_token``; every write of a running job (progress, events,
checkpoints, results, the outcome) is made only while the row still carries that token
(``assert_claim`` or a ``WHERE claim_token = ...``), so a worker whose lease was taken over cannot
write anything. ``attempt`` counts only lost workers and crashes: pauses, preemptions and stage
hand-offs put a job back in line without spending one."""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from contracts.job_stages import first_stage
from models.base import new_id, utcnow
from models.crud.queue import PENDING_STATUSES
from models.job import ID_PREFIX, TERMINAL_STATUSES, Job, JobEvent, JobKind, JobStatus


def create_job(*, session: Session, owner_id: str, kind: JobKind, params: dict, model: str | None = None,
               queue: str | None = None, user_metadata: dict | None = None, priority: int = 0) -> Job:
    """A new job waiting in its kind's first stage (``contracts.job_stages``); ``queue`` overrides the
    stage's pool (a generation job with a local teacher runs on ``gpu``)."""
    stage = first_stage(kind.value)
    job = Job(id=new_id(ID_PREFIX[kind]), owner_id=owner_id, kind=kind.value, params=params, model=model,
              queue=queue or stage.queue, status=stage.waiting_status, user_metadata=user_metadata or {},
              priority=priority, enqueued_at=utcnow())
    session.add(job)
    session.flush()
    add_event(session=session, job_id=job.id, message=f"Created {kind.value} job {job.id}")
    return job


def get_owned_job(*, session: Session, job_id: str, owner_id: str | None, kind: str | None = None) -> Job | None:
    """The job if ``owner_id`` owns it (``owner_id=None``: any owner, for admins)."""
    q = select(Job).where(Job.id == job_id)
    if owner_id is not None:
        q = q.where(Job.owner_id == owner_id)
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
    """Cooperative cancel: waiting jobs end at once; running ones stop at their next step."""
    if job.status in TERMINAL_STATUSES:
        return
    job.cancel_requested = True
    if job.lease_owner is None and job.status in (*PENDING_STATUSES, JobStatus.paused.value):
        job.status, job.finished_at = JobStatus.cancelled.value, utcnow()
        job.admitted_at = job.worker_id = None
        add_event(session=session, job_id=job.id, message="Job cancelled before it ran")
    else:
        add_event(session=session, job_id=job.id, message="Cancellation requested; stopping at the next step")


class InvalidTransition(Exception):
    """The job is not in a status that allows the request (the API answers 409)."""


PAUSE_MESSAGES = {"user": "Pause requested; stopping at the next checkpoint",
                  "preempt": "Preempted by the fair-share policy; pausing at the next checkpoint to re-queue",
                  "drain": "Its worker is shutting down; pausing at the next checkpoint to re-queue"}


def request_pause(*, session: Session, job: Job, reason: str = "user") -> None:
    """Running: stop at the next checkpoint (``reason`` "user": stay paused; "preempt"/"drain": re-queue).
    Waiting (users only): leave the line, unadmitted, until resumed."""
    if job.lease_owner is not None and job.status in ACTIVE_STATUSES:
        if job.pause_requested and job.pause_reason == "user":
            return  # a user's pause is never downgraded to a re-queue
        job.pause_requested, job.pause_reason = True, reason
        add_event(session=session, job_id=job.id, message=PAUSE_MESSAGES[reason], data={"reason": reason})
    elif reason == "user" and job.status in PENDING_STATUSES:
        job.status, job.admitted_at, job.worker_id = JobStatus.paused.value, None, None
        add_event(session=session, job_id=job.id, message="Job paused while queued")
    else:
        raise InvalidTransition(f"a {job.status} job cannot be paused")


def resume_paused(*, session: Session, job: Job) -> None:
    """A paused job goes back in line (from its last checkpoint); anything else is refused."""
    if job.status != JobStatus.paused.value:
        raise InvalidTransition(f"only paused jobs resume; this one is {job.status}")
    _back_in_line(job, utcnow())
    add_event(session=session, job_id=job.id, message="Job resumed; re-queued")


def requeue(job: Job, now: datetime | None = None) -> None:
    """Back in line for admission, keeping what it has done (checkpoints, finished chunks); no attempt."""
    _back_in_line(job, now or utcnow())


def _back_in_line(job: Job, now: datetime) -> None:
    """Waiting again for admission: no lease, no placement, no pending pause."""
    job.status = JobStatus.queued.value if job.status in (JobStatus.running.value, JobStatus.paused.value) \
        else job.status
    _drop_claim(job)
    job.admitted_at = job.worker_id = None
    job.pause_requested, job.pause_reason, job.enqueued_at = False, None, now


def _drop_claim(job: Job) -> None:
    """No worker holds the job any more: lease, process and fencing token cleared."""
    job.lease_owner = job.lease_expires_at = job.worker_pid = job.claim_token = None


ACTIVE_STATUSES = (JobStatus.running.value, JobStatus.validating_files.value)


def claim_job(*, session: Session, job_id: str, worker_id: str, lease_seconds: int, pid: int) -> Job | None:
    """Atomically take a waiting job the dispatcher placed on ``worker_id``, with a fresh fencing token.

    A job in ``validating_files`` keeps that status while its validation stage runs; others become
    ``running``. None if the job is not waiting for this worker (a stale or duplicate message)."""
    now = utcnow()
    res = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.cancel_requested.is_(False),
               Job.status.in_(PENDING_STATUSES), Job.lease_owner.is_(None), Job.admitted_at.is_not(None))
        .values(status=case((Job.status == JobStatus.validating_files.value, JobStatus.validating_files.value),
                            else_=JobStatus.running.value),
                lease_owner=worker_id, worker_pid=pid, claim_token=secrets.token_hex(16),
                lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now,
                waiting_reason=None, queue_position=None, estimated_start=None,
                started_at=func.coalesce(Job.started_at, now), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        return None
    session.flush()
    job = session.get(Job, job_id)
    session.refresh(job)
    return job


class ClaimLost(Exception):
    """This worker's claim on the job was taken over (its fencing token is stale): it must stop writing."""


def assert_claim(*, session: Session, job_id: str, token: str) -> None:
    """Lock the job row for this transaction if ``token`` is still its claim; else raise ``ClaimLost``.

    Run first in every transaction that writes for a running job: a takeover (a new claim, a reaper)
    waits for this lock or has already changed the token, so the write can never land after it."""
    q = select(Job.id).where(Job.id == job_id, Job.claim_token == token, Job.lease_owner.is_not(None))
    if session.bind.dialect.name == "postgresql":
        q = q.with_for_update(read=True)
    if session.execute(q).first() is None:
        raise ClaimLost(job_id)


def renew_lease(*, session: Session, job_id: str, token: str, lease_seconds: int,
                add_compute_seconds: float) -> tuple[bool, bool, bool]:
    """Extend the lease; returns (still ours, cancel_requested, pause_requested)."""
    now = utcnow()
    res = session.execute(
        update(Job).where(Job.id == job_id, Job.claim_token == token, Job.status.in_(ACTIVE_STATUSES))
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now,
                compute_seconds=Job.compute_seconds + add_compute_seconds)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(select(Job.cancel_requested, Job.pause_requested).where(Job.id == job_id)).one()
    return res.rowcount == 1, bool(row[0]), bool(row[1])


def finish_job(*, session: Session, job_id: str, token: str, status: JobStatus, result: dict | None = None,
               error: dict | None = None) -> str | None:
    """Record the outcome if ``token`` is still the job's claim; returns the status recorded (a pause asked
    by the policy or a draining worker re-queues the job instead of pausing it), or None if not ours."""
    job = session.execute(select(Job).where(Job.id == job_id, Job.claim_token == token)
                          .with_for_update()).scalar_one_or_none()
    if job is None:
        return None
    now = utcnow()
    if result is not None:
        job.result = result
    if error is not None:
        job.error = error
    if status in (JobStatus.paused, JobStatus.cancelled):  # stopped: the request on the row says which
        status = JobStatus.cancelled if job.cancel_requested else JobStatus.paused if job.pause_requested else status
    if status == JobStatus.paused and job.pause_reason in ("preempt", "drain"):
        _back_in_line(job, now)
        session.flush()
        return JobStatus.queued.value
    job.status, job.updated_at = status.value, now
    _drop_claim(job)
    if status.value in TERMINAL_STATUSES:
        job.finished_at = now
    if status == JobStatus.paused:
        job.pause_requested, job.pause_reason, job.admitted_at, job.worker_id = False, None, None, None
    session.flush()
    return status.value


def hand_off_job(*, session: Session, job_id: str, token: str, queue: str, result: dict | None) -> bool:
    """End a stage: release the claim and put the job back in line for ``queue`` (no attempt spent).

    A stage boundary is a checkpoint: a cancel asked for during the stage ends the job here, a user's
    pause leaves it paused before the next stage (a preemption or drain only re-queues it)."""
    job = session.execute(select(Job).where(Job.id == job_id, Job.claim_token == token)
                          .with_for_update()).scalar_one_or_none()
    if job is None:
        return False
    if result is not None:
        job.result = result
    now = utcnow()
    user_pause = job.pause_requested and job.pause_reason == "user"
    job.status, job.queue = JobStatus.queued.value, queue
    _back_in_line(job, now)
    if job.cancel_requested:
        job.status, job.finished_at = JobStatus.cancelled.value, now
        add_event(session=session, job_id=job.id, message="Job cancelled between stages")
    elif user_pause:
        job.status = JobStatus.paused.value
        add_event(session=session, job_id=job.id, message="Job paused before its next stage")
    session.flush()
    return True


def release_for_failure(*, session: Session, job: Job, failure: dict, max_attempts: int,
                        now: datetime | None = None) -> bool:
    """A lost worker or a crash: spend an attempt and re-queue the job to resume, or fail it with the last
    failure's reason once ``max_attempts`` are spent. Returns True if re-queued."""
    now = now or utcnow()
    job.attempt += 1
    job.last_failure = failure
    if job.attempt >= max_attempts:
        job.status, job.finished_at = JobStatus.failed.value, now
        job.error = {"code": failure.get("code", "worker_lost"), "param": None,
                     "message": f"failed after {job.attempt} attempts; the last one: {failure.get('message')}"}
        _drop_claim(job)
        job.admitted_at = job.worker_id = None
        add_event(session=session, job_id=job.id, level="error", message=job.error["message"])
        return False
    _back_in_line(job, now)
    add_event(session=session, job_id=job.id, level="warn", data={"attempt": job.attempt, **failure},
              message=f"{failure.get('message')}; re-queued to resume (attempt {job.attempt} of {max_attempts})")
    return True


def expired_running_jobs(*, session: Session, now: datetime | None = None) -> list[Job]:
    now = now or utcnow()
    return list(session.execute(
        select(Job).where(Job.status.in_(ACTIVE_STATUSES), Job.lease_owner.is_not(None),
                          Job.lease_expires_at < now).with_for_update(skip_locked=True)
    ).scalars())
