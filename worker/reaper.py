"""The dispatcher's housekeeping before each policy pass: workers that stopped heart-beating are marked
lost, jobs whose lease ran out spend an attempt and go back in line, and admissions nobody claimed in
time are taken back to be placed again. Each step is idempotent and safe to repeat."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.crud import jobs as job_crud
from models.crud.queue import PENDING_STATUSES
from models.job import Job
from models.settings import Settings
from models.worker import Worker, WorkerState


def mark_lost_workers(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Workers silent for longer than one lease are lost; what was placed on them and not yet claimed
    is taken back at once (their running jobs' leases run out on their own and are reaped)."""
    cutoff = now - timedelta(seconds=settings.lease_seconds)
    lost = list(session.execute(select(Worker).where(
        Worker.state.in_((WorkerState.alive, WorkerState.draining)), Worker.heartbeat_at < cutoff)).scalars())
    for worker in lost:
        worker.state, worker.stopped_at = WorkerState.lost, now
    if lost:
        take_back_admissions(session, [w.id for w in lost], "its worker stopped responding")
    return [w.id for w in lost]


def take_back_admissions(session: Session, worker_ids: list[str], why: str) -> list[str]:
    """Unclaimed admissions to ``worker_ids`` go back in line (their stale messages are then ignored)."""
    return _take_back(session, Job.worker_id.in_(worker_ids) & Job.admitted_at.is_not(None),
                      lambda job: f"Admission to worker {job.worker_id} taken back ({why}); placing it again")


def take_back_stale_admissions(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Admissions not claimed within ``admission_timeout_s`` (the send failed, the dispatcher died after
    its commit, the worker's queue is stuck) are placed again instead of holding a slot for ever."""
    cutoff = now - timedelta(seconds=settings.admission_timeout_s)
    return _take_back(session, Job.admitted_at < cutoff,
                      lambda job: f"Not claimed by worker {job.worker_id} within "
                                  f"{settings.admission_timeout_s:.0f} s; placing it again")


def _take_back(session: Session, which, message: Callable[[Job], str]) -> list[str]:
    """Unclaimed admissions matching ``which`` go back in line, each with a warning saying why."""
    rows = list(session.execute(select(Job).where(
        which, Job.lease_owner.is_(None), Job.status.in_(PENDING_STATUSES)).with_for_update(skip_locked=True)
    ).scalars())
    for job in rows:
        job_crud.add_event(session=session, job_id=job.id, level="warn", message=message(job))
        job.admitted_at = job.worker_id = None
    return [j.id for j in rows]


def reap_expired_leases(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Jobs whose lease ran out lost their worker: spend an attempt and re-queue them to resume (or fail
    them, with that reason, once ``max_attempts`` are spent). Returns the re-queued ids."""
    requeued = []
    for job in job_crud.expired_running_jobs(session=session, now=now):
        failure = {"code": "worker_lost", "message": f"worker {job.lease_owner} stopped responding (lease expired)"}
        if job_crud.release_for_failure(session=session, job=job, failure=failure,
                                        max_attempts=settings.max_attempts, now=now):
            requeued.append(job.id)
    return requeued


def release_worker_jobs(session: Session, worker_id: str, why: str, *, crashed: bool = False,
                        max_attempts: int = 3) -> list[str]:
    """A worker hands back what it still holds: unclaimed admissions are taken back; claimed jobs go back
    in line to resume from their last checkpoint -- without spending an attempt when the worker shut
    down, spending one when their process died with it (``crashed``)."""
    taken = take_back_admissions(session, [worker_id], why)
    rows = list(session.execute(select(Job).where(Job.lease_owner == worker_id,
                                                  Job.status.in_(job_crud.ACTIVE_STATUSES))
                                .with_for_update()).scalars())
    for job in rows:
        if crashed:
            job_crud.release_for_failure(session=session, job=job, max_attempts=max_attempts,
                                         failure={"code": "worker_lost", "message": f"worker {worker_id}: {why}"})
            continue
        job_crud.add_event(session=session, job_id=job.id, level="warn",
                           message=f"Handed back by worker {worker_id} ({why}); re-queued to resume")
        job_crud.requeue(job)
    return taken + [j.id for j in rows]
