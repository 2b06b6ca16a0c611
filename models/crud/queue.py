"""Where a waiting job stands in its queue (read by the API for every status poll, and by tests).

Positions are advisory: admitted jobs first (by admission), then priority, then FIFO.
"""
from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.job import Job, JobStatus

# Statuses a job waits in for a worker: a new job's validation stage, or its main stage.
PENDING_STATUSES = (JobStatus.validating_files.value, JobStatus.queued.value)


def queue_position(session: Session, job: Job) -> int | None:
    """1-based place of a queued job: admitted jobs first (by admission), then priority, then FIFO.
    One COUNT over the (status, queue) index."""
    if job.status not in PENDING_STATUSES or job.lease_owner is not None:
        return None
    if job.admitted_at is not None:
        ahead = Job.admitted_at.is_not(None) & (Job.admitted_at < job.admitted_at)
    else:
        ahead = Job.admitted_at.is_not(None) | (Job.priority > job.priority) | (
            (Job.priority == job.priority) & (Job.created_at < job.created_at))
    n = session.execute(select(func.count()).select_from(Job).where(
        Job.queue == job.queue, Job.status.in_(PENDING_STATUSES), Job.lease_owner.is_(None), ahead)).scalar()
    return int(n) + 1


class QueuePositionCache:
    """Queue positions from one ordered snapshot per queue, refreshed at most every ``ttl`` seconds, so
    polling clients cost no COUNT each. Positions are advisory; a job newer than the snapshot gets an
    exact COUNT."""

    def __init__(self, ttl: float = 1.0):
        self.ttl = ttl
        self._snapshots: dict[str, tuple[float, dict[str, int]]] = {}

    def position(self, session: Session, job: Job) -> int | None:
        if job.status not in PENDING_STATUSES or job.lease_owner is not None:
            return None
        now = time.monotonic()
        taken, positions = self._snapshots.get(job.queue, (0.0, {}))
        if now - taken > self.ttl:
            positions = queue_positions(session, job.queue)
            self._snapshots[job.queue] = (now, positions)
        return positions.get(job.id) or queue_position(session, job)


def queue_positions(session: Session, queue: str) -> dict[str, int]:
    """1-based position of every not-yet-started job of a queue (admitted ones first, then FIFO)."""
    rows = session.execute(select(Job.id).where(Job.queue == queue, Job.status.in_(PENDING_STATUSES),
                                                Job.lease_owner.is_(None))
                           .order_by(Job.admitted_at.is_(None), Job.admitted_at, Job.priority.desc(),
                                     Job.created_at)).scalars().all()
    return {job_id: i + 1 for i, job_id in enumerate(rows)}
