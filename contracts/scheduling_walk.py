"""The admission walk of one policy pass: go down the policy order once, admit what can start now,
and give every other job its precise waiting reason (caps, fit, slots). Written as one flat loop with
per-user facts looked up once: it runs over every pending job on every pass."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING

from contracts.scheduling_fairness import daily_reasons

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, Plan, PolicyConfig, UserState
    from contracts.scheduling_placement import Placement


_UNKNOWN = "not looked up yet"
_QUEUE, _ID = attrgetter("queue"), attrgetter("id")


def queue_positions(order: Sequence[PendingJob]) -> dict[str, int]:
    """1-based position of each job within its queue, in policy order (one C-level zip when all
    jobs share a queue, the usual case)."""
    queues = set(map(_QUEUE, order))
    if len(queues) <= 1:
        return dict(zip(map(_ID, order), range(1, len(order) + 1)))
    seen: dict[str, int] = defaultdict(int)
    positions = {}
    for job in order:
        seen[job.queue] += 1
        positions[job.id] = seen[job.queue]
    return positions


class Walk:
    def __init__(self, placement: Placement, jobs_running: dict[str, int], devices: dict[tuple[str, str], float],
                 share: Mapping[tuple[str, str], float], users: Mapping[str, UserState], config: PolicyConfig,
                 result: Plan, now: datetime) -> None:
        self.placement, self.jobs_running, self.devices, self.share = placement, jobs_running, devices, share
        self.grace_cutoff = now - timedelta(seconds=config.preemption_grace_s)
        self.users, self.config, self.result = users, config, result
        self.admitted: list[tuple[PendingJob, str]] = []  # (job, worker), in admission order
        self.blocked: list[PendingJob] = []  # waiting only for a slot, in policy order
        self.no_estimate: set[str] = set()  # daily cap or no fitting worker

    def _limits(self, user: str) -> tuple[int, str | None, str | None]:
        state = self.users.get(user)
        if state is None:
            return (self.config.default_max_running, None, None)
        cap = state.max_running if state.max_running is not None else self.config.default_max_running
        return (cap, *daily_reasons(state))

    def run(self, order: Sequence[PendingJob], starving: Mapping[str, PendingJob]) -> None:
        placement, jobs_running, result = self.placement, self.jobs_running, self.result
        reasons = result.waiting_reasons
        misfit, take, no_estimate, blocked = placement.misfit_reason, placement.take, self.no_estimate, self.blocked
        open_in, misfits = placement.open_in, placement.misfits
        starving_why = f"starving: waited over {self.config.starvation_s:g} s"
        gang_why = f"a gang of a user below their share, waited over {self.config.preemption_grace_s:g} s"
        limits: dict[str, tuple[int, str | None, str | None]] = {}
        ahead: dict[str, int] = defaultdict(int)
        for job in order:
            queue, user = job.queue, job.owner_id
            lim = limits.get(user)
            if lim is None:
                lim = limits[user] = self._limits(user)
            running = jobs_running[user]
            if running >= lim[0]:
                reasons[job.id] = f"user cap: {running} jobs running (max_running_jobs={lim[0]})"
                continue
            why = (lim[1] if queue == "gpu" else None) or (lim[2] if job.teacher else None)
            if why is None:
                why = misfits.get((queue, job.memory_bytes, job.devices), _UNKNOWN)
                if why is _UNKNOWN:
                    why = misfit(job)
            if why is not None:
                reasons[job.id] = why
                no_estimate.add(job.id)
                continue
            if open_in.get(queue):  # a worker of the queue has a free slot (a saturated pool skips this)
                worker = take(job)
                if worker is not None:
                    self._admit(job, worker)
                    continue
            n = ahead[queue]
            ahead[queue] = n + 1
            blocked.append(job)
            if job.id in starving:
                reasons[job.id] = self._slot_reason(job, n, placement.hold_for(job), starving_why)
            elif job.devices == 1:
                reasons[job.id] = f"waiting for a free slot: {n} job(s) ahead in queue '{queue}'"
            else:
                held = placement.hold_for(job) if self._gang_reserves(job) else None
                reasons[job.id] = self._slot_reason(job, n, held, gang_why)

    def _admit(self, job: PendingJob, worker: str) -> None:
        from contracts.scheduling import Admission

        self.result.admissions.append(Admission(job.id, worker))
        self.admitted.append((job, worker))
        self.jobs_running[job.owner_id] += 1
        self.devices[(job.owner_id, job.queue)] += job.devices

    def _gang_reserves(self, job: PendingJob) -> bool:
        """A gang that waited past the grace period, of a user below their share, holds a worker too:
        otherwise single-device jobs take every slot that frees and the gang waits until it starves."""
        key = (job.owner_id, job.queue)
        return job.enqueued_at < self.grace_cutoff and self.devices.get(key, 0.0) < self.share.get(key, 0.0) - 1e-9

    def _slot_reason(self, job: PendingJob, ahead: int, held: str | None, why: str) -> str:
        if held is not None:
            return f"worker {held} is held for it until {job.devices} slot(s) free there ({why})"
        if job.devices == 1:
            return f"waiting for a free slot: {ahead} job(s) ahead in queue '{job.queue}'"
        return f"waiting for {job.devices} free slots on one worker: {ahead} job(s) ahead in queue '{job.queue}'"
