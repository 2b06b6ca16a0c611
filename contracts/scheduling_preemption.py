"""Preemption for one policy pass: a user below their fair share whose job has waited past the grace
period and cannot start takes devices back from users above theirs.

Rules: the waiting user runs below their share of the queue and the job fits a worker once the
victims' devices are freed; a victim is preemptible, not already stopping, belongs to another user who
runs above their share and stays at or above it after losing the victim; on the chosen worker the
fewest victims are taken, the most recently started first (least work lost); devices already on
their way back (jobs told to stop in an earlier pass) are spent before anything new is preempted.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob
    from contracts.scheduling_placement import Placement

class Preemptor:
    def __init__(self, running: Iterable[RunningJob], placement: Placement,
                 share: Mapping[tuple[str, str], float], devices: dict[tuple[str, str], float]) -> None:
        self.placement, self.share, self.devices = placement, share, devices
        self.incoming: dict[str, int] = defaultdict(int)  # worker -> devices of jobs already stopping
        self.victims: dict[str, list[RunningJob]] = defaultdict(list)  # worker -> most recent start first
        for r in running:
            if r.stopping:
                self.incoming[r.worker_id] += r.devices
            elif r.preemptible:
                self.victims[r.worker_id].append(r)
        for wid, jobs in self.victims.items():  # not yet started (admitted, unclaimed) counts as newest
            started = sorted((r for r in jobs if r.started_at is not None), key=lambda r: r.started_at,
                             reverse=True)
            self.victims[wid] = [r for r in jobs if r.started_at is None] + started
        self.chosen: list[str] = []
        self._failed: dict[tuple[str, str, int], int] = {}  # (user, queue, devices) -> least memory failed

    def below_share(self, user: str, queue: str) -> bool:
        return self.devices.get((user, queue), 0) < self.share.get((user, queue), 0.0)

    def _spare(self, victim: RunningJob) -> bool:
        """The victim's owner runs above their share and keeps at least it without the victim."""
        key = (victim.owner_id, victim.queue)
        return self.devices.get(key, 0) - victim.devices >= self.share.get(key, 0.0)

    def consider(self, job: PendingJob) -> str | None:
        """Free devices for a waiting job if the rules allow; the job's waiting reason, or None."""
        key = (job.owner_id, job.queue, job.devices)
        if job.memory_bytes >= self._failed.get(key, 1 << 62) or not self.below_share(job.owner_id, job.queue):
            return None
        best: tuple[int, str, list[RunningJob]] | None = None
        for worker in self.placement.fitting(job):
            wid = worker.id
            if wid in self.placement.held:
                continue
            have = self.placement.free[wid] + self.incoming[wid]
            if have >= job.devices:
                return self._claimed(job, wid, [])
            taken = self._victims_on(wid, job, job.devices - have)
            if taken is not None and (best is None or len(taken) < len(best[2])):
                best = (len(taken), wid, taken)
        if best is None:
            self._failed[key] = job.memory_bytes
            return None
        _, wid, taken = best
        for victim in taken:
            self.victims[wid].remove(victim)
            self.devices[(victim.owner_id, victim.queue)] -= victim.devices
            self.chosen.append(victim.id)
        self.incoming[wid] += sum(v.devices for v in taken)
        return self._claimed(job, wid, taken)

    def _victims_on(self, wid: str, job: PendingJob, needed: int) -> list[RunningJob] | None:
        taken, freed = [], 0
        lost: dict[tuple[str, str], int] = defaultdict(int)
        for victim in self.victims.get(wid, ()):
            key = (victim.owner_id, victim.queue)
            if victim.owner_id == job.owner_id or not (
                    self.devices.get(key, 0) - lost[key] - victim.devices >= self.share.get(key, 0.0)):
                continue
            taken.append(victim)
            lost[key] += victim.devices
            freed += victim.devices
            if freed >= needed:
                return taken
        return None

    def _claimed(self, job: PendingJob, wid: str, taken: list[RunningJob]) -> str:
        """Reserve the worker's free and incoming devices for the job (free ones first)."""
        from_free = min(self.placement.free[wid], job.devices)
        self.placement.free[wid] -= from_free
        self.incoming[wid] -= job.devices - from_free
        self.devices[(job.owner_id, job.queue)] = self.devices.get((job.owner_id, job.queue), 0) + job.devices
        if taken:
            return (f"waiting for {len(taken)} preempted job(s) to pause at their next checkpoint on "
                    f"worker {wid}")
        return f"waiting for devices being freed by preemption on worker {wid}"


def preempt(blocked: Iterable[PendingJob], preemptor: Preemptor, now: datetime, config: PolicyConfig,
            reasons: dict[str, str]) -> list[str]:
    """Walk the blocked jobs in policy order; returns the running job ids to preempt."""
    cutoff = now - timedelta(seconds=config.preemption_grace_s)
    for job in blocked:
        if job.enqueued_at >= cutoff:
            continue
        reason = preemptor.consider(job)
        if reason is not None:
            reasons[job.id] = reason
    return preemptor.chosen
