"""The two policies the pool simulation compares on one trace.

``FairPolicy`` is the product's: it calls ``contracts.scheduling.plan`` (with_positions=False, with_estimates=False) with the
pool's facts, as the dispatcher does. To keep a pass cheap it hands ``plan`` each user's first
``PER_USER`` pending jobs in their own order (FIFO here: all priorities are 0): about one slot frees per
pass, so a user's deeper jobs could only matter as backfill when all of their first ones do not fit.
``FifoPolicy`` is the baseline: jobs in arrival order, each to the first free worker it fits (jobs
that do not fit now are passed over), no preemption.
"""
from __future__ import annotations

import bisect
import itertools
from datetime import timedelta

from bench.pool_sim_engine import Engine
from bench.pool_sim_trace import EPOCH, SimJob
from contracts.scheduling import PendingJob, PolicyConfig, RunningJob, UserState, WorkerInfo, plan

PER_USER = 4
SIM_CONFIG = PolicyConfig(default_max_running=16, preemption=True, preemption_grace_s=300.0,
                          starvation_s=3600.0, half_life_s=86400.0, default_duration_s=1800.0)


def at(t: float):
    return EPOCH + timedelta(0, t)


class FairPolicy:
    name = "fair"

    def __init__(self, workers: list[WorkerInfo], config: PolicyConfig = SIM_CONFIG) -> None:
        self.workers, self.config = workers, config
        self.queues: dict[str, list[tuple[float, str]]] = {}  # user -> [(arrival, job id)], sorted
        self.pending: dict[str, PendingJob] = {}
        self.jobs: dict[str, SimJob] = {}
        self.running: dict[str, tuple[int, RunningJob]] = {}  # job -> (run token, its RunningJob)
        self.states: dict[str, tuple[UserState, float]] = {}

    def add(self, job: SimJob, remaining_s: float) -> None:
        self.jobs[job.id] = job
        self.pending[job.id] = PendingJob(id=job.id, owner_id=job.owner, queue="gpu", priority=0,
                                          enqueued_at=at(job.arrival_s), memory_bytes=job.memory_bytes,
                                          devices=job.devices, estimated_duration_s=remaining_s)
        bisect.insort(self.queues.setdefault(job.owner, []), (job.arrival_s, job.id))

    def started(self, job: SimJob) -> None:
        queue = self.queues[job.owner]
        queue.remove((job.arrival_s, job.id))
        if not queue:
            del self.queues[job.owner]
        del self.pending[job.id]

    def decide(self, sim: Engine, t: float) -> tuple[list[tuple[SimJob, str]], list[str]]:
        pending = [self.pending[jid] for queue in self.queues.values() for _, jid in queue[:PER_USER]]
        running = self._running(sim)
        active = set(self.queues) | {r.owner_id for r in running}
        users = {u: self._state(sim, u, t) for u in active}
        sim.usage_changed.clear()
        p = plan(pending=pending, running=running, workers=self.workers, users=users, now=at(t),
                 config=self.config, with_positions=False, with_estimates=False)
        return [(self.jobs[a.job_id], a.worker_id) for a in p.admissions], p.preemptions

    def _state(self, sim: Engine, user: str, t: float) -> UserState:
        """A user's standing, recomputed when their usage changed or an hour passed (decay over an hour
        at a one-day half-life is under 3%)."""
        cached = self.states.get(user)
        if cached is None or user in sim.usage_changed or t - cached[1] > 3600:
            cached = self.states[user] = (UserState(decayed_gpu_s=sim.decayed_usage(user, t)), t)
        return cached[0]

    def _running(self, sim: Engine) -> list[RunningJob]:
        """RunningJob per run segment, built once and kept while the segment lasts."""
        out = []
        for job_id, run in sim.running.items():
            cached = self.running.get(job_id)
            if cached is None or cached[0] != run.token:
                cached = self.running[job_id] = (run.token, RunningJob(
                    id=job_id, owner_id=run.job.owner, queue="gpu", worker_id=run.worker, devices=run.job.devices,
                    started_at=at(run.start), estimated_finish=at(run.start + run.length)))
            out.append(cached[1])
        if len(self.running) > 4 * len(sim.running) + 64:
            self.running = {job_id: self.running[job_id] for job_id in sim.running}
        return out


class FifoPolicy:
    name = "fifo"

    def __init__(self, workers: list[WorkerInfo]) -> None:
        self.workers = workers
        self.queue: list[SimJob | None] = []
        self.index: dict[str, int] = {}
        self.head = 0

    def add(self, job: SimJob, remaining_s: float) -> None:
        self.index[job.id] = len(self.queue)
        self.queue.append(job)

    def started(self, job: SimJob) -> None:
        self.queue[self.index.pop(job.id)] = None

    def decide(self, sim: Engine, t: float) -> tuple[list[tuple[SimJob, str]], list[str]]:
        free = dict(sim.free)
        left = sum(free.values())
        out = []
        while self.head < len(self.queue) and self.queue[self.head] is None:
            self.head += 1
        for job in itertools.islice(self.queue, self.head, None):
            if left == 0:
                break
            if job is None:
                continue
            worker = next((w.id for w in self.workers
                           if w.memory_bytes >= job.memory_bytes and free[w.id] >= job.devices), None)
            if worker is not None:
                free[worker] -= job.devices
                left -= job.devices
                out.append((job, worker))
        return out, []
