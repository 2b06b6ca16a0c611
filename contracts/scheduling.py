"""The pool's scheduling policy, pure: no database, no clock, no Celery.

``plan`` takes the pending jobs, the running (or admitted) jobs, the registered workers, the users'
standing and ``now``; it returns which jobs to admit to which worker, which running jobs to preempt,
why each job that waits is waiting, and every pending job's queue position and estimated start.
``worker.dispatcher`` feeds it the database's facts; ``bench/pool_sim.py`` drives it in a simulation;
tests call it with plain values.

One pass:

1. Order (``scheduling_fairness.policy_order``). Starving jobs first, FIFO; then weighted fair share:
   the user with the least ``(decayed_gpu_s + expected GPU-seconds of their running jobs + of the jobs
   this pass already ordered for them) / weight`` gives their next job (priority desc, then FIFO);
   jobs of users still below their fair share of the queue's devices (weighted water-filling over
   the users with work there) go before those of users who reached it, so admissions do not build
   up what preemption would have to take back.
2. Walk the order. A job over one of its owner's caps (concurrent jobs, counting running and admitted;
   daily GPU-hours for "gpu" jobs; daily teacher money for ``teacher`` jobs) or fitting no registered
   worker waits with a precise reason. Otherwise it goes to a worker that can start it now
   (``scheduling_placement``: base model on hand, then best fit, then id); when none can, later jobs
   may still start (backfill), except on a worker held for a starving job, or for a gang (devices > 1)
   of a user below their share that waited past ``preemption_grace_s`` (else single-device jobs would
   take every slot that frees and the gang would wait until it starves).
3. Preempt (``scheduling_preemption``) for blocked jobs of users who get no service (below).
4. Queue positions of the jobs still waiting (cheap, every pass the dispatcher makes) and, when
   ``with_estimates``, their estimated starts (``scheduling_estimates``: a replay of the order onto the
   pool's slots that costs as much as the pass itself at 10,000 pending jobs, so the dispatcher
   refreshes them on a slower cadence, ``LORAFLEET_ESTIMATE_INTERVAL``).

Starvation and its bound. A job is *starving* once it has waited longer than ``starvation_s`` and its
owner runs below their fair share of its queue (weighted water-filling of the queue's devices over
the users with work there). The owner condition matters in an oversubscribed pool: a heavy user's
backlog is always older than ``starvation_s``, and letting it all jump ahead would turn fair share
into FIFO; such a job waits for its owner's own earlier work, not because the policy passes it over.
A starving job goes ahead of fair-share order (FIFO among starving jobs) and, if it cannot start now,
holds one fitting worker (the one whose running jobs are expected to free its devices first):
nothing else is placed there, so its slots only gather. Bound: a job that fits some worker, is under
no cap, and whose owner runs below their share starts within ``starvation_s`` + the time until the
held worker frees enough slots, i.e. the longest remaining run of the jobs there (or, with
preemption, their next checkpoint), plus the time the starving jobs ahead of it (FIFO) take the same
way.

Preemption serves only a user who runs nothing in the job's queue (so below their share), whose job
waited past ``preemption_grace_s`` and cannot start now; it never moves a victim's owner below their
share and never serves a job of the victim's own user. Jobs already told to stop are passed in with
``stopping=True``: their devices count as on their way, nothing more is preempted for the same need.

Charges: ``UserState.decayed_gpu_s`` should hold finished (or paused) work only, decayed with
``decay``; a running job is charged its expected device-seconds (``estimated_finish - started_at``,
else ``default_duration_s``) for as long as it runs. Estimated starts are whole minutes from ``now``.
The input dataclasses use ``__slots__``: a pass walks 10,000 of them in policy order, and compact
objects halve its cache misses.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.scheduling_estimates import estimated_starts
from contracts.scheduling_fairness import (
    policy_order,
    running_charge,
    sort_own_order,
    water_fill,
)
from contracts.scheduling_placement import Placement
from contracts.scheduling_preemption import Preemptor, preempt
from contracts.scheduling_walk import Walk, queue_positions


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The policy's knobs (the dispatcher builds it from ``Settings``)."""

    default_max_running: int = 2          # concurrent jobs per user when the user has no cap of their own
    preemption: bool = True
    preemption_grace_s: float = 300.0     # an under-share user's job waits this long before preempting anyone
    starvation_s: float = 3600.0          # a job waiting longer than this goes ahead of fair-share order (FIFO)
    half_life_s: float = 86400.0          # decay of past GPU-seconds in fair share
    default_duration_s: float = 3600.0    # a job's expected run time when nothing better is known


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A registered worker that is alive and taking jobs (draining or lost workers are left out)."""

    id: str
    queues: frozenset[str]                # pools it serves: "gpu", "io"
    slots: int                            # jobs (devices) it runs at once
    memory_bytes: int                     # per device; 0 = not known (fits only jobs that need 0)
    base_models: frozenset[str] = frozenset()  # already materialised there (preferred on a tie)


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting for admission."""

    id: str
    owner_id: str
    queue: str                            # "gpu" or "io"
    priority: int                         # within one user's jobs: higher first
    enqueued_at: datetime                 # when it started waiting (FIFO, aging)
    memory_bytes: int = 0                 # per device
    devices: int = 1
    base_model: str | None = None
    estimated_duration_s: float | None = None  # None: config.default_duration_s
    teacher: bool = False                 # spends teacher money (a generation job): the teacher cap applies


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding slots on a worker: running, or admitted and not yet claimed."""

    id: str
    owner_id: str
    queue: str
    worker_id: str
    devices: int = 1
    started_at: datetime | None = None
    estimated_finish: datetime | None = None
    preemptible: bool = True              # resumes exactly (checkpoints / chunks) and is not being stopped
    priority: int = 0
    stopping: bool = False                # told to pause by an earlier preemption: its devices are on their way


@dataclass(frozen=True, slots=True)
class UserState:
    """A user's standing: share weight (>0), decayed GPU-seconds, caps and what today already used."""

    weight: float = 1.0
    decayed_gpu_s: float = 0.0
    max_running: int | None = None        # None: config.default_max_running
    gpu_hours_per_day: float | None = None
    gpu_hours_today: float = 0.0
    teacher_usd_per_day: float | None = None
    teacher_usd_today: float = 0.0


@dataclass(frozen=True, slots=True)
class Admission:
    job_id: str
    worker_id: str


@dataclass
class Plan:
    admissions: list[Admission] = field(default_factory=list)
    preemptions: list[str] = field(default_factory=list)          # running job ids to pause and re-queue
    waiting_reasons: dict[str, str] = field(default_factory=dict)  # every pending job not admitted
    queue_positions: dict[str, int] = field(default_factory=dict)  # 1-based, per queue, admission order,
    # of the jobs still waiting after this pass's admissions
    estimated_starts: dict[str, datetime | None] = field(default_factory=dict)


def decay(value: float, elapsed_s: float, half_life_s: float) -> float:
    """``value`` after ``elapsed_s`` of exponential decay with the given half-life (for callers that
    keep decayed GPU-seconds: ``decayed = decay(decayed, now - then, half_life) + new_gpu_s``)."""
    if elapsed_s <= 0:
        return value
    if half_life_s <= 0:
        return 0.0
    return value * 0.5 ** (elapsed_s / half_life_s)


_NOBODY = UserState()


def plan(*, pending: Sequence[PendingJob], running: Sequence[RunningJob], workers: Sequence[WorkerInfo],
         users: Mapping[str, UserState], now: datetime, config: PolicyConfig = PolicyConfig(),
         with_positions: bool = True, with_estimates: bool = True) -> Plan:
    """One policy pass. ``with_estimates=False`` leaves ``estimated_starts`` empty;
    ``with_positions=False`` leaves ``queue_positions`` empty too (the simulation's inner loop)."""
    result = Plan()
    placement = Placement(workers, running, now, config)
    jobs_running: dict[str, int] = defaultdict(int)
    devices: dict[tuple[str, str], float] = defaultdict(float)  # (user, queue) -> devices not stopping
    charge: dict[str, float] = {u: s.decayed_gpu_s for u, s in users.items()}
    for r in running:
        jobs_running[r.owner_id] += 1
        if not r.stopping:
            devices[(r.owner_id, r.queue)] += r.devices
        charge[r.owner_id] = charge.get(r.owner_id, 0.0) + running_charge(r, config)
    by_user: dict[str, list[PendingJob]] = {}
    for job in pending:
        mine = by_user.get(job.owner_id)
        if mine is None:
            by_user[job.owner_id] = [job]
        else:
            mine.append(job)
    per_user = {u: len(js) for u, js in by_user.items()}
    share = _fair_shares(by_user, devices, users, placement)
    starving = _starving(pending, devices, share, now, config)
    for jobs in by_user.values():
        if len(jobs) > 1:
            sort_own_order(jobs)
        if starving:
            jobs[:] = [j for j in jobs if j.id not in starving]
    weight = {u: max(users.get(u, _NOBODY).weight, 1e-9) for u in by_user}
    room = {key: n - devices.get(key, 0.0) for key, n in share.items()}
    order = policy_order(by_user, charge, weight, room, starving.values(), config)
    walk = Walk(placement, jobs_running, devices, share, users, config, result, now)
    walk.run(order, starving)
    if config.preemption and walk.blocked:
        preemptor = Preemptor(running, placement, share, devices)
        result.preemptions = preempt(walk.blocked, preemptor, now, config, result.waiting_reasons)
    if with_positions or with_estimates:
        placed = {job.id for job, _ in walk.admitted}
        waiting = [j for j in order if j.id not in placed] if placed else order
        result.queue_positions = queue_positions(waiting)  # admitted jobs are no longer in line
    if with_estimates:
        result.estimated_starts = estimated_starts(order, walk.admitted, running, workers, users, now, config,
                                                   walk.no_estimate, per_user)
    return result


def _fair_shares(by_user: Mapping[str, list[PendingJob]], devices: Mapping[tuple[str, str], float],
                 users: Mapping[str, UserState], placement: Placement) -> dict[tuple[str, str], float]:
    """Each (user, queue)'s fair share of the queue's devices, water-filled over running + pending demand."""
    demand: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (user, queue), n in devices.items():
        demand[queue][user] += n
    for user, jobs in by_user.items():
        for job in jobs:
            demand[job.queue][user] += job.devices
    share = {}
    for queue, wants in demand.items():
        weights = {u: max(users.get(u, _NOBODY).weight, 1e-9) for u in wants}
        for user, n in water_fill(wants, weights, placement.slots(queue)).items():
            share[(user, queue)] = n
    return share


def _starving(pending: Sequence[PendingJob], devices: Mapping[tuple[str, str], float],
              share: Mapping[tuple[str, str], float], now: datetime, config: PolicyConfig,
              ) -> dict[str, PendingJob]:
    """Jobs that waited past ``starvation_s`` whose owner runs below their share (module doc)."""
    cutoff = now - timedelta(seconds=config.starvation_s)
    old = [j for j in pending if j.enqueued_at < cutoff]
    return {j.id: j for j in old
            if devices.get((j.owner_id, j.queue), 0.0) < share.get((j.owner_id, j.queue), 0.0)}
