"""The pool simulation's clock and state: arrivals, runs, finishes, preemptions, and what the metrics
need (first-start waits, busy device-seconds, fairness samples). A policy object decides at each
pass; the engine applies its admissions and preemptions.

Passes: at most one per simulated minute (``TICK_S``), at the first tick after an arrival or a job's
end, and only while work waits and a device is free, or ``PERIODIC_S`` after the last pass (so
grace periods and starvation are noticed when nothing frees up). A preempted job stops at once and
loses the work since its last checkpoint (every
``CHECKPOINT_S`` of its run); it is re-queued with its original arrival time, the rest of its work.
"""
from __future__ import annotations

import heapq
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from bench.pool_sim_trace import SimJob
from contracts.scheduling import WorkerInfo, decay

TICK_S, PERIODIC_S, CHECKPOINT_S, SAMPLE_S = 60.0, 300.0, 600.0, 600.0


class Policy(Protocol):
    name: str

    def add(self, job: SimJob, remaining_s: float) -> None: ...
    def started(self, job: SimJob) -> None: ...
    def decide(self, sim: Engine, t: float) -> tuple[list[tuple[SimJob, str]], list[str]]: ...


@dataclass
class Run:
    job: SimJob
    worker: str
    start: float
    length: float
    token: int


@dataclass
class Stats:
    waits: dict[str, float] = field(default_factory=dict)  # job -> first start - arrival
    busy_device_s: float = 0.0  # inside the arrival window
    preemptions: int = 0
    lost_device_s: float = 0.0
    passes: int = 0
    jain_samples: list[float] = field(default_factory=list)


class Engine:
    def __init__(self, trace: list[SimJob], workers: list[WorkerInfo], policy: Policy, half_life_s: float) -> None:
        self.trace, self.workers, self.policy, self.half_life_s = trace, workers, policy, half_life_s
        self.free = {w.id: w.slots for w in workers}
        self.free_total = sum(self.free.values())
        self.remaining = {j.id: j.run_s for j in trace}
        self.running: dict[str, Run] = {}
        self.pending_devices: dict[str, int] = defaultdict(int)
        self.running_devices: dict[str, int] = defaultdict(int)
        self.usage: dict[str, tuple[float, float]] = {}  # user -> (decayed device-seconds, as of)
        self.usage_changed: set[str] = set()  # since the policy last looked
        self.window = (trace[0].arrival_s, trace[-1].arrival_s)
        self.stats = Stats()
        self._events: list[tuple[float, int, str]] = []
        self.pending_total = 0
        self._token = 0

    def decayed_usage(self, user: str, t: float) -> float:
        value, then = self.usage.get(user, (0.0, t))
        return decay(value, t - then, self.half_life_s)

    def run(self) -> Stats:
        arrivals, i, t, last_pass, next_sample = self.trace, 0, 0.0, -math.inf, self.window[0]
        while i < len(arrivals) or self._events or self.pending_total:
            nxt = min(arrivals[i].arrival_s if i < len(arrivals) else math.inf,
                      self._events[0][0] if self._events else math.inf)
            if self.pending_total:
                nxt = min(nxt, last_pass + PERIODIC_S)
            if nxt == math.inf:
                raise RuntimeError("jobs wait that no worker can ever run")
            t = max(t + TICK_S, math.ceil(nxt / TICK_S) * TICK_S)
            while i < len(arrivals) and arrivals[i].arrival_s <= t:
                self._enqueue(arrivals[i], arrivals[i].run_s)
                i += 1
            while self._events and self._events[0][0] <= t:
                end, token, job_id = heapq.heappop(self._events)
                run = self.running.get(job_id)
                if run is not None and run.token == token:
                    self._end(run, end, kept=run.length)
            if self.pending_total and (self.free_total > 0 or t - last_pass >= PERIODIC_S):
                admissions, preemptions = self.policy.decide(self, t)
                self.stats.passes += 1
                last_pass = t
                for job_id in preemptions:
                    self._preempt(self.running[job_id], t)
                for job, worker in admissions:
                    self._start(job, worker, t)
            if t >= next_sample and self.window[0] <= t <= self.window[1] and self.pending_total:
                self.stats.jain_samples.append(self._jain())
                next_sample = t + SAMPLE_S
        return self.stats

    def _enqueue(self, job: SimJob, remaining_s: float) -> None:
        self.pending_devices[job.owner] += job.devices
        self.pending_total += 1
        self.policy.add(job, remaining_s)

    def _start(self, job: SimJob, worker: str, t: float) -> None:
        assert self.free[worker] >= job.devices, (job, worker)
        self.free[worker] -= job.devices
        self.free_total -= job.devices
        self.pending_devices[job.owner] -= job.devices
        self.pending_total -= 1
        self.running_devices[job.owner] += job.devices
        self.stats.waits.setdefault(job.id, t - job.arrival_s)
        self._token += 1
        run = Run(job, worker, t, self.remaining[job.id], self._token)
        self.running[job.id] = run
        heapq.heappush(self._events, (t + run.length, run.token, job.id))
        self.policy.started(job)

    def _end(self, run: Run, t: float, kept: float) -> None:
        """A run segment ends at ``t`` (finished, or preempted keeping ``kept`` seconds of work)."""
        job, ran = run.job, t - run.start
        del self.running[job.id]
        self.free[run.worker] += job.devices
        self.free_total += job.devices
        self.running_devices[job.owner] -= job.devices
        self.remaining[job.id] -= kept
        self.usage[job.owner] = (self.decayed_usage(job.owner, t) + job.devices * ran, t)
        self.usage_changed.add(job.owner)
        lo, hi = max(run.start, self.window[0]), min(t, self.window[1])
        self.stats.busy_device_s += job.devices * max(0.0, hi - lo)
        self.stats.lost_device_s += job.devices * (ran - kept)

    def _preempt(self, run: Run, t: float) -> None:
        ran = t - run.start
        self._end(run, t, kept=math.floor(ran / CHECKPOINT_S) * CHECKPOINT_S)
        self.stats.preemptions += 1
        self._enqueue(run.job, self.remaining[run.job.id])

    def _jain(self) -> float:
        """Jain's index of x = devices running / weighted max-min fair share, over users with work."""
        from contracts.scheduling_fairness import water_fill

        demand = {u: self.running_devices[u] + self.pending_devices[u] for u in
                  set(self.running_devices) | set(self.pending_devices)}
        demand = {u: d for u, d in demand.items() if d > 0}
        fair = water_fill(demand, dict.fromkeys(demand, 1.0), sum(w.slots for w in self.workers))
        xs = [self.running_devices[u] / fair[u] for u in demand if fair.get(u)]
        total, squares = sum(xs), sum(x * x for x in xs)
        return total * total / (len(xs) * squares) if squares else 1.0
