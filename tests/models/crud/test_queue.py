"""Queue positions: admitted jobs first (by admission), then priority, then FIFO; started jobs have none."""
from __future__ import annotations

import itertools
from datetime import timedelta

from models.base import utcnow
from models.crud.jobs import create_job
from models.crud.queue import QueuePositionCache, queue_position, queue_positions
from models.job import JobKind, JobStatus

T0 = utcnow()
TICKS = itertools.count()

def make_jobs(session, owner, n, **fields):
    """``n`` queued batch jobs, each created a second after the job before (in this test)."""
    jobs = []
    for _ in range(n):
        job = create_job(session=session, owner_id=owner.id, kind=JobKind.batch, params={})
        job.created_at = T0 + timedelta(seconds=next(TICKS))
        for k, v in fields.items():
            setattr(job, k, v)
        jobs.append(job)
    session.flush()
    return jobs


def test_fifo_then_priority_then_admitted_first(session, alice):
    a, b, c, d = make_jobs(session, alice, 4)
    c.priority = 5
    d.admitted_at = utcnow()
    session.flush()
    expected = {d.id: 1, c.id: 2, a.id: 3, b.id: 4}
    assert queue_positions(session, "gpu") == expected
    assert {j.id: queue_position(session, j) for j in (a, b, c, d)} == expected


def test_started_or_finished_jobs_have_no_position(session, alice):
    a, b = make_jobs(session, alice, 2)
    a.lease_owner = "w1"
    b.status = JobStatus.succeeded.value
    session.flush()
    assert queue_position(session, a) is None and queue_position(session, b) is None
    assert queue_positions(session, "gpu") == {}


def test_queues_are_counted_apart(session, alice):
    (g,) = make_jobs(session, alice, 1)
    (i,) = make_jobs(session, alice, 1, queue="io")
    assert (queue_position(session, g), queue_position(session, i)) == (1, 1)


def test_cache_serves_a_snapshot_and_counts_newcomers(session, alice):
    cache = QueuePositionCache(ttl=60.0)
    a, b = make_jobs(session, alice, 2)
    assert cache.position(session, b) == 2
    (c,) = make_jobs(session, alice, 1)  # newer than the snapshot: an exact count
    assert cache.position(session, c) == 3
    a.status = JobStatus.cancelled.value
    session.flush()
    assert cache.position(session, b) == 2  # advisory: the snapshot holds for its ttl
    assert cache.position(session, a) is None
