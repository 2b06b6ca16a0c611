"""The database's facts in the shapes of the pure policy (``contracts.scheduling``): pending jobs,
jobs holding slots, live workers, and the standing of every user involved."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from contracts import scheduling
from models.crud.jobs import ACTIVE_STATUSES
from models.crud.queue import PENDING_STATUSES
from models.crud.resources import job_resources
from models.crud.usage import decayed_gpu_seconds, usage_today
from models.job import Job, JobKind
from models.settings import Settings
from models.user import User
from models.worker import Worker, WorkerState

# Kinds that stop at a checkpoint or a finished chunk and resume exactly there: the policy may preempt them.
PREEMPTIBLE_KINDS = {JobKind.fine_tuning.value, JobKind.batch.value, JobKind.eval.value, JobKind.generation.value}


@dataclass
class PoolFacts:
    pending_rows: dict[str, Job]
    holding_rows: dict[str, Job]
    pending: list[scheduling.PendingJob]
    running: list[scheduling.RunningJob]
    workers: list[scheduling.WorkerInfo]
    users: dict[str, scheduling.UserState]


def policy_config(settings: Settings) -> scheduling.PolicyConfig:
    return scheduling.PolicyConfig(default_max_running=settings.max_running_per_user,
                                   preemption=settings.preemption, preemption_grace_s=settings.preemption_grace_s,
                                   starvation_s=settings.starvation_s, half_life_s=settings.fair_share_half_life_s)


def gather(session: Session, settings: Settings, now: datetime) -> PoolFacts:
    pending_rows = {j.id: j for j in session.execute(select(Job).where(
        Job.status.in_(PENDING_STATUSES), Job.lease_owner.is_(None), Job.admitted_at.is_(None),
        Job.cancel_requested.is_(False)).with_for_update(skip_locked=True)).scalars()}
    holding_rows = {j.id: j for j in session.execute(select(Job).where(or_(
        and_(Job.lease_owner.is_not(None), Job.status.in_(ACTIVE_STATUSES)),
        and_(Job.admitted_at.is_not(None), Job.lease_owner.is_(None), Job.status.in_(PENDING_STATUSES))))
    ).scalars()}
    for job in pending_rows.values():
        if not job.resources:  # estimated once per job, then kept on the row
            job.resources = job_resources(session, job)
    owners = {j.owner_id for j in pending_rows.values()} | {j.owner_id for j in holding_rows.values()}
    return PoolFacts(pending_rows=pending_rows, holding_rows=holding_rows,
                     pending=[_pending(j) for j in pending_rows.values()],
                     running=[_holding(j) for j in holding_rows.values() if j.worker_id],
                     workers=live_workers(session, settings, now),
                     users=user_states(session, settings, owners, now, running_ids=list(holding_rows)))


def _pending(job: Job) -> scheduling.PendingJob:
    res = job.resources or {}
    return scheduling.PendingJob(id=job.id, owner_id=job.owner_id, queue=job.queue, priority=job.priority,
                                 enqueued_at=job.enqueued_at or job.created_at,
                                 memory_bytes=int(res.get("memory_bytes") or 0), devices=int(res.get("devices") or 1),
                                 base_model=res.get("base_model"), teacher=job.kind == JobKind.generation.value)


def _holding(job: Job) -> scheduling.RunningJob:
    finish = (job.progress or {}).get("estimated_finish")
    return scheduling.RunningJob(
        id=job.id, owner_id=job.owner_id, queue=job.queue, worker_id=job.worker_id,
        devices=int((job.resources or {}).get("devices") or 1), started_at=job.started_at,
        estimated_finish=datetime.fromisoformat(finish) if finish else None, priority=job.priority,
        stopping=job.pause_requested or job.cancel_requested,
        preemptible=(job.kind in PREEMPTIBLE_KINDS and job.lease_owner is not None
                     and job.status == "running" and not job.pause_requested and not job.cancel_requested))


def live_workers(session: Session, settings: Settings, now: datetime) -> list[scheduling.WorkerInfo]:
    """Workers alive and taking jobs (heart-beat within one lease; not draining)."""
    fresh = now - timedelta(seconds=settings.lease_seconds)
    rows = session.execute(select(Worker).where(Worker.state == WorkerState.alive, Worker.heartbeat_at >= fresh))
    return [scheduling.WorkerInfo(id=w.id, queues=frozenset(w.queues), slots=w.slots,
                                  memory_bytes=w.memory_total_bytes, base_models=frozenset(w.base_models))
            for w in rows.scalars()]


def user_states(session: Session, settings: Settings, owners: set[str], now: datetime,
                running_ids: list[str] = ()) -> dict[str, scheduling.UserState]:
    """Weights, caps, today's use and decayed past use (finished work only: the policy charges a running
    job its whole expected run) of ``owners``."""
    if not owners:
        return {}
    users = {u.id: u for u in session.execute(select(User).where(User.id.in_(owners))).scalars()}
    decayed = decayed_gpu_seconds(session, list(owners), now, settings.fair_share_half_life_s,
                                  exclude_job_ids=running_ids)
    today = usage_today(session, list(owners), now)
    states = {}
    for owner in owners:
        user = users.get(owner)
        gpu_h, teacher_usd = today.get(owner, (0.0, 0.0))
        states[owner] = scheduling.UserState(
            weight=user.share_weight if user else 1.0, decayed_gpu_s=decayed.get(owner, 0.0),
            max_running=user.max_running_jobs if user else None,
            gpu_hours_per_day=user.gpu_hours_per_day if user else None, gpu_hours_today=gpu_h,
            teacher_usd_per_day=user.teacher_usd_per_day if user else None, teacher_usd_today=teacher_usd)
    return states
