"""Fair-share arithmetic for one policy pass: what a job costs, each user's fair share of a queue's
devices (weighted water-filling), the caps, and the policy order of all pending jobs.

The policy order: starving jobs first (FIFO), then the user with the least
``(decayed_gpu_s + charge of running jobs + charge of jobs already ordered this pass) / weight`` gives
their next job (priority desc, then FIFO), ties going to the user whose next job waited longest.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob, UserState


def job_charge(job: PendingJob, config: PolicyConfig) -> float:
    """Expected GPU-seconds of a pending job (devices x expected run time)."""
    duration = job.estimated_duration_s if job.estimated_duration_s is not None else config.default_duration_s
    return job.devices * duration


def running_charge(job: RunningJob, config: PolicyConfig) -> float:
    """Expected GPU-seconds of a running job over its whole run; callers' ``decayed_gpu_s`` should
    hold finished work only, so a running job is counted once."""
    if job.started_at is not None and job.estimated_finish is not None:
        return job.devices * max(0.0, (job.estimated_finish - job.started_at).total_seconds())
    return job.devices * config.default_duration_s


def own_order_key(job: PendingJob) -> tuple:
    """One user's own jobs: higher priority first, then the longest waiting, then id."""
    return (-job.priority, job.enqueued_at, job.id)


def water_fill(demand: Mapping[str, float], weights: Mapping[str, float], capacity: float) -> dict[str, float]:
    """Weighted max-min fair split of ``capacity``: nobody gets more than they ask for, and what the
    modest leave is shared by weight among the rest."""
    shares: dict[str, float] = {}
    left, weight_left = float(capacity), sum(weights[u] for u in demand)
    for user in sorted(demand, key=lambda u: demand[u] / weights[u]):
        if weight_left <= 0:
            break
        fair = left * weights[user] / weight_left
        shares[user] = min(demand[user], fair)
        left -= shares[user]
        weight_left -= weights[user]
    return shares


def cap_reason(job: PendingJob, state: UserState, running_jobs: int, config: PolicyConfig) -> str | None:
    """Why a user's cap keeps this job waiting now, or None."""
    cap = state.max_running if state.max_running is not None else config.default_max_running
    if running_jobs >= cap:
        return f"user cap: {running_jobs} jobs running (max_running_jobs={cap})"
    if job.queue == "gpu" and state.gpu_hours_per_day is not None and state.gpu_hours_today >= state.gpu_hours_per_day:
        return (f"daily GPU-hours cap reached: {state.gpu_hours_today:.2f} of {state.gpu_hours_per_day:.1f} h "
                "used today")
    if job.teacher and state.teacher_usd_per_day is not None and state.teacher_usd_today >= state.teacher_usd_per_day:
        return f"daily teacher budget reached: ${state.teacher_usd_today:.2f} of ${state.teacher_usd_per_day:.2f}"
    return None


def daily_capped(job: PendingJob, state: UserState) -> bool:
    """A daily cap (GPU-hours, teacher money) holds the job until the day turns: no start estimate."""
    return ((job.queue == "gpu" and state.gpu_hours_per_day is not None
             and state.gpu_hours_today >= state.gpu_hours_per_day)
            or (job.teacher and state.teacher_usd_per_day is not None
                and state.teacher_usd_today >= state.teacher_usd_per_day))


def policy_order(by_user: Mapping[str, list[PendingJob]], charge: Mapping[str, float],
                 weight: Mapping[str, float], starving: Iterable[PendingJob], config: PolicyConfig,
                 ) -> list[PendingJob]:
    """All pending jobs in admission order. ``by_user`` lists are in own order (``own_order_key``)
    and hold no starving job; ``charge`` is each user's charge before this pass."""
    spent = dict(charge)
    order = sorted(starving, key=lambda j: (j.enqueued_at, j.id))
    for job in order:
        spent[job.owner_id] = spent.get(job.owner_id, 0.0) + job_charge(job, config)
    heap: list[tuple[float, datetime, str, int]] = [
        (spent.get(u, 0.0) / weight[u], jobs[0].enqueued_at, u, 0) for u, jobs in by_user.items() if jobs]
    heapq.heapify(heap)
    default = config.default_duration_s
    while heap:
        key, _, user, i = heap[0]
        jobs = by_user[user]
        job = jobs[i]
        order.append(job)
        if i + 1 == len(jobs):
            heapq.heappop(heap)
            continue
        cost = job.devices * (job.estimated_duration_s if job.estimated_duration_s is not None else default)
        nxt = jobs[i + 1]
        heapq.heapreplace(heap, (key + cost / weight[user], nxt.enqueued_at, user, i + 1))
    return order
