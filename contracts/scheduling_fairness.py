"""Fair-share arithmetic for one policy pass: what a job costs, each user's fair share of a queue's
devices (weighted water-filling), the caps, and the policy order of all pending jobs.

The policy order: starving jobs first (FIFO), then the user with the least
``(decayed_gpu_s + charge of running jobs + charge of jobs already ordered this pass) / weight`` gives
their next job (priority desc, then FIFO), ties going to the user whose next job waited longest;
jobs of users still below their fair share of the queue's devices come before the others.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import accumulate
from operator import attrgetter, itemgetter, mul
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob, UserState


_ENQUEUED, _PRIORITY = attrgetter("enqueued_at"), attrgetter("priority")
_DURATION, _DEVICES = attrgetter("estimated_duration_s"), attrgetter("devices")


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


def sort_own_order(jobs: list[PendingJob]) -> None:
    """One user's own jobs: higher priority first, then the longest waiting, then as given (stable
    sorts on single attributes: much cheaper than a tuple key at 10,000 jobs)."""
    jobs.sort(key=_ENQUEUED)
    if any(map(_PRIORITY, jobs)):
        jobs.sort(key=_PRIORITY, reverse=True)


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


def daily_reasons(state: UserState) -> tuple[str | None, str | None]:
    """Why a user's daily caps hold their "gpu" jobs and their teacher jobs (None: they do not)."""
    gpu = teacher = None
    if state.gpu_hours_per_day is not None and state.gpu_hours_today >= state.gpu_hours_per_day:
        gpu = (f"daily GPU-hours cap reached: {state.gpu_hours_today:.2f} of {state.gpu_hours_per_day:.1f} h "
               "used today")
    if state.teacher_usd_per_day is not None and state.teacher_usd_today >= state.teacher_usd_per_day:
        teacher = f"daily teacher budget reached: ${state.teacher_usd_today:.2f} of ${state.teacher_usd_per_day:.2f}"
    return gpu, teacher


def _below_share_prefix(user: str, jobs: list[PendingJob], left: dict[tuple[str, str], float]) -> int:
    """How many of the user's first jobs come while the user is still below their share in the job's
    queue (updates ``left``); the rest keep their own order behind them, as a per-user queue would."""
    cut = 0
    for job in jobs:
        mine = (user, job.queue)
        room_left = left.get(mine, 0.0)
        if room_left <= 1e-9:
            break
        left[mine] = room_left - job.devices
        cut += 1
    return cut


def policy_order(by_user: Mapping[str, list[PendingJob]], charge: Mapping[str, float],
                 weight: Mapping[str, float], room: Mapping[tuple[str, str], float],
                 starving: Iterable[PendingJob], config: PolicyConfig) -> list[PendingJob]:
    """All pending jobs in admission order. ``by_user`` lists are in own order (``sort_own_order``)
    and hold no starving job; ``charge`` is each user's charge before this pass; ``room`` is each
    (user, queue)'s fair share minus the devices they run. A job whose owner is still below their
    share comes before one whose owner has reached it, so admissions do not take a user past their
    share while someone under theirs waits (which preemption would then undo)."""
    spent, left = dict(charge), dict(room)
    order = sorted(starving, key=lambda j: (j.enqueued_at, j.id))
    for job in order:
        spent[job.owner_id] = spent.get(job.owner_id, 0.0) + job_charge(job, config)
        left[(job.owner_id, job.queue)] = left.get((job.owner_id, job.queue), 0.0) - job.devices
    # Each user's keys only grow along their own order, so merging the users by least key (a heap)
    # is the same as one sort by key: two C-level sorts instead of a heap operation per job.
    default = config.default_duration_s
    below: tuple[list[PendingJob], list[float]] = ([], [])
    reached: tuple[list[PendingJob], list[float]] = ([], [])
    for user, jobs in by_user.items():
        if len(jobs) == 1:  # most users in a big queue: no per-user lists to build
            job = jobs[0]
            mine = (user, job.queue)
            room_left = left.get(mine, 0.0)
            lists = reached if room_left <= 1e-9 else below
            lists[0].append(job)
            lists[1].append(spent.get(user, 0.0) / weight[user])
            left[mine] = room_left - job.devices
            continue
        w = weight[user]
        costs = [d if d is not None else default for d in map(_DURATION, jobs)]
        if any(j.devices != 1 for j in jobs):
            costs = list(map(mul, costs, map(_DEVICES, jobs)))
        keys = list(accumulate(costs, initial=spent.get(user, 0.0)))  # charge before each job
        keys.pop()
        if w != 1.0:
            keys = [k / w for k in keys]
        cut = _below_share_prefix(user, jobs, left)
        below[0].extend(jobs[:cut])
        below[1].extend(keys[:cut])
        reached[0].extend(jobs[cut:])
        reached[1].extend(keys[cut:])
    for jobs, keys in (below, reached):
        if jobs:
            ranks = sorted(range(len(jobs)), key=[j.enqueued_at for j in jobs].__getitem__)
            ranks.sort(key=keys.__getitem__)  # stable: equal keys stay longest-waiting first
            order.extend(itemgetter(*ranks)(jobs) if len(ranks) > 1 else jobs)
    return order
