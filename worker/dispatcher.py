"""The admission loop (``lorafleet dispatcher``): housekeeping, then one pass of the pure policy, then
each admitted job is sent to the Celery queue of the worker it was placed on.

Postgres is the truth: a pass runs in one transaction under an advisory lock, so several dispatchers
may run at once (one does each pass, the others skip it); the sends happen after the commit, and an
admission whose send failed, or whose dispatcher died before sending, is taken back after
``admission_timeout_s`` (``worker.reaper``). The policy itself is ``contracts.scheduling.plan``; this
module only feeds it (``worker.pool_facts``) and writes its answer down. Torch-free.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, text, update
from sqlalchemy.orm import Session, sessionmaker

from contracts import scheduling
from models.base import utcnow
from models.crud import jobs as job_crud
from models.db import TRANSIENT_DB_ERRORS, retry_transient, session_scope
from models.job import Job, JobEvent
from models.settings import Settings
from worker import pool_facts, reaper

log = logging.getLogger(__name__)
_ADVISORY_KEY = 0x1F0A7  # one pass at a time across dispatchers

SendFn = Callable[[Job], None]


@dataclass
class PassReport:
    """What one pass did (for logs and tests)."""

    admitted: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    lost_workers: list[str] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)  # the broker refused them: taken back
    skipped: bool = False  # another dispatcher held the lock


def _try_lock(session: Session) -> bool:
    if session.bind.dialect.name != "postgresql":
        return True
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY}).scalar())


def dispatch_once(session_factory: sessionmaker[Session], settings: Settings, send: SendFn,
                  now: datetime | None = None, with_estimates: bool = True) -> PassReport:
    """One pass: reap, plan, record, then send the admissions. ``with_estimates=False`` keeps the
    queued jobs' estimated starts as the last pass that made them left them."""
    report, admitted = PassReport(), []
    with session_scope(session_factory) as s:
        if not _try_lock(s):
            return PassReport(skipped=True)
        now = now or utcnow()
        report.lost_workers = reaper.mark_lost_workers(s, settings, now)
        report.requeued = reaper.reap_expired_leases(s, settings, now)
        reaper.take_back_stale_admissions(s, settings, now)
        s.flush()
        facts = pool_facts.gather(s, settings, now)
        plan = scheduling.plan(pending=facts.pending, running=facts.running, workers=facts.workers,
                               users=facts.users, now=now, config=pool_facts.policy_config(settings),
                               with_estimates=with_estimates)
        admitted = _apply(s, facts, plan, now, with_estimates)
        report.preempted = list(plan.preemptions)
        s.flush()
        s.expunge_all()
    for job, event_id in admitted:
        try:
            send(job)
            report.admitted.append(job.id)
        except Exception:
            log.exception("could not send job %s to worker %s; it is taken back and placed again", job.id,
                          job.worker_id)
            _unadmit(session_factory, job.id, event_id)
            report.unsent.append(job.id)
    return report


def _apply(s: Session, facts: pool_facts.PoolFacts, plan: scheduling.Plan, now: datetime,
           with_estimates: bool) -> list[tuple[Job, int]]:
    """Write the plan down: admissions (placed on a worker), preemptions (pause at the next checkpoint
    and re-queue), and for every job still waiting its reason, position and (when the plan made them)
    estimated start."""
    admitted = []
    for adm in plan.admissions:
        job = facts.pending_rows[adm.job_id]
        job.admitted_at, job.worker_id, job.estimated_start = now, adm.worker_id, now
        job.waiting_reason = job.queue_position = None
        event = job_crud.add_event(session=s, job_id=job.id, message=f"Admitted to worker {adm.worker_id}",
                                   data={"worker_id": adm.worker_id})
        admitted.append((job, event.id))
    for job_id in plan.preemptions:
        job_crud.request_pause(session=s, job=facts.holding_rows[job_id], reason="preempt")
    placed = {a.job_id for a in plan.admissions}
    for job_id, job in facts.pending_rows.items():
        if job_id in placed:
            continue
        reason, position = plan.waiting_reasons.get(job_id), plan.queue_positions.get(job_id)
        start = plan.estimated_starts.get(job_id) if with_estimates else job.estimated_start
        if (job.waiting_reason, job.queue_position, job.estimated_start) != (reason, position, start):
            job.waiting_reason, job.queue_position, job.estimated_start = reason, position, start
    return admitted


def _unadmit(session_factory: sessionmaker[Session], job_id: str, event_id: int) -> None:
    """The send failed (the broker is down): the admission never happened -- the job goes back in line
    and its "Admitted" event is withdrawn (while Redis is down every pass would otherwise add one)."""
    try:
        with session_scope(session_factory) as s:
            s.execute(update(Job).where(Job.id == job_id, Job.lease_owner.is_(None))
                      .values(admitted_at=None, worker_id=None))
            s.execute(delete(JobEvent).where(JobEvent.id == event_id))
    except Exception:  # the stale-admission timeout takes it back instead
        log.warning("could not take back %s now; the admission timeout will", job_id, exc_info=True)


def worker_queue(settings: Settings, worker_id: str) -> str:
    """The Celery queue only one registered worker consumes."""
    return f"{settings.namespace}w.{worker_id}"


def celery_sender(celery_app, settings: Settings) -> SendFn:
    from worker.celery_app import TASK_NAMES

    def send(job: Job) -> None:
        celery_app.send_task(TASK_NAMES[job.kind], args=[job.id], queue=worker_queue(settings, job.worker_id))

    return send


class DispatcherLoop(threading.Thread):
    """``dispatch_once`` every ``settings.dispatch_interval_s`` (sooner when woken) until stopped; a
    database that does not answer is waited out with back-off, never fatal."""

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, send: SendFn,
                 min_gap: float = 0.2):
        super().__init__(daemon=True, name="lorafleet-dispatcher")
        self.session_factory, self.settings, self.send, self.min_gap = session_factory, settings, send, min_gap
        self.stopped = threading.Event()
        self.wakeup = threading.Event()

    def run(self) -> None:
        wake = _RedisWake(self.settings, self.wakeup) if self.settings.redis_url else None
        if wake is not None:
            wake.start()
        broker_backoff, estimates_due_at = 0.0, 0.0
        while not self.stopped.is_set():
            try:
                with_estimates = time.monotonic() >= estimates_due_at
                report = retry_transient(
                    lambda estimate=with_estimates: dispatch_once(self.session_factory, self.settings, self.send,
                                                                   with_estimates=estimate),
                    deadline_s=30.0, what="dispatcher pass")
                if with_estimates and not report.skipped:
                    estimates_due_at = time.monotonic() + self.settings.estimate_interval_s
                # The broker refused a send: back off (up to 30 s) instead of admitting and taking back
                # the same jobs every pass while it is down.
                broker_backoff = min(30.0, max(1.0, broker_backoff * 2)) if report.unsent else 0.0
            except TRANSIENT_DB_ERRORS:
                log.warning("database unreachable; the dispatcher keeps trying")
            except Exception:
                log.exception("dispatcher pass failed")
            self.stopped.wait(self.min_gap + broker_backoff)  # a burst of submissions shares one pass
            self.wakeup.wait(max(0.0, self.settings.dispatch_interval_s - self.min_gap))
            self.wakeup.clear()
        if wake is not None:
            wake.stopped.set()

    def stop(self) -> None:
        self.stopped.set()
        self.wakeup.set()


class _RedisWake(threading.Thread):
    """Sets ``event`` whenever something is published on the dispatcher channel; reconnects after a
    Redis outage (the loop's interval covers the gap)."""

    def __init__(self, settings: Settings, event: threading.Event):
        super().__init__(daemon=True, name="lorafleet-dispatcher-wake")
        self.settings, self.event, self.stopped = settings, event, threading.Event()

    def run(self) -> None:
        import redis

        from models.event_bus import dispatcher_channel

        while not self.stopped.is_set():
            try:
                pubsub = redis.Redis.from_url(self.settings.redis_url, socket_connect_timeout=2).pubsub()
                pubsub.subscribe(dispatcher_channel(self.settings.namespace))
                while not self.stopped.is_set():
                    if pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0):
                        self.event.set()
            except Exception:  # noqa: BLE001 - Redis down: retry in a moment
                time.sleep(1.0)


def build_loop(settings: Settings) -> DispatcherLoop:
    """The dispatcher as ``lorafleet dispatcher`` and ``lorafleet up`` run it."""
    from models.db import make_engine, make_sessionmaker
    from worker.celery_app import create_celery_app

    factory = make_sessionmaker(make_engine(settings.sqlalchemy_url))
    return DispatcherLoop(factory, settings, celery_sender(create_celery_app(settings), settings))
