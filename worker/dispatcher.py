"""Admission control: queued jobs wait in the database; the dispatcher sends them to Celery as slots free.

Order between users is weighted fair share within per-user caps on running jobs: the policy is the
pure ``contracts.scheduling.pick_admissions``; this module feeds it the database's facts. The reaper
half re-queues jobs whose worker stopped heart-beating (or fails them after ``max_attempts``).
Torch-free; called by the API after each submission, by a background loop, and by workers when a
job ends.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from contracts import scheduling
from models.base import utcnow
from models.crud import jobs as job_crud
from models.crud.queue import PENDING_STATUSES
from models.db import session_scope
from models.job import Job, JobStatus
from models.settings import Settings
from models.user import User

log = logging.getLogger(__name__)
QUEUES = ("gpu", "io")
FAIR_SHARE_WINDOW = timedelta(days=7)
IO_SLOTS = 8
_ADVISORY_KEY = 0x1F0A7  # one dispatcher at a time across API replicas

SendFn = Callable[[Job], None]


def _try_lock(session: Session) -> bool:
    if session.bind.dialect.name != "postgresql":
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY}).scalar())


def reap_expired_leases(session: Session, settings: Settings) -> list[str]:
    """Jobs whose lease expired go back to the queue (resumable), or fail after too many attempts."""
    requeued = []
    for job in job_crud.expired_running_jobs(session=session):
        stage = job.status
        if job.attempt >= settings.max_attempts:
            job.status, job.finished_at = JobStatus.failed.value, utcnow()
            job.error = {"code": "worker_lost", "param": None,
                         "message": f"the worker running this job stopped responding {job.attempt} times"}
            job_crud.add_event(session=session, job_id=job.id, level="error", message=job.error["message"])
        else:
            job.status = JobStatus.queued.value if stage == JobStatus.running.value else stage
            job.admitted_at = None
            job_crud.add_event(session=session, job_id=job.id, level="warn",
                               message=f"Worker {job.lease_owner} lost (lease expired); job re-queued to resume",
                               data={"attempt": job.attempt})
            requeued.append(job.id)
        job.lease_owner = job.lease_expires_at = job.worker_pid = None
    return requeued


def _recent_usage(session: Session, owners: set[str]) -> dict[str, float]:
    """Compute seconds of ``owners``' jobs in the fair-share window."""
    since = utcnow() - FAIR_SHARE_WINDOW
    rows = session.execute(select(Job.owner_id, func.sum(Job.compute_seconds))
                           .where(Job.created_at >= since, Job.owner_id.in_(owners)).group_by(Job.owner_id)).all()
    return {owner: float(sec or 0.0) for owner, sec in rows}


def pick_admissions(session: Session, settings: Settings, queue: str) -> list[Job]:
    """Choose which pending jobs of ``queue`` to admit now: the database's facts, the policy of
    ``contracts.scheduling`` (fair share, caps, free slots)."""
    slots = settings.gpu_slots if queue == "gpu" else IO_SLOTS
    active = session.execute(select(Job.owner_id).where(
        Job.queue == queue,
        (Job.status.in_(PENDING_STATUSES) & Job.admitted_at.is_not(None)) | Job.lease_owner.is_not(None),
    )).scalars().all()
    free = slots - len(active)
    if free <= 0:
        return []
    pending = list(session.execute(
        select(Job).where(Job.queue == queue, Job.status.in_(PENDING_STATUSES), Job.admitted_at.is_(None),
                          Job.cancel_requested.is_(False))
        .order_by(Job.priority.desc(), Job.created_at, Job.id).with_for_update(skip_locked=True)
    ).scalars())
    if not pending:
        return []
    by_id = {job.id: job for job in pending}
    chosen = scheduling.pick_admissions(
        pending=[scheduling.PendingJob(j.id, j.owner_id, j.priority, j.created_at) for j in pending],
        running_owners=active, free_slots=free, users=_user_shares(session, pending),
        default_cap=settings.max_running_per_user)
    return [by_id[j.id] for j in chosen]


def _user_shares(session: Session, pending: list[Job]) -> dict[str, scheduling.UserShare]:
    """Weight, cap and recent compute of every user with a pending job."""
    owners = {j.owner_id for j in pending}
    usage = _recent_usage(session, owners)
    users = {u.id: u for u in session.execute(select(User).where(User.id.in_(owners))).scalars()}
    shares = {}
    for owner in owners:
        user = users.get(owner)
        shares[owner] = scheduling.UserShare(weight=user.share_weight if user else 1.0,
                                             max_running=user.max_running_jobs if user else None,
                                             recent_compute_s=usage.get(owner, 0.0))
    return shares


def dispatch_once(session_factory: sessionmaker[Session], settings: Settings, send: SendFn) -> list[str]:
    """Reap expired leases, then admit what fits; returns the admitted job ids."""
    admitted: list[Job] = []
    with session_scope(session_factory) as s:
        if not _try_lock(s):
            return []
        reap_expired_leases(s, settings)
        for queue in QUEUES:
            for job in pick_admissions(s, settings, queue):
                job.admitted_at = utcnow()
                admitted.append(job)
        s.flush()  # write admitted_at before the rows leave the session
        s.expunge_all()
    for job in admitted:
        try:
            send(job)
        except Exception:
            log.exception("could not send job %s to the broker; it stays queued", job.id)
            with session_scope(session_factory) as s:
                row = s.get(Job, job.id)
                if row is not None and row.status == JobStatus.queued.value:
                    row.admitted_at = None
    return [j.id for j in admitted]


def celery_sender(celery_app, settings: Settings) -> SendFn:
    from worker.celery_app import TASK_NAMES, queue_name

    def send(job: Job) -> None:
        celery_app.send_task(TASK_NAMES[job.kind], args=[job.id], queue=queue_name(settings, job.queue))

    return send


class DispatcherLoop(threading.Thread):
    """Runs ``dispatch_once`` every ``interval`` seconds until stopped (in the API process)."""

    def __init__(self, session_factory, settings: Settings, send: SendFn, interval: float = 2.0,
                 min_gap: float = 0.5):
        super().__init__(daemon=True, name="lorafleet-dispatcher")
        self.session_factory, self.settings, self.send, self.interval = session_factory, settings, send, interval
        self.min_gap = min_gap  # a burst of submissions shares one pass instead of one pass each
        self.stopped = threading.Event()
        self.wakeup = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                dispatch_once(self.session_factory, self.settings, self.send)
            except Exception:
                log.exception("dispatcher pass failed")
            self.stopped.wait(self.min_gap)
            self.wakeup.wait(max(0.0, self.interval - self.min_gap))
            self.wakeup.clear()

    def stop(self) -> None:
        self.stopped.set()
        self.wakeup.set()


def start_in_api(session_factory, settings: Settings) -> DispatcherLoop:
    """The dispatcher loop an API process runs (``create_app(dispatcher_factory=start_in_api)``)."""
    from worker.celery_app import create_celery_app

    return DispatcherLoop(session_factory, settings, celery_sender(create_celery_app(settings), settings),
                          interval=1.0)
