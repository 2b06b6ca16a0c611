"""The statuses a job waits in for admission, and counts of what waits and what runs.

Where a waiting job stands (its queue position, estimated start and why it waits) is no longer counted
here: the dispatcher writes it onto the job row on every pass, from the same policy that admits jobs
(``contracts.scheduling.plan``), and the API reads it from there. What is waiting and what runs where is
counted here for the admins' view of the pool (``GET /v1/pool``).
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.job import TERMINAL_STATUSES, Job, JobStatus

# Statuses a job waits in for a worker: a new job's validation stage, or its main stage.
PENDING_STATUSES = (JobStatus.validating_files.value, JobStatus.queued.value)


def _pending():
    """Waiting for admission: a pending status, not admitted, not claimed."""
    return Job.status.in_(PENDING_STATUSES) & Job.admitted_at.is_(None) & Job.lease_owner.is_(None)


def _holding_a_slot():
    """Running, or admitted to a worker and not yet claimed."""
    return Job.status.not_in(TERMINAL_STATUSES) & (Job.lease_owner.is_not(None) | Job.admitted_at.is_not(None))


def pending_counts(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Jobs waiting for admission: (per queue, per owner)."""
    by_queue = dict(session.execute(select(Job.queue, func.count()).where(_pending()).group_by(Job.queue)).all())
    by_owner = dict(session.execute(select(Job.owner_id, func.count()).where(_pending())
                                    .group_by(Job.owner_id)).all())
    return by_queue, by_owner


def running_counts(session: Session) -> dict[str, int]:
    """Jobs holding a slot (running, or admitted and not yet claimed), per owner."""
    return dict(session.execute(select(Job.owner_id, func.count()).where(_holding_a_slot())
                                .group_by(Job.owner_id)).all())


def jobs_by_worker(session: Session) -> dict[str, list[str]]:
    """The jobs each registered worker runs (it holds their lease) or was sent (admitted to it, unclaimed)."""
    rows = session.execute(select(Job.id, Job.lease_owner, Job.worker_id).where(_holding_a_slot())
                           .order_by(Job.created_at)).all()
    out: dict[str, list[str]] = {}
    for job_id, lease_owner, worker_id in rows:
        out.setdefault(lease_owner or worker_id or "", []).append(job_id)
    out.pop("", None)
    return out
