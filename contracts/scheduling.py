"""The scheduling policy, pure: which waiting jobs to admit into a queue's free slots.

Weighted fair share between users: the user with the least recent compute per unit of weight goes
first (a running job counts as ``RUNNING_JOB_CHARGE_S`` seconds of compute), ties broken by the
job's priority, then FIFO; no user runs more jobs than their cap. The dispatcher
(``worker.dispatcher``) gathers the facts from the database and calls ``pick_admissions``; tests
call it with plain values.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

RUNNING_JOB_CHARGE_S = 60.0  # what a job already running weighs against its owner, in compute seconds


@dataclass(frozen=True)
class PendingJob:
    """A job waiting for admission (only what the policy reads)."""

    id: str
    owner_id: str
    priority: int
    created_at: datetime


@dataclass(frozen=True)
class UserShare:
    """A user's standing: share weight (>0; higher runs more), running-job cap, recent compute seconds."""

    weight: float = 1.0
    max_running: int | None = None
    recent_compute_s: float = 0.0


def pick_admissions(*, pending: Iterable[PendingJob], running_owners: Iterable[str], free_slots: int,
                    users: Mapping[str, UserShare], default_cap: int) -> list[PendingJob]:
    """The jobs to admit now, in admission order.

    ``pending`` must be in each user's own order (priority desc, then FIFO); ``running_owners`` has
    one entry per job already holding a slot; users missing from ``users`` get the defaults."""
    running: dict[str, int] = defaultdict(int)
    for owner in running_owners:
        running[owner] += 1
    waiting: dict[str, list[PendingJob]] = defaultdict(list)
    for job in pending:
        waiting[job.owner_id].append(job)
    chosen: list[PendingJob] = []
    while len(chosen) < free_slots:
        owner = _next_owner(waiting, running, users, default_cap)
        if owner is None:
            break
        chosen.append(waiting[owner].pop(0))
        running[owner] += 1
    return chosen


def _next_owner(waiting: Mapping[str, list[PendingJob]], running: Mapping[str, int],
                users: Mapping[str, UserShare], default_cap: int) -> str | None:
    """The user whose next job goes first: least weighted usage, then the job's priority, then age."""
    candidates = []
    for owner, jobs in waiting.items():
        share = users.get(owner, UserShare())
        if jobs and running[owner] < (share.max_running or default_cap):
            weight = share.weight if share.weight > 0 else 1.0
            load = (share.recent_compute_s + running[owner] * RUNNING_JOB_CHARGE_S) / weight
            candidates.append((load, -jobs[0].priority, jobs[0].created_at, owner))
    return min(candidates)[3] if candidates else None
