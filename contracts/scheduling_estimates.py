"""Queue positions and estimated starts: a quick replay of the policy order onto the pool's slots.

Workers with the same (queues, memory, slots) form a class; each class keeps one heap of the times
(seconds from now) its slots free up. A running job frees its devices at its estimated finish
(started_at + the default duration when that is unknown; now when both are unknown or past). Jobs
admitted in this pass start now; then each waiting job, in policy order, takes the earliest-freeing
slot(s) of the fitting class that frees first (least memory on a tie) and holds them for its expected
duration. Approximations, for speed: a gang of d devices takes its class's d earliest slots even when
they sit on different workers; a user at their concurrency cap starts when one of their earlier
(replayed) jobs ends; a daily cap gives no estimate (it lifts when the day turns), nor does a job that
fits no worker; starvation holds and base-model preference are not replayed.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.scheduling import PendingJob, PolicyConfig, RunningJob, UserState, WorkerInfo


def queue_positions(order: Sequence[PendingJob]) -> dict[str, int]:
    """1-based position of each job within its queue, in policy order."""
    seen: dict[str, int] = defaultdict(int)
    positions = {}
    for job in order:
        seen[job.queue] += 1
        positions[job.id] = seen[job.queue]
    return positions


class _Slots:
    """Slot-free times per worker class."""

    def __init__(self, workers: Sequence[WorkerInfo], running: Sequence[RunningJob], now: datetime,
                 config: PolicyConfig) -> None:
        self.class_of: dict[str, int] = {}
        self.info: list[WorkerInfo] = []
        self.heaps: list[list[float]] = []
        ids: dict[tuple, int] = {}
        for w in sorted(workers, key=lambda w: (w.memory_bytes, w.id)):
            key = (w.queues, w.memory_bytes, w.slots)
            if key not in ids:
                ids[key] = len(self.info)
                self.info.append(w)
                self.heaps.append([])
            self.class_of[w.id] = ids[key]
        busy: dict[str, list[float]] = defaultdict(list)
        for r in running:
            if r.worker_id in self.class_of:
                busy[r.worker_id].extend([finish_offset(r, now, config)] * r.devices)
        for w in workers:
            times = busy[w.id][:w.slots]
            self.heaps[self.class_of[w.id]].extend(times + [0.0] * (w.slots - len(times)))
        for heap in self.heaps:
            heapq.heapify(heap)
        self._fitting: dict[tuple[str, int, int], list[int]] = {}

    def fitting(self, job: PendingJob) -> list[int]:
        key = (job.queue, job.memory_bytes, job.devices)
        if key not in self._fitting:
            self._fitting[key] = [i for i, w in enumerate(self.info) if job.queue in w.queues
                                  and w.memory_bytes >= job.memory_bytes and w.slots >= job.devices]
        return self._fitting[key]

    def earliest(self, cls: int, devices: int) -> float:
        heap = self.heaps[cls]
        return heap[0] if devices == 1 else heapq.nsmallest(devices, heap)[-1]

    def occupy(self, cls: int, devices: int, until: float) -> None:
        heap = self.heaps[cls]
        for _ in range(devices):
            heapq.heapreplace(heap, until)


def finish_offset(job: RunningJob, now: datetime, config: PolicyConfig) -> float:
    if job.estimated_finish is not None:
        finish = job.estimated_finish
    elif job.started_at is not None:
        finish = job.started_at + timedelta(seconds=config.default_duration_s)
    else:
        return 0.0
    return max(0.0, (finish - now).total_seconds())


def estimated_starts(order: Sequence[PendingJob], admitted: Mapping[str, str], running: Sequence[RunningJob],
                     workers: Sequence[WorkerInfo], users: Mapping[str, UserState], now: datetime,
                     config: PolicyConfig, no_estimate: Collection[str]) -> dict[str, datetime | None]:
    """Each pending job's estimated start (``now`` for the admitted); None for ``no_estimate`` jobs."""
    slots = _Slots(workers, running, now, config)
    mine: dict[str, list[float]] = defaultdict(list)  # user -> replayed finish times (a heap)
    for r in running:
        mine[r.owner_id].append(finish_offset(r, now, config))
    for heap in mine.values():
        heapq.heapify(heap)
    default, starts = config.default_duration_s, {}
    placed = [j for j in order if j.id in admitted] + [j for j in order if j.id not in admitted]
    for job in placed:
        if job.id in no_estimate:
            starts[job.id] = None
            continue
        duration = job.estimated_duration_s if job.estimated_duration_s is not None else default
        if job.id in admitted:
            cls, start = slots.class_of[admitted[job.id]], 0.0
        else:
            fitting = slots.fitting(job)
            if not fitting:
                starts[job.id] = None
                continue
            cls = min(fitting, key=lambda c: slots.earliest(c, job.devices))
            start = slots.earliest(cls, job.devices)
        state = users.get(job.owner_id)
        cap = config.default_max_running if state is None or state.max_running is None else state.max_running
        own = mine[job.owner_id]
        while len(own) >= max(cap, 1):
            start = max(start, heapq.heappop(own))
        if job.id in admitted:
            start = 0.0
        slots.occupy(cls, job.devices, start + duration)
        heapq.heappush(own, start + duration)
        starts[job.id] = now + timedelta(seconds=start) if start else now
    return starts
