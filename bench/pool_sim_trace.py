"""The pool simulation's inputs: users with Zipf-skewed demand, a job trace, the workers, and the big
single-pass scene (10,000 pending jobs, 500 workers) that times one ``plan`` call.

Demand: user of rank r (1-based) submits a job with probability proportional to 1/r (Zipf, s=1); the
top 1% of users by rank are *heavy* (with 1,000 users the top 10 submit ~39% of the jobs), the rest
*light*. Jobs: run time log-uniform between 1 minute and 2 hours; 30% need 60 GiB per device (only
the 80 GiB GPUs take them), the rest 20 GiB; 5% are gangs of 2 devices. Arrivals are Poisson at a
rate that offers ``load`` times the pool's device-seconds (1.02: slightly oversubscribed).
"""
from __future__ import annotations

import bisect
import collections
import itertools
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from contracts.scheduling import PendingJob, RunningJob, WorkerInfo
from contracts.scheduling_fairness import water_fill

GIB = 1024 ** 3
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
MIN_RUN_S, MAX_RUN_S = 60.0, 7200.0
BIG_SHARE, GANG_SHARE = 0.30, 0.05
HEAVY_FRACTION = 0.01
SLOTS_PER_WORKER = 4


@dataclass(frozen=True)
class SimJob:
    id: str
    owner: str
    arrival_s: float
    run_s: float
    devices: int
    memory_bytes: int


def user_ids(n: int) -> list[str]:
    return [f"u{r:05d}" for r in range(1, n + 1)]


def heavy_users(users: list[str]) -> set[str]:
    return set(users[:max(1, round(len(users) * HEAVY_FRACTION))])


def workers_for(gpus: int) -> list[WorkerInfo]:
    """Three quarters of the GPUs have 80 GiB, the rest 40 GiB, in hosts of 4 (a last host may be smaller)."""
    big = gpus * 3 // 4
    out = []
    for size, count in ((80, big), (40, gpus - big)):
        for i in range(0, count, SLOTS_PER_WORKER):
            out.append(WorkerInfo(id=f"w{size}-{i // SLOTS_PER_WORKER:03d}", queues=frozenset({"gpu"}),
                                  slots=min(SLOTS_PER_WORKER, count - i), memory_bytes=size * GIB))
    return out


def _job_shape(rng: random.Random) -> tuple[float, int, int]:
    run_s = math.exp(rng.uniform(math.log(MIN_RUN_S), math.log(MAX_RUN_S)))
    devices = 2 if rng.random() < GANG_SHARE else 1
    memory = (60 if rng.random() < BIG_SHARE else 20) * GIB
    return run_s, devices, memory


def mean_device_seconds() -> float:
    mean_run = (MAX_RUN_S - MIN_RUN_S) / math.log(MAX_RUN_S / MIN_RUN_S)
    return mean_run * (1 + GANG_SHARE)


def trace(seed: int, users: list[str], gpus: int, jobs: int, load: float = 1.02) -> list[SimJob]:
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1.0 / r for r in range(1, len(users) + 1)))
    rate = load * gpus / mean_device_seconds()  # arrivals per second
    t, out = 0.0, []
    for i in range(jobs):
        t += rng.expovariate(rate)
        owner = users[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]
        run_s, devices, memory = _job_shape(rng)
        out.append(SimJob(f"j{i:06d}", owner, t, run_s, devices, memory))
    return out


def _fair_owners(queued: list[PendingJob], busy: int, owner, rng: random.Random) -> list[str]:
    """Owners of the running jobs, about as a fair-share pool would have them: each user with work
    runs the whole part of their equal share of the busy devices, the rest go by Zipf demand."""
    demand = collections.Counter(j.owner_id for j in queued)
    shares = water_fill(demand, dict.fromkeys(demand, 1.0), busy)
    owners = [u for u, n in shares.items() for _ in range(int(n))]
    owners += [owner() for _ in range(busy - len(owners))]
    rng.shuffle(owners)
    return owners


def pass_scene(seed: int, pending: int = 10_000, workers: int = 500, users: int = 1000, free: int = 40,
               queued_over_s: float = 2700.0,
               ) -> tuple[list[PendingJob], list[RunningJob], list[WorkerInfo], datetime]:
    """A busy big pool: ``workers`` hosts of 4 GPUs, all slots but ``free`` running (owners near their
    fair shares, as under this policy), ``pending`` jobs from Zipf-skewed users, queued over the last
    ``queued_over_s`` (45 minutes: past the preemption grace, short of starvation)."""
    rng = random.Random(seed)
    fleet = workers_for(workers * SLOTS_PER_WORKER)
    names = user_ids(users)
    cumulative = list(itertools.accumulate(1.0 / r for r in range(1, users + 1)))
    now = EPOCH + timedelta(days=1)

    def owner() -> str:
        return names[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]

    queued = []
    for i in range(pending):
        run_s, devices, memory = _job_shape(rng)
        queued.append(PendingJob(id=f"p{i}", owner_id=owner(), queue="gpu", priority=0, devices=devices,
                                 memory_bytes=memory, estimated_duration_s=run_s,
                                 enqueued_at=now - timedelta(seconds=rng.uniform(0, queued_over_s))))
    busy = sum(w.slots for w in fleet) - free
    owners = _fair_owners(queued, busy, owner, rng)
    running = []
    for n, host in enumerate(h for h in fleet for _ in range(h.slots)):
        if n >= busy:
            break
        started = now - timedelta(seconds=rng.uniform(0, MAX_RUN_S))
        finish = started + timedelta(seconds=rng.uniform(MIN_RUN_S, MAX_RUN_S))
        running.append(RunningJob(id=f"r{n}", owner_id=owners[n], queue="gpu", worker_id=host.id,
                                  started_at=started, estimated_finish=finish))
    return queued, running, fleet, now
