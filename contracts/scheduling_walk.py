"""The admission walk of one policy pass: go down the policy order once, admit what can start now,
and give every other job its precise waiting reason (caps, fit, slots). Written as one flat loop with
per-user facts looked up once: it runs over every pending job on every pass."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from contracts.scheduling_fairness import daily_reasons

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, Plan, PolicyConfig, UserState
    from contracts.scheduling_placement import Placement


class Walk:
    def __init__(self, placement: Placement, jobs_running: dict[str, int], devices: dict[tuple[str, str], float],
                 users: Mapping[str, UserState], config: PolicyConfig, result: Plan, with_positions: bool) -> None:
        self.placement, self.jobs_running, self.devices = placement, jobs_running, devices
        self.users, self.config, self.result, self.with_positions = users, config, result, with_positions
        self.admitted: list[tuple[PendingJob, str]] = []  # (job, worker), in admission order
        self.blocked: list[PendingJob] = []  # waiting only for a slot, in policy order
        self.no_estimate: set[str] = set()  # daily cap or no fitting worker

    def _limits(self, user: str) -> tuple[int, str | None, str | None]:
        from contracts.scheduling import UserState

        state = self.users.get(user) or UserState()
        cap = state.max_running if state.max_running is not None else self.config.default_max_running
        return (cap, *daily_reasons(state))

    def run(self, order: Sequence[PendingJob], starving: Mapping[str, PendingJob]) -> None:
        placement, jobs_running, result = self.placement, self.jobs_running, self.result
        reasons, positions, with_positions = result.waiting_reasons, result.queue_positions, self.with_positions
        misfit, take, no_estimate, blocked = placement.misfit_reason, placement.take, self.no_estimate, self.blocked
        limits: dict[str, tuple[int, str | None, str | None]] = {}
        seen: dict[str, int] = defaultdict(int)
        ahead: dict[str, int] = defaultdict(int)
        for job in order:
            queue, user = job.queue, job.owner_id
            if with_positions:
                seen[queue] += 1
                positions[job.id] = seen[queue]
            lim = limits.get(user)
            if lim is None:
                lim = limits[user] = self._limits(user)
            running = jobs_running[user]
            if running >= lim[0]:
                reasons[job.id] = f"user cap: {running} jobs running (max_running_jobs={lim[0]})"
                continue
            why = (lim[1] if queue == "gpu" else None) or (lim[2] if job.teacher else None) or misfit(job)
            if why is not None:
                reasons[job.id] = why
                no_estimate.add(job.id)
                continue
            worker = take(job)
            if worker is not None:
                self._admit(job, worker)
                continue
            n = ahead[queue]
            ahead[queue] = n + 1
            blocked.append(job)
            if job.devices == 1 and job.id not in starving:
                reasons[job.id] = f"waiting for a free slot: {n} job(s) ahead in queue '{queue}'"
            else:
                reasons[job.id] = self._slot_reason(job, n, placement.hold_for(job) if job.id in starving else None)

    def _admit(self, job: PendingJob, worker: str) -> None:
        from contracts.scheduling import Admission

        self.result.admissions.append(Admission(job.id, worker))
        self.admitted.append((job, worker))
        self.jobs_running[job.owner_id] += 1
        self.devices[(job.owner_id, job.queue)] += job.devices

    def _slot_reason(self, job: PendingJob, ahead: int, held: str | None) -> str:
        if held is not None:
            return (f"starving (waited over {self.config.starvation_s:g} s): worker {held} is held for it until "
                    f"{job.devices} slot(s) free there")
        if job.devices == 1:
            return f"waiting for a free slot: {ahead} job(s) ahead in queue '{job.queue}'"
        return f"waiting for {job.devices} free slots on one worker: {ahead} job(s) ahead in queue '{job.queue}'"
