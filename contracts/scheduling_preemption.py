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
from itertools import islice
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob
    from contracts.scheduling_placement import Placement

class Preemptor:
    def __init__(self, running: Iterable[RunningJob], placement: Placement,
                 share: Mapping[tuple[str, str], float], devices: dict[tuple[str, str], float]) -> None:
        self.running, self.placement, self.share, self.devices = running, placement, share, devices
        self.served: dict[tuple[str, str], float] = {}  # devices claimed for a user by this pass's preemptions
        self.chosen: list[str] = []
        self._failed: dict[tuple[str, int], int] = {}  # (queue, devices) -> least memory that found none
        self._failed_for: dict[tuple[str, str, int], int] = {}  # the same, for one user
        self._indexed = False

    def _index(self) -> None:
        """Victim candidates per worker, built on the first job that may claim (most passes have none)."""
        self._indexed = True
        self.incoming: dict[str, int] = defaultdict(int)  # worker -> devices of jobs already stopping
        candidates = []
        for r in self.running:
            if r.stopping:
                self.incoming[r.worker_id] += r.devices
                continue
            key = (r.owner_id, r.queue)
            if r.preemptible and self.devices.get(key, 0) > self.share.get(key, 0.0):
                candidates.append(r)
        # most recently started first (least work lost); admitted and not started yet counts as newest
        started = sorted((r for r in candidates if r.started_at is not None), key=lambda r: r.started_at,
                         reverse=True)
        self.order = [r for r in candidates if r.started_at is None] + started
        self.on_worker: dict[str, list[RunningJob]] = defaultdict(list)
        for r in self.order:
            self.on_worker[r.worker_id].append(r)
        self._head = 0  # self.order[:head] is all gone (taken, or its owner may lose no more)
        self._gone: set[str] = set()

    def may_claim(self, job: PendingJob) -> bool:
        """The job's owner runs nothing in the queue (but what this pass claimed) and is below their share."""
        key = (job.owner_id, job.queue)
        running = self.devices.get(key, 0)
        return running == self.served.get(key, 0) and running < self.share.get(key, 0.0) - 1e-9

    def _spare(self, victim: RunningJob, already: int = 0) -> bool:
        """The victim's owner runs above their share and keeps at least it without the victim."""
        key = (victim.owner_id, victim.queue)
        return self.devices.get(key, 0) - already - victim.devices >= self.share.get(key, 0.0)

    def consider(self, job: PendingJob) -> str | None:
        """Free devices for a waiting job if the rules allow; the job's waiting reason, or None."""
        shape, mine = (job.queue, job.devices), (job.owner_id, job.queue, job.devices)
        if (job.memory_bytes >= self._failed.get(shape, 1 << 62)
                or job.memory_bytes >= self._failed_for.get(mine, 1 << 62)):
            return None
        if not self._indexed:
            self._index()
        fits = self.placement.fitting_ids(job)
        held, free = self.placement.held, self.placement.free
        for wid, n in self.incoming.items():
            if wid in fits and wid not in held and free[wid] + n >= job.devices:
                return self._claimed(job, wid, [])
        if job.devices == 1:
            victim, own_only = self._newest_spare(job, fits, held)
            best = None if victim is None else (victim.worker_id, [victim])
        else:
            best, own_only = self._fewest_on_one_worker(job, fits, held)
        if best is None:
            failed, key = (self._failed_for, mine) if own_only else (self._failed, shape)
            failed[key] = job.memory_bytes
            return None
        wid, taken = best
        for victim in taken:
            self.on_worker[wid].remove(victim)
            self._gone.add(victim.id)
            self.devices[(victim.owner_id, victim.queue)] -= victim.devices
            self.chosen.append(victim.id)
        self.incoming[wid] += sum(v.devices for v in taken)
        return self._claimed(job, wid, taken)

    def _newest_spare(self, job: PendingJob, fits: set[str], held: Mapping[str, str],
                      ) -> tuple[RunningJob | None, bool]:
        """The most recently started victim on a worker the one-device job fits; and whether one of
        the waiting user's own was passed over. Victims whose owner may lose no more are dropped
        for the rest of the pass (owners only lose devices within a pass)."""
        order, gone, own = self.order, self._gone, False
        while self._head < len(order) and order[self._head].id in gone:
            self._head += 1
        for victim in islice(order, self._head, None):
            if victim.id in gone:
                continue
            if not self._spare(victim):
                gone.add(victim.id)
                self.on_worker[victim.worker_id].remove(victim)
                continue
            if victim.owner_id == job.owner_id:
                own = True
            elif victim.worker_id in fits and victim.worker_id not in held:
                return victim, own
        return None, own

    def _fewest_on_one_worker(self, job: PendingJob, fits: set[str], held: Mapping[str, str],
                              ) -> tuple[tuple[str, list[RunningJob]] | None, bool]:
        """For a gang: the worker where the fewest victims free enough devices."""
        free = self.placement.free
        best, own_only = None, False
        for wid, jobs in self.on_worker.items():
            if wid not in fits or wid in held or not jobs:
                continue
            taken, skipped_own = self._victims_on(jobs, job, job.devices - free[wid] - self.incoming.get(wid, 0))
            own_only = own_only or skipped_own
            if taken is not None and (best is None or len(taken) < len(best[1])):
                best = (wid, taken)
        return best, own_only

    def _victims_on(self, jobs: list[RunningJob], job: PendingJob, needed: int,
                    ) -> tuple[list[RunningJob] | None, bool]:
        """The newest jobs on one worker that free ``needed`` devices under the rules (or None), and
        whether a job of the waiting user's own was passed over."""
        taken, freed, skipped_own = [], 0, False
        lost: dict[tuple[str, str], int] = defaultdict(int)
        for victim in jobs:
            key = (victim.owner_id, victim.queue)
            if victim.owner_id == job.owner_id:
                skipped_own = True
                continue
            if not self._spare(victim, lost[key]):
                continue
            taken.append(victim)
            lost[key] += victim.devices
            freed += victim.devices
            if freed >= needed:
                return taken, skipped_own
        return None, skipped_own

    def _claimed(self, job: PendingJob, wid: str, taken: list[RunningJob]) -> str:
        """Reserve the worker's free and incoming devices for the job (free ones first)."""
        from_free = min(self.placement.free[wid], job.devices)
        self.placement.free[wid] -= from_free
        self.incoming[wid] -= job.devices - from_free
        if self.incoming[wid] <= 0:
            del self.incoming[wid]
        key = (job.owner_id, job.queue)
        self.devices[key] = self.devices.get(key, 0) + job.devices
        self.served[key] = self.served.get(key, 0) + job.devices
        if taken:
            return (f"waiting for {len(taken)} preempted job(s) to pause at their next checkpoint on "
                    f"worker {wid}")
        return f"waiting for devices being freed by preemption on worker {wid}"

def preempt(blocked: Iterable[PendingJob], preemptor: Preemptor, now: datetime, config: PolicyConfig,
            reasons: dict[str, str]) -> list[str]:
    """Walk the blocked jobs in policy order; returns the running job ids to preempt."""
    cutoff = now - timedelta(seconds=config.preemption_grace_s)
    at_share: set[tuple[str, str]] = set()  # users found at or above their share stay so in this pass
    for job in blocked:
        if job.enqueued_at >= cutoff or (job.owner_id, job.queue) in at_share:
            continue
        if not preemptor.may_claim(job):
            if job.devices == 1:
                at_share.add((job.owner_id, job.queue))
            continue
        reason = preemptor.consider(job)
        if reason is not None:
            reasons[job.id] = reason
    return preemptor.chosen
